#include "storage/agent_store.h"

#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace loyalty::storage {
namespace {

std::unique_ptr<AgentStore> OpenStore(const std::string& path, bool read_only = false) {
  Database::Options options;
  options.read_only = read_only;
  auto store = AgentStore::Open(path, options);
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
  return std::move(*store);
}

v1::Event MakeEvent(uint64_t seq, const std::string& member) {
  v1::Event e;
  e.mutable_id()->set_seq(seq);
  e.mutable_id()->set_store_id("s1");
  e.set_member_id(member);
  e.mutable_visit()->set_pos_txn_id("t" + std::to_string(seq));
  return e;
}

TEST(AgentStore, FindsMembersByCardHashAndIdButNeverStoresTheCard) {
  testing::TempDir dir;
  auto store = OpenStore(dir.file("agent.db"));
  MemberRow row{"m-1", std::string(64, 'a'), std::nullopt, "Ana"};
  ASSERT_TRUE(store->InsertMember(row).ok());
  auto found = store->FindMemberByCardHash(std::string(64, 'a'));
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->member_id, "m-1");
  EXPECT_FALSE((*found)->snapshot.has_value());
  auto by_id = store->FindMemberById("m-1");
  ASSERT_TRUE(by_id.ok() && by_id->has_value());
  EXPECT_EQ((*by_id)->card_hash, std::string(64, 'a'));
  auto missing = store->FindMemberByCardHash("nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST(AgentStore, DuplicateCardIsRefusedByTheSchema) {
  testing::TempDir dir;
  auto store = OpenStore(dir.file("agent.db"));
  ASSERT_TRUE(store->InsertMember({"m-1", "h", std::nullopt, "A"}).ok());
  EXPECT_FALSE(store->InsertMember({"m-2", "h", std::nullopt, "B"}).ok());
}

TEST(AgentStore, SnapshotReplacesTheProvisionalRow) {
  testing::TempDir dir;
  auto store = OpenStore(dir.file("agent.db"));
  ASSERT_TRUE(store->InsertMember({"p-1", "h", std::nullopt, "A"}).ok());
  v1::MemberSnapshot snap;
  snap.set_member_id("M-100");
  snap.set_card_hash("h");
  snap.set_display_name("Ana");
  snap.set_points_balance(42);
  ASSERT_TRUE(store->PutSnapshot(snap).ok());
  auto found = store->FindMemberByCardHash("h");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->member_id, "M-100");
  ASSERT_TRUE((*found)->snapshot.has_value());
  EXPECT_EQ((*found)->snapshot->points_balance(), 42);
}

TEST(AgentStore, EventsComeBackPerMemberInSequenceOrder) {
  testing::TempDir dir;
  auto store = OpenStore(dir.file("agent.db"));
  ASSERT_TRUE(store->AppendEvent(MakeEvent(1, "a")).ok());
  ASSERT_TRUE(store->AppendEvent(MakeEvent(2, "b")).ok());
  ASSERT_TRUE(store->AppendEvent(MakeEvent(3, "a")).ok());
  EXPECT_FALSE(store->AppendEvent(MakeEvent(3, "a")).ok()) << "a sequence number is unique";
  auto events = store->MemberEvents("a", 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].seq, 1u);
  EXPECT_EQ((*events)[1].event.visit().pos_txn_id(), "t3");
  auto after = store->MemberEvents("a", 1);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ(*store->LastSeq(), 3u);
  EXPECT_EQ(*store->CountUnackedEvents(), 3);
}

TEST(AgentStore, RequestsRememberDigestAndResponse) {
  testing::TempDir dir;
  auto store = OpenStore(dir.file("agent.db"));
  ASSERT_TRUE(store->PutRequest("commit", "T1", {"d1", "resp", "m"}).ok());
  ASSERT_TRUE(store->PutRequest("void", "T1:return:1", {"d2", "r", "m"}).ok());
  ASSERT_TRUE(store->PutRequest("void", "T1:return:2", {"d3", "r", "m"}).ok());
  EXPECT_FALSE(store->PutRequest("commit", "T1", {"other", "x", "m"}).ok());
  auto found = store->FindRequest("commit", "T1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->digest, "d1");
  EXPECT_EQ((*found)->response, "resp");
  EXPECT_EQ(*store->CountRequests("void", "T1:return:"), 2);
  EXPECT_EQ(*store->CountRequests("void", "T2:"), 0);
}

TEST(AgentStore, ProgrammeAndOffersSurviveReopening) {
  testing::TempDir dir;
  {
    auto store = OpenStore(dir.file("agent.db"));
    v1::Programme p;
    p.set_version(7);
    ASSERT_TRUE(store->SaveProgramme(p).ok());
    v1::Offer o;
    o.set_id("o1");
    o.set_bonus_points(50);
    ASSERT_TRUE(store->ReplaceOffers({o}).ok());
  }
  auto store = OpenStore(dir.file("agent.db"));
  auto p = store->LoadProgramme();
  ASSERT_TRUE(p.ok() && p->has_value());
  EXPECT_EQ((*p)->version(), 7u);
  auto offers = store->LoadOffers();
  ASSERT_TRUE(offers.ok());
  ASSERT_EQ(offers->size(), 1u);
  EXPECT_EQ((*offers)[0].bonus_points(), 50);
  ASSERT_TRUE(store->ReplaceOffers({}).ok());
  EXPECT_TRUE(store->LoadOffers()->empty());
}

TEST(AgentStore, ReaderSeesCommittedWritesOnly) {
  testing::TempDir dir;
  auto writer = OpenStore(dir.file("agent.db"));
  auto reader = OpenStore(dir.file("agent.db"), /*read_only=*/true);
  auto txn = Transaction::Begin(writer->db());
  ASSERT_TRUE(writer->AppendEvent(MakeEvent(1, "a")).ok());
  EXPECT_TRUE(reader->MemberEvents("a", 0)->empty());
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(reader->MemberEvents("a", 0)->size(), 1u);
}

}  // namespace
}  // namespace loyalty::storage
