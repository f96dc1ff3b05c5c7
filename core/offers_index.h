// OfferIndex: a catalogue's offers arranged for checkout, so that a quote
// looks only at the offers that can concern its member and basket instead of
// all of them, and reuses what does not change between requests.
//
// - Audience: offers are bucketed by their most selective audience (a
//   segment, else a tier, else everybody) with tier and segment names turned
//   into small integers, so targeting a member is a few integer compares per
//   candidate rather than string searches.
// - Basket: each offer's most selective basket condition (a SKU or category
//   that must be in the basket) is hashed, so offers that cannot change a
//   basket are dropped before pricing looks at them.
// - Validation (ValidateOffer) and wording (MakeOfferView) are done once per
//   catalogue; only a per-member usage limit is worded per request.
//
// The answers are exactly those of IsOfferTargeted, ValidateOffer and
// MakeOfferView (core/offers.h) and of PriceBasket's own filtering; the index
// only avoids work. Offer ids are unique (the catalogue's key). Immutable
// after construction, thread-safe. Pointers it
// returns point into the index and live as long as it does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/member_state.h"
#include "core/offers.h"
#include "loyalty/v1/api.pb.h"
#include "loyalty/v1/domain.pb.h"

namespace loyalty::core {

class OfferIndex {
 public:
  OfferIndex(std::vector<loyalty::v1::Offer> offers, const loyalty::v1::Programme& programme);
  OfferIndex(const OfferIndex&) = delete;
  OfferIndex& operator=(const OfferIndex&) = delete;

  size_t size() const { return offers_.size(); }
  std::span<const loyalty::v1::Offer> offers() const { return offers_; }

  // Offers targeted at `member` here and now (IsOfferTargeted), highest
  // priority first, ties in id order.
  std::vector<const loyalty::v1::Offer*> Targeted(const MemberState& member,
                                                  const CheckoutContext& context) const;

  // The offers PriceTargetedBasket (core/pricing.h) needs for this member
  // and basket: targeted, valid, and not ruled out by a SKU or category the
  // basket lacks; highest priority first, ties in id order (PriceBasket's
  // order).
  std::vector<const loyalty::v1::Offer*> ForBasket(
      const MemberState& member, const CheckoutContext& context,
      std::span<const loyalty::v1::BasketLine> lines) const;

  // MakeOfferView(*offer, programme, member) for an offer of this index.
  loyalty::v1::OfferView View(const loyalty::v1::Offer* offer, const MemberState& member) const;

 private:
  // What targeting needs of an offer, beyond its audience bucket.
  struct Entry {
    std::vector<int> tiers;     // interned; empty: any tier
    std::vector<int> segments;  // interned; empty: any segment
    int32_t priority = 0;
    bool member_checks = false;  // stores, dates, weekdays, hours or a usage limit
    bool valid = false;          // ValidateOffer
    // The most selective thing the basket must contain for the offer to
    // change it (none for offers on the whole basket without requirements).
    enum class Needs { kNothing, kSku, kCategory } needs = Needs::kNothing;
    uint64_t needs_hash = 0;
    std::string conditions_head;  // the conditions' words before the usage limit
  };

  // Fills `out` with the indexes of the targeted offers, sorted.
  void TargetedIndexes(const MemberState& member, const CheckoutContext& context,
                       std::vector<uint32_t>* out) const;
  int Intern(std::unordered_map<std::string, int>& names, const std::string& name);

  std::vector<loyalty::v1::Offer> offers_;  // by id
  std::vector<Entry> entries_;              // parallel to offers_
  std::vector<loyalty::v1::OfferView> views_;
  std::unordered_map<std::string, int> tier_ids_;
  std::unordered_map<std::string, int> segment_ids_;
  // Offer indexes per audience, each sorted by (priority desc, index).
  std::vector<uint32_t> general_;
  std::vector<std::vector<uint32_t>> by_tier_;     // by tier id
  std::vector<std::vector<uint32_t>> by_segment_;  // by segment id
};

}  // namespace loyalty::core
