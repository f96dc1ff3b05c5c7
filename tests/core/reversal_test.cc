#include "core/reversal.h"

#include <gtest/gtest.h>

#include "core/programme.h"
#include "test_util.h"

namespace loyalty::core {
namespace {

using loyalty::v1::LineReturn;
using loyalty::v1::Offer;
using loyalty::v1::Redemption;
using loyalty::v1::Reversal;
using namespace testing;

LineReturn Return(uint32_t index, int64_t quantity) {
  LineReturn r;
  r.set_line_index(index);
  r.set_quantity(quantity);
  return r;
}

// A recorded checkout: 3 x 3.33 coffee, 1 x 10.00 tea, a bonus offer and
// 200 points redeemed as a discount.
TxnState Checkout() {
  Offer bonus = PercentOff("bonus", 10);
  bonus.clear_percent_off();
  bonus.set_bonus_points(25);
  Offer coffee = PercentOff("coffee", 10, loyalty::v1::OfferScope::CATEGORY, "Coffee");
  const Quote q = PriceOrDie(DefaultProgramme(), Member("Gold"),
                             {Line("C", "Coffee", 3, 333), Line("T", "Tea", 1, 1000)},
                             {bonus, coffee}, {200, Redemption::DISCOUNT}, 1000);
  TxnState txn;
  txn.purchase = q.purchase;
  txn.purchase.set_pos_txn_id("t1");
  txn.points_redeemed = q.points_redeemed;
  return txn;
}

Reversal PlanOrDie(TxnState& txn, std::vector<LineReturn> lines, const std::string& id = "r") {
  auto r = PlanReversal(txn, lines, id);
  if (!r.ok()) {
    ADD_FAILURE() << r.error().code << ": " << r.error().message;
    return {};
  }
  txn.reversals.push_back(*r);
  return *r;
}

TEST(PlanReversal, VoidExactlyReversesItsPurchase) {
  TxnState txn = Checkout();
  const auto& p = txn.purchase;
  const Reversal v = PlanOrDie(txn, {}, "void-1");
  EXPECT_EQ(v.pos_txn_id(), "t1");
  EXPECT_EQ(v.reversal_id(), "void-1");
  EXPECT_TRUE(v.complete());
  EXPECT_EQ(v.points_reversed(), p.points_earned());
  EXPECT_EQ(v.refund(), p.total() - p.redemption_value());
  EXPECT_EQ(v.qualifying_spend_reversed(), p.qualifying_spend());
  EXPECT_EQ(v.points_restored(), 200);
  ASSERT_EQ(v.offers_released_size(), 2);
  // The void records the quantities it returned.
  ASSERT_EQ(v.lines_size(), 2);
  EXPECT_EQ(v.lines(0).quantity(), 3);
  EXPECT_EQ(v.lines(1).quantity(), 1);
}

TEST(PlanReversal, PiecewiseReturnsAddUpToOneVoid) {
  TxnState whole = Checkout();
  const Reversal v = PlanOrDie(whole, {});
  TxnState pieces = Checkout();
  const Reversal a = PlanOrDie(pieces, {Return(0, 1)});
  const Reversal b = PlanOrDie(pieces, {Return(0, 1), Return(1, 1)});
  const Reversal c = PlanOrDie(pieces, {Return(0, 1)});
  EXPECT_FALSE(a.complete());
  EXPECT_FALSE(b.complete());
  EXPECT_TRUE(c.complete());
  EXPECT_EQ(a.points_reversed() + b.points_reversed() + c.points_reversed(), v.points_reversed());
  EXPECT_EQ(a.refund() + b.refund() + c.refund(), v.refund());
  EXPECT_EQ(
      a.qualifying_spend_reversed() + b.qualifying_spend_reversed() + c.qualifying_spend_reversed(),
      v.qualifying_spend_reversed());
}

TEST(PlanReversal, RedeemedPointsAndOfferUsesComeBackOnlyWhenComplete) {
  TxnState txn = Checkout();
  const Reversal part = PlanOrDie(txn, {Return(1, 1)});
  EXPECT_EQ(part.points_restored(), 0);
  EXPECT_EQ(part.offers_released_size(), 0);
  const Reversal rest = PlanOrDie(txn, {});
  EXPECT_TRUE(rest.complete());
  EXPECT_EQ(rest.points_restored(), 200);
  EXPECT_EQ(rest.offers_released_size(), 2);
  ASSERT_EQ(rest.lines_size(), 1);
  EXPECT_EQ(rest.lines(0).line_index(), 0u);
  EXPECT_EQ(rest.lines(0).quantity(), 3);
}

TEST(PlanReversal, ReturnTakesBackTheLinesShareRoundedDownCumulatively) {
  TxnState txn = Checkout();
  const int64_t line_points = txn.purchase.lines(0).points();
  const Reversal one = PlanOrDie(txn, {Return(0, 1)});
  const Reversal two = PlanOrDie(txn, {Return(0, 1)});
  // Line points floor(p*1/3), then floor(p*2/3) - floor(p*1/3); plus the
  // bonus share, which follows the net returned.
  EXPECT_GE(one.points_reversed(), line_points / 3);
  EXPECT_EQ(one.refund() + two.refund(),
            (txn.purchase.lines(0).net() - txn.purchase.lines(0).redeemed_value()) * 2 / 3);
}

TEST(PlanReversal, AReversalNeverEarns) {
  TxnState txn = Checkout();
  for (const auto& r : {PlanOrDie(txn, {Return(0, 1)}), PlanOrDie(txn, {})}) {
    EXPECT_GE(r.points_reversed(), 0);
    EXPECT_GE(r.refund(), 0);
    EXPECT_GE(r.qualifying_spend_reversed(), 0);
  }
}

TEST(PlanReversal, NothingLeftIsAlreadyReversed) {
  TxnState txn = Checkout();
  PlanOrDie(txn, {});
  const auto again = PlanReversal(txn, {}, "r2");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, code::kAlreadyReversed);
  const std::vector<LineReturn> one = {Return(0, 1)};
  EXPECT_EQ(PlanReversal(txn, one, "r3").error().code, code::kAlreadyReversed);
}

TEST(PlanReversal, RejectsBadReturnLines) {
  TxnState txn = Checkout();
  const auto expect_bad = [&](std::vector<LineReturn> lines, const std::string& words) {
    const auto r = PlanReversal(txn, lines, "r");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, code::kInvalidRequest);
    EXPECT_NE(r.error().message.find(words), std::string::npos) << r.error().message;
  };
  expect_bad({Return(2, 1)}, "lines[2]");
  expect_bad({Return(0, 0)}, "at least 1");
  expect_bad({Return(0, -1)}, "at least 1");
  expect_bad({Return(0, 4)}, "more than the 3");
  expect_bad({Return(0, 1), Return(0, 1)}, "named twice");
  PlanOrDie(txn, {Return(0, 2)});
  expect_bad({Return(0, 2)}, "more than the 1");
}

TEST(PlanReversal, FreeBasketStillReversesBonusAtTheEnd) {
  Offer bonus = PercentOff("bonus", 10);
  bonus.clear_percent_off();
  bonus.set_bonus_points(40);
  const Quote q = PriceOrDie(DefaultProgramme(), Member(), {Line("F", "Free", 2, 0)}, {bonus});
  TxnState txn;
  txn.purchase = q.purchase;
  const Reversal a = PlanOrDie(txn, {Return(0, 1)});
  EXPECT_EQ(a.points_reversed(), 0);
  const Reversal b = PlanOrDie(txn, {});
  EXPECT_EQ(b.points_reversed(), 40);
}

}  // namespace
}  // namespace loyalty::core
