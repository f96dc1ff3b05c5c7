// Pricing a basket: offers, discounts, redemption and points to earn, with an
// explanation of every figure so a cashier can answer "why these points?".
// The quote and the commit use the same function, so what the customer was
// told is what gets recorded. Pure, thread-safe.
//
// Rules, in order:
// 1. Basket validation (see ValidateBasket).
// 2. Offers: candidates are the offers targeted at the member
//    (IsOfferTargeted) whose basket conditions hold (required category/SKU,
//    min_spend on the subtotal). Highest priority first; if the first
//    applicable offer is not stackable it is applied alone, otherwise all
//    stackable offers apply, each on the prices left by the previous ones.
//    Discounts are allocated to lines (largest remainder, never below 0).
// 3. Redemption (optional): value = floor(points * redemption_value /
//    redemption_points), capped at the amount left to pay. In DISCOUNT mode
//    the value is allocated to lines like an offer discount and reduces the
//    earning base; in TENDER mode it is a payment and does not.
// 4. Points per line = floor(net * points_per_unit * tier_pct * category_pct
//    * offer_multiplier_pct / (minor_units * 100 * 100 * 100)), computed in
//    128-bit integers; bonus points from offers are added once per basket.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <google/protobuf/repeated_ptr_field.h>

#include "core/member_state.h"
#include "core/offers.h"
#include "core/result.h"
#include "loyalty/v1/api.pb.h"
#include "loyalty/v1/domain.pb.h"

namespace loyalty::core {

inline constexpr int kMaxBasketLines = 500;
inline constexpr size_t kMaxCodeBytes = 128;  // a line's sku or category

struct RedemptionAsk {
  int64_t points = 0;  // 0: no redemption
  loyalty::v1::Redemption::Mode mode = loyalty::v1::Redemption::DISCOUNT;
};

struct Quote {
  loyalty::v1::Purchase purchase;  // lines priced, offers applied, points earned
  // Repeated fields, so that a response can take them over with Swap.
  google::protobuf::RepeatedPtrField<loyalty::v1::Discount> discounts;
  // The points of all items add up to purchase.points_earned; the discounts
  // of the "offer" items add up to purchase.discount_total. The one
  // "redemption" item carries the redemption value as its discount.
  google::protobuf::RepeatedPtrField<loyalty::v1::ExplanationItem> explanation;
  std::vector<const loyalty::v1::Offer*> applied_offers;  // point into the candidates
  // Only the points the value needs: asking 150 points where 100 points are
  // worth 1.00 and 1.00 is left to pay redeems 100. 0 when the points are
  // worth less than one minor unit.
  int64_t points_redeemed = 0;
  int64_t redemption_value = 0;
  int64_t total_to_pay = 0;  // purchase.total - redemption_value
  std::string tier;
};

// Rejects an empty basket, more than kMaxBasketLines lines, a line without
// sku, a sku or category over kMaxCodeBytes or with control characters,
// quantity outside 1..100000, unit_price outside 0..100000000, and any
// total that would overflow. Error code "invalid_request" naming the line.
Status ValidateBasket(std::span<const loyalty::v1::BasketLine> lines);

// Prices `lines` for `member`. `offers` are the candidate offers (the caller
// may pre-filter by targeting; they are re-checked). A redemption above
// `spendable_points` is an Error "insufficient_points". Does not change
// anything; the caller records the result.
Result<Quote> PriceBasket(const loyalty::v1::Programme& programme, const MemberState& member,
                          std::span<const loyalty::v1::BasketLine> lines,
                          std::span<const loyalty::v1::Offer* const> offers,
                          const CheckoutContext& context, const RedemptionAsk& redemption,
                          int64_t spendable_points);

// PriceBasket for offers already known to be targeted at the member here and
// now (IsOfferTargeted) and valid (ValidateOffer), none null, in pricing
// order (highest priority first, id breaking ties) and without repeated ids,
// as OfferIndex::ForBasket (core/offers_index.h) returns them: only their
// basket conditions are checked. Same result as PriceBasket for such offers.
Result<Quote> PriceTargetedBasket(const loyalty::v1::Programme& programme,
                                  const MemberState& member,
                                  std::span<const loyalty::v1::BasketLine> lines,
                                  std::span<const loyalty::v1::Offer* const> offers,
                                  const RedemptionAsk& redemption, int64_t spendable_points);

// A standalone redemption (not tied to a basket): value for `points`, or
// "insufficient_points" when points exceed `spendable_points`, or
// "invalid_request" when points <= 0.
Result<loyalty::v1::Redemption> PlanRedemption(const loyalty::v1::Programme& programme,
                                               int64_t points, loyalty::v1::Redemption::Mode mode,
                                               int64_t spendable_points);

}  // namespace loyalty::core
