// OfferIndex only saves work: over many random catalogues, members, baskets
// and moments its answers equal the plain functions' (IsOfferTargeted in
// pricing order; PriceBasket over every offer). Seeds are fixed so a failure
// reproduces; the failing iteration is printed.
#include "core/offers_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "core/pricing.h"
#include "core/programme.h"
#include "test_util.h"

namespace loyalty::core {
namespace {

using loyalty::v1::BasketLine;
using loyalty::v1::Offer;
using loyalty::v1::OfferScope;
using namespace testing;

const char* const kTiers[] = {"Member", "Silver", "Gold", "Platinum", "Nobody"};
const char* const kSegments[] = {"seg-a", "seg-b", "seg-c", "seg-d", "seg-e"};
const char* const kStores[] = {"s1", "s2", "s3"};
const char* const kCategories[] = {"Coffee", "Tea", "Snacks", "Dairy"};
const char* const kSkus[] = {"k1", "k2", "k3", "k4", "k5", "k6", "k7"};

template <size_t N>
const char* Pick(std::mt19937& rng, const char* const (&names)[N]) {
  return names[Uniform(rng, 0, N - 1)];
}

// Every condition an offer can have, sometimes invalid, sometimes repeating
// a name; ids unique, given in a shuffled order.
std::vector<Offer> RandomCatalogue(std::mt19937& rng) {
  std::vector<Offer> offers;
  const int64_t n = Uniform(rng, 0, 40);
  for (int64_t i = 0; i < n; ++i) {
    Offer o;
    o.set_id("o" + std::to_string(i));
    if (Uniform(rng, 0, 3) > 0) o.set_name("Offer " + std::to_string(i));
    o.set_priority(static_cast<int32_t>(Uniform(rng, -1, 3)));
    o.set_stackable(Uniform(rng, 0, 4) != 0);
    for (int64_t k = Uniform(rng, 0, 2) == 0 ? Uniform(rng, 1, 3) : 0; k > 0; --k) {
      o.add_tiers(Pick(rng, kTiers));
    }
    for (int64_t k = Uniform(rng, 0, 1) == 0 ? Uniform(rng, 1, 3) : 0; k > 0; --k) {
      o.add_segment_ids(Pick(rng, kSegments));
    }
    if (Uniform(rng, 0, 5) == 0) o.add_store_ids(Pick(rng, kStores));
    if (Uniform(rng, 0, 6) == 0) o.set_starts_at_ms(Ms(2026, 6, Uniform(rng, 1, 30)));
    if (Uniform(rng, 0, 6) == 0) o.set_ends_at_ms(Ms(2026, 7, Uniform(rng, 1, 30)));
    if (Uniform(rng, 0, 6) == 0) o.add_weekdays(static_cast<uint32_t>(Uniform(rng, 0, 6)));
    if (Uniform(rng, 0, 6) == 0) {
      o.set_from_hour(static_cast<uint32_t>(Uniform(rng, 0, 23)));
      o.set_to_hour(static_cast<uint32_t>(Uniform(rng, 0, 24)));
    }
    if (Uniform(rng, 0, 4) == 0) o.set_required_category(Pick(rng, kCategories));
    if (Uniform(rng, 0, 4) == 0) o.set_required_sku(Pick(rng, kSkus));
    if (Uniform(rng, 0, 3) == 0) o.set_min_spend(Uniform(rng, 0, 5000));
    if (Uniform(rng, 0, 4) == 0) o.set_per_member_limit(static_cast<uint32_t>(Uniform(rng, 1, 3)));
    switch (Uniform(rng, 0, 3)) {
      case 0:
        o.mutable_scope()->set_kind(OfferScope::BASKET);
        break;
      case 1:
        o.mutable_scope()->set_kind(OfferScope::CATEGORY);
        o.mutable_scope()->set_value(Pick(rng, kCategories));
        break;
      case 2:
        o.mutable_scope()->set_kind(OfferScope::SKU);
        o.mutable_scope()->set_value(Pick(rng, kSkus));
        break;
      default:
        o.mutable_scope()->set_kind(OfferScope::SKU);  // invalid: no value
    }
    SetRandomReward(rng, o, true);
    offers.push_back(o);
  }
  std::shuffle(offers.begin(), offers.end(), rng);
  return offers;
}

MemberState RandomMember(std::mt19937& rng, const std::vector<Offer>& offers) {
  MemberState m = Member(Pick(rng, kTiers));
  if (Uniform(rng, 0, 5) == 0) m.tier = "Unknown";
  for (int64_t k = Uniform(rng, 0, 10); k > 0; --k) {
    m.segment_ids.push_back(Uniform(rng, 0, 6) == 0 ? "seg-unknown" : Pick(rng, kSegments));
  }
  for (const Offer& o : offers) {
    if (Uniform(rng, 0, 3) == 0) m.offer_uses[o.id()] = static_cast<uint32_t>(Uniform(rng, 0, 3));
  }
  return m;
}

std::vector<BasketLine> RandomBasket(std::mt19937& rng) {
  std::vector<BasketLine> lines;
  for (int64_t n = Uniform(rng, 1, 6); n > 0; --n) {
    lines.push_back(Line(Pick(rng, kSkus), Pick(rng, kCategories), Uniform(rng, 1, 5),
                         Uniform(rng, 1, 3000)));
  }
  return lines;
}

CheckoutContext RandomContext(std::mt19937& rng) {
  CheckoutContext c;
  c.store_id = Pick(rng, kStores);
  c.now_ms = Ms(2026, static_cast<unsigned>(Uniform(rng, 5, 8)),
                static_cast<unsigned>(Uniform(rng, 1, 28)), static_cast<int>(Uniform(rng, 0, 23)));
  c.utc_offset_minutes = static_cast<int>(Uniform(rng, -120, 120));
  return c;
}

std::vector<std::string> Ids(const std::vector<const Offer*>& offers) {
  std::vector<std::string> ids;
  for (const Offer* o : offers) ids.push_back(o->id());
  return ids;
}

// What a quote says, as text, or its error code.
std::string Priced(const Result<Quote>& quote) {
  if (!quote.ok()) return "error " + quote.error().code;
  std::string out = quote->purchase.SerializeAsString();
  for (const auto& d : quote->discounts) out += "|" + d.SerializeAsString();
  for (const auto& e : quote->explanation) out += "|" + e.SerializeAsString();
  return out;
}

TEST(OfferIndex, AnswersAsThePlainFunctions) {
  std::mt19937 rng(20261123);
  const auto programme = DefaultProgramme();
  for (int iteration = 0; iteration < 1500; ++iteration) {
    SCOPED_TRACE("iteration " + std::to_string(iteration));
    const std::vector<Offer> catalogue = RandomCatalogue(rng);
    const OfferIndex index(catalogue, programme);
    for (int round = 0; round < 4; ++round) {
      const MemberState member = RandomMember(rng, catalogue);
      const CheckoutContext context = RandomContext(rng);

      // Targeted: IsOfferTargeted, highest priority first, then by id.
      std::vector<const Offer*> expected;
      for (const Offer& o : catalogue) {
        if (IsOfferTargeted(o, member, context)) expected.push_back(&o);
      }
      std::sort(expected.begin(), expected.end(), [](const Offer* a, const Offer* b) {
        return a->priority() != b->priority() ? a->priority() > b->priority() : a->id() < b->id();
      });
      ASSERT_EQ(Ids(index.Targeted(member, context)), Ids(expected));

      // ForBasket then PriceTargetedBasket: PriceBasket over every offer.
      std::vector<const Offer*> all;
      for (const Offer& o : catalogue) all.push_back(&o);
      const std::vector<BasketLine> basket = RandomBasket(rng);
      const RedemptionAsk no_redemption{0, loyalty::v1::Redemption::DISCOUNT};
      const auto plain = PriceBasket(programme, member, basket, all, context, no_redemption, 0);
      const auto offers = index.ForBasket(member, context, basket);
      const auto indexed = PriceTargetedBasket(programme, member, basket, offers, no_redemption, 0);
      ASSERT_EQ(Priced(indexed), Priced(plain));
      // Only targeted, valid offers, each once.
      for (const Offer* o : offers) {
        EXPECT_TRUE(IsOfferTargeted(*o, member, context)) << o->id();
        EXPECT_TRUE(ValidateOffer(*o).ok()) << o->id();
        EXPECT_EQ(std::count(offers.begin(), offers.end(), o), 1) << o->id();
      }
    }
  }
}

}  // namespace
}  // namespace loyalty::core
