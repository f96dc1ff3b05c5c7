// Segmentation on the authoritative ledger: incremental updates into
// snapshots and the change feed, the full pass, targeted promotions,
// consent, erasure and referrals (storage/server_store.h,
// server/segmentation.h), on a real database file.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "core/member_state.h"
#include "core/offers.h"
#include "core/programme.h"
#include "core/time_util.h"
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
  ::loyalty::testing::TempDir dir_;
  std::unique_ptr<storage::ServerStore> store_;
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
  auto preview = PreviewPromotion(*store_, offer, now);
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
  EXPECT_TRUE(store_->Offers()->empty());
}

TEST_F(SegmentationTest, PreviewCountsMembersBeforeSaving) {
  const int64_t now = NowMs();
  Ingest("S1", {Enrol("S1", 1, "p-1", HashOf(1)), Enrol("S1", 2, "p-2", HashOf(2)),
                VisitAt("S1", 3, "p-1", now - 1000)});
  v1::SegmentDefinition d;
  d.set_id("visited");
  d.set_name("Visited");
  d.set_expression("visits_since_enrolment >= 1");
  auto p = PreviewSegment(*store_, d, now);
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
  FullPass first(NowMs(), 7);
  ASSERT_TRUE(first.RunAll(*store_).ok());
  EXPECT_EQ(first.members(), kMembers);
  for (int b = 0; b < 10; ++b) Ingest("S1", random_batch(30));

  const int64_t check = NowMs();
  auto chunk = store_->ScanFeatures("", 1000, check);
  ASSERT_TRUE(chunk.ok());
  ASSERT_EQ(chunk->features.size(), static_cast<size_t>(kMembers));
  for (const auto& full : chunk->features) {
    const v1::MemberSnapshot snap = Member(full.member_id());
    std::vector<std::string> a(snap.segment_ids().begin(), snap.segment_ids().end());
    std::vector<std::string> b(full.segment_ids().begin(), full.segment_ids().end());
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b) << full.member_id();
    auto one = store_->FeaturesOf(full.member_id(), check);
    ASSERT_TRUE(one.ok() && *one);
    EXPECT_EQ((*one)->SerializeAsString(), full.SerializeAsString()) << full.member_id();
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
  auto report = Kpis(*store_, now - core::kMillisPerDay, NowMs());
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

}  // namespace
}  // namespace loyalty::server
