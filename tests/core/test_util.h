// Builders shared by the core tests: dates, basket lines, offers and events,
// so that each test states only what it is about.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/member_state.h"
#include "core/pricing.h"
#include "core/programme.h"
#include "core/time_util.h"
#include "loyalty/v1/domain.pb.h"

namespace loyalty::core::testing {

// UTC instant of a calendar date and time.
inline int64_t Ms(int y, unsigned m, unsigned d, int hour = 0, int minute = 0) {
  using namespace std::chrono;
  const sys_days day = year_month_day(year(y), month(m), std::chrono::day(d));
  return duration_cast<milliseconds>(day.time_since_epoch()).count() +
         (int64_t{hour} * 60 + minute) * 60'000;
}

inline loyalty::v1::BasketLine Line(const std::string& sku, const std::string& category,
                                    int64_t quantity, int64_t unit_price) {
  loyalty::v1::BasketLine line;
  line.set_sku(sku);
  line.set_category(category);
  line.set_quantity(quantity);
  line.set_unit_price(unit_price);
  return line;
}

inline loyalty::v1::Offer PercentOff(
    const std::string& id, uint32_t pct,
    loyalty::v1::OfferScope::Kind kind = loyalty::v1::OfferScope::BASKET,
    const std::string& value = "") {
  loyalty::v1::Offer offer;
  offer.set_id(id);
  offer.set_name(id);
  offer.set_percent_off(pct);
  offer.set_stackable(true);
  offer.mutable_scope()->set_kind(kind);
  offer.mutable_scope()->set_value(value);
  return offer;
}

inline MemberState Member(const std::string& tier = "Member") {
  MemberState member;
  member.member_id = "m-1";
  member.tier = tier;
  return member;
}

inline CheckoutContext Context(int64_t now_ms = Ms(2024, 5, 15, 12)) {
  return CheckoutContext{"store-1", now_ms, 0};
}

inline std::vector<const loyalty::v1::Offer*> Ptrs(const std::vector<loyalty::v1::Offer>& offers) {
  std::vector<const loyalty::v1::Offer*> out;
  for (const auto& o : offers) out.push_back(&o);
  return out;
}

// Prices with no redemption; fails the test on error.
inline Quote PriceOrDie(const loyalty::v1::Programme& programme, const MemberState& member,
                        const std::vector<loyalty::v1::BasketLine>& lines,
                        const std::vector<loyalty::v1::Offer>& offers = {},
                        const RedemptionAsk& ask = {}, int64_t spendable = 0,
                        const CheckoutContext& context = Context()) {
  const auto ptrs = Ptrs(offers);
  auto quote = PriceBasket(programme, member, lines, ptrs, context, ask, spendable);
  if (!quote.ok()) {
    ADD_FAILURE() << quote.error().code << ": " << quote.error().message;
    return {};
  }
  return std::move(quote).value();
}

inline loyalty::v1::Event At(int64_t ms) {
  loyalty::v1::Event event;
  event.set_occurred_at_ms(ms);
  event.set_member_id("m-1");
  return event;
}

inline loyalty::v1::Event VisitAt(int64_t ms) {
  auto event = At(ms);
  event.mutable_visit()->set_pos_txn_id("v");
  return event;
}

inline loyalty::v1::Event PurchaseAt(int64_t ms, const loyalty::v1::Purchase& purchase) {
  auto event = At(ms);
  *event.mutable_purchase() = purchase;
  return event;
}

// A recorded purchase earning `points` with `spend` qualifying spend.
inline loyalty::v1::Event SimplePurchaseAt(int64_t ms, const std::string& txn, int64_t points,
                                           int64_t spend) {
  loyalty::v1::Purchase purchase;
  purchase.set_pos_txn_id(txn);
  purchase.set_points_earned(points);
  purchase.set_qualifying_spend(spend);
  return PurchaseAt(ms, purchase);
}

inline loyalty::v1::Event RedemptionAt(int64_t ms, int64_t points, const std::string& txn = "") {
  auto event = At(ms);
  event.mutable_redemption()->set_points(points);
  event.mutable_redemption()->set_pos_txn_id(txn);
  return event;
}

inline loyalty::v1::Event ReversalAt(int64_t ms, const loyalty::v1::Reversal& reversal) {
  auto event = At(ms);
  *event.mutable_reversal() = reversal;
  return event;
}

inline loyalty::v1::Event AdjustmentAt(int64_t ms, int64_t points) {
  auto event = At(ms);
  event.mutable_adjustment()->set_points(points);
  event.mutable_adjustment()->set_reason("test");
  return event;
}

inline loyalty::v1::PointLot Lot(int64_t at_ms, int64_t points) {
  loyalty::v1::PointLot lot;
  lot.set_earned_at_ms(at_ms);
  lot.set_points(points);
  return lot;
}

// ---- random data for property tests

inline int64_t Uniform(std::mt19937& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

// Gives `offer` one reward of any kind with random figures; with
// `some_invalid`, sometimes figures ValidateOffer refuses, or no reward.
inline void SetRandomReward(std::mt19937& rng, loyalty::v1::Offer& offer, bool some_invalid) {
  switch (Uniform(rng, 0, some_invalid ? 5 : 4)) {
    case 0:
      offer.set_bonus_points(Uniform(rng, 0, 100));
      break;
    case 1:
      offer.set_points_multiplier_pct(static_cast<uint32_t>(Uniform(rng, 50, 400)));
      break;
    case 2:  // 0 and 101 are invalid
      offer.set_percent_off(static_cast<uint32_t>(some_invalid ? Uniform(rng, 0, 101)
                                                                : Uniform(rng, 1, 100)));
      break;
    case 3:
      offer.set_amount_off(Uniform(rng, some_invalid ? -10 : 0, 3000));
      break;
    case 4:
      offer.mutable_buy_x_get_y()->set_buy(static_cast<uint32_t>(Uniform(rng, 1, 3)));
      offer.mutable_buy_x_get_y()->set_get(static_cast<uint32_t>(Uniform(rng, 1, 2)));
      break;
    default:
      break;  // no reward: invalid
  }
}

}  // namespace loyalty::core::testing
