// Properties over many random baskets, offers and returns. Seeds are fixed so
// a failure reproduces; the failing iteration is printed.
#include <gtest/gtest.h>

#include <random>

#include "core/member_state.h"
#include "core/pricing.h"
#include "core/programme.h"
#include "core/reversal.h"
#include "test_util.h"

namespace loyalty::core {
namespace {

using loyalty::v1::BasketLine;
using loyalty::v1::Offer;
using loyalty::v1::OfferScope;
using loyalty::v1::Redemption;
using loyalty::v1::Reversal;
using namespace testing;

constexpr int kIterations = 2000;
const char* const kCategories[] = {"Coffee", "Tea", "Snacks", "Dairy"};
const char* const kSkus[] = {"s1", "s2", "s3", "s4", "s5", "s6"};

BasketLine RandomLine(std::mt19937& rng) {
  return Line(kSkus[Uniform(rng, 0, 5)], kCategories[Uniform(rng, 0, 3)], Uniform(rng, 1, 12),
              Uniform(rng, 0, 4) == 0 ? Uniform(rng, 0, 50) : Uniform(rng, 1, 5000));
}

std::vector<BasketLine> RandomBasket(std::mt19937& rng) {
  std::vector<BasketLine> lines;
  const int64_t n = Uniform(rng, 1, 8);
  for (int64_t i = 0; i < n; ++i) lines.push_back(RandomLine(rng));
  return lines;
}

void RandomScope(std::mt19937& rng, Offer& offer) {
  switch (Uniform(rng, 0, 2)) {
    case 0:
      offer.mutable_scope()->set_kind(OfferScope::BASKET);
      break;
    case 1:
      offer.mutable_scope()->set_kind(OfferScope::CATEGORY);
      offer.mutable_scope()->set_value(kCategories[Uniform(rng, 0, 3)]);
      break;
    default:
      offer.mutable_scope()->set_kind(OfferScope::SKU);
      offer.mutable_scope()->set_value(kSkus[Uniform(rng, 0, 5)]);
  }
}

// Any kind of offer, including discounts and non-stackable ones.
std::vector<Offer> RandomOffers(std::mt19937& rng) {
  std::vector<Offer> offers;
  const int64_t n = Uniform(rng, 0, 5);
  for (int64_t i = 0; i < n; ++i) {
    Offer o;
    o.set_id("o" + std::to_string(i));
    o.set_priority(static_cast<int32_t>(Uniform(rng, 0, 3)));
    o.set_stackable(Uniform(rng, 0, 4) != 0);
    if (Uniform(rng, 0, 3) == 0) o.set_min_spend(Uniform(rng, 0, 5000));
    RandomScope(rng, o);
    SetRandomReward(rng, o, false);
    offers.push_back(o);
  }
  return offers;
}

// Only offers that add points: stackable bonuses and multipliers of 100% or
// more, with basket conditions that a bigger basket can only meet more often.
std::vector<Offer> RandomPointOffers(std::mt19937& rng) {
  std::vector<Offer> offers;
  const int64_t n = Uniform(rng, 0, 4);
  for (int64_t i = 0; i < n; ++i) {
    Offer o;
    o.set_id("p" + std::to_string(i));
    o.set_priority(static_cast<int32_t>(Uniform(rng, 0, 3)));
    o.set_stackable(true);
    if (Uniform(rng, 0, 2) == 0) o.set_min_spend(Uniform(rng, 0, 8000));
    if (Uniform(rng, 0, 3) == 0) o.set_required_category(kCategories[Uniform(rng, 0, 3)]);
    RandomScope(rng, o);
    if (Uniform(rng, 0, 1) == 0) {
      o.set_bonus_points(Uniform(rng, 1, 100));
    } else {
      o.set_points_multiplier_pct(static_cast<uint32_t>(Uniform(rng, 100, 400)));
    }
    offers.push_back(o);
  }
  return offers;
}

loyalty::v1::Programme RandomProgramme(std::mt19937& rng) {
  auto p = DefaultProgramme();
  p.set_points_per_unit(Uniform(rng, 1, 10));
  if (Uniform(rng, 0, 1) == 0) {
    auto* cm = p.add_category_multipliers();
    cm->set_category(kCategories[Uniform(rng, 0, 3)]);
    cm->set_multiplier_pct(static_cast<uint32_t>(Uniform(rng, 50, 300)));
  }
  return p;
}

MemberState RandomMember(std::mt19937& rng) {
  static const char* const kTiers[] = {"Member", "Silver", "Gold", "Platinum"};
  return Member(kTiers[Uniform(rng, 0, 3)]);
}

int64_t ExplainedPoints(const Quote& q) {
  int64_t sum = 0;
  for (const auto& item : q.explanation) sum += item.points();
  return sum;
}

TEST(Property, EarningIsMonotonicInTheBasket) {
  std::mt19937 rng(20240501);
  for (int iter = 0; iter < kIterations; ++iter) {
    SCOPED_TRACE("iteration " + std::to_string(iter));
    const auto programme = RandomProgramme(rng);
    const MemberState member = RandomMember(rng);
    const auto offers = RandomPointOffers(rng);
    std::vector<BasketLine> lines = RandomBasket(rng);
    const int64_t before = PriceOrDie(programme, member, lines, offers).purchase.points_earned();
    std::vector<BasketLine> bigger = lines;
    if (Uniform(rng, 0, 1) == 0) {
      bigger.push_back(RandomLine(rng));
    } else {
      auto& line = bigger[Uniform(rng, 0, static_cast<int64_t>(bigger.size()) - 1)];
      line.set_quantity(line.quantity() + Uniform(rng, 1, 5));
    }
    const int64_t after = PriceOrDie(programme, member, bigger, offers).purchase.points_earned();
    ASSERT_GE(after, before);
  }
}

TEST(Property, QuoteFiguresAreConsistentAndNeverNegative) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < kIterations; ++iter) {
    SCOPED_TRACE("iteration " + std::to_string(iter));
    const auto programme = RandomProgramme(rng);
    const auto offers = RandomOffers(rng);
    const RedemptionAsk ask{Uniform(rng, 0, 3) == 0 ? Uniform(rng, 0, 6000) : 0,
                            Uniform(rng, 0, 1) == 0 ? Redemption::DISCOUNT : Redemption::TENDER};
    const Quote q = PriceOrDie(programme, RandomMember(rng), RandomBasket(rng), offers, ask, 6000);
    const auto& p = q.purchase;
    ASSERT_EQ(ExplainedPoints(q), p.points_earned());
    int64_t gross = 0, discount = 0, net = 0, line_points = 0, offer_points = 0, offer_discount = 0;
    for (const auto& line : p.lines()) {
      ASSERT_GE(line.discount(), 0);
      ASSERT_GE(line.net(), 0);
      ASSERT_GE(line.points(), 0);
      ASSERT_GE(line.redeemed_value(), 0);
      ASSERT_LE(line.redeemed_value(), line.net());
      ASSERT_EQ(line.gross(), line.line().quantity() * line.line().unit_price());
      ASSERT_EQ(line.net(), line.gross() - line.discount());
      gross += line.gross();
      discount += line.discount();
      net += line.net();
      line_points += line.points();
    }
    for (const auto& offer : p.offers()) {
      offer_points += offer.points();
      offer_discount += offer.discount();
    }
    int64_t explained_discount = 0;
    for (const auto& item : q.explanation) {
      if (item.rule() == "offer") explained_discount += item.discount();
    }
    ASSERT_EQ(p.subtotal(), gross);
    ASSERT_EQ(p.discount_total(), discount);
    ASSERT_EQ(p.discount_total(), offer_discount);
    ASSERT_EQ(p.discount_total(), explained_discount);
    ASSERT_EQ(p.total(), net);
    ASSERT_EQ(p.points_earned(), line_points + offer_points);
    ASSERT_GE(p.total(), 0);
    ASSERT_GE(q.total_to_pay, 0);
    ASSERT_GE(p.points_earned(), 0);
    ASSERT_LE(q.points_redeemed, ask.points);
    ASSERT_EQ(q.total_to_pay, p.total() - q.redemption_value);
  }
}

TEST(Property, AWholeVoidExactlyReversesItsPurchase) {
  std::mt19937 rng(99);
  for (int iter = 0; iter < kIterations; ++iter) {
    SCOPED_TRACE("iteration " + std::to_string(iter));
    const auto programme = RandomProgramme(rng);
    const RedemptionAsk ask{Uniform(rng, 0, 1) == 0 ? Uniform(rng, 1, 3000) : 0,
                            Uniform(rng, 0, 1) == 0 ? Redemption::DISCOUNT : Redemption::TENDER};
    const Quote q =
        PriceOrDie(programme, RandomMember(rng), RandomBasket(rng), RandomOffers(rng), ask, 5000);
    loyalty::v1::Purchase purchase = q.purchase;
    purchase.set_pos_txn_id("t");

    // Fold: snapshot, then the checkout, then its void, comes back to the
    // snapshot's position.
    loyalty::v1::MemberSnapshot snapshot;
    snapshot.set_member_id("m-1");
    snapshot.set_tier("Member");
    snapshot.set_points_balance(5000);
    *snapshot.add_lots() = Lot(Ms(2024, 1, 1), 5000);
    snapshot.set_qualifying_spend(1234);
    std::vector<loyalty::v1::Event> events;
    if (q.points_redeemed > 0)
      events.push_back(RedemptionAt(Ms(2024, 5, 1), q.points_redeemed, "t"));
    events.push_back(PurchaseAt(Ms(2024, 5, 1), purchase));
    const auto txn = FindTxn(events, "t");
    ASSERT_TRUE(txn.has_value());
    const auto v = PlanReversal(*txn, {}, "void");
    ASSERT_TRUE(v.ok()) << v.error().message;
    ASSERT_TRUE(v->complete());
    ASSERT_EQ(v->points_reversed(), purchase.points_earned());
    ASSERT_EQ(v->refund(), q.total_to_pay);
    ASSERT_EQ(v->qualifying_spend_reversed(), purchase.qualifying_spend());
    ASSERT_EQ(v->points_restored(), q.points_redeemed);
    ASSERT_EQ(v->offers_released_size(), purchase.offers_size());
    events.push_back(ReversalAt(Ms(2024, 5, 2), *v));
    const MemberState m = FoldMember(programme, &snapshot, events, Ms(2024, 6, 1));
    ASSERT_EQ(m.points_balance, 5000);
    ASSERT_EQ(m.pending_points, 0);
    ASSERT_EQ(m.qualifying_spend, 1234);
    ASSERT_TRUE(m.offer_uses.empty());
  }
}

TEST(Property, PiecewiseReturnsOfEverythingEqualOneVoid) {
  std::mt19937 rng(31337);
  for (int iter = 0; iter < kIterations; ++iter) {
    SCOPED_TRACE("iteration " + std::to_string(iter));
    const RedemptionAsk ask{Uniform(rng, 0, 1) == 0 ? Uniform(rng, 1, 3000) : 0,
                            Uniform(rng, 0, 1) == 0 ? Redemption::DISCOUNT : Redemption::TENDER};
    const Quote q = PriceOrDie(RandomProgramme(rng), RandomMember(rng), RandomBasket(rng),
                               RandomOffers(rng), ask, 5000);
    TxnState whole;
    whole.purchase = q.purchase;
    whole.points_redeemed = q.points_redeemed;
    TxnState pieces = whole;
    const auto v = PlanReversal(whole, {}, "void");
    ASSERT_TRUE(v.ok());

    std::vector<int64_t> left;
    for (const auto& line : q.purchase.lines()) left.push_back(line.line().quantity());
    Reversal sum;
    bool complete = false;
    int steps = 0;
    while (!complete) {
      std::vector<loyalty::v1::LineReturn> returns;
      for (size_t i = 0; i < left.size(); ++i) {
        if (left[i] == 0 || Uniform(rng, 0, 1) == 0) continue;
        auto& r = returns.emplace_back();
        r.set_line_index(static_cast<uint32_t>(i));
        r.set_quantity(Uniform(rng, 1, left[i]));
        left[i] -= r.quantity();
      }
      if (returns.empty()) continue;
      const auto r = PlanReversal(pieces, returns, "r" + std::to_string(++steps));
      ASSERT_TRUE(r.ok()) << r.error().message;
      ASSERT_GE(r->points_reversed(), 0);
      ASSERT_GE(r->refund(), 0);
      pieces.reversals.push_back(*r);
      sum.set_points_reversed(sum.points_reversed() + r->points_reversed());
      sum.set_points_restored(sum.points_restored() + r->points_restored());
      sum.set_refund(sum.refund() + r->refund());
      sum.set_qualifying_spend_reversed(sum.qualifying_spend_reversed() +
                                        r->qualifying_spend_reversed());
      sum.mutable_offers_released()->MergeFrom(r->offers_released());
      complete = r->complete();
    }
    ASSERT_EQ(sum.points_reversed(), v->points_reversed());
    ASSERT_EQ(sum.points_restored(), v->points_restored());
    ASSERT_EQ(sum.refund(), v->refund());
    ASSERT_EQ(sum.qualifying_spend_reversed(), v->qualifying_spend_reversed());
    ASSERT_EQ(sum.offers_released_size(), v->offers_released_size());
    ASSERT_EQ(PlanReversal(pieces, {}, "again").error().code, code::kAlreadyReversed);
  }
}

}  // namespace
}  // namespace loyalty::core
