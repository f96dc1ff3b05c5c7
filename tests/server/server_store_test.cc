// The authoritative ledger (storage/server_store.h, SQLite implementation)
// through its interface, on a real database file in a temp dir.
#include <google/protobuf/util/message_differencer.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "core/programme.h"
#include "storage/server_store.h"
#include "tests/server/test_events.h"
#include "tests/support/temp_dir.h"

namespace loyalty::server {
namespace {

using namespace loyalty::server::testing;
using storage::ServerStore;

class ServerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = storage::OpenSqliteServerStore(dir_.file("server.db"));
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
  }

  storage::IngestOutcome Ingest(const std::string& store_id, std::vector<v1::Event> events) {
    auto out = store_->Ingest(store_id, events, NowMs());
    EXPECT_TRUE(out.ok()) << out.error().message;
    return out.ok() ? std::move(*out) : storage::IngestOutcome{};
  }

  v1::MemberSnapshot Member(const std::string& key) {
    auto found = store_->FindMember(key, 100);
    EXPECT_TRUE(found.ok());
    if (!found.ok() || !*found) {
      ADD_FAILURE() << "no member " << key;
      return {};
    }
    return (*found)->ledger.snapshot();
  }

  ServerStore::Totals Totals() {
    auto t = store_->LedgerTotals();
    EXPECT_TRUE(t.ok());
    return t.ok() ? *t : ServerStore::Totals{};
  }

  ::loyalty::testing::TempDir dir_;
  std::unique_ptr<ServerStore> store_;
};

TEST_F(ServerStoreTest, ResentBatchIsAcknowledgedAndChangesNothing) {
  std::vector<v1::Event> batch = {Enrol("S1", 1, "p-1", HashOf(1)), Purchase("S1", 2, "p-1", 40)};
  auto first = Ingest("S1", batch);
  EXPECT_EQ(first.acknowledged.size(), 2u);
  EXPECT_TRUE(first.rejected.empty());
  const auto totals = Totals();
  const uint64_t version = *store_->LatestVersion();

  auto again = Ingest("S1", batch);
  EXPECT_EQ(again.acknowledged.size(), 2u);
  EXPECT_TRUE(again.rejected.empty());
  EXPECT_TRUE(again.touched_members.empty());
  EXPECT_EQ(Totals().events, totals.events);
  EXPECT_EQ(Totals().points, totals.points);
  EXPECT_EQ(*store_->LatestVersion(), version);
  EXPECT_EQ(Member("p-1").points_balance(), 40);
}

// ---- the inbox: Append acknowledges, Fold applies

TEST_F(ServerStoreTest, AppendAcknowledgesWithoutTouchingTheLedgerAndFoldAppliesOnce) {
  auto appended = store_->Append(
      "S1", {Enrol("S1", 1, "p-1", HashOf(1)), Purchase("S1", 2, "p-1", 40)}, NowMs());
  ASSERT_TRUE(appended.ok()) << appended.error().message;
  EXPECT_EQ(appended->acknowledged.size(), 2u);
  EXPECT_TRUE(appended->rejected.empty());
  EXPECT_EQ(store_->UnfoldedEvents(), 2);
  EXPECT_EQ(Totals().events, 0);
  EXPECT_EQ(Totals().members, 0);

  // One event per step: the enrolment (first in) before the purchase.
  auto first = store_->Fold(1, NowMs());
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->folded, 1);
  EXPECT_EQ(first->unfolded, 1);
  EXPECT_EQ(Member("p-1").points_balance(), 0);
  auto second = store_->Fold(100, NowMs());
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->folded, 1);
  EXPECT_THAT(second->touched_members, ::testing::ElementsAre("p-1"));
  EXPECT_EQ(second->latest_version, *store_->LatestVersion());
  EXPECT_EQ(Member("p-1").points_balance(), 40);
  EXPECT_EQ(store_->UnfoldedEvents(), 0);

  auto idle = store_->Fold(100, NowMs());
  ASSERT_TRUE(idle.ok());
  EXPECT_EQ(idle->folded, 0);
  EXPECT_EQ(Totals().events, 2);
  EXPECT_EQ(Member("p-1").points_balance(), 40);
}

TEST_F(ServerStoreTest, TheInboxOutlivesTheProcessAndIsFoldedAfterReopening) {
  ASSERT_TRUE(store_->Append("S1", {Enrol("S1", 1, "p-1", HashOf(1)), Purchase("S1", 2, "p-1", 7)},
                             NowMs())
                  .ok());
  store_.reset();  // the process stops before folding
  auto reopened = storage::OpenSqliteServerStore(dir_.file("server.db"));
  ASSERT_TRUE(reopened.ok()) << reopened.error().message;
  store_ = std::move(*reopened);
  EXPECT_EQ(store_->UnfoldedEvents(), 2);
  // A resend after the restart is recognised in the inbox: acknowledged, not
  // appended again.
  auto resent = store_->Append("S1", {Purchase("S1", 2, "p-1", 7)}, NowMs());
  ASSERT_TRUE(resent.ok());
  EXPECT_EQ(resent->acknowledged.size(), 1u);
  EXPECT_EQ(store_->UnfoldedEvents(), 2);
  ASSERT_TRUE(store_->FoldAll(NowMs()).ok());
  EXPECT_EQ(store_->UnfoldedEvents(), 0);
  EXPECT_EQ(Totals().events, 2);
  EXPECT_EQ(Member("p-1").points_balance(), 7);
}

TEST_F(ServerStoreTest, ASequenceReusedWhileTheFirstEventWaitsInTheInboxIsRejected) {
  ASSERT_TRUE(store_->Append("S1", {Enrol("S1", 1, "p-1", HashOf(1)), Purchase("S1", 2, "p-1", 5)},
                             NowMs())
                  .ok());
  v1::Event other = Purchase("S1", 2, "p-1", 99);
  other.mutable_id()->set_uuid("a-different-uuid");
  auto out = store_->Append("S1", {other}, NowMs());
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->rejected.size(), 1u);
  EXPECT_EQ(out->rejected[0].code(), "sequence_reused");
  EXPECT_TRUE(out->acknowledged.empty());
  ASSERT_TRUE(store_->FoldAll(NowMs()).ok());
  EXPECT_EQ(Member("p-1").points_balance(), 5);
}

TEST_F(ServerStoreTest, AMemberWhoseEnrolmentWaitsInTheInboxIsKnownToTheNextUpload) {
  ASSERT_TRUE(store_->Append("S1", {Enrol("S1", 1, "p-1", HashOf(1))}, NowMs()).ok());
  auto out = store_->Append("S1", {Purchase("S1", 2, "p-1", 12), Purchase("S1", 3, "nobody", 3)},
                            NowMs());
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->acknowledged.size(), 1u);
  EXPECT_EQ(out->acknowledged[0].seq(), 2u);
  ASSERT_EQ(out->rejected.size(), 1u);
  EXPECT_EQ(out->rejected[0].code(), "unknown_member");
  EXPECT_EQ(store_->UnfoldedEvents(), 2);
  auto folded = store_->FoldAll(NowMs());
  ASSERT_TRUE(folded.ok());
  EXPECT_TRUE(folded->rejected.empty());
  EXPECT_EQ(Member("p-1").points_balance(), 12);
}

TEST_F(ServerStoreTest, AnAliasWhoseEnrolmentWaitsInTheInboxIsKnownAndMerges) {
  Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1)), Purchase("S1", 2, "p-1", 10)});
  // Store S2 enrolled the same card offline under its own provisional id.
  ASSERT_TRUE(store_->Append("S2", {Enrol("S2", 1, "q-1", HashOf(1))}, NowMs()).ok());
  auto out = store_->Append("S2", {Purchase("S2", 2, "q-1", 4)}, NowMs());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->acknowledged.size(), 1u);
  EXPECT_TRUE(out->rejected.empty());
  ASSERT_TRUE(store_->FoldAll(NowMs()).ok());
  EXPECT_EQ(Member("p-1").points_balance(), 14);
  EXPECT_EQ(Member("q-1").member_id(), "p-1");
}

TEST_F(ServerStoreTest, StoresCountWhatAppendAcknowledgedAndRejected) {
  ASSERT_TRUE(store_->Append("S1",
                             {Enrol("S1", 1, "p-1", HashOf(1)), Purchase("S1", 2, "p-1", 1),
                              Purchase("S1", 3, "ghost", 1)},
                             NowMs())
                  .ok());
  auto statuses = store_->StoreStatuses();
  ASSERT_TRUE(statuses.ok());
  ASSERT_EQ(statuses->size(), 1u);
  EXPECT_EQ((*statuses)[0].events_received(), 2);
  EXPECT_EQ((*statuses)[0].events_rejected(), 1);
  ASSERT_EQ((*statuses)[0].terminals_size(), 1);
  EXPECT_EQ((*statuses)[0].terminals(0).last_seq(), 2u);
}

TEST_F(ServerStoreTest, SequenceReusedByAnotherEventIsRejected) {
  Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1)), Purchase("S1", 2, "p-1", 10)});
  v1::Event other = Purchase("S1", 2, "p-1", 99);
  other.mutable_id()->set_uuid("a-different-uuid");
  auto out = Ingest("S1", {other});
  ASSERT_EQ(out.rejected.size(), 1u);
  EXPECT_EQ(out.rejected[0].code(), "sequence_reused");
  EXPECT_TRUE(out.acknowledged.empty());
  EXPECT_EQ(Member("p-1").points_balance(), 10);
}

TEST_F(ServerStoreTest, EventTwiceInOneBatchIsAppliedOnce) {
  const v1::Event purchase = Purchase("S1", 2, "p-1", 40);
  auto out = Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1)), purchase, purchase});
  EXPECT_EQ(out.acknowledged.size(), 3u);
  EXPECT_TRUE(out.rejected.empty());
  EXPECT_EQ(Totals().events, 2);
  EXPECT_EQ(Member("p-1").points_balance(), 40);
}

TEST_F(ServerStoreTest, LateEventBelowTheTerminalsLastSeqIsAppliedAndItsResendIsNot) {
  Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1)), Purchase("S1", 3, "p-1", 10)});
  // Seq 2 arrives after seq 3 (another batch, out of order): new, so applied.
  EXPECT_EQ(Ingest("S1", {Purchase("S1", 2, "p-1", 5)}).touched_members.size(), 1u);
  EXPECT_EQ(Member("p-1").points_balance(), 15);
  auto again = Ingest("S1", {Purchase("S1", 2, "p-1", 5), Purchase("S1", 3, "p-1", 10)});
  EXPECT_EQ(again.acknowledged.size(), 2u);
  EXPECT_TRUE(again.touched_members.empty());
  EXPECT_EQ(Member("p-1").points_balance(), 15);
  v1::Event reused = Purchase("S1", 3, "p-1", 7);
  reused.mutable_id()->set_uuid("another-uuid");
  auto clash = Ingest("S1", {reused});
  ASSERT_EQ(clash.rejected.size(), 1u);
  EXPECT_EQ(clash.rejected[0].code(), "sequence_reused");
}

TEST_F(ServerStoreTest, EventOfAnotherStoreIsRejectedAsWrongStore) {
  auto out = Ingest("S1", {Enrol("S2", 1, "p-1", HashOf(1))});
  ASSERT_EQ(out.rejected.size(), 1u);
  EXPECT_EQ(out.rejected[0].code(), "wrong_store");
  EXPECT_EQ(Totals().events, 0);
  EXPECT_EQ(Totals().members, 0);
}

TEST_F(ServerStoreTest, EventOfUnknownMemberIsRejected) {
  auto out = Ingest("S1", {Purchase("S1", 1, "p-nobody", 10)});
  ASSERT_EQ(out.rejected.size(), 1u);
  EXPECT_EQ(out.rejected[0].code(), "unknown_member");
  EXPECT_EQ(Totals().events, 0);
}

TEST_F(ServerStoreTest, ProvisionalMemberIsConfirmedUnderItsId) {
  auto out = Ingest("S1", {Enrol("S1", 1, "p-new", HashOf(7)), Purchase("S1", 2, "p-new", 25)});
  EXPECT_EQ(out.touched_members, std::vector<std::string>{"p-new"});
  const v1::MemberSnapshot snap = Member("p-new");
  EXPECT_EQ(snap.member_id(), "p-new");
  EXPECT_EQ(snap.card_hash(), HashOf(7));
  EXPECT_EQ(snap.points_balance(), 25);
  EXPECT_EQ(snap.included_seq().at("S1/till-1/1"), 2u);
  EXPECT_EQ(Member(HashOf(7)).member_id(), "p-new");  // by card hash too
}

TEST_F(ServerStoreTest, SameCardEnrolledAtTwoStoresMergesIntoOneMember) {
  Ingest("S1", {Enrol("S1", 1, "p-a", HashOf(3)), Purchase("S1", 2, "p-a", 10)});
  Ingest("S2", {Enrol("S2", 1, "p-b", HashOf(3)), Purchase("S2", 2, "p-b", 5)});
  EXPECT_EQ(Totals().members, 1);
  const v1::MemberSnapshot snap = Member("p-b");  // the alias finds the member
  EXPECT_EQ(snap.member_id(), "p-a");
  EXPECT_EQ(snap.points_balance(), 15);
  auto found = store_->FindMember("p-a", 100);
  ASSERT_TRUE(found.ok() && *found);
  EXPECT_EQ((*found)->ledger.aliases_size(), 1);
  EXPECT_EQ((*found)->history.size(), 4u);
}

TEST_F(ServerStoreTest, ChangeFeedVersionsIncreaseAndPage) {
  for (int i = 1; i <= 5; ++i) {
    Ingest("S1", {Enrol("S1", static_cast<uint64_t>(i), "p-" + std::to_string(i), HashOf(i))});
  }
  v1::Offer offer;
  offer.set_id("o-1");
  offer.set_name("Coffee bonus");
  offer.set_bonus_points(10);
  auto offer_version = store_->PutOffer(offer);
  ASSERT_TRUE(offer_version.ok());
  EXPECT_EQ(*offer_version, 6u);

  std::vector<uint64_t> seen;
  uint64_t cursor = 0;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = store_->Changes(cursor, 2);
    ASSERT_TRUE(page.ok());
    for (const auto& c : page->changes()) seen.push_back(c.version());
    cursor = page->cursor();
    if (!page->has_more()) break;
  }
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(cursor, 6u);
  auto none = store_->Changes(6, 2);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->changes_size(), 0);
  EXPECT_FALSE(none->has_more());
  EXPECT_EQ(none->cursor(), 6u);
}

// MEMBER_SCOPE_STORE: a store's feed carries its own members and the ones
// it looked up; offers go to every store; a looked-up member's later changes
// follow it.
TEST_F(ServerStoreTest, StoreScopedFeedCarriesOnlyTheStoresMembersAndLookedUpOnes) {
  Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1)), Enrol("S1", 2, "p-2", HashOf(2))});
  Ingest("S2", {Enrol("S2", 1, "p-3", HashOf(3))});
  v1::Offer offer;
  offer.set_id("o-1");
  offer.set_name("Everyone");
  offer.set_bonus_points(10);
  ASSERT_TRUE(store_->PutOffer(offer).ok());

  auto members_in = [](const v1::ChangesPage& page) {
    std::vector<std::string> ids;
    for (const auto& c : page.changes()) {
      if (c.has_member()) ids.push_back(c.member().member_id());
    }
    return ids;
  };
  auto page = store_->Changes(0, 100, "S2");
  ASSERT_TRUE(page.ok()) << page.error().message;
  EXPECT_EQ(members_in(*page), std::vector<std::string>{"p-3"});
  ASSERT_EQ(page->changes_size(), 2);
  EXPECT_EQ(page->changes(1).offer().id(), "o-1");
  EXPECT_EQ(page->cursor(), *store_->LatestVersion());
  EXPECT_FALSE(page->has_more());
  // Unscoped, everyone.
  auto all = store_->Changes(0, 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(members_in(*all), (std::vector<std::string>{"p-1", "p-2", "p-3"}));

  // Past the last in-scope change, the cursor still reaches the feed's end.
  Ingest("S1", {Purchase("S1", 3, "p-2", 10)});
  auto quiet = store_->Changes(page->cursor(), 100, "S2");
  ASSERT_TRUE(quiet.ok());
  EXPECT_EQ(quiet->changes_size(), 0);
  EXPECT_GT(quiet->cursor(), page->cursor());
  EXPECT_EQ(quiet->cursor(), *store_->LatestVersion());

  auto found = store_->LookupForStore(HashOf(1), "S2");
  ASSERT_TRUE(found.ok()) << found.error().message;
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->member_id(), "p-1");
  auto missing = store_->LookupForStore(HashOf(99), "S2");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());

  Ingest("S1", {Purchase("S1", 4, "p-1", 25), Purchase("S1", 5, "p-2", 5)});
  auto later = store_->Changes(quiet->cursor(), 100, "S2");
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(members_in(*later), std::vector<std::string>{"p-1"});
  EXPECT_EQ(later->changes(0).member().points_balance(), 25);
}

// Terminals' pulls are served by read connections off the database thread:
// every kind of change reads the same there as on the store's connection.
TEST_F(ServerStoreTest, AReaderServesTheSameFeedAsTheStore) {
  Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1)), Enrol("S1", 2, "p-2", HashOf(2))});
  Ingest("S2", {Enrol("S2", 1, "p-3", HashOf(3)), Purchase("S2", 2, "p-3", 40)});
  v1::Offer kept;
  kept.set_id("o-kept");
  kept.set_name("Kept");
  kept.set_bonus_points(10);
  v1::Offer retired = kept;
  retired.set_id("o-retired");
  ASSERT_TRUE(store_->PutOffer(kept).ok());
  ASSERT_TRUE(store_->PutOffer(retired).ok());
  ASSERT_TRUE(store_->RetireOffer("o-retired").ok());
  v1::Programme next = core::DefaultProgramme();
  next.set_version(store_->Programme()->version() + 1);
  ASSERT_TRUE(store_->PutProgramme(next).ok());
  ASSERT_TRUE(store_->EraseMember("p-2").ok());

  auto reader = store_->OpenReader();
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  for (const std::string scope : {"", "S1", "S2", "S9"}) {
    for (uint64_t after : {uint64_t{0}, uint64_t{2}, uint64_t{1000}}) {
      for (uint32_t max : {1u, 3u, 100u}) {
        auto from_store = store_->Changes(after, max, scope);
        auto from_reader = (*reader)->Changes(after, max, scope);
        ASSERT_TRUE(from_store.ok() && from_reader.ok());
        // Equal as messages: map fields have no fixed serialized order.
        EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*from_reader, *from_store))
            << "scope '" << scope << "' after " << after << " max " << max << ":\n"
            << from_reader->DebugString() << "store:\n" << from_store->DebugString();
      }
    }
  }
  // The reader saw every kind of change.
  auto all = (*reader)->Changes(0, 100, "");
  ASSERT_TRUE(all.ok());
  bool member = false, offer = false, withdrawn = false, programme = false, erased = false;
  for (const auto& c : all->changes()) {
    member |= c.has_member();
    offer |= c.has_offer();
    withdrawn |= !c.withdrawn_offer_id().empty();
    programme |= c.has_programme();
    erased |= !c.erased_member_id().empty();
  }
  EXPECT_TRUE(member && offer && withdrawn && programme && erased) << all->DebugString();
  // A member's snapshot in the feed is the one in its ledger (read without
  // parsing the rest of the ledger).
  for (const auto& c : all->changes()) {
    if (!c.has_member()) continue;
    auto record = store_->FindMember(c.member().member_id(), 0);
    ASSERT_TRUE(record.ok() && record->has_value());
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(c.member(),
                                                                  (*record)->ledger.snapshot()))
        << c.member().DebugString();
  }
}

// Feed readers keep each store's scoped feed between pulls: their pages are
// the store's own (one query over the whole feed), page by page, for
// terminals pulling at their own pace through random sales at three stores,
// lookups, offers and an erasure, new terminals starting from 0 included.
TEST_F(ServerStoreTest, AReadersScopedPagesEqualTheStoresOnRandomHistories) {
  std::mt19937 rng(20261123);
  auto reader = store_->OpenReader();
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  const std::vector<std::string> stores = {"S1", "S2", "S3"};
  std::map<std::string, uint64_t> seq;
  std::vector<std::string> members;
  std::map<std::pair<std::string, int>, uint64_t> cursors;  // (store, terminal) -> cursor
  int pages = 0;
  auto pull = [&](const std::string& store, int terminal) {
    uint64_t& cursor = cursors[{store, terminal}];
    const uint32_t max = 1 + rng() % 6;
    for (int guard = 0; guard < 1000; ++guard) {
      auto from_reader = (*reader)->Changes(cursor, max, store);
      auto from_store = store_->Changes(cursor, max, store);
      ASSERT_TRUE(from_reader.ok() && from_store.ok());
      ASSERT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*from_reader, *from_store))
          << store << " terminal " << terminal << " after " << cursor << " max " << max
          << "\nreader:\n" << from_reader->DebugString() << "store:\n" << from_store->DebugString();
      ++pages;
      cursor = from_store->cursor();
      if (!from_store->has_more()) return;
    }
    FAIL() << "the feed never ended";
  };
  for (int step = 0; step < 400; ++step) {
    const std::string& store = stores[rng() % stores.size()];
    const int action = static_cast<int>(rng() % 12);
    if (members.size() < 3 || action == 0) {
      const std::string id = "p-" + std::to_string(members.size());
      Ingest(store, {Enrol(store, ++seq[store], id, HashOf(static_cast<int>(members.size())))});
      members.push_back(id);
    } else if (action <= 5) {
      const std::string& id = members[rng() % members.size()];
      Ingest(store, {Purchase(store, ++seq[store], id, 1 + static_cast<int64_t>(rng() % 50))});
    } else if (action == 6) {
      ASSERT_TRUE(store_->LookupForStore(HashOf(static_cast<int>(rng() % members.size())), store)
                      .ok());
    } else if (action == 7) {
      v1::Offer offer;
      offer.set_id("o-" + std::to_string(rng() % 4));
      offer.set_name("Offer");
      offer.set_bonus_points(5);
      ASSERT_TRUE(store_->PutOffer(offer).ok());
    } else if (action == 8 && step > 200 && members.size() > 5) {
      ASSERT_TRUE(store_->EraseMember(members[rng() % members.size()]).ok());
    } else if (action == 9) {
      cursors[{store, static_cast<int>(rng() % 3)}] = 0;  // a new terminal
    } else {
      pull(store, static_cast<int>(rng() % 3));
    }
    if (::testing::Test::HasFatalFailure()) return;
  }
  for (const auto& store : stores) {
    for (int terminal = 0; terminal < 3; ++terminal) pull(store, terminal);
  }
  EXPECT_GT(pages, 200);
}

TEST_F(ServerStoreTest, CursorAheadOfTheFeedGetsAFullSnapshot) {
  Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1)), Enrol("S1", 2, "p-2", HashOf(2))});
  auto page = store_->Changes(1000, 0);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->changes_size(), 2);
  EXPECT_EQ(page->changes(0).version(), 1u);
  EXPECT_EQ(page->cursor(), 2u);
}

TEST_F(ServerStoreTest, OverdrawIsKeptAndReportedAsConflictWithBothEvents) {
  Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1)), Purchase("S1", 2, "p-1", 100)});
  // Two stores, offline together, each redeem most of the balance.
  Ingest("S1", {Redeem("S1", 3, "p-1", 80)});
  v1::Event redeem_b = Redeem("S2", 1, "p-1", 70);
  Ingest("S2", {redeem_b});
  EXPECT_EQ(Member("p-1").points_balance(), -50);
  EXPECT_EQ(Totals().events, 4);
  auto conflicts = store_->Conflicts();
  ASSERT_TRUE(conflicts.ok());
  ASSERT_EQ(conflicts->size(), 1u);
  EXPECT_EQ((*conflicts)[0].kind(), "overdraw");
  EXPECT_EQ((*conflicts)[0].balance_after(), -50);
  EXPECT_EQ((*conflicts)[0].member_id(), "p-1");
  // Both redemptions are named, though they came in different batches.
  EXPECT_THAT((*conflicts)[0].event_ids(),
              ::testing::UnorderedElementsAre("S2/till-1/1/1", "S1/till-1/1/3"));
}

TEST_F(ServerStoreTest, OverdrawInOneBatchNamesBothRedemptions) {
  Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1)), Purchase("S1", 2, "p-1", 100)});
  Ingest("S1", {Redeem("S1", 3, "p-1", 80), Redeem("S1", 4, "p-1", 70)});
  auto conflicts = store_->Conflicts();
  ASSERT_TRUE(conflicts.ok());
  ASSERT_EQ(conflicts->size(), 1u);
  EXPECT_EQ((*conflicts)[0].event_ids_size(), 2);
  EXPECT_EQ(Member("p-1").points_balance(), -50);
}

TEST_F(ServerStoreTest, ProgrammeVersionMustIncrease) {
  v1::Programme p = core::DefaultProgramme();
  const uint64_t current = store_->Programme()->version();
  p.set_version(current + 1);
  auto published = store_->PutProgramme(p);
  ASSERT_TRUE(published.ok()) << published.error().message;
  EXPECT_EQ(store_->Programme()->version(), current + 1);

  auto same = store_->PutProgramme(p);
  ASSERT_FALSE(same.ok());
  EXPECT_EQ(same.error().code, core::code::kConflict);
  p.set_version(current);
  EXPECT_FALSE(store_->PutProgramme(p).ok());
  EXPECT_EQ(store_->Programme()->version(), current + 1);

  // A slip to the largest version would leave no version to follow it.
  p.set_version(UINT64_MAX);
  auto slip = store_->PutProgramme(p);
  ASSERT_FALSE(slip.ok());
  EXPECT_EQ(slip.error().code, core::code::kInvalidProgramme);
  EXPECT_EQ(store_->Programme()->version(), current + 1);
  p.set_version(2026112401);  // a date-like version is fine
  ASSERT_TRUE(store_->PutProgramme(p).ok());
  EXPECT_EQ(store_->Programme()->version(), 2026112401u);
}

TEST_F(ServerStoreTest, RetiredOfferIsWithdrawnInTheFeed) {
  v1::Offer offer;
  offer.set_id("o-1");
  offer.set_name("Bonus");
  offer.set_bonus_points(5);
  ASSERT_TRUE(store_->PutOffer(offer).ok());
  auto retired = store_->RetireOffer("o-1");
  ASSERT_TRUE(retired.ok());
  EXPECT_TRUE(store_->Offers()->empty());
  auto page = store_->Changes(0, 0);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->changes_size(), 1);
  EXPECT_EQ(page->changes(0).withdrawn_offer_id(), "o-1");
  EXPECT_EQ(store_->RetireOffer("o-unknown").error().code, core::code::kNotFound);
}

}  // namespace
}  // namespace loyalty::server
