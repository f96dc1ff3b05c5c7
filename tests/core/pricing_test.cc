#include "core/pricing.h"

#include <gtest/gtest.h>

#include "core/programme.h"
#include "test_util.h"

namespace loyalty::core {
namespace {

using loyalty::v1::BasketLine;
using loyalty::v1::Offer;
using loyalty::v1::OfferScope;
using loyalty::v1::Programme;
using loyalty::v1::Redemption;
using namespace testing;

int64_t ExplainedPoints(const Quote& q) {
  int64_t sum = 0;
  for (const auto& item : q.explanation) sum += item.points();
  return sum;
}

int64_t ExplainedOfferDiscounts(const Quote& q) {
  int64_t sum = 0;
  for (const auto& item : q.explanation) {
    if (item.rule() == "offer") sum += item.discount();
  }
  return sum;
}

Offer Reward(const std::string& id, OfferScope::Kind kind = OfferScope::BASKET,
             const std::string& value = "") {
  Offer o = PercentOff(id, 10, kind, value);
  o.clear_percent_off();
  return o;
}

void ExpectBasketError(const std::vector<BasketLine>& lines, const std::string& words) {
  const Status status = ValidateBasket(lines);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, code::kInvalidRequest);
  EXPECT_NE(status.error().message.find(words), std::string::npos) << status.error().message;
}

TEST(PriceBasket, BaseEarnRoundsDownOncePerLine) {
  const Quote q = PriceOrDie(DefaultProgramme(), Member(),
                             {Line("A", "Food", 1, 1250), Line("B", "Food", 1, 399)});
  EXPECT_EQ(q.purchase.lines(0).points(), 12);
  EXPECT_EQ(q.purchase.lines(1).points(), 3);
  EXPECT_EQ(q.purchase.points_earned(), 15);  // not floor(16.49)
  EXPECT_EQ(q.purchase.subtotal(), 1649);
  EXPECT_EQ(q.purchase.total(), 1649);
  EXPECT_EQ(q.purchase.qualifying_spend(), 1649);
  EXPECT_EQ(q.total_to_pay, 1649);
  EXPECT_EQ(q.tier, "Member");
}

TEST(PriceBasket, FillsEveryPricedLineField) {
  const Quote q = PriceOrDie(DefaultProgramme(), Member(), {Line("A", "Food", 3, 250)});
  ASSERT_EQ(q.purchase.lines_size(), 1);
  const auto& line = q.purchase.lines(0);
  EXPECT_EQ(line.line().sku(), "A");
  EXPECT_EQ(line.gross(), 750);
  EXPECT_EQ(line.discount(), 0);
  EXPECT_EQ(line.net(), 750);
  EXPECT_EQ(line.points(), 7);
}

TEST(PriceBasket, ExplainsTheBaseEarnInCashierWords) {
  const Quote q = PriceOrDie(DefaultProgramme(), Member(), {Line("123", "Food", 1, 1250)});
  ASSERT_EQ(q.explanation.size(), 1u);
  EXPECT_EQ(q.explanation[0].rule(), "base");
  EXPECT_EQ(q.explanation[0].text(), "Base: 1 pt per EUR 1.00 on EUR 12.50 (123) → 12 pts");
  EXPECT_EQ(q.explanation[0].points(), 12);
  EXPECT_EQ(q.explanation[0].line_index(), 0);
}

TEST(PriceBasket, TierMultiplierAddsItsShare) {
  const Quote q = PriceOrDie(DefaultProgramme(), Member("Gold"), {Line("A", "Food", 1, 1250)});
  EXPECT_EQ(q.purchase.points_earned(), 18);  // floor(12.5 * 1.5)
  ASSERT_EQ(q.explanation.size(), 2u);
  EXPECT_EQ(q.explanation[0].points(), 12);
  EXPECT_EQ(q.explanation[1].rule(), "tier");
  EXPECT_EQ(q.explanation[1].points(), 6);
  EXPECT_EQ(q.tier, "Gold");
}

TEST(PriceBasket, CategoryMultiplierAppliesToItsCategoryOnly) {
  Programme p = DefaultProgramme();
  auto* cm = p.add_category_multipliers();
  cm->set_category("Coffee");
  cm->set_multiplier_pct(200);
  const Quote q =
      PriceOrDie(p, Member(), {Line("A", "Coffee", 1, 1250), Line("B", "Tea", 1, 1250)});
  EXPECT_EQ(q.purchase.lines(0).points(), 25);
  EXPECT_EQ(q.purchase.lines(1).points(), 12);
  EXPECT_EQ(ExplainedPoints(q), 37);
}

TEST(PriceBasket, PercentOffTakesOffItsScopeAndEarnsOnTheNet) {
  const Quote q = PriceOrDie(DefaultProgramme(), Member(),
                             {Line("C", "Coffee", 2, 300), Line("T", "Tea", 1, 500)},
                             {PercentOff("coffee10", 10, OfferScope::CATEGORY, "Coffee")});
  EXPECT_EQ(q.purchase.lines(0).discount(), 60);
  EXPECT_EQ(q.purchase.lines(0).net(), 540);
  EXPECT_EQ(q.purchase.lines(1).discount(), 0);
  EXPECT_EQ(q.purchase.discount_total(), 60);
  EXPECT_EQ(q.purchase.total(), 1040);
  EXPECT_EQ(q.purchase.points_earned(), 5 + 5);
  ASSERT_EQ(q.purchase.offers_size(), 1);
  EXPECT_EQ(q.purchase.offers(0).discount(), 60);
  ASSERT_EQ(q.discounts.size(), 1u);
  EXPECT_EQ(q.discounts[0].scope(), "category:Coffee");
  EXPECT_EQ(q.discounts[0].amount(), 60);
  EXPECT_EQ(ExplainedOfferDiscounts(q), 60);
}

TEST(PriceBasket, AmountOffIsCappedAtItsScope) {
  Offer o = Reward("two-off", OfferScope::SKU, "S");
  o.set_amount_off(1000);
  const Quote q = PriceOrDie(DefaultProgramme(), Member(),
                             {Line("S", "Food", 1, 300), Line("X", "Food", 1, 700)}, {o});
  EXPECT_EQ(q.purchase.discount_total(), 300);
  EXPECT_EQ(q.purchase.lines(0).net(), 0);
  EXPECT_EQ(q.purchase.lines(1).net(), 700);
}

TEST(PriceBasket, BasketDiscountIsSplitByLargestRemainder) {
  Offer o = Reward("one-off");
  o.set_amount_off(100);
  const Quote q =
      PriceOrDie(DefaultProgramme(), Member(),
                 {Line("A", "F", 1, 100), Line("B", "F", 1, 100), Line("C", "F", 1, 100)}, {o});
  EXPECT_EQ(q.purchase.lines(0).discount(), 34);
  EXPECT_EQ(q.purchase.lines(1).discount(), 33);
  EXPECT_EQ(q.purchase.lines(2).discount(), 33);
}

TEST(PriceBasket, BuyXGetYFreesTheCheapestUnitsInScope) {
  Offer o = Reward("3for2", OfferScope::CATEGORY, "Snacks");
  o.mutable_buy_x_get_y()->set_buy(2);
  o.mutable_buy_x_get_y()->set_get(1);
  const Quote q = PriceOrDie(DefaultProgramme(), Member(),
                             {Line("big", "Snacks", 3, 200), Line("small", "Snacks", 2, 100),
                              Line("mid", "Snacks", 1, 150), Line("milk", "Dairy", 5, 50)},
                             {o});
  // 6 snack units: 2 free, the two 1.00 units.
  EXPECT_EQ(q.purchase.lines(0).discount(), 0);
  EXPECT_EQ(q.purchase.lines(1).discount(), 200);
  EXPECT_EQ(q.purchase.lines(2).discount(), 0);
  EXPECT_EQ(q.purchase.lines(3).discount(), 0);
  EXPECT_EQ(q.purchase.discount_total(), 200);
  EXPECT_EQ(ExplainedOfferDiscounts(q), 200);
}

TEST(PriceBasket, BuyXGetYNeedsEnoughUnits) {
  Offer o = Reward("3for2", OfferScope::SKU, "S");
  o.mutable_buy_x_get_y()->set_buy(2);
  o.mutable_buy_x_get_y()->set_get(1);
  const Quote q = PriceOrDie(DefaultProgramme(), Member(), {Line("S", "F", 2, 100)}, {o});
  EXPECT_EQ(q.purchase.offers_size(), 0);
  EXPECT_EQ(q.purchase.discount_total(), 0);
}

TEST(PriceBasket, BonusPointsAreAddedOncePerBasket) {
  Offer o = Reward("welcome");
  o.set_bonus_points(50);
  const Quote q = PriceOrDie(DefaultProgramme(), Member(),
                             {Line("A", "F", 1, 1000), Line("B", "F", 1, 1000)}, {o});
  EXPECT_EQ(q.purchase.points_earned(), 70);
  ASSERT_EQ(q.purchase.offers_size(), 1);
  EXPECT_EQ(q.purchase.offers(0).points(), 50);
  EXPECT_EQ(ExplainedPoints(q), 70);
}

TEST(PriceBasket, PointsMultiplierMultipliesItsScopeLines) {
  Offer o = Reward("double-coffee", OfferScope::CATEGORY, "Coffee");
  o.set_points_multiplier_pct(200);
  const Quote q = PriceOrDie(DefaultProgramme(), Member("Gold"),
                             {Line("C", "Coffee", 1, 1000), Line("T", "Tea", 1, 1000)}, {o});
  EXPECT_EQ(q.purchase.lines(0).points(), 30);  // 10 * 1.5 * 2
  EXPECT_EQ(q.purchase.lines(1).points(), 15);
  ASSERT_EQ(q.purchase.offers_size(), 1);
  EXPECT_EQ(q.purchase.offers(0).points(), 0);  // already in the line
  EXPECT_EQ(ExplainedPoints(q), 45);
  bool explained = false;
  for (const auto& item : q.explanation) {
    if (item.offer_id() == "double-coffee") {
      explained = true;
      EXPECT_EQ(item.points(), 15);
      EXPECT_EQ(item.line_index(), 0);
    }
  }
  EXPECT_TRUE(explained);
}

TEST(PriceBasket, NonStackableTopPriorityOfferIsAppliedAlone) {
  Offer big = PercentOff("big", 20);
  big.set_priority(10);
  big.set_stackable(false);
  Offer small = PercentOff("small", 10);
  small.set_priority(5);
  const Quote q = PriceOrDie(DefaultProgramme(), Member(), {Line("A", "F", 1, 1000)}, {small, big});
  ASSERT_EQ(q.purchase.offers_size(), 1);
  EXPECT_EQ(q.purchase.offers(0).offer_id(), "big");
  EXPECT_EQ(q.purchase.discount_total(), 200);
}

TEST(PriceBasket, StackableTopPriorityExcludesNonStackableOffers) {
  Offer lone = PercentOff("lone", 50);
  lone.set_priority(1);
  lone.set_stackable(false);
  Offer a = PercentOff("a", 10);
  a.set_priority(5);
  Offer b = PercentOff("b", 10);
  b.set_priority(3);
  const Quote q = PriceOrDie(DefaultProgramme(), Member(), {Line("A", "F", 1, 1000)}, {lone, b, a});
  ASSERT_EQ(q.purchase.offers_size(), 2);
  EXPECT_EQ(q.purchase.offers(0).offer_id(), "a");
  EXPECT_EQ(q.purchase.offers(1).offer_id(), "b");
  // Each on the price left by the one before: 100, then 10% of 900.
  EXPECT_EQ(q.purchase.offers(0).discount(), 100);
  EXPECT_EQ(q.purchase.offers(1).discount(), 90);
  EXPECT_EQ(q.purchase.total(), 810);
}

TEST(PriceBasket, OfferWithoutItsScopeInTheBasketDoesNotApply) {
  Offer coffee = PercentOff("coffee", 10, OfferScope::CATEGORY, "Coffee");
  coffee.set_stackable(false);
  coffee.set_priority(100);
  Offer all = PercentOff("all", 5);
  const Quote q =
      PriceOrDie(DefaultProgramme(), Member(), {Line("T", "Tea", 1, 1000)}, {coffee, all});
  ASSERT_EQ(q.purchase.offers_size(), 1);
  EXPECT_EQ(q.purchase.offers(0).offer_id(), "all");
}

TEST(PriceBasket, BasketConditionsMustHold) {
  Offer o = PercentOff("o", 10);
  o.set_required_category("Bakery");
  EXPECT_EQ(PriceOrDie(DefaultProgramme(), Member(), {Line("A", "F", 1, 1000)}, {o})
                .purchase.offers_size(),
            0);
  EXPECT_EQ(PriceOrDie(DefaultProgramme(), Member(),
                       {Line("A", "F", 1, 1000), Line("B", "Bakery", 1, 100)}, {o})
                .purchase.offers_size(),
            1);
  o = PercentOff("o", 10);
  o.set_required_sku("B");
  EXPECT_EQ(PriceOrDie(DefaultProgramme(), Member(), {Line("A", "F", 1, 1000)}, {o})
                .purchase.offers_size(),
            0);
  o = PercentOff("o", 10);
  o.set_min_spend(2000);
  EXPECT_EQ(PriceOrDie(DefaultProgramme(), Member(), {Line("A", "F", 1, 1999)}, {o})
                .purchase.offers_size(),
            0);
  EXPECT_EQ(PriceOrDie(DefaultProgramme(), Member(), {Line("A", "F", 1, 2000)}, {o})
                .purchase.offers_size(),
            1);
}

TEST(PriceBasket, OffersNotTargetedAtTheMemberAreRechecked) {
  Offer gold = PercentOff("gold", 10);
  gold.add_tiers("Gold");
  Offer used = PercentOff("used", 10);
  used.set_per_member_limit(1);
  MemberState m = Member("Silver");
  m.offer_uses["used"] = 1;
  const Quote q = PriceOrDie(DefaultProgramme(), m, {Line("A", "F", 1, 1000)}, {gold, used});
  EXPECT_EQ(q.purchase.offers_size(), 0);
  EXPECT_TRUE(q.applied_offers.empty());
}

TEST(PriceBasket, AppliedOffersPointIntoTheCandidates) {
  const std::vector<Offer> offers = {PercentOff("o", 10)};
  const auto ptrs = Ptrs(offers);
  const auto q = PriceBasket(DefaultProgramme(), Member(), std::vector{Line("A", "F", 1, 100)},
                             ptrs, Context(), {}, 0);
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->applied_offers.size(), 1u);
  EXPECT_EQ(q->applied_offers[0], &offers[0]);
}

TEST(PriceBasket, ExplanationSumsMatchTheTotals) {
  Programme p = DefaultProgramme();
  auto* cm = p.add_category_multipliers();
  cm->set_category("Coffee");
  cm->set_multiplier_pct(300);
  Offer pct = PercentOff("pct", 15, OfferScope::CATEGORY, "Coffee");
  Offer mult = Reward("mult", OfferScope::SKU, "T");
  mult.set_points_multiplier_pct(250);
  Offer bonus = Reward("bonus");
  bonus.set_bonus_points(7);
  const Quote q =
      PriceOrDie(p, Member("Platinum"), {Line("C", "Coffee", 3, 333), Line("T", "Tea", 2, 777)},
                 {pct, mult, bonus}, {150, Redemption::DISCOUNT}, 1000);
  EXPECT_EQ(ExplainedPoints(q), q.purchase.points_earned());
  EXPECT_EQ(ExplainedOfferDiscounts(q), q.purchase.discount_total());
  int64_t line_points = 0;
  for (const auto& line : q.purchase.lines()) line_points += line.points();
  int64_t offer_points = 0;
  for (const auto& offer : q.purchase.offers()) offer_points += offer.points();
  EXPECT_EQ(line_points + offer_points, q.purchase.points_earned());
}

TEST(PriceBasket, DiscountRedemptionReducesTheEarningBase) {
  const Quote q = PriceOrDie(DefaultProgramme(), Member(), {Line("A", "F", 1, 1000)}, {},
                             {500, Redemption::DISCOUNT}, 500);
  EXPECT_EQ(q.points_redeemed, 500);
  EXPECT_EQ(q.redemption_value, 500);
  EXPECT_EQ(q.purchase.total(), 1000);
  EXPECT_EQ(q.total_to_pay, 500);
  EXPECT_EQ(q.purchase.points_earned(), 5);
  EXPECT_EQ(q.purchase.qualifying_spend(), 500);
  EXPECT_EQ(q.purchase.redemption_value(), 500);
  EXPECT_EQ(q.purchase.lines(0).redeemed_value(), 500);
  ASSERT_FALSE(q.explanation.empty());
  EXPECT_EQ(q.explanation[q.explanation.size() - 1].rule(), "redemption");
  EXPECT_EQ(q.explanation[q.explanation.size() - 1].discount(), 500);
}

TEST(PriceBasket, TenderRedemptionIsAPaymentAndStillEarns) {
  const Quote q = PriceOrDie(DefaultProgramme(), Member(), {Line("A", "F", 1, 1000)}, {},
                             {500, Redemption::TENDER}, 500);
  EXPECT_EQ(q.redemption_value, 500);
  EXPECT_EQ(q.total_to_pay, 500);
  EXPECT_EQ(q.purchase.points_earned(), 10);
  EXPECT_EQ(q.purchase.qualifying_spend(), 1000);
}

TEST(PriceBasket, RedemptionIsCappedAtWhatIsLeftToPay) {
  const Quote q = PriceOrDie(DefaultProgramme(), Member(), {Line("A", "F", 1, 300)}, {},
                             {500, Redemption::DISCOUNT}, 1000);
  EXPECT_EQ(q.redemption_value, 300);
  EXPECT_EQ(q.points_redeemed, 300);
  EXPECT_EQ(q.total_to_pay, 0);
  EXPECT_EQ(q.purchase.points_earned(), 0);
}

TEST(PriceBasket, RedemptionUsesOnlyThePointsTheValueNeeds) {
  Programme p = DefaultProgramme();
  p.set_redemption_points(100);
  p.set_redemption_value(1);  // 100 points are worth one cent
  const Quote q =
      PriceOrDie(p, Member(), {Line("A", "F", 1, 1000)}, {}, {250, Redemption::DISCOUNT}, 1000);
  EXPECT_EQ(q.redemption_value, 2);
  EXPECT_EQ(q.points_redeemed, 200);
}

TEST(PriceBasket, RedeemingMoreThanSpendableIsRefused) {
  const std::vector<Offer> none;
  const auto q = PriceBasket(DefaultProgramme(), Member(), std::vector{Line("A", "F", 1, 1000)},
                             Ptrs(none), Context(), {501, Redemption::DISCOUNT}, 500);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().code, code::kInsufficientPoints);
  const auto negative = PriceBasket(DefaultProgramme(), Member(), std::vector{Line("A", "F", 1, 1)},
                                    Ptrs(none), Context(), {-1, Redemption::DISCOUNT}, 500);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.error().code, code::kInvalidRequest);
}

TEST(PriceBasket, AbsurdRatesAreTooLargeNotOverflow) {
  Programme p = DefaultProgramme();
  p.set_minor_units(1);
  p.set_points_per_unit(1'000'000);
  p.mutable_tiers(0)->set_earn_multiplier_pct(10'000);
  const std::vector<Offer> none;
  const auto q = PriceBasket(p, Member(), std::vector{Line("A", "F", 100'000, 100'000'000)},
                             Ptrs(none), Context(), {}, 0);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().code, code::kTooLarge);
}

TEST(ValidateBasket, RejectsBadLinesNamingThem) {
  ExpectBasketError({}, "empty");
  ExpectBasketError({Line("A", "F", 1, 1), Line("", "F", 1, 1)}, "lines[1] has no sku");
  ExpectBasketError({Line("A", "F", 0, 1)}, "lines[0] (sku A) has quantity 0");
  ExpectBasketError({Line("A", "F", -3, 1)}, "quantity -3");
  ExpectBasketError({Line("A", "F", 100'001, 1)}, "quantity 100001");
  ExpectBasketError({Line("A", "F", 1, -1)}, "unit_price -1");
  ExpectBasketError({Line("A", "F", 1, 100'000'001)}, "unit_price 100000001");
  ExpectBasketError({Line("A", "F", INT64_MAX, INT64_MAX)}, "quantity");
  ExpectBasketError({Line(std::string(129, 'S'), "F", 1, 1)},
                    "lines[0] has a sku longer than 128 bytes");
  ExpectBasketError({Line("A", std::string(129, 'C'), 1, 1)},
                    "lines[0] has a category longer than 128 bytes");
  ExpectBasketError({Line(std::string("A\0B", 3), "F", 1, 1)},
                    "lines[0] has control characters in its sku");
  ExpectBasketError({Line("A", "F\tood", 1, 1)}, "control characters in its category");
  EXPECT_TRUE(
      ValidateBasket(std::vector{Line(std::string(128, 'S'), "Caf\u00e9 & bakery", 1, 1)}).ok());
  std::vector<BasketLine> many(kMaxBasketLines + 1, Line("A", "F", 1, 1));
  ExpectBasketError(many, "501 lines");
}

TEST(ValidateBasket, TheLargestBasketPricesWithoutOverflow) {
  std::vector<BasketLine> lines(kMaxBasketLines, Line("A", "F", 100'000, 100'000'000));
  EXPECT_TRUE(ValidateBasket(lines).ok());
  const Quote q = PriceOrDie(DefaultProgramme(), Member("Platinum"), lines);
  EXPECT_EQ(q.purchase.subtotal(), 5'000'000'000'000'000);
  EXPECT_EQ(q.purchase.points_earned(), 100'000'000'000'000);  // 2x of 5e13 EUR
}

TEST(PlanRedemption, ValuesPointsAtTheProgrammeRate) {
  const auto r = PlanRedemption(DefaultProgramme(), 250, Redemption::TENDER, 300);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->points(), 250);
  EXPECT_EQ(r->value(), 250);
  EXPECT_EQ(r->mode(), Redemption::TENDER);
}

TEST(PlanRedemption, RefusesNonPositiveAndTooManyPoints) {
  const auto zero = PlanRedemption(DefaultProgramme(), 0, Redemption::DISCOUNT, 300);
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.error().code, code::kInvalidRequest);
  const auto many = PlanRedemption(DefaultProgramme(), 301, Redemption::DISCOUNT, 300);
  ASSERT_FALSE(many.ok());
  EXPECT_EQ(many.error().code, code::kInsufficientPoints);
}

}  // namespace
}  // namespace loyalty::core

namespace loyalty::core {
namespace {

// An offer past kMaxBonusPoints is invalid, so a terminal that holds one
// (from before the bound) prices around it instead of refusing every basket
// as too large; the largest valid bonus is given in full.
TEST(PriceBasket, HugeBonusPointsAreNotAppliedAndTheLargestValidOneIs) {
  std::vector<loyalty::v1::Offer> offers(2, testing::PercentOff("x", 10));
  offers[0].set_bonus_points(INT64_MAX);
  offers[0].set_stackable(true);
  offers[1].set_id("y");
  offers[1].set_bonus_points(kMaxBonusPoints);
  offers[1].set_stackable(true);
  const auto q = PriceBasket(DefaultProgramme(), testing::Member(),
                             std::vector{testing::Line("A", "F", 1, 100)}, testing::Ptrs(offers),
                             testing::Context(), {}, 0);
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_EQ(q->purchase.points_earned(), 1 + kMaxBonusPoints);
  ASSERT_EQ(q->applied_offers.size(), 1u);
  EXPECT_EQ(q->applied_offers[0]->id(), "y");
}

}  // namespace
}  // namespace loyalty::core
