// Offer validation, member-level targeting and the human wording of an offer.
// Basket-level conditions are checked by pricing (core/pricing.h).
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "core/member_state.h"
#include "core/result.h"
#include "loyalty/v1/api.pb.h"
#include "loyalty/v1/domain.pb.h"

namespace loyalty::core {

// Where and when a checkout happens.
struct CheckoutContext {
  std::string store_id;
  int64_t now_ms = 0;
  int utc_offset_minutes = 0;  // the store's local time, for weekday/hour windows
};

// The most bonus points one offer may give. Far below what one basket may
// earn (pricing refuses a basket past that), so that no stack of published
// offers can make every checkout of their members fail.
inline constexpr int64_t kMaxBonusPoints = 1'000'000'000;

// Checks an offer's fields (id present, exactly one reward, percent within
// 1..100, non-negative amounts, bonus points within kMaxBonusPoints,
// buy/get positive, window ordered, hours within 0..24, scope value present
// for CATEGORY/SKU). Error code "invalid_offer", naming the field.
Status ValidateOffer(const loyalty::v1::Offer& offer);

// True when the offer is meant for this member here and now: tier, segment,
// store, date window [starts_at_ms, ends_at_ms), weekday and hour, and the
// per-member limit not used up. Ignores basket conditions. An hour window with
// from_hour > to_hour wraps midnight (22..2 is 22:00 to 02:00).
bool IsOfferTargeted(const loyalty::v1::Offer& offer, const MemberState& member,
                     const CheckoutContext& context);

// IsOfferTargeted without the audience (tier and segment): store, window,
// weekday, hour and usage limit.
bool IsOfferAvailable(const loyalty::v1::Offer& offer, const MemberState& member,
                      const CheckoutContext& context);

// True when `line` is in `scope` (every line is in the BASKET scope).
bool InScope(const loyalty::v1::OfferScope& scope, const loyalty::v1::BasketLine& line);

// The scope as the local API names it: "basket", "category:Coffee", "sku:123".
std::string ScopeLabel(const loyalty::v1::OfferScope& scope);

// Uses left for the member, -1 when unlimited.
int64_t OfferUsesLeft(const loyalty::v1::Offer& offer, const MemberState& member);

// The usage limit as the offer's conditions word it (their last part):
// "3 uses per member (2 left)".
std::string UsageLimitWords(uint32_t limit, int64_t left);

// The offer as shown to cashier and customer: reward and conditions in words,
// amounts formatted in the programme's currency.
loyalty::v1::OfferView MakeOfferView(const loyalty::v1::Offer& offer,
                                     const loyalty::v1::Programme& programme,
                                     const MemberState& member);

}  // namespace loyalty::core
