#include "core/offers.h"

#include <algorithm>
#include <vector>

#include "core/programme.h"
#include "core/time_util.h"

namespace loyalty::core {
namespace {

using loyalty::v1::Offer;
using loyalty::v1::OfferScope;

constexpr uint32_t kMaxMultiplierPct = 10000;

Error Invalid(const Offer& offer, std::string message) {
  const std::string who = offer.id().empty() ? "Offer" : "Offer \"" + offer.id() + "\"";
  return MakeError(code::kInvalidOffer, who + ": " + std::move(message));
}

template <typename Range, typename T>
bool Contains(const Range& range, const T& value) {
  return std::find(range.begin(), range.end(), value) != range.end();
}

// "A", "A and B", "A, B and C".
std::string JoinWithAnd(const std::vector<std::string>& items) {
  std::string text;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) text += (i + 1 == items.size()) ? " and " : ", ";
    text += items[i];
  }
  return text;
}

// "Coffee", "SKU 123", "the whole basket".
std::string ScopeWords(const OfferScope& scope) {
  switch (scope.kind()) {
    case OfferScope::CATEGORY:
      return scope.value();
    case OfferScope::SKU:
      return "SKU " + scope.value();
    default:
      return "the whole basket";
  }
}

// 200 -> "2x", 150 -> "1.5x", 125 -> "1.25x".
std::string Factor(uint32_t pct) {
  std::string text = std::to_string(pct / 100);
  if (pct % 100 != 0) {
    text += "." + std::string(pct % 100 < 10 ? "0" : "") + std::to_string(pct % 100);
    if (text.back() == '0') text.pop_back();
  }
  return text + "x";
}

std::string RewardWords(const Offer& offer, const loyalty::v1::Programme& programme) {
  const OfferScope& scope = offer.scope();
  const bool whole = scope.kind() == OfferScope::BASKET;
  switch (offer.reward_case()) {
    case Offer::kBonusPoints:
      return std::to_string(offer.bonus_points()) + " bonus points" +
             (whole ? "" : " when you buy " + ScopeWords(scope));
    case Offer::kPointsMultiplierPct: {
      const uint32_t pct = offer.points_multiplier_pct();
      const std::string factor = pct == 200 ? "Double" : pct == 300 ? "Triple" : Factor(pct);
      return factor + " points on " + ScopeWords(scope);
    }
    case Offer::kPercentOff:
      return std::to_string(offer.percent_off()) + "% off " + ScopeWords(scope);
    case Offer::kAmountOff:
      return FormatMoney(programme, offer.amount_off()) + " off " + ScopeWords(scope);
    case Offer::kBuyXGetY:
      return "Buy " + std::to_string(offer.buy_x_get_y().buy()) + " get " +
             std::to_string(offer.buy_x_get_y().get()) + " free" +
             (whole ? "" : " on " + ScopeWords(scope));
    case Offer::REWARD_NOT_SET:
      break;
  }
  return "";
}

std::string HourText(uint32_t hour) {
  return (hour < 10 ? "0" : "") + std::to_string(hour) + ":00";
}

std::string ConditionWords(const Offer& offer, const loyalty::v1::Programme& programme,
                           const MemberState& member) {
  std::vector<std::string> parts;
  if (!offer.tiers().empty()) {
    parts.push_back(JoinWithAnd({offer.tiers().begin(), offer.tiers().end()}) + " members");
  }
  if (!offer.segment_ids().empty()) parts.push_back("selected members only");
  if (!offer.store_ids().empty()) parts.push_back("selected stores only");
  if (!offer.required_category().empty()) {
    parts.push_back("with " + offer.required_category() + " in the basket");
  }
  if (!offer.required_sku().empty()) {
    parts.push_back("with SKU " + offer.required_sku() + " in the basket");
  }
  if (offer.min_spend() > 0) {
    parts.push_back("minimum spend " + FormatMoney(programme, offer.min_spend()));
  }
  if (!offer.weekdays().empty()) {
    static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    std::vector<std::string> days;
    for (uint32_t d = 0; d < 7; ++d) {
      if (Contains(offer.weekdays(), d)) days.push_back(kDays[d]);
    }
    parts.push_back(JoinWithAnd(days) + " only");
  }
  if (offer.from_hour() != 0 || offer.to_hour() != 0) {
    parts.push_back(HourText(offer.from_hour()) + "-" + HourText(offer.to_hour()));
  }
  if (offer.starts_at_ms() > 0) parts.push_back("from " + FormatDate(offer.starts_at_ms()));
  // ends_at_ms is exclusive: the last day is the one before it.
  if (offer.ends_at_ms() > 0) parts.push_back("until " + FormatDate(offer.ends_at_ms() - 1));
  if (offer.per_member_limit() > 0) {
    parts.push_back(UsageLimitWords(offer.per_member_limit(), OfferUsesLeft(offer, member)));
  }
  std::string text;
  for (const auto& part : parts) text += (text.empty() ? "" : ", ") + part;
  if (!text.empty() && text[0] >= 'a' && text[0] <= 'z') text[0] = static_cast<char>(text[0] - 32);
  return text;
}

}  // namespace

Status ValidateOffer(const Offer& offer) {
  if (offer.id().empty()) return Invalid(offer, "id is empty.");
  switch (offer.reward_case()) {
    case Offer::REWARD_NOT_SET:
      return Invalid(offer,
                     "no reward is set (bonus_points, points_multiplier_pct, "
                     "percent_off, amount_off or buy_x_get_y).");
    case Offer::kBonusPoints:
      if (offer.bonus_points() < 0 || offer.bonus_points() > kMaxBonusPoints) {
        return Invalid(offer, "bonus_points must be 0.." + std::to_string(kMaxBonusPoints) + ".");
      }
      break;
    case Offer::kPointsMultiplierPct:
      if (offer.points_multiplier_pct() < 1 || offer.points_multiplier_pct() > kMaxMultiplierPct) {
        return Invalid(offer, "points_multiplier_pct must be 1..10000.");
      }
      break;
    case Offer::kPercentOff:
      if (offer.percent_off() < 1 || offer.percent_off() > 100) {
        return Invalid(offer, "percent_off must be 1..100.");
      }
      break;
    case Offer::kAmountOff:
      if (offer.amount_off() < 0) return Invalid(offer, "amount_off must not be negative.");
      break;
    case Offer::kBuyXGetY:
      if (offer.buy_x_get_y().buy() < 1 || offer.buy_x_get_y().get() < 1) {
        return Invalid(offer, "buy_x_get_y.buy and buy_x_get_y.get must both be at least 1.");
      }
      break;
  }
  if (offer.min_spend() < 0) return Invalid(offer, "min_spend must not be negative.");
  if (offer.starts_at_ms() < 0 || offer.ends_at_ms() < 0) {
    return Invalid(offer, "starts_at_ms and ends_at_ms must not be negative.");
  }
  if (offer.starts_at_ms() > 0 && offer.ends_at_ms() > 0 &&
      offer.ends_at_ms() <= offer.starts_at_ms()) {
    return Invalid(offer, "ends_at_ms must be after starts_at_ms.");
  }
  for (const uint32_t day : offer.weekdays()) {
    if (day > 6) return Invalid(offer, "weekdays must be 0 (Sunday) .. 6 (Saturday).");
  }
  if (offer.from_hour() > 23 || offer.to_hour() > 24) {
    return Invalid(offer, "from_hour must be 0..23 and to_hour 0..24.");
  }
  if (offer.from_hour() == offer.to_hour() && offer.from_hour() != 0) {
    return Invalid(offer, "from_hour equals to_hour: the hour window is empty.");
  }
  switch (offer.scope().kind()) {
    case OfferScope::BASKET:
      break;
    case OfferScope::CATEGORY:
    case OfferScope::SKU:
      if (offer.scope().value().empty()) {
        return Invalid(offer, "scope.value must name the category or SKU.");
      }
      break;
    default:
      return Invalid(offer, "scope.kind is not BASKET, CATEGORY or SKU.");
  }
  return {};
}

bool IsOfferTargeted(const Offer& offer, const MemberState& member,
                     const CheckoutContext& context) {
  if (!offer.tiers().empty() && !Contains(offer.tiers(), member.tier)) return false;
  if (!offer.segment_ids().empty() &&
      std::none_of(member.segment_ids.begin(), member.segment_ids.end(),
                   [&](const std::string& id) { return Contains(offer.segment_ids(), id); })) {
    return false;
  }
  return IsOfferAvailable(offer, member, context);
}

bool IsOfferAvailable(const Offer& offer, const MemberState& member,
                      const CheckoutContext& context) {
  if (!offer.store_ids().empty() && !Contains(offer.store_ids(), context.store_id)) return false;
  if (offer.starts_at_ms() > 0 && context.now_ms < offer.starts_at_ms()) return false;
  if (offer.ends_at_ms() > 0 && context.now_ms >= offer.ends_at_ms()) return false;
  if (!offer.weekdays().empty()) {
    const auto day =
        static_cast<uint32_t>(LocalWeekday(context.now_ms, context.utc_offset_minutes));
    if (!Contains(offer.weekdays(), day)) return false;
  }
  const uint32_t from = offer.from_hour();
  const uint32_t to = offer.to_hour();
  if (from != to) {
    const auto hour = static_cast<uint32_t>(LocalHour(context.now_ms, context.utc_offset_minutes));
    const bool inside = from < to ? (hour >= from && hour < to) : (hour >= from || hour < to);
    if (!inside) return false;
  }
  return OfferUsesLeft(offer, member) != 0;
}

bool InScope(const OfferScope& scope, const loyalty::v1::BasketLine& line) {
  switch (scope.kind()) {
    case OfferScope::CATEGORY:
      return line.category() == scope.value();
    case OfferScope::SKU:
      return line.sku() == scope.value();
    default:
      return true;
  }
}

std::string ScopeLabel(const OfferScope& scope) {
  switch (scope.kind()) {
    case OfferScope::CATEGORY:
      return "category:" + scope.value();
    case OfferScope::SKU:
      return "sku:" + scope.value();
    default:
      return "basket";
  }
}

std::string UsageLimitWords(uint32_t limit, int64_t left) {
  return std::to_string(limit) + (limit == 1 ? " use" : " uses") + " per member (" +
         std::to_string(left) + " left)";
}

int64_t OfferUsesLeft(const Offer& offer, const MemberState& member) {
  if (offer.per_member_limit() == 0) return -1;
  const auto it = member.offer_uses.find(offer.id());
  const int64_t used = it == member.offer_uses.end() ? 0 : it->second;
  return std::max<int64_t>(0, int64_t{offer.per_member_limit()} - used);
}

loyalty::v1::OfferView MakeOfferView(const Offer& offer, const loyalty::v1::Programme& programme,
                                     const MemberState& member) {
  loyalty::v1::OfferView view;
  view.set_offer_id(offer.id());
  view.set_name(offer.name());
  view.set_description(offer.description());
  view.set_reward(RewardWords(offer, programme));
  view.set_conditions(ConditionWords(offer, programme, member));
  view.set_uses_left(OfferUsesLeft(offer, member));
  view.set_ends_at_ms(offer.ends_at_ms());
  return view;
}

}  // namespace loyalty::core
