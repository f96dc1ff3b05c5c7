#include "core/offers.h"

#include <gtest/gtest.h>

#include "core/programme.h"
#include "test_util.h"

namespace loyalty::core {
namespace {

using loyalty::v1::Offer;
using loyalty::v1::OfferScope;
using namespace testing;

void ExpectInvalid(Offer offer, const std::string& field) {
  const Status status = ValidateOffer(offer);
  ASSERT_FALSE(status.ok()) << "accepted a bad " << field;
  EXPECT_EQ(status.error().code, code::kInvalidOffer);
  EXPECT_NE(status.error().message.find(field), std::string::npos) << status.error().message;
}

TEST(ValidateOffer, AcceptsAPlainOffer) { EXPECT_TRUE(ValidateOffer(PercentOff("o", 10)).ok()); }

TEST(ValidateOffer, RejectsBadFields) {
  Offer o = PercentOff("o", 10);
  o.set_id("");
  ExpectInvalid(o, "id");
  o = PercentOff("o", 10);
  o.clear_percent_off();
  ExpectInvalid(o, "reward");
  ExpectInvalid(PercentOff("o", 0), "percent_off");
  ExpectInvalid(PercentOff("o", 101), "percent_off");
  o = PercentOff("o", 10);
  o.set_amount_off(-1);
  ExpectInvalid(o, "amount_off");
  o.set_bonus_points(-5);
  ExpectInvalid(o, "bonus_points");
  o.set_bonus_points(kMaxBonusPoints + 1);
  ExpectInvalid(o, "bonus_points");
  o.set_bonus_points(INT64_MAX);
  ExpectInvalid(o, "bonus_points");
  o.set_bonus_points(kMaxBonusPoints);
  EXPECT_TRUE(ValidateOffer(o).ok());
  o.set_points_multiplier_pct(0);
  ExpectInvalid(o, "points_multiplier_pct");
  o.mutable_buy_x_get_y()->set_buy(2);
  ExpectInvalid(o, "buy_x_get_y");
  o = PercentOff("o", 10);
  o.set_starts_at_ms(2000);
  o.set_ends_at_ms(1000);
  ExpectInvalid(o, "ends_at_ms");
  o = PercentOff("o", 10);
  o.set_to_hour(25);
  ExpectInvalid(o, "to_hour");
  o = PercentOff("o", 10);
  o.set_from_hour(9);
  o.set_to_hour(9);
  ExpectInvalid(o, "from_hour");
  o = PercentOff("o", 10);
  o.add_weekdays(7);
  ExpectInvalid(o, "weekdays");
  ExpectInvalid(PercentOff("o", 10, OfferScope::CATEGORY, ""), "scope.value");
  o = PercentOff("o", 10);
  o.set_min_spend(-1);
  ExpectInvalid(o, "min_spend");
}

TEST(OfferTargeting, TierMustMatchWhenGiven) {
  Offer o = PercentOff("o", 10);
  o.add_tiers("Gold");
  o.add_tiers("Platinum");
  EXPECT_FALSE(IsOfferTargeted(o, Member("Silver"), Context()));
  EXPECT_TRUE(IsOfferTargeted(o, Member("Gold"), Context()));
}

TEST(OfferTargeting, MemberMustBeInOneOfTheSegments) {
  Offer o = PercentOff("o", 10);
  o.add_segment_ids("lapsing");
  MemberState m = Member();
  EXPECT_FALSE(IsOfferTargeted(o, m, Context()));
  m.segment_ids = {"heavy", "lapsing"};
  EXPECT_TRUE(IsOfferTargeted(o, m, Context()));
}

TEST(OfferTargeting, StoreMustBeListedWhenGiven) {
  Offer o = PercentOff("o", 10);
  o.add_store_ids("store-2");
  EXPECT_FALSE(IsOfferTargeted(o, Member(), Context()));
  o.add_store_ids("store-1");
  EXPECT_TRUE(IsOfferTargeted(o, Member(), Context()));
}

TEST(OfferTargeting, DateWindowStartsInclusiveAndEndsExclusive) {
  Offer o = PercentOff("o", 10);
  o.set_starts_at_ms(Ms(2024, 5, 1));
  o.set_ends_at_ms(Ms(2024, 6, 1));
  EXPECT_FALSE(IsOfferTargeted(o, Member(), Context(Ms(2024, 5, 1) - 1)));
  EXPECT_TRUE(IsOfferTargeted(o, Member(), Context(Ms(2024, 5, 1))));
  EXPECT_TRUE(IsOfferTargeted(o, Member(), Context(Ms(2024, 6, 1) - 1)));
  EXPECT_FALSE(IsOfferTargeted(o, Member(), Context(Ms(2024, 6, 1))));
}

TEST(OfferTargeting, WeekdayIsTheStoresLocalDay) {
  Offer o = PercentOff("o", 10);
  o.add_weekdays(2);                                               // Tuesday
  CheckoutContext monday_late = Context(Ms(2024, 5, 13, 23, 30));  // Monday UTC
  EXPECT_FALSE(IsOfferTargeted(o, Member(), monday_late));
  monday_late.utc_offset_minutes = 60;  // already Tuesday in the store
  EXPECT_TRUE(IsOfferTargeted(o, Member(), monday_late));
}

TEST(OfferTargeting, HourWindowIsHalfOpenAndMayWrapMidnight) {
  Offer o = PercentOff("o", 10);
  o.set_from_hour(10);
  o.set_to_hour(14);
  EXPECT_FALSE(IsOfferTargeted(o, Member(), Context(Ms(2024, 5, 15, 9, 59))));
  EXPECT_TRUE(IsOfferTargeted(o, Member(), Context(Ms(2024, 5, 15, 10))));
  EXPECT_FALSE(IsOfferTargeted(o, Member(), Context(Ms(2024, 5, 15, 14))));
  CheckoutContext local = Context(Ms(2024, 5, 15, 8));
  local.utc_offset_minutes = 120;  // 10:00 in the store
  EXPECT_TRUE(IsOfferTargeted(o, Member(), local));
  o.set_from_hour(22);
  o.set_to_hour(2);
  EXPECT_TRUE(IsOfferTargeted(o, Member(), Context(Ms(2024, 5, 15, 23))));
  EXPECT_TRUE(IsOfferTargeted(o, Member(), Context(Ms(2024, 5, 15, 1))));
  EXPECT_FALSE(IsOfferTargeted(o, Member(), Context(Ms(2024, 5, 15, 2))));
}

TEST(OfferTargeting, PerMemberLimitStopsTheOfferWhenUsedUp) {
  Offer o = PercentOff("o", 10);
  o.set_per_member_limit(2);
  MemberState m = Member();
  EXPECT_EQ(OfferUsesLeft(o, m), 2);
  m.offer_uses["o"] = 1;
  EXPECT_EQ(OfferUsesLeft(o, m), 1);
  EXPECT_TRUE(IsOfferTargeted(o, m, Context()));
  m.offer_uses["o"] = 2;
  EXPECT_EQ(OfferUsesLeft(o, m), 0);
  EXPECT_FALSE(IsOfferTargeted(o, m, Context()));
  o.set_per_member_limit(0);
  EXPECT_EQ(OfferUsesLeft(o, m), -1);
}

TEST(OfferView, DescribesRewardAndConditionsInWords) {
  Offer o = PercentOff("o", 10, OfferScope::CATEGORY, "Coffee");
  o.set_name("Coffee week");
  o.add_tiers("Gold");
  o.set_min_spend(2000);
  const auto view = MakeOfferView(o, DefaultProgramme(), Member("Gold"));
  EXPECT_EQ(view.reward(), "10% off Coffee");
  EXPECT_EQ(view.conditions(), "Gold members, minimum spend EUR 20.00");
  EXPECT_EQ(view.uses_left(), -1);
  EXPECT_EQ(view.name(), "Coffee week");
}

TEST(OfferView, WordsEveryRewardKind) {
  const auto programme = DefaultProgramme();
  Offer o = PercentOff("o", 10, OfferScope::SKU, "123");
  o.set_amount_off(250);
  EXPECT_EQ(MakeOfferView(o, programme, Member()).reward(), "EUR 2.50 off SKU 123");
  o.set_points_multiplier_pct(200);
  EXPECT_EQ(MakeOfferView(o, programme, Member()).reward(), "Double points on SKU 123");
  o.set_points_multiplier_pct(150);
  EXPECT_EQ(MakeOfferView(o, programme, Member()).reward(), "1.5x points on SKU 123");
  o.set_bonus_points(50);
  o.mutable_scope()->set_kind(OfferScope::BASKET);
  EXPECT_EQ(MakeOfferView(o, programme, Member()).reward(), "50 bonus points");
  o.mutable_buy_x_get_y()->set_buy(2);
  o.mutable_buy_x_get_y()->set_get(1);
  o.mutable_scope()->set_kind(OfferScope::CATEGORY);
  o.mutable_scope()->set_value("Snacks");
  EXPECT_EQ(MakeOfferView(o, programme, Member()).reward(), "Buy 2 get 1 free on Snacks");
}

TEST(OfferView, ListsEveryCondition) {
  Offer o = PercentOff("o", 5);
  o.add_tiers("Silver");
  o.add_tiers("Gold");
  o.add_tiers("Platinum");
  o.add_weekdays(1);
  o.add_weekdays(5);
  o.set_from_hour(8);
  o.set_to_hour(12);
  o.set_required_category("Bakery");
  o.set_ends_at_ms(Ms(2024, 7, 1));
  o.set_per_member_limit(3);
  MemberState m = Member("Gold");
  m.offer_uses["o"] = 1;
  const auto view = MakeOfferView(o, DefaultProgramme(), m);
  EXPECT_EQ(view.conditions(),
            "Silver, Gold and Platinum members, with Bakery in the basket, Mon and Fri only, "
            "08:00-12:00, until 2024-06-30, 3 uses per member (2 left)");
  EXPECT_EQ(view.uses_left(), 2);
  EXPECT_EQ(view.ends_at_ms(), Ms(2024, 7, 1));
}

TEST(OfferView, NoConditionsIsEmpty) {
  EXPECT_EQ(MakeOfferView(PercentOff("o", 5), DefaultProgramme(), Member()).conditions(), "");
}

}  // namespace
}  // namespace loyalty::core
