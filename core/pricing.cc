#include "core/pricing.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <set>

#include "core/int_math.h"
#include "core/programme.h"

namespace loyalty::core {
namespace {

using loyalty::v1::BasketLine;
using loyalty::v1::ExplanationItem;
using loyalty::v1::Offer;
using loyalty::v1::Programme;
using loyalty::v1::Redemption;

constexpr int64_t kMaxQuantity = 100'000;
constexpr int64_t kMaxUnitPrice = 100'000'000;
// Far above any real basket, far below int64 overflow of a balance.
constexpr int64_t kMaxBasketPoints = 1'000'000'000'000'000;
// Stacked multiplier offers add up; the cap keeps 128-bit products exact.
constexpr int64_t kMaxOfferPct = 1'000'000;

std::string LineName(size_t i) { return "lines[" + std::to_string(i) + "]"; }

std::string Pts(int64_t points) {
  return std::to_string(points) + (points == 1 || points == -1 ? " pt" : " pts");
}

std::string Signed(int64_t points) { return (points >= 0 ? "+" : "") + Pts(points); }

std::string OfferName(const Offer& offer) {
  return "\"" + (offer.name().empty() ? offer.id() : offer.name()) + "\"";
}

// Splits `amount` over lines in proportion to `weights` (amount <= sum of
// weights): floors first, then one unit each to the largest remainders
// (earlier lines win ties). No share exceeds its weight or goes below 0.
std::vector<int64_t> Allocate(int64_t amount, const std::vector<int64_t>& weights) {
  std::vector<int64_t> shares(weights.size(), 0);
  const int64_t total = std::accumulate(weights.begin(), weights.end(), int64_t{0});
  if (amount <= 0 || total <= 0) return shares;
  std::vector<std::pair<int64_t, size_t>> remainders;  // (remainder, index)
  int64_t given = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const Int128 product = static_cast<Int128>(amount) * weights[i];
    shares[i] = static_cast<int64_t>(product / total);
    given += shares[i];
    remainders.emplace_back(static_cast<int64_t>(product % total), i);
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < amount && k < remainders.size(); ++k, ++given) {
    ++shares[remainders[k].second];
  }
  return shares;
}

// Per-line working figures while offers are applied.
struct LineWork {
  int64_t gross = 0;
  int64_t discount = 0;
  // Multiplier offers on this line, in the order applied: (applied index, pct).
  std::vector<std::pair<size_t, uint32_t>> multipliers;
  int64_t left() const { return gross - discount; }
};

bool BasketHas(std::span<const BasketLine> lines, bool by_sku, const std::string& value) {
  return std::any_of(lines.begin(), lines.end(), [&](const BasketLine& l) {
    return (by_sku ? l.sku() : l.category()) == value;
  });
}

int64_t UnitsInScope(const Offer& offer, std::span<const BasketLine> lines) {
  int64_t units = 0;
  for (const auto& line : lines) {
    if (InScope(offer.scope(), line)) units += line.quantity();
  }
  return units;
}

// Basket conditions, and whether the offer could change this basket at all:
// an offer on Coffee does not apply (nor use up a member's allowance) when
// there is no Coffee.
bool AppliesToBasket(const Offer& offer, std::span<const BasketLine> lines, int64_t subtotal) {
  if (!offer.required_category().empty() && !BasketHas(lines, false, offer.required_category())) {
    return false;
  }
  if (!offer.required_sku().empty() && !BasketHas(lines, true, offer.required_sku())) return false;
  if (subtotal < offer.min_spend()) return false;
  const int64_t units = UnitsInScope(offer, lines);
  if (units == 0) return false;
  switch (offer.reward_case()) {
    case Offer::kBonusPoints:
      return offer.bonus_points() > 0;
    case Offer::kAmountOff:
      return offer.amount_off() > 0;
    case Offer::kBuyXGetY:
      return units >= int64_t{offer.buy_x_get_y().buy()} + offer.buy_x_get_y().get();
    default:
      return true;
  }
}

// Free units of a buy-X-get-Y offer per line: the cheapest units in scope.
std::vector<int64_t> FreeUnits(const Offer& offer, std::span<const BasketLine> lines) {
  std::vector<int64_t> free(lines.size(), 0);
  const int64_t group = int64_t{offer.buy_x_get_y().buy()} + offer.buy_x_get_y().get();
  int64_t to_give = UnitsInScope(offer, lines) / group * offer.buy_x_get_y().get();
  std::vector<size_t> order;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (InScope(offer.scope(), lines[i])) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return lines[a].unit_price() < lines[b].unit_price();
  });
  for (const size_t i : order) {
    if (to_give == 0) break;
    free[i] = std::min(to_give, lines[i].quantity());
    to_give -= free[i];
  }
  return free;
}

// The discount an offer gives on the prices left by earlier offers, per line.
std::vector<int64_t> OfferDiscounts(const Offer& offer, std::span<const BasketLine> lines,
                                    const std::vector<LineWork>& work) {
  std::vector<int64_t> weights(lines.size(), 0);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (InScope(offer.scope(), lines[i])) weights[i] = work[i].left();
  }
  const int64_t in_scope = std::accumulate(weights.begin(), weights.end(), int64_t{0});
  switch (offer.reward_case()) {
    case Offer::kPercentOff:
      return Allocate(MulDivFloor(in_scope, offer.percent_off(), 100), weights);
    case Offer::kAmountOff:
      return Allocate(std::min(offer.amount_off(), in_scope), weights);
    case Offer::kBuyXGetY: {
      std::vector<int64_t> discounts(lines.size(), 0);
      const std::vector<int64_t> free = FreeUnits(offer, lines);
      for (size_t i = 0; i < lines.size(); ++i) {
        discounts[i] = MulDivFloor(work[i].left(), free[i], lines[i].quantity());
      }
      return discounts;
    }
    default:
      return std::vector<int64_t>(lines.size(), 0);
  }
}

struct LinePoints {
  int64_t base = 0;
  int64_t tier = 0;
  int64_t category = 0;
  std::vector<int64_t> offers;  // one per multiplier on the line
  int64_t total = 0;
  bool too_large = false;  // some figure exceeds kMaxBasketPoints; the rest is unset
};

// Points of one line, split so that the parts add up exactly to the total:
// each part is the difference of two cumulative floors.
LinePoints PointsForLine(const Programme& programme, int64_t base_amount, uint32_t tier_pct,
                         uint32_t category_pct, const LineWork& work) {
  const Int128 scaled = static_cast<Int128>(base_amount) * programme.points_per_unit();
  const Int128 minor = programme.minor_units();
  LinePoints p;
  // Saturates instead of truncating, so an absurd programme is reported, not
  // wrapped around.
  const auto cumulative = [&](Int128 numerator, Int128 denominator) {
    const Int128 value = FloorDiv(numerator, denominator);
    if (value > kMaxBasketPoints || value < -kMaxBasketPoints) {
      p.too_large = true;
      return kMaxBasketPoints;
    }
    return static_cast<int64_t>(value);
  };
  const int64_t c0 = cumulative(scaled, minor);
  const int64_t c1 = cumulative(scaled * tier_pct, minor * 100);
  const int64_t c2 = cumulative(scaled * tier_pct * category_pct, minor * 10'000);
  p.base = c0;
  p.tier = c1 - c0;
  p.category = c2 - c1;
  int64_t offer_pct = 100;
  int64_t previous = c2;
  for (const auto& [applied, pct] : work.multipliers) {
    offer_pct = std::clamp<int64_t>(offer_pct + pct - 100, 0, kMaxOfferPct);
    const int64_t c = cumulative(scaled * tier_pct * category_pct * offer_pct, minor * 1'000'000);
    p.offers.push_back(c - previous);
    previous = c;
  }
  p.total = previous;
  return p;
}

uint32_t CategoryPct(const Programme& programme, const std::string& category) {
  for (const auto& cm : programme.category_multipliers()) {
    if (cm.category() == category) return cm.multiplier_pct();
  }
  return 100;
}

ExplanationItem Item(const char* rule, std::string text, int64_t points, int64_t discount,
                     const std::string& offer_id, int line_index) {
  ExplanationItem item;
  item.set_rule(rule);
  item.set_text(std::move(text));
  item.set_points(points);
  item.set_discount(discount);
  item.set_offer_id(offer_id);
  item.set_line_index(line_index);
  return item;
}

}  // namespace

Status ValidateBasket(std::span<const BasketLine> lines) {
  if (lines.empty()) {
    return MakeError(code::kInvalidRequest, "The basket is empty; send at least one line.");
  }
  if (lines.size() > static_cast<size_t>(kMaxBasketLines)) {
    return MakeError(code::kInvalidRequest, "The basket has " + std::to_string(lines.size()) +
                                                " lines; at most 500 are allowed.");
  }
  Int128 total = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& line = lines[i];
    if (line.sku().empty()) return MakeError(code::kInvalidRequest, LineName(i) + " has no sku.");
    if (line.quantity() < 1 || line.quantity() > kMaxQuantity) {
      return MakeError(code::kInvalidRequest,
                       LineName(i) + " (sku " + line.sku() + ") has quantity " +
                           std::to_string(line.quantity()) + "; it must be 1..100000.");
    }
    if (line.unit_price() < 0 || line.unit_price() > kMaxUnitPrice) {
      return MakeError(code::kInvalidRequest, LineName(i) + " (sku " + line.sku() +
                                                  ") has unit_price " +
                                                  std::to_string(line.unit_price()) +
                                                  "; it must be 0..100000000 minor units.");
    }
    total += static_cast<Int128>(line.quantity()) * line.unit_price();
    // Unreachable within the limits above, kept so that loosening a limit
    // cannot silently overflow a total.
    if (total > std::numeric_limits<int64_t>::max()) {
      return MakeError(code::kInvalidRequest, "The basket total overflows at " + LineName(i) + ".");
    }
  }
  return {};
}

Result<Quote> PriceBasket(const Programme& programme, const MemberState& member,
                          std::span<const BasketLine> lines, std::span<const Offer* const> offers,
                          const CheckoutContext& context, const RedemptionAsk& redemption,
                          int64_t spendable_points) {
  if (Status valid = ValidateBasket(lines); !valid) return valid.error();
  if (programme.minor_units() == 0 || programme.redemption_points() <= 0 ||
      programme.redemption_value() <= 0) {
    return MakeError(code::kInvalidProgramme,
                     "The programme has no minor_units or redemption rate; validate it first.");
  }
  if (redemption.points < 0) {
    return MakeError(code::kInvalidRequest, "redeem_points must not be negative.");
  }
  if (redemption.points > spendable_points) {
    return MakeError(code::kInsufficientPoints, "Redeeming " + Pts(redemption.points) +
                                                    " needs more than the " +
                                                    Pts(std::max<int64_t>(spendable_points, 0)) +
                                                    " the member can spend now.");
  }
  const Redemption::Mode mode =
      redemption.mode == Redemption::TENDER ? Redemption::TENDER : Redemption::DISCOUNT;

  Quote quote;
  auto& purchase = quote.purchase;
  std::vector<LineWork> work(lines.size());
  int64_t subtotal = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    work[i].gross = lines[i].quantity() * lines[i].unit_price();
    subtotal += work[i].gross;
  }

  // Offers: targeted, basket conditions met, highest priority first (id
  // breaks ties so the same basket always prices the same way).
  std::vector<const Offer*> candidates;
  std::set<std::string> seen;
  for (const Offer* offer : offers) {
    if (offer == nullptr) continue;
    if (!IsOfferTargeted(*offer, member, context)) continue;
    if (!AppliesToBasket(*offer, lines, subtotal)) continue;
    // Validation last: it is the costliest check and few offers get here.
    if (!ValidateOffer(*offer).ok()) continue;
    candidates.push_back(offer);
  }
  std::stable_sort(candidates.begin(), candidates.end(), [](const Offer* a, const Offer* b) {
    if (a->priority() != b->priority()) return a->priority() > b->priority();
    return a->id() < b->id();
  });
  std::erase_if(candidates, [&](const Offer* o) { return !seen.insert(o->id()).second; });
  if (!candidates.empty() && !candidates.front()->stackable()) {
    candidates.resize(1);
  } else {
    std::erase_if(candidates, [](const Offer* o) { return !o->stackable(); });
  }

  std::vector<loyalty::v1::AppliedOffer> applied;
  std::vector<const Offer*> applied_offers;
  std::vector<std::vector<int64_t>> applied_free;  // free units per line, buy X get Y only
  for (const Offer* offer : candidates) {
    loyalty::v1::AppliedOffer result;
    result.set_offer_id(offer->id());
    result.set_name(offer->name().empty() ? offer->id() : offer->name());
    if (offer->reward_case() == Offer::kBonusPoints) {
      result.set_points(offer->bonus_points());
    } else if (offer->reward_case() == Offer::kPointsMultiplierPct) {
      for (size_t i = 0; i < lines.size(); ++i) {
        if (InScope(offer->scope(), lines[i])) {
          work[i].multipliers.emplace_back(applied.size(), offer->points_multiplier_pct());
        }
      }
    } else {
      const std::vector<int64_t> discounts = OfferDiscounts(*offer, lines, work);
      int64_t sum = 0;
      for (size_t i = 0; i < lines.size(); ++i) {
        work[i].discount += discounts[i];
        sum += discounts[i];
      }
      // Earlier offers may have left nothing to take off.
      if (sum == 0) continue;
      result.set_discount(sum);
    }
    applied_free.push_back(offer->reward_case() == Offer::kBuyXGetY ? FreeUnits(*offer, lines)
                                                                    : std::vector<int64_t>{});
    applied.push_back(std::move(result));
    applied_offers.push_back(offer);
  }

  int64_t discount_total = 0;
  std::vector<int64_t> nets(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    nets[i] = work[i].left();
    discount_total += work[i].discount;
  }
  const int64_t total = subtotal - discount_total;

  // Redemption: whole units of value only, never more than is left to pay,
  // and only the points that value needs.
  int64_t value = 0;
  int64_t points_redeemed = 0;
  if (redemption.points > 0) {
    value = std::min(
        MulDivFloor(redemption.points, programme.redemption_value(), programme.redemption_points()),
        total);
    if (value > 0) {
      points_redeemed = std::min(redemption.points, MulDivCeil(value, programme.redemption_points(),
                                                               programme.redemption_value()));
    }
  }
  const std::vector<int64_t> redeemed = Allocate(value, nets);

  // Points per line.
  const int tier_index = TierIndex(programme, member.tier);
  const uint32_t tier_pct =
      tier_index >= 0 ? programme.tiers(tier_index).earn_multiplier_pct() : 100;
  std::vector<LinePoints> line_points(lines.size());
  std::vector<int64_t> multiplier_points(applied.size(), 0);
  int64_t points_earned = 0;
  int64_t qualifying = 0;
  std::vector<int64_t> bases(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    bases[i] = nets[i] - (mode == Redemption::DISCOUNT ? redeemed[i] : 0);
    qualifying += bases[i];
    line_points[i] = PointsForLine(programme, bases[i], tier_pct,
                                   CategoryPct(programme, lines[i].category()), work[i]);
    for (size_t k = 0; k < work[i].multipliers.size(); ++k) {
      multiplier_points[work[i].multipliers[k].first] += line_points[i].offers[k];
    }
    points_earned += line_points[i].total;
    if (line_points[i].too_large || points_earned > kMaxBasketPoints) {
      return MakeError(code::kTooLarge, "The points for " + LineName(i) +
                                            " exceed what one basket may earn; check the "
                                            "programme's rates.");
    }
  }
  bool bonus_too_large = false;
  for (const auto& a : applied) {
    bonus_too_large = bonus_too_large || a.points() > kMaxBasketPoints - points_earned;
    if (!bonus_too_large) points_earned += a.points();
  }
  if (bonus_too_large) {
    return MakeError(code::kTooLarge, "The bonus points exceed what one basket may earn.");
  }

  for (size_t i = 0; i < lines.size(); ++i) {
    auto* priced = purchase.add_lines();
    *priced->mutable_line() = lines[i];
    priced->set_gross(work[i].gross);
    priced->set_discount(work[i].discount);
    priced->set_net(nets[i]);
    priced->set_points(line_points[i].total);
    priced->set_redeemed_value(redeemed[i]);
  }
  for (size_t k = 0; k < applied.size(); ++k) {
    // A multiplier that adds nothing (its lines earn nothing) is not a use.
    if (applied_offers[k]->reward_case() == Offer::kPointsMultiplierPct &&
        multiplier_points[k] == 0) {
      continue;
    }
    *purchase.add_offers() = applied[k];
    quote.applied_offers.push_back(applied_offers[k]);
  }
  purchase.set_subtotal(subtotal);
  purchase.set_discount_total(discount_total);
  purchase.set_total(total);
  purchase.set_points_earned(points_earned);
  purchase.set_qualifying_spend(qualifying);
  purchase.set_redemption_value(value);

  // Explanation: each line's points by rule, then the offers and the
  // redemption, so the cashier can read every figure on the receipt.
  const std::string rate =
      Pts(programme.points_per_unit()) + " per " + FormatMoney(programme, programme.minor_units());
  const std::string tier_name =
      member.tier.empty() && programme.tiers_size() > 0 ? programme.tiers(0).name() : member.tier;
  for (size_t i = 0; i < lines.size(); ++i) {
    const int index = static_cast<int>(i);
    const std::string on = " (" + lines[i].sku() + ")";
    const LinePoints& p = line_points[i];
    quote.explanation.push_back(
        Item("base",
             "Base: " + rate + " on " + FormatMoney(programme, bases[i]) + on + " → " + Pts(p.base),
             p.base, 0, "", index));
    if (p.tier != 0) {
      quote.explanation.push_back(Item("tier",
                                       tier_name + " tier " + std::to_string(tier_pct) +
                                           "% of base" + on + ": " + Signed(p.tier),
                                       p.tier, 0, "", index));
    }
    if (p.category != 0) {
      quote.explanation.push_back(
          Item("category",
               lines[i].category() + " category " +
                   std::to_string(CategoryPct(programme, lines[i].category())) + "%" + on + ": " +
                   Signed(p.category),
               p.category, 0, "", index));
    }
    for (size_t k = 0; k < work[i].multipliers.size(); ++k) {
      if (p.offers[k] == 0) continue;
      const Offer& offer = *applied_offers[work[i].multipliers[k].first];
      quote.explanation.push_back(Item("offer",
                                       "Offer " + OfferName(offer) + " " +
                                           std::to_string(offer.points_multiplier_pct()) +
                                           "% points" + on + ": " + Signed(p.offers[k]),
                                       p.offers[k], 0, offer.id(), index));
    }
  }
  for (size_t k = 0; k < applied.size(); ++k) {
    const Offer& offer = *applied_offers[k];
    const auto& a = applied[k];
    if (a.points() != 0) {
      quote.explanation.push_back(Item("offer",
                                       "Offer " + OfferName(offer) + ": +" +
                                           std::to_string(a.points()) + " bonus " +
                                           (a.points() == 1 ? "pt" : "pts"),
                                       a.points(), 0, offer.id(), -1));
    }
    if (a.discount() != 0) {
      std::string text = "Offer " + OfferName(offer) + ": ";
      if (offer.reward_case() == Offer::kBuyXGetY) {
        int64_t units = 0;
        for (const int64_t f : applied_free[k]) units += f;
        text += std::to_string(units) + (units == 1 ? " unit" : " units") + " free, ";
      }
      text += "-" + FormatMoney(programme, a.discount());
      quote.explanation.push_back(Item("offer", text, 0, a.discount(), offer.id(), -1));
      loyalty::v1::Discount discount;
      discount.set_offer_id(offer.id());
      discount.set_name(a.name());
      discount.set_amount(a.discount());
      discount.set_scope(ScopeLabel(offer.scope()));
      quote.discounts.push_back(std::move(discount));
    }
  }
  if (points_redeemed > 0) {
    quote.explanation.push_back(
        Item("redemption",
             "Redeemed " + Pts(points_redeemed) + " for " + FormatMoney(programme, value) +
                 (mode == Redemption::DISCOUNT ? " off the price (no points earned on it)"
                                               : " as payment (points still earned)"),
             0, value, "", -1));
  }

  quote.points_redeemed = points_redeemed;
  quote.redemption_value = value;
  quote.total_to_pay = total - value;
  quote.tier = tier_name;
  return quote;
}

Result<Redemption> PlanRedemption(const Programme& programme, int64_t points, Redemption::Mode mode,
                                  int64_t spendable_points) {
  if (points <= 0) {
    return MakeError(code::kInvalidRequest, "points to redeem must be a positive number.");
  }
  if (points > spendable_points) {
    return MakeError(code::kInsufficientPoints, "Redeeming " + Pts(points) +
                                                    " needs more than the " +
                                                    Pts(std::max<int64_t>(spendable_points, 0)) +
                                                    " the member can spend now.");
  }
  if (programme.redemption_points() <= 0 || programme.redemption_value() <= 0) {
    return MakeError(code::kInvalidProgramme, "The programme has no redemption rate.");
  }
  Redemption r;
  r.set_points(points);
  r.set_value(MulDivFloor(points, programme.redemption_value(), programme.redemption_points()));
  r.set_mode(mode == Redemption::TENDER ? Redemption::TENDER : Redemption::DISCOUNT);
  return r;
}

}  // namespace loyalty::core
