// Segmentation on the authoritative ledger: incremental updates into
// snapshots and the change feed, the full pass, targeted promotions,
// consent, erasure and referrals (storage/server_store.h,
// server/segmentation.h), on a real database file.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <random>

#include "core/member_state.h"
#include "core/offers.h"
#include "core/programme.h"
#include "core/segment_expr.h"
#include "core/time_util.h"
#include "server/db_worker.h"
#include "server/segmentation.h"
#include "storage/server_store.h"
#include "tests/server/test_events.h"
#include "tests/support/temp_dir.h"

namespace loyalty::server {
namespace {

using namespace loyalty::server::testing;

v1::Event VisitAt(const std::string& store, uint64_t seq, const std::string& member,
                  int64_t at_ms, uint32_t party = 1) {
  v1::Event e = BaseEvent(store, "till-1", seq, member);
  e.set_occurred_at_ms(at_ms);
  e.mutable_visit()->set_pos_txn_id("v-" + store + std::to_string(seq));
  e.mutable_visit()->set_party_size(party);
  return e;
}

bool Has(const v1::MemberSnapshot& s, const std::string& id) {
  return std::find(s.segment_ids().begin(), s.segment_ids().end(), id) != s.segment_ids().end();
}

class SegmentationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = storage::OpenSqliteServerStore(dir_.file("server.db"));
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
  }
  void Ingest(const std::string& store_id, std::vector<v1::Event> events) {
    auto out = store_->Ingest(store_id, events, NowMs());
    ASSERT_TRUE(out.ok()) << out.error().message;
    ASSERT_TRUE(out->rejected.empty()) << out->rejected[0].message();
  }
  v1::MemberSnapshot Member(const std::string& id) {
    auto found = store_->FindMember(id, 0);
    EXPECT_TRUE(found.ok() && *found);
    return found.ok() && *found ? (*found)->ledger.snapshot() : v1::MemberSnapshot();
  }
  // A second connection, as the server's reader thread has.
  storage::ServerReader& Reader() {
    if (!reader_) {
      auto reader = store_->OpenReader();
      EXPECT_TRUE(reader.ok()) << reader.error().message;
      reader_ = std::move(*reader);
    }
    return *reader_;
  }
  // Every member's features and segments as a full recompute sees them now.
  std::map<std::string, v1::MemberFeatures> FullRecompute(int64_t now) {
    const core::SegmentSet set(*store_->Segments());
    std::map<std::string, v1::MemberFeatures> out;
    storage::MemberScanOptions options;
    options.now_ms = now;
    auto s = Reader().ScanMembers(options, [&](const storage::ScannedMember& m) {
      v1::MemberFeatures f = core::ToProto(m.features, std::string(m.member_id), now, {});
      for (auto& id : set.Evaluate(m.features)) f.add_segment_ids(std::move(id));
      out[f.member_id()] = f;
    });
    EXPECT_TRUE(s.ok()) << s.error().message;
    return out;
  }
  ::loyalty::testing::TempDir dir_;
  std::unique_ptr<storage::ServerStore> store_;
  std::unique_ptr<storage::ServerReader> reader_;
};

TEST_F(SegmentationTest, VisitsAtTwoStoresMoveFewToSomeAndTheOfferReachesAThirdTerminal) {
  const int64_t now = NowMs();
  Ingest("S1", {Enrol("S1", 1, "p-ana", HashOf(1)), Enrol("S1", 2, "p-bo", HashOf(2)),
                VisitAt("S1", 3, "p-ana", now - 5000), VisitAt("S1", 4, "p-bo", now - 5000)});
  EXPECT_TRUE(Has(Member("p-ana"), "few-visits"));
  EXPECT_FALSE(Has(Member("p-ana"), "some-visits"));
  Ingest("S2", {VisitAt("S2", 1, "p-ana", now - 4000), VisitAt("S2", 2, "p-ana", now - 3000)});
  const v1::MemberSnapshot ana = Member("p-ana");
  EXPECT_TRUE(Has(ana, "some-visits"));
  EXPECT_FALSE(Has(ana, "few-visits"));
  EXPECT_TRUE(Has(ana, "new-members"));

  // Head office targets a promotion at the segment.
  v1::Offer offer;
  offer.set_id("some-bonus");
  offer.set_name("Bonus for regulars-to-be");
  offer.add_segment_ids("some-visits");
  offer.set_bonus_points(50);
  offer.set_ends_at_ms(now + 7 * core::kMillisPerDay);
  ASSERT_TRUE(ValidatePromotion(*store_, offer, now).ok());
  auto preview = PreviewPromotion(Reader(), offer, now);
  ASSERT_TRUE(preview.ok()) << preview.error().message;
  EXPECT_EQ(preview->reach(), 1);
  EXPECT_GT(preview->estimated_cost(), 0);
  ASSERT_TRUE(store_->PutOffer(offer).ok());

  // A third terminal (store S3) applies the change feed: the member's new
  // segments and the offer, and targets it at Ana only.
  auto page = store_->Changes(0, 1000);
  ASSERT_TRUE(page.ok());
  std::map<std::string, v1::MemberSnapshot> terminal_members;
  std::vector<v1::Offer> terminal_offers;
  for (const auto& c : page->changes()) {
    if (c.has_member()) terminal_members[c.member().member_id()] = c.member();
    if (c.has_offer()) terminal_offers.push_back(c.offer());
  }
  ASSERT_EQ(terminal_offers.size(), 1u);
  const auto programme = core::DefaultProgramme();
  const core::CheckoutContext here{"S3", now, 0};
  const auto ana_state =
      core::FoldMember(programme, &terminal_members.at("p-ana"), {}, now);
  const auto bo_state = core::FoldMember(programme, &terminal_members.at("p-bo"), {}, now);
  EXPECT_TRUE(core::IsOfferTargeted(terminal_offers[0], ana_state, here));
  EXPECT_FALSE(core::IsOfferTargeted(terminal_offers[0], bo_state, here));
}

TEST_F(SegmentationTest, BadDefinitionsAndPromotionsAreRefusedAndNothingIsSaved) {
  const auto before = store_->Segments();
  ASSERT_TRUE(before.ok());
  v1::SegmentDefinition bad;
  bad.set_id("broken");
  bad.set_name("Broken");
  bad.set_expression("visits_since_enrolment >= 3 and visit < 10");
  auto s = store_->PutSegment(bad);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, "invalid_segment");
  EXPECT_NE(s.error().message.find("position 33: unknown feature 'visit'"), std::string::npos)
      << s.error().message;
  const auto after = store_->Segments();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), before->size());

  const int64_t now = NowMs();
  v1::Offer ended;
  ended.set_id("old");
  ended.set_bonus_points(10);
  ended.set_ends_at_ms(now - 1000);
  auto e = ValidatePromotion(*store_, ended, now);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("window ended"), std::string::npos);
  v1::Offer unknown;
  unknown.set_id("ghost");
  unknown.set_bonus_points(10);
  unknown.add_segment_ids("no-such-segment");
  auto u = ValidatePromotion(*store_, unknown, now);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().message, "segment_ids: no segment \"no-such-segment\" is defined");
  v1::Offer negative;
  negative.set_id("neg");
  negative.set_amount_off(-5);
  EXPECT_FALSE(ValidatePromotion(*store_, negative, now).ok());

  // What terminals would choke on or show garbled is refused at the source.
  v1::Offer good;
  good.set_id("fine");
  good.set_name("Fine");
  good.set_bonus_points(10);
  ASSERT_TRUE(ValidatePromotion(*store_, good, now).ok());
  auto refused = [&](const v1::Offer& offer, const std::string& why) {
    auto r = ValidatePromotion(*store_, offer, now);
    ASSERT_FALSE(r.ok()) << why;
    EXPECT_EQ(r.error().code, "invalid_offer");
    EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
  };
  v1::Offer o = good;
  o.set_bonus_points(INT64_MAX);  // made every checkout of its members answer 413
  refused(o, "bonus_points");
  o = good;
  o.clear_name();
  refused(o, "name is required");
  o = good;
  o.set_name("Two\nlines");
  refused(o, "control characters");
  for (const std::string& id :
       std::vector<std::string>{"a\nb", " ", "has space", std::string(65, 'x')}) {
    o = good;
    o.set_id(id);
    refused(o, "printable ASCII");
  }
  o = good;
  o.add_tiers("Gold");
  EXPECT_TRUE(ValidatePromotion(*store_, o, now).ok());
  o.add_tiers("Diamond");
  refused(o, "no tier \"Diamond\" (it has Member, Silver, Gold, Platinum)");
  EXPECT_TRUE(store_->Offers()->empty());
}

TEST_F(SegmentationTest, ASegmentAPublishedPromotionTargetsCannotBeDeleted) {
  v1::SegmentDefinition regulars;
  regulars.set_id("regulars");
  regulars.set_name("Regulars");
  regulars.set_expression("visits_since_enrolment >= 3");
  ASSERT_TRUE(store_->PutSegment(regulars).ok());
  v1::Offer winback;
  winback.set_id("winback");
  winback.set_name("Welcome back");
  winback.set_bonus_points(200);
  winback.add_segment_ids("regulars");
  ASSERT_TRUE(ValidatePromotion(*store_, winback, NowMs()).ok());
  ASSERT_TRUE(store_->PutOffer(winback).ok());

  auto refused = store_->DeleteSegment("regulars");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, "conflict");
  EXPECT_NE(refused.error().message.find("winback"), std::string::npos) << refused.error().message;
  auto segments = store_->Segments();
  ASSERT_TRUE(segments.ok());
  EXPECT_TRUE(std::any_of(segments->begin(), segments->end(),
                          [](const v1::SegmentDefinition& d) { return d.id() == "regulars"; }));

  ASSERT_TRUE(store_->RetireOffer("winback").ok());
  EXPECT_TRUE(store_->DeleteSegment("regulars").ok());
}

TEST_F(SegmentationTest, PreviewCountsMembersBeforeSaving) {
  const int64_t now = NowMs();
  Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1)), Enrol("S1", 2, "p-2", HashOf(2)),
                VisitAt("S1", 3, "p-1", now - 1000)});
  v1::SegmentDefinition d;
  d.set_id("visited");
  d.set_name("Visited");
  d.set_expression("visits_since_enrolment >= 1");
  auto p = PreviewSegment(Reader(), d, now);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->members(), 1);
  EXPECT_EQ(p->total_members(), 2);
  EXPECT_EQ(p->sample_member_ids(0), "p-1");
  const auto defs = store_->Segments();
  ASSERT_TRUE(defs.ok());
  for (const auto& def : *defs) EXPECT_NE(def.id(), "visited");
}

// Random histories: the segments ingest leaves in the snapshots equal a full
// recompute with the same cut points.
TEST_F(SegmentationTest, IncrementalEqualsFullRecomputeOnRandomHistories) {
  std::mt19937 rng(42);
  const int64_t now = NowMs();
  const int kMembers = 40;
  uint64_t seq = 0;
  std::vector<v1::Event> enrol;
  for (int m = 0; m < kMembers; ++m) {
    v1::Event e = Enrol("S1", ++seq, "p-" + std::to_string(m), HashOf(m));
    e.set_occurred_at_ms(now - 400 * core::kMillisPerDay + m);
    enrol.push_back(e);
  }
  Ingest("S1", enrol);
  auto random_batch = [&](int n) {
    std::vector<v1::Event> batch;
    for (int i = 0; i < n; ++i) {
      const std::string member = "p-" + std::to_string(rng() % kMembers);
      const int64_t at = now - static_cast<int64_t>(rng() % (400LL * 86400)) * 1000;
      if (rng() % 2) {
        batch.push_back(VisitAt("S1", ++seq, member, at, rng() % 4));
      } else {
        v1::Event p = Purchase("S1", ++seq, member, 1 + rng() % 200);
        p.set_occurred_at_ms(at);
        p.mutable_purchase()->mutable_lines(0)->mutable_line()->set_category(
            rng() % 3 ? "Coffee" : "Tea");
        batch.push_back(p);
      }
    }
    return batch;
  };
  for (int b = 0; b < 5; ++b) Ingest("S1", random_batch(60));
  FullPass first(NowMs(), 7, /*scan_threads=*/2);  // ranges read side by side
  ASSERT_TRUE(first.RunAll(Reader(), *store_).ok());
  EXPECT_EQ(first.members(), kMembers);
  // The full pass left every member as a full recompute sees them.
  const int64_t after_pass = NowMs();
  for (const auto& [id, full] : FullRecompute(after_pass)) {
    const v1::MemberSnapshot snap = Member(id);
    EXPECT_EQ(std::vector<std::string>(snap.segment_ids().begin(), snap.segment_ids().end()),
              std::vector<std::string>(full.segment_ids().begin(), full.segment_ids().end()))
        << id;
  }
  for (int b = 0; b < 10; ++b) Ingest("S1", random_batch(30));

  const int64_t check = NowMs();
  const auto full = FullRecompute(check);
  ASSERT_EQ(full.size(), static_cast<size_t>(kMembers));
  for (const auto& [id, f] : full) {
    const v1::MemberSnapshot snap = Member(id);
    std::vector<std::string> a(snap.segment_ids().begin(), snap.segment_ids().end());
    std::vector<std::string> b(f.segment_ids().begin(), f.segment_ids().end());
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b) << id;
    auto one = store_->FeaturesOf(id, check);
    ASSERT_TRUE(one.ok() && *one);
    (*one)->clear_top_categories();  // the scan does not list them
    EXPECT_EQ((*one)->SerializeAsString(), f.SerializeAsString()) << id;
  }
}

TEST_F(SegmentationTest, ConsentAddsDemographicsAndWithdrawalRemovesThem) {
  Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1))});
  v1::SegmentDefinition north;
  north.set_id("north");
  north.set_name("North");
  north.set_expression("region == 'North'");
  ASSERT_TRUE(store_->PutSegment(north).ok());
  v1::MemberConsent consent;
  consent.set_consent(true);
  consent.set_region("North");
  consent.set_age_band("25-34");
  ASSERT_TRUE(store_->PutConsent("p-1", consent, NowMs()).ok());
  EXPECT_TRUE(Has(Member("p-1"), "north"));
  EXPECT_EQ((*store_->FeaturesOf("p-1", NowMs()))->age_band(), "25-34");
  consent.set_consent(false);
  ASSERT_TRUE(store_->PutConsent("p-1", consent, NowMs()).ok());
  EXPECT_FALSE(Has(Member("p-1"), "north"));
  EXPECT_EQ((*store_->FeaturesOf("p-1", NowMs()))->region(), "");
}

TEST_F(SegmentationTest, EraseRemovesPersonalDataAndReachesTerminals) {
  Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1)), Purchase("S1", 2, "p-1", 40)});
  auto version = store_->EraseMember("p-1");
  ASSERT_TRUE(version.ok()) << version.error().message;
  const v1::MemberSnapshot s = Member("p-1");
  EXPECT_EQ(s.display_name(), "");
  EXPECT_NE(s.card_hash(), HashOf(1));
  EXPECT_EQ(s.points_balance(), 40);  // anonymous ledger totals stay
  EXPECT_FALSE(store_->FindMember(HashOf(1), 0)->has_value());
  auto page = store_->Changes(0, 1000);
  ASSERT_TRUE(page.ok());
  bool erased = false;
  for (const auto& c : page->changes()) {
    erased = erased || c.erased_member_id() == "p-1";
    EXPECT_FALSE(c.has_member() && c.member().member_id() == "p-1");
  }
  EXPECT_TRUE(erased);
  auto history = store_->FindMember("p-1", 10);
  for (const auto& e : (*history)->history) {
    if (e.has_enrolment()) {
      EXPECT_EQ(e.enrolment().display_name(), "");
    }
  }
}

TEST_F(SegmentationTest, ChampionsGetACodeAndAReferralIsCreditedOnceAfterTheFirstPurchase) {
  v1::SegmentDefinition all;  // make every member a champion for the test
  all.set_id("rfm-champions");
  all.set_name("Champions");
  all.set_expression("true");
  ASSERT_TRUE(store_->PutSegment(all).ok());
  Ingest("S1", {Enrol("S1", 1, "p-ref", HashOf(1)), Purchase("S1", 2, "p-ref", 10)});
  const std::string code = Member("p-ref").referral_code();
  ASSERT_FALSE(code.empty());
  v1::Event enrol = Enrol("S2", 1, "p-new", HashOf(2));
  enrol.mutable_enrolment()->set_referral_code(code);
  Ingest("S2", {enrol});
  EXPECT_EQ(Member("p-ref").points_balance(), 10);
  Ingest("S2", {Purchase("S2", 2, "p-new", 5)});
  EXPECT_EQ(Member("p-ref").points_balance(), 510);
  Ingest("S2", {Purchase("S2", 3, "p-new", 5)});
  EXPECT_EQ(Member("p-ref").points_balance(), 510);
  EXPECT_EQ(Member("p-new").points_balance(), 10);
}

TEST_F(SegmentationTest, KpisCountMembersAndPromotionUses) {
  const int64_t now = NowMs();
  Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1)), VisitAt("S1", 2, "p-1", now - 1000)});
  v1::Offer offer;
  offer.set_id("o1");
  offer.add_segment_ids("few-visits");
  offer.set_bonus_points(5);
  ASSERT_TRUE(store_->PutOffer(offer).ok());
  v1::Event p = Purchase("S1", 3, "p-1", 20);
  auto* applied = p.mutable_purchase()->add_offers();
  applied->set_offer_id("o1");
  applied->set_points(5);
  Ingest("S1", {p});
  auto report = Kpis(Reader(), now - core::kMillisPerDay, NowMs());
  ASSERT_TRUE(report.ok()) << report.error().message;
  bool seen = false;
  for (const auto& k : report->segments()) {
    if (k.segment_id() != "few-visits") continue;
    seen = true;
    EXPECT_EQ(k.members(), 1);
    EXPECT_EQ(k.visits_30d(), 1);
    EXPECT_EQ(k.spend_30d(), 2000);
    EXPECT_EQ(k.redemption_rate_pct(), 100);
    EXPECT_EQ(k.entered_since(), 1);
  }
  EXPECT_TRUE(seen);
  ASSERT_EQ(report->promotions_size(), 1);
  EXPECT_EQ(report->promotions(0).reach(), 1);
  EXPECT_EQ(report->promotions(0).redemptions(), 1);
  EXPECT_EQ(report->promotions(0).points_given(), 5);
}


// A scheduled pass with nothing to move writes nothing; after a definition
// change it writes exactly the members who move.
TEST_F(SegmentationTest, FullPassWritesOnlyMembersWhoseSegmentsMoved) {
  const int64_t now = NowMs();
  std::vector<v1::Event> batch;
  uint64_t seq = 0;
  for (int m = 0; m < 12; ++m) {
    const std::string id = "p-" + std::to_string(10 + m);
    batch.push_back(Enrol("S1", ++seq, id, HashOf(m)));
    for (int v = 0; v < m % 4; ++v) batch.push_back(VisitAt("S1", ++seq, id, now - (v + 1) * 1000));
  }
  Ingest("S1", batch);
  FullPass first(NowMs());
  ASSERT_TRUE(first.RunAll(Reader(), *store_).ok());
  EXPECT_EQ(first.members(), 12);

  const uint64_t version = *store_->LatestVersion();
  FullPass again(NowMs());
  ASSERT_TRUE(again.RunAll(Reader(), *store_).ok());
  EXPECT_EQ(again.members(), 12);
  EXPECT_EQ(again.changed(), 0);
  EXPECT_EQ(*store_->LatestVersion(), version);  // no snapshot rewritten, nothing in the feed

  v1::SegmentDefinition regulars;
  regulars.set_id("two-plus");
  regulars.set_name("Two or more visits");
  regulars.set_expression("visits_since_enrolment >= 2");
  ASSERT_TRUE(store_->PutSegment(regulars).ok());
  FullPass after_change(NowMs());
  ASSERT_TRUE(after_change.RunAll(Reader(), *store_).ok());
  EXPECT_EQ(after_change.changed(), 6);  // m % 4 in {2, 3}
  auto page = store_->Changes(version, 1000);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->changes_size(), 6);
  for (const auto& c : page->changes()) {
    EXPECT_TRUE(Has(c.member(), "two-plus")) << c.member().member_id();
  }
}

// Ingest does not wait for a full pass: a store's batch is applied and
// acknowledged while the pass's scan is known to be half-way through the
// members (it waits in its progress callback), and the pass then leaves
// every member, the one ingested mid-scan included, as a full recompute.
TEST_F(SegmentationTest, IngestProceedsWhileAFullPassIsScanning) {
  const int64_t now = NowMs();
  std::vector<v1::Event> batch;
  uint64_t seq = 0;
  for (int m = 0; m < 20; ++m) {
    const std::string id = "p-" + std::to_string(10 + m);
    batch.push_back(Enrol("S1", ++seq, id, HashOf(m)));
    batch.push_back(VisitAt("S1", ++seq, id, now - 2 * core::kMillisPerDay));
  }
  Ingest("S1", batch);
  reader_.reset();
  DbWorker db(std::move(store_));

  FullPass pass(NowMs(), 3, /*scan_threads=*/1);
  std::promise<void> midway, release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<core::Status> scanned;
  ASSERT_TRUE(db.PostRead([&](storage::ServerReader& reader) {
    scanned.set_value(pass.Scan(reader, [&](int64_t members) {
      if (members != 10) return;
      midway.set_value();
      released.wait();
    }));
  }));
  midway.get_future().wait();

  // p-12 was scanned already, p-25 not yet: both become regulars now.
  std::vector<v1::Event> upload;
  for (const char* id : {"p-12", "p-25"}) {
    for (int v = 0; v < 12; ++v) upload.push_back(VisitAt("S2", ++seq, id, now - v * 1000));
  }
  std::promise<core::Result<storage::IngestOutcome>> acked;
  ASSERT_TRUE(db.Post([&](storage::ServerStore& store) {
    acked.set_value(store.Ingest("S2", upload, NowMs()));
  }));
  auto acked_future = acked.get_future();
  // A guard against a deadlock, not a timing assertion: if ingest waited
  // for the scan, it would never finish, as the scan waits for this test.
  ASSERT_EQ(acked_future.wait_for(std::chrono::minutes(2)), std::future_status::ready)
      << "ingest waited for the full pass";
  auto outcome = acked_future.get();
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_EQ(outcome->acknowledged.size(), upload.size());
  auto scan_done = scanned.get_future();
  EXPECT_EQ(scan_done.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
      << "the scan should still be half-way";

  release.set_value();
  ASSERT_TRUE(scan_done.get().ok());
  std::promise<core::Status> applied;
  ASSERT_TRUE(db.Post([&](storage::ServerStore& store) {
    for (;;) {
      auto done = pass.ApplyStep(store);
      if (!done.ok()) return applied.set_value(done.error());
      if (*done) return applied.set_value({});
    }
  }));
  ASSERT_TRUE(applied.get_future().get().ok());
  db.Stop();

  auto reopened = storage::OpenSqliteServerStore(dir_.file("server.db"));
  ASSERT_TRUE(reopened.ok()) << reopened.error().message;
  store_ = std::move(*reopened);
  EXPECT_TRUE(Has(Member("p-12"), "many-visits"));
  EXPECT_TRUE(Has(Member("p-25"), "many-visits"));
  for (const auto& [id, full] : FullRecompute(NowMs())) {
    const v1::MemberSnapshot snap = Member(id);
    EXPECT_EQ(std::vector<std::string>(snap.segment_ids().begin(), snap.segment_ids().end()),
              std::vector<std::string>(full.segment_ids().begin(), full.segment_ids().end()))
        << id;
  }
}

// A member erased after the scan read it does not get segments back.
TEST_F(SegmentationTest, MemberErasedDuringAFullPassStaysErased) {
  Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1)), Enrol("S1", 2, "p-2", HashOf(2))});
  v1::SegmentDefinition everyone;
  everyone.set_id("everyone");
  everyone.set_name("Everyone");
  everyone.set_expression("true");
  ASSERT_TRUE(store_->PutSegment(everyone).ok());
  FullPass pass(NowMs());
  ASSERT_TRUE(pass.Scan(Reader()).ok());
  ASSERT_TRUE(store_->EraseMember("p-1").ok());
  for (;;) {
    auto done = pass.ApplyStep(*store_);
    ASSERT_TRUE(done.ok()) << done.error().message;
    if (*done) break;
  }
  EXPECT_TRUE(Member("p-1").segment_ids().empty());
  EXPECT_TRUE(Has(Member("p-2"), "everyone"));
  auto page = store_->Changes(0, 1000);
  ASSERT_TRUE(page.ok());
  for (const auto& c : page->changes()) {
    EXPECT_FALSE(c.has_member() && c.member().member_id() == "p-1");
  }
}

TEST(SplitMemberRangeTest, CutsBetweenTheBoundsInOrder) {
  const auto cuts = SplitMemberRange("p-0000000000", "p-ffffffffff", 8);
  ASSERT_FALSE(cuts.empty());
  std::string previous = "p-0000000000";
  for (const auto& c : cuts) {
    EXPECT_GT(c, previous);
    EXPECT_LE(c, "p-ffffffffff");
    previous = c;
  }
  EXPECT_TRUE(SplitMemberRange("p-1", "p-1", 8).empty());
  EXPECT_TRUE(SplitMemberRange("a", "b", 1).empty());
}

// Reach follows the promotion's whole targeting: segments, tiers and stores.
TEST_F(SegmentationTest, PromotionPreviewReachRespectsTiersAndStores) {
  const int64_t now = NowMs();
  // p-silver spends into Silver at S1; p-member visits S2 only; p-both
  // visits S1 and S2 and stays a Member.
  Ingest("S1", {Enrol("S1", 1, "p-silver", HashOf(1)), Enrol("S1", 2, "p-member", HashOf(2)),
                Enrol("S1", 3, "p-both", HashOf(3)), VisitAt("S1", 4, "p-silver", now - 1000),
                Purchase("S1", 5, "p-silver", 300), VisitAt("S1", 6, "p-both", now - 1000)});
  Ingest("S2", {VisitAt("S2", 1, "p-member", now - 1000), VisitAt("S2", 2, "p-both", now - 900)});
  ASSERT_EQ(Member("p-silver").tier(), "Silver");
  ASSERT_EQ(Member("p-member").tier(), "Member");

  auto reach = [&](const v1::Offer& offer) {
    auto p = PreviewPromotion(Reader(), offer, now);
    EXPECT_TRUE(p.ok()) << p.error().message;
    return p.ok() ? p->reach() : -1;
  };
  v1::Offer offer;
  offer.set_id("silver-bonus");
  offer.set_name("Silver bonus");
  offer.set_bonus_points(10);
  EXPECT_EQ(reach(offer), 3);
  offer.add_tiers("Silver");
  EXPECT_EQ(reach(offer), 1);
  offer.add_tiers("Gold");
  EXPECT_EQ(reach(offer), 1);
  offer.clear_tiers();
  offer.add_store_ids("S2");
  EXPECT_EQ(reach(offer), 2);  // p-member and p-both visited S2
  offer.add_tiers("Member");
  EXPECT_EQ(reach(offer), 2);
  offer.add_segment_ids("few-visits");
  EXPECT_EQ(reach(offer), 2);
  offer.clear_store_ids();
  offer.add_store_ids("S3");
  EXPECT_EQ(reach(offer), 0);

  // KPIs count a promotion's reach the same way.
  v1::Offer s2_only;
  s2_only.set_id("s2-only");
  s2_only.set_bonus_points(5);
  s2_only.add_store_ids("S2");
  s2_only.add_tiers("Member");
  ASSERT_TRUE(store_->PutOffer(s2_only).ok());
  auto report = Kpis(Reader(), now - core::kMillisPerDay, NowMs());
  ASSERT_TRUE(report.ok()) << report.error().message;
  ASSERT_EQ(report->promotions_size(), 1);
  EXPECT_EQ(report->promotions(0).reach(), 2);
}

}  // namespace
}  // namespace loyalty::server
