#include "core/member_state.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/programme.h"
#include "test_util.h"

namespace loyalty::core {
namespace {

using loyalty::v1::Event;
using loyalty::v1::MemberSnapshot;
using namespace testing;

const int64_t kNow = Ms(2024, 6, 1, 12);

MemberSnapshot Snapshot(const std::string& tier = "Member") {
  MemberSnapshot s;
  s.set_member_id("m-1");
  s.set_card_hash("abc");
  s.set_display_name("Ana");
  s.set_language("es");
  s.set_tier(tier);
  s.set_as_of_ms(Ms(2024, 5, 1));
  return s;
}

void AddLot(MemberSnapshot& s, int64_t at, int64_t points) {
  *s.add_lots() = Lot(at, points);
  s.set_points_balance(s.points_balance() + points);
}

MemberState Fold(const MemberSnapshot* snapshot, const std::vector<Event>& events,
                 int64_t now = kNow) {
  return FoldMember(DefaultProgramme(), snapshot, events, now);
}

TEST(FoldMember, EnrolmentWithoutSnapshotMakesAProvisionalMember) {
  Event enrol = At(kNow - 1000);
  enrol.set_member_id("m-new");
  enrol.mutable_enrolment()->set_card_hash("hash");
  enrol.mutable_enrolment()->set_display_name("Bea");
  enrol.mutable_enrolment()->set_language("fr");
  const MemberState m = Fold(nullptr, {enrol});
  EXPECT_TRUE(m.provisional);
  EXPECT_EQ(m.member_id, "m-new");
  EXPECT_EQ(m.card_hash, "hash");
  EXPECT_EQ(m.display_name, "Bea");
  EXPECT_EQ(m.language, "fr");
  EXPECT_EQ(m.tier, "Member");
  EXPECT_EQ(m.points_balance, 0);
}

TEST(FoldMember, SnapshotAloneIsTakenAsIs) {
  MemberSnapshot s = Snapshot("Silver");
  AddLot(s, Ms(2024, 1, 1), 120);
  s.set_qualifying_visits(6);
  s.add_segment_ids("seg-a");
  (*s.mutable_offer_uses())["o1"] = 2;
  const MemberState m = Fold(&s, {});
  EXPECT_FALSE(m.provisional);
  EXPECT_EQ(m.tier, "Silver");
  EXPECT_EQ(m.points_balance, 120);
  EXPECT_EQ(m.pending_points, 0);
  EXPECT_EQ(m.qualifying_visits, 6);
  EXPECT_EQ(m.segment_ids, std::vector<std::string>{"seg-a"});
  EXPECT_EQ(m.offer_uses.at("o1"), 2u);
}

TEST(FoldMember, PurchaseAddsALotSpendAndPendingPoints) {
  MemberSnapshot s = Snapshot();
  AddLot(s, Ms(2024, 1, 1), 100);
  const MemberState m = Fold(&s, {SimplePurchaseAt(Ms(2024, 5, 20), "t1", 42, 4200)});
  EXPECT_EQ(m.points_balance, 142);
  EXPECT_EQ(m.pending_points, 42);
  EXPECT_EQ(m.qualifying_spend, 4200);
  ASSERT_EQ(m.lots.size(), 2u);
  EXPECT_EQ(m.lots[1].earned_at_ms(), Ms(2024, 5, 20));
  EXPECT_EQ(m.lots[1].points(), 42);
}

TEST(FoldMember, RedemptionUsesTheOldestPointsFirst) {
  MemberSnapshot s = Snapshot();
  AddLot(s, Ms(2023, 1, 1), 100);
  AddLot(s, Ms(2024, 1, 1), 50);
  const MemberState m = Fold(&s, {RedemptionAt(Ms(2024, 5, 20), 120)});
  EXPECT_EQ(m.points_balance, 30);
  EXPECT_EQ(m.pending_points, -120);
  ASSERT_EQ(m.lots.size(), 1u);
  EXPECT_EQ(m.lots[0].earned_at_ms(), Ms(2024, 1, 1));
  EXPECT_EQ(m.lots[0].points(), 30);
}

TEST(FoldMember, NegativeAdjustmentUsesTheOldestPointsFirst) {
  MemberSnapshot s = Snapshot();
  AddLot(s, Ms(2023, 1, 1), 10);
  AddLot(s, Ms(2024, 1, 1), 50);
  const MemberState m =
      Fold(&s, {AdjustmentAt(Ms(2024, 5, 20), -20), AdjustmentAt(Ms(2024, 5, 21), 5)});
  EXPECT_EQ(m.points_balance, 45);
  EXPECT_EQ(m.pending_points, -15);
  ASSERT_EQ(m.lots.size(), 2u);
  EXPECT_EQ(m.lots[0].points(), 40);
  EXPECT_EQ(m.lots[1].points(), 5);
}

TEST(FoldMember, PointsExpireByLotAfterTheConfiguredMonths) {
  MemberSnapshot s = Snapshot();
  AddLot(s, Ms(2022, 5, 31, 12), 100);  // expires 2024-05-31 12:00
  AddLot(s, Ms(2022, 6, 1, 12), 50);    // expires 2024-06-01 12:00, exactly now
  AddLot(s, Ms(2022, 6, 2), 7);
  const MemberState m = Fold(&s, {});
  EXPECT_EQ(m.points_balance, 7);
  const MemberState before = Fold(&s, {}, kNow - 1);
  EXPECT_EQ(before.points_balance, 57);
}

TEST(FoldMember, ExpiredPointsCannotBeRedeemedAfterTheyExpire) {
  MemberSnapshot s = Snapshot();
  AddLot(s, Ms(2022, 1, 1), 100);  // gone on 2024-01-01
  AddLot(s, Ms(2023, 6, 1), 50);
  const MemberState m = Fold(&s, {RedemptionAt(Ms(2024, 2, 1), 30)});
  EXPECT_EQ(m.points_balance, 20);
  ASSERT_EQ(m.lots.size(), 1u);
  EXPECT_EQ(m.lots[0].points(), 20);
}

TEST(FoldMember, NoExpiryWhenMonthsIsZero) {
  auto p = DefaultProgramme();
  p.set_points_expiry_months(0);
  MemberSnapshot s = Snapshot();
  AddLot(s, Ms(2000, 1, 1), 100);
  EXPECT_EQ(FoldMember(p, &s, {}, kNow).points_balance, 100);
  EXPECT_FALSE(MakeMemberView(p, FoldMember(p, &s, {}, kNow), kNow).has_next_expiry());
}

TEST(FoldMember, OverdrawIsKeptAsANegativeBalanceAndRepaidByLaterEarnings) {
  MemberSnapshot s = Snapshot();
  AddLot(s, Ms(2024, 1, 1), 10);
  const MemberState owing = Fold(&s, {RedemptionAt(Ms(2024, 5, 2), 25)});
  EXPECT_EQ(owing.points_balance, -15);
  const MemberState repaid =
      Fold(&s, {RedemptionAt(Ms(2024, 5, 2), 25), SimplePurchaseAt(Ms(2024, 5, 3), "t", 20, 2000)});
  EXPECT_EQ(repaid.points_balance, 5);
  ASSERT_EQ(repaid.lots.size(), 1u);
  EXPECT_EQ(repaid.lots[0].points(), 5);
}

TEST(FoldMember, SnapshotBalanceWinsOverLotsThatDoNotAddUp) {
  MemberSnapshot s = Snapshot();
  s.set_points_balance(80);  // no lots at all
  EXPECT_EQ(Fold(&s, {}).points_balance, 80);
  *s.add_lots() = Lot(Ms(2024, 1, 1), 100);
  EXPECT_EQ(Fold(&s, {}).points_balance, 80);
}

TEST(FoldMember, UpgradesByVisits) {
  std::vector<Event> events;
  for (int i = 0; i < 4; ++i) events.push_back(VisitAt(Ms(2024, 5, 1 + i)));
  EXPECT_EQ(Fold(nullptr, events).tier, "Member");
  events.push_back(VisitAt(Ms(2024, 5, 10)));
  const MemberState m = Fold(nullptr, events);
  EXPECT_EQ(m.tier, "Silver");
  EXPECT_EQ(m.qualifying_visits, 5);
  EXPECT_EQ(m.last_visit_ms, Ms(2024, 5, 10));
}

TEST(FoldMember, UpgradesBySpendAddedToTheSnapshot) {
  MemberSnapshot s = Snapshot();
  s.set_qualifying_spend(20'000);
  EXPECT_EQ(Fold(&s, {SimplePurchaseAt(Ms(2024, 5, 20), "t", 0, 4'999)}).tier, "Member");
  EXPECT_EQ(Fold(&s, {SimplePurchaseAt(Ms(2024, 5, 20), "t", 0, 5'000)}).tier, "Silver");
  EXPECT_EQ(Fold(&s, {SimplePurchaseAt(Ms(2024, 5, 20), "t", 0, 280'000)}).tier, "Platinum");
}

TEST(FoldMember, RollingWindowExcludesEventsOlderThan365Days) {
  const int64_t edge = kNow - 365 * kMillisPerDay;
  std::vector<Event> events;
  for (int i = 0; i < 5; ++i) events.push_back(VisitAt(edge));
  EXPECT_EQ(Fold(nullptr, events).qualifying_visits, 0);
  EXPECT_EQ(Fold(nullptr, events).tier, "Member");
  events.clear();
  for (int i = 0; i < 5; ++i) events.push_back(VisitAt(edge + 1));
  EXPECT_EQ(Fold(nullptr, events).qualifying_visits, 5);
  EXPECT_EQ(Fold(nullptr, events).tier, "Silver");
  EXPECT_EQ(Fold(nullptr, {SimplePurchaseAt(edge, "t", 0, 30'000)}).qualifying_spend, 0);
}

TEST(FoldMember, NeverGoesBelowTheSnapshotTier) {
  MemberSnapshot s = Snapshot("Gold");
  s.set_tier_kept_until_ms(kNow - kMillisPerDay);  // grace over: only the server downgrades
  const MemberState m = Fold(&s, {});
  EXPECT_EQ(m.tier, "Gold");
  EXPECT_EQ(m.qualifying_visits, 0);
}

TEST(FoldMember, ReversalTakesBackPointsSpendAndOfferUsesAndRestoresRedeemed) {
  MemberSnapshot s = Snapshot();
  AddLot(s, Ms(2024, 1, 1), 100);
  loyalty::v1::Purchase purchase;
  purchase.set_pos_txn_id("t1");
  purchase.set_points_earned(30);
  purchase.set_qualifying_spend(3000);
  purchase.add_offers()->set_offer_id("o1");
  loyalty::v1::Reversal reversal;
  reversal.set_pos_txn_id("t1");
  reversal.set_points_reversed(30);
  reversal.set_points_restored(40);
  reversal.set_qualifying_spend_reversed(3000);
  reversal.add_offers_released("o1");
  reversal.set_complete(true);
  const std::vector<Event> events = {RedemptionAt(Ms(2024, 5, 10), 40, "t1"),
                                     PurchaseAt(Ms(2024, 5, 10), purchase),
                                     ReversalAt(Ms(2024, 5, 11), reversal)};
  const MemberState m = Fold(&s, events);
  EXPECT_EQ(m.points_balance, 100);
  EXPECT_EQ(m.pending_points, 0);
  EXPECT_EQ(m.qualifying_spend, 0);
  EXPECT_EQ(m.offer_uses.count("o1"), 0u);
  // The restored points are a new lot; the old one is still partly used.
  ASSERT_EQ(m.lots.size(), 2u);
  EXPECT_EQ(m.lots[0].points(), 60);
  EXPECT_EQ(m.lots[1].points(), 40);
}

TEST(FoldMember, PurchasesCountOfferUses) {
  loyalty::v1::Purchase purchase;
  purchase.add_offers()->set_offer_id("o1");
  purchase.add_offers()->set_offer_id("o2");
  MemberSnapshot s = Snapshot();
  (*s.mutable_offer_uses())["o1"] = 1;
  const MemberState m = Fold(&s, {PurchaseAt(Ms(2024, 5, 1), purchase)});
  EXPECT_EQ(m.offer_uses.at("o1"), 2u);
  EXPECT_EQ(m.offer_uses.at("o2"), 1u);
}

TEST(FindTxn, CollectsThePurchaseItsReversalsAndItsRedemption) {
  loyalty::v1::Purchase purchase;
  purchase.set_pos_txn_id("t1");
  loyalty::v1::Reversal reversal;
  reversal.set_pos_txn_id("t1");
  reversal.set_reversal_id("r1");
  loyalty::v1::Reversal other;
  other.set_pos_txn_id("t2");
  const std::vector<Event> events = {RedemptionAt(1, 40, "t1"), RedemptionAt(2, 5, "t2"),
                                     PurchaseAt(3, purchase), ReversalAt(4, other),
                                     ReversalAt(5, reversal)};
  const auto txn = FindTxn(events, "t1");
  ASSERT_TRUE(txn.has_value());
  EXPECT_EQ(txn->purchase.pos_txn_id(), "t1");
  ASSERT_EQ(txn->reversals.size(), 1u);
  EXPECT_EQ(txn->reversals[0].reversal_id(), "r1");
  EXPECT_EQ(txn->points_redeemed, 40);
  EXPECT_FALSE(FindTxn(events, "t9").has_value());
}

TEST(MemberView, ShowsProgressToTheNextTierByTheBetterRoute) {
  MemberSnapshot s = Snapshot("Silver");
  s.set_qualifying_visits(10);     // Gold needs 15: 66%
  s.set_qualifying_spend(80'000);  // Gold needs 100000: 80%
  const auto view = MakeMemberView(DefaultProgramme(), Fold(&s, {}), kNow);
  ASSERT_TRUE(view.has_next_tier());
  EXPECT_EQ(view.next_tier().name(), "Gold");
  EXPECT_EQ(view.next_tier().visits_needed(), 5);
  EXPECT_EQ(view.next_tier().spend_needed(), 20'000);
  EXPECT_EQ(view.next_tier().progress_pct(), 80u);
  EXPECT_EQ(view.tier(), "Silver");
  EXPECT_EQ(view.language(), "es");
}

TEST(MemberView, HasNoNextTierAtTheTop) {
  const MemberSnapshot s = Snapshot("Platinum");
  const auto view = MakeMemberView(DefaultProgramme(), Fold(&s, {}), kNow);
  EXPECT_FALSE(view.has_next_tier());
}

TEST(MemberView, NextExpiryIsTheEarliestLotsDateAndPoints) {
  MemberSnapshot s = Snapshot();
  AddLot(s, Ms(2023, 1, 31, 8), 10);
  AddLot(s, Ms(2023, 1, 31, 20), 5);  // same expiry day
  AddLot(s, Ms(2023, 3, 1), 70);
  const auto view = MakeMemberView(DefaultProgramme(), Fold(&s, {}), kNow);
  ASSERT_TRUE(view.has_next_expiry());
  EXPECT_EQ(view.next_expiry().date(), "2025-01-31");
  EXPECT_EQ(view.next_expiry().points(), 15);
  EXPECT_EQ(view.points_balance(), 85);
}

TEST(MemberView, ProvisionalMemberShowsPendingPoints) {
  Event enrol = At(kNow - 10);
  enrol.mutable_enrolment()->set_display_name("Bea");
  const auto m = Fold(nullptr, {enrol, SimplePurchaseAt(kNow - 5, "t", 12, 1200)});
  const auto view = MakeMemberView(DefaultProgramme(), m, kNow);
  EXPECT_TRUE(view.provisional());
  EXPECT_EQ(view.points_balance(), 12);
  EXPECT_EQ(view.pending_points(), 12);
  EXPECT_EQ(view.language(), "en");  // the programme's default
}

}  // namespace
}  // namespace loyalty::core
