#include "core/pricing.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <numeric>
#include <set>
#include <string_view>

#include "core/int_math.h"
#include "core/programme.h"
#include "core/text.h"

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

// ---- explanation wording, appended in place: a quote words a dozen or
// more figures, and temporaries would cost more than the arithmetic.

void AppendInt(std::string* out, int64_t n) {
  char buf[24];
  out->append(buf, std::to_chars(buf, buf + sizeof buf, n).ptr);
}

// "12 pts", "1 pt".
void AppendPts(std::string* out, int64_t points) {
  AppendInt(out, points);
  out->append(points == 1 || points == -1 ? " pt" : " pts");
}

// "+12 pts", "-3 pts".
void AppendSigned(std::string* out, int64_t points) {
  if (points >= 0) out->push_back('+');
  AppendPts(out, points);
}

// Exactly FormatMoney (core/programme.h): "EUR 12.50", "-EUR 1.25".
void AppendMoney(std::string* out, const Programme& programme, int64_t minor) {
  if (minor < 0) out->push_back('-');
  // Magnitude in 128 bits so that INT64_MIN has one.
  const Int128 magnitude = minor < 0 ? -static_cast<Int128>(minor) : minor;
  const int64_t units = programme.minor_units() == 0 ? 1 : programme.minor_units();
  out->append(programme.currency());
  out->push_back(' ');
  char buf[24];
  char* end = std::to_chars(buf, buf + sizeof buf, static_cast<uint64_t>(magnitude / units)).ptr;
  out->append(buf, end);
  if (units > 1) {
    const auto width = static_cast<size_t>(std::to_chars(buf, buf + sizeof buf, units - 1).ptr - buf);
    end = std::to_chars(buf, buf + sizeof buf, static_cast<uint64_t>(magnitude % units)).ptr;
    const auto digits = static_cast<size_t>(end - buf);
    out->push_back('.');
    out->append(width - std::min(width, digits), '0');
    out->append(buf, end);
  }
}

// "Offer "Name"": the name, or the id of an offer without one.
void AppendOffer(std::string* out, const Offer& offer) {
  out->append("Offer \"");
  out->append(offer.name().empty() ? offer.id() : offer.name());
  out->push_back('"');
}

// Splits `amount` over lines in proportion to `weights` (amount <= sum of
// weights): floors first, then one unit each to the largest remainders
// (earlier lines win ties). No share exceeds its weight or goes below 0.
// `shares` has the size of `weights`.
void Allocate(int64_t amount, std::span<const int64_t> weights, std::span<int64_t> shares) {
  std::fill(shares.begin(), shares.end(), 0);
  const int64_t total = std::accumulate(weights.begin(), weights.end(), int64_t{0});
  if (amount <= 0 || total <= 0) return;
  std::vector<std::pair<int64_t, size_t>> remainders;  // (remainder, index)
  remainders.reserve(weights.size());
  int64_t given = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const Int128 product = static_cast<Int128>(amount) * weights[i];
    shares[i] = static_cast<int64_t>(product / total);
    given += shares[i];
    remainders.emplace_back(static_cast<int64_t>(product % total), i);
  }
  if (given == amount) return;
  const auto larger = [](const auto& a, const auto& b) { return a.first > b.first; };
  if (remainders.size() <= 16) {
    // Insertion sort: stable, and no buffer for the few lines of a basket.
    for (size_t i = 1; i < remainders.size(); ++i) {
      for (size_t j = i; j > 0 && larger(remainders[j], remainders[j - 1]); --j) {
        std::swap(remainders[j], remainders[j - 1]);
      }
    }
  } else {
    std::stable_sort(remainders.begin(), remainders.end(), larger);
  }
  for (size_t k = 0; given < amount && k < remainders.size(); ++k, ++given) {
    ++shares[remainders[k].second];
  }
}

// Per-line working figures while offers are applied.
struct LineWork {
  int64_t gross = 0;
  int64_t discount = 0;
  int64_t left() const { return gross - discount; }
};

// A multiplier offer on a line: lines earn with their multipliers in the
// order the offers were applied.
struct Multiplier {
  size_t line;
  size_t applied;  // index into the applied offers
  uint32_t pct;
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

// The discount an offer gives on the prices left by earlier offers, per
// line, into `discounts`; for buy X get Y, `free` gets the free units per
// line. `weights` is scratch of the lines' size.
void OfferDiscounts(const Offer& offer, std::span<const BasketLine> lines,
                    const std::vector<LineWork>& work, std::span<int64_t> weights,
                    std::span<int64_t> discounts, std::vector<int64_t>* free) {
  for (size_t i = 0; i < lines.size(); ++i) {
    weights[i] = InScope(offer.scope(), lines[i]) ? work[i].left() : 0;
  }
  const int64_t in_scope = std::accumulate(weights.begin(), weights.end(), int64_t{0});
  switch (offer.reward_case()) {
    case Offer::kPercentOff:
      return Allocate(MulDivFloor(in_scope, offer.percent_off(), 100), weights, discounts);
    case Offer::kAmountOff:
      return Allocate(std::min(offer.amount_off(), in_scope), weights, discounts);
    case Offer::kBuyXGetY: {
      *free = FreeUnits(offer, lines);
      for (size_t i = 0; i < lines.size(); ++i) {
        discounts[i] = MulDivFloor(work[i].left(), (*free)[i], lines[i].quantity());
      }
      return;
    }
    default:
      std::fill(discounts.begin(), discounts.end(), 0);
  }
}

struct LinePoints {
  int64_t base = 0;
  int64_t tier = 0;
  int64_t category = 0;
  int64_t total = 0;
  bool too_large = false;  // some figure exceeds kMaxBasketPoints; the rest is unset
};

// Points of one line, split so that the parts add up exactly to the total:
// each part is the difference of two cumulative floors. The points of each
// multiplier of the line go to the same index of `multiplier_points`.
LinePoints PointsForLine(const Programme& programme, int64_t base_amount, uint32_t tier_pct,
                         uint32_t category_pct, size_t line,
                         std::span<const Multiplier> multipliers,
                         std::span<int64_t> multiplier_points) {
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
  for (size_t j = 0; j < multipliers.size(); ++j) {
    if (multipliers[j].line != line) continue;
    offer_pct = std::clamp<int64_t>(offer_pct + multipliers[j].pct - 100, 0, kMaxOfferPct);
    const int64_t c = cumulative(scaled * tier_pct * category_pct * offer_pct, minor * 1'000'000);
    multiplier_points[j] = c - previous;
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

// Appends an explanation item; unset figures stay at their defaults.
void AddItem(google::protobuf::RepeatedPtrField<ExplanationItem>* items, const char* rule,
             std::string text, int64_t points, int64_t discount, const std::string* offer_id,
             int line_index) {
  ExplanationItem& item = *items->Add();
  item.set_rule(rule);
  item.set_text(std::move(text));
  if (points != 0) item.set_points(points);
  if (discount != 0) item.set_discount(discount);
  if (offer_id != nullptr && !offer_id->empty()) item.set_offer_id(*offer_id);
  item.set_line_index(line_index);
}

// Highest priority first, id breaking ties, so the same basket always
// prices the same way.
bool PriceOrder(const Offer* a, const Offer* b) {
  if (a->priority() != b->priority()) return a->priority() > b->priority();
  return a->id() < b->id();
}

// PriceBasket (with `context`) and PriceTargetedBasket (without: `offers`
// are known to be targeted, valid, in PriceOrder and without repeated ids).
Result<Quote> Price(const Programme& programme, const MemberState& member,
                    std::span<const BasketLine> lines, std::span<const Offer* const> offers,
                    const CheckoutContext* context, const RedemptionAsk& redemption,
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
  const size_t n = lines.size();
  std::vector<LineWork> work(n);
  int64_t subtotal = 0;
  for (size_t i = 0; i < n; ++i) {
    work[i].gross = lines[i].quantity() * lines[i].unit_price();
    subtotal += work[i].gross;
  }

  // Offers: targeted, basket conditions met, highest priority first.
  std::vector<const Offer*> candidates;
  candidates.reserve(offers.size());
  if (context == nullptr) {
    for (const Offer* offer : offers) {
      if (AppliesToBasket(*offer, lines, subtotal)) candidates.push_back(offer);
    }
  } else {
    for (const Offer* offer : offers) {
      if (offer == nullptr) continue;
      if (!IsOfferTargeted(*offer, member, *context)) continue;
      if (!AppliesToBasket(*offer, lines, subtotal)) continue;
      // Validation last: it is the costliest check and few offers get here.
      if (!ValidateOffer(*offer).ok()) continue;
      candidates.push_back(offer);
    }
    std::stable_sort(candidates.begin(), candidates.end(), PriceOrder);
    std::set<std::string_view> seen;
    std::erase_if(candidates, [&](const Offer* o) { return !seen.insert(o->id()).second; });
  }
  if (!candidates.empty() && !candidates.front()->stackable()) {
    candidates.resize(1);
  } else {
    std::erase_if(candidates, [](const Offer* o) { return !o->stackable(); });
  }

  // What each applied offer did (the AppliedOffer messages are made once,
  // in the purchase, below).
  struct Applied {
    int64_t discount = 0;
    int64_t points = 0;
    int64_t free_units = 0;  // buy X get Y only
  };
  std::vector<Applied> applied;
  std::vector<const Offer*> applied_offers;
  std::vector<Multiplier> multipliers;
  std::vector<int64_t> scratch(2 * n);
  const std::span<int64_t> weights(scratch.data(), n);
  const std::span<int64_t> discounts(scratch.data() + n, n);
  std::vector<int64_t> free;
  applied.reserve(candidates.size());
  applied_offers.reserve(candidates.size());
  for (const Offer* offer : candidates) {
    Applied result;
    if (offer->reward_case() == Offer::kBonusPoints) {
      result.points = offer->bonus_points();
    } else if (offer->reward_case() == Offer::kPointsMultiplierPct) {
      for (size_t i = 0; i < n; ++i) {
        if (InScope(offer->scope(), lines[i])) {
          multipliers.push_back(Multiplier{i, applied.size(), offer->points_multiplier_pct()});
        }
      }
    } else {
      OfferDiscounts(*offer, lines, work, weights, discounts, &free);
      int64_t sum = 0;
      for (size_t i = 0; i < n; ++i) {
        work[i].discount += discounts[i];
        sum += discounts[i];
      }
      // Earlier offers may have left nothing to take off.
      if (sum == 0) continue;
      result.discount = sum;
      if (offer->reward_case() == Offer::kBuyXGetY) {
        result.free_units = std::accumulate(free.begin(), free.end(), int64_t{0});
      }
    }
    applied.push_back(result);
    applied_offers.push_back(offer);
  }

  int64_t discount_total = 0;
  std::vector<int64_t> nets(n);
  for (size_t i = 0; i < n; ++i) {
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
  std::vector<int64_t> redeemed(n);
  Allocate(value, nets, redeemed);

  // Points per line.
  const int tier_index = TierIndex(programme, member.tier);
  const uint32_t tier_pct =
      tier_index >= 0 ? programme.tiers(tier_index).earn_multiplier_pct() : 100;
  std::vector<LinePoints> line_points(n);
  std::vector<uint32_t> category_pcts(n);
  std::vector<int64_t> points_of_multiplier(multipliers.size(), 0);
  std::vector<int64_t> multiplier_points(applied.size(), 0);  // per applied offer
  int64_t points_earned = 0;
  int64_t qualifying = 0;
  std::vector<int64_t> bases(n);
  for (size_t i = 0; i < n; ++i) {
    bases[i] = nets[i] - (mode == Redemption::DISCOUNT ? redeemed[i] : 0);
    qualifying += bases[i];
    category_pcts[i] = CategoryPct(programme, lines[i].category());
    line_points[i] = PointsForLine(programme, bases[i], tier_pct, category_pcts[i], i,
                                   multipliers, points_of_multiplier);
    for (size_t j = 0; j < multipliers.size(); ++j) {
      if (multipliers[j].line == i) multiplier_points[multipliers[j].applied] += points_of_multiplier[j];
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
    bonus_too_large = bonus_too_large || a.points > kMaxBasketPoints - points_earned;
    if (!bonus_too_large) points_earned += a.points;
  }
  if (bonus_too_large) {
    return MakeError(code::kTooLarge, "The bonus points exceed what one basket may earn.");
  }

  purchase.mutable_lines()->Reserve(static_cast<int>(n));
  purchase.mutable_offers()->Reserve(static_cast<int>(applied.size()));
  for (size_t i = 0; i < n; ++i) {
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
    const Offer& offer = *applied_offers[k];
    loyalty::v1::AppliedOffer* a = purchase.add_offers();
    a->set_offer_id(offer.id());
    a->set_name(offer.name().empty() ? offer.id() : offer.name());
    a->set_discount(applied[k].discount);
    a->set_points(applied[k].points);
    quote.applied_offers.push_back(&offer);
  }
  purchase.set_subtotal(subtotal);
  purchase.set_discount_total(discount_total);
  purchase.set_total(total);
  purchase.set_points_earned(points_earned);
  purchase.set_qualifying_spend(qualifying);
  purchase.set_redemption_value(value);

  // Explanation: each line's points by rule, then the offers and the
  // redemption, so the cashier can read every figure on the receipt.
  std::string rate;
  AppendPts(&rate, programme.points_per_unit());
  rate.append(" per ");
  AppendMoney(&rate, programme, programme.minor_units());
  const std::string tier_name =
      member.tier.empty() && programme.tiers_size() > 0 ? programme.tiers(0).name() : member.tier;
  quote.explanation.Reserve(static_cast<int>(3 * n + multipliers.size() + applied.size() + 1));
  const auto text = [] {
    std::string t;
    t.reserve(96);
    return t;
  };
  // " (SKU)"
  const auto append_on = [&](std::string* t, size_t i) {
    t->append(" (");
    t->append(lines[i].sku());
    t->push_back(')');
  };
  for (size_t i = 0; i < n; ++i) {
    const int index = static_cast<int>(i);
    const LinePoints& p = line_points[i];
    {
      std::string t = text();
      t.append("Base: ");
      t.append(rate);
      t.append(" on ");
      AppendMoney(&t, programme, bases[i]);
      append_on(&t, i);
      t.append(" → ");
      AppendPts(&t, p.base);
      AddItem(&quote.explanation, "base", std::move(t), p.base, 0, nullptr, index);
    }
    if (p.tier != 0) {
      std::string t = text();
      t.append(tier_name);
      t.append(" tier ");
      AppendInt(&t, tier_pct);
      t.append("% of base");
      append_on(&t, i);
      t.append(": ");
      AppendSigned(&t, p.tier);
      AddItem(&quote.explanation, "tier", std::move(t), p.tier, 0, nullptr, index);
    }
    if (p.category != 0) {
      std::string t = text();
      t.append(lines[i].category());
      t.append(" category ");
      AppendInt(&t, category_pcts[i]);
      t.push_back('%');
      append_on(&t, i);
      t.append(": ");
      AppendSigned(&t, p.category);
      AddItem(&quote.explanation, "category", std::move(t), p.category, 0, nullptr, index);
    }
    for (size_t j = 0; j < multipliers.size(); ++j) {
      const int64_t points = points_of_multiplier[j];
      if (multipliers[j].line != i || points == 0) continue;
      const Offer& offer = *applied_offers[multipliers[j].applied];
      std::string t = text();
      AppendOffer(&t, offer);
      t.push_back(' ');
      AppendInt(&t, offer.points_multiplier_pct());
      t.append("% points");
      append_on(&t, i);
      t.append(": ");
      AppendSigned(&t, points);
      AddItem(&quote.explanation, "offer", std::move(t), points, 0, &offer.id(), index);
    }
  }
  for (size_t k = 0; k < applied.size(); ++k) {
    const Offer& offer = *applied_offers[k];
    const Applied& a = applied[k];
    if (a.points != 0) {
      std::string t = text();
      AppendOffer(&t, offer);
      t.append(": +");
      AppendInt(&t, a.points);
      t.append(a.points == 1 ? " bonus pt" : " bonus pts");
      AddItem(&quote.explanation, "offer", std::move(t), a.points, 0, &offer.id(), -1);
    }
    if (a.discount != 0) {
      std::string t = text();
      AppendOffer(&t, offer);
      t.append(": ");
      if (offer.reward_case() == Offer::kBuyXGetY) {
        AppendInt(&t, a.free_units);
        t.append(a.free_units == 1 ? " unit free, " : " units free, ");
      }
      t.push_back('-');
      AppendMoney(&t, programme, a.discount);
      AddItem(&quote.explanation, "offer", std::move(t), 0, a.discount, &offer.id(), -1);
      loyalty::v1::Discount& discount = *quote.discounts.Add();
      discount.set_offer_id(offer.id());
      discount.set_name(offer.name().empty() ? offer.id() : offer.name());
      discount.set_amount(a.discount);
      discount.set_scope(ScopeLabel(offer.scope()));
    }
  }
  if (points_redeemed > 0) {
    std::string t = text();
    t.append("Redeemed ");
    AppendPts(&t, points_redeemed);
    t.append(" for ");
    AppendMoney(&t, programme, value);
    t.append(mode == Redemption::DISCOUNT ? " off the price (no points earned on it)"
                                          : " as payment (points still earned)");
    AddItem(&quote.explanation, "redemption", std::move(t), 0, value, nullptr, -1);
  }

  quote.points_redeemed = points_redeemed;
  quote.redemption_value = value;
  quote.total_to_pay = total - value;
  quote.tier = tier_name;
  return quote;
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
    // Both travel in every event and answer, and into logs and receipts.
    for (const auto& [field, value] :
         {std::pair{"sku", &line.sku()}, std::pair{"category", &line.category()}}) {
      if (value->size() > kMaxCodeBytes) {
        return MakeError(code::kInvalidRequest, LineName(i) + " has a " + field + " longer than " +
                                                    std::to_string(kMaxCodeBytes) + " bytes.");
      }
      if (HasControlCharacters(*value)) {
        return MakeError(code::kInvalidRequest,
                         LineName(i) + " has control characters in its " + field + ".");
      }
    }
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
  return Price(programme, member, lines, offers, &context, redemption, spendable_points);
}

Result<Quote> PriceTargetedBasket(const Programme& programme, const MemberState& member,
                                  std::span<const BasketLine> lines,
                                  std::span<const Offer* const> offers,
                                  const RedemptionAsk& redemption, int64_t spendable_points) {
  return Price(programme, member, lines, offers, nullptr, redemption, spendable_points);
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
