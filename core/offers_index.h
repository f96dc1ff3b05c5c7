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
  enum class Needs : uint8_t { kNothing, kSku, kCategory };

  // What a quote checks of each offer its member's buckets name, packed and
  // in pricing order (its rank), so that ruling an offer out reads one small
  // record, not the offer: most offers in a bucket need a SKU or category
  // that the basket lacks.
  struct Candidate {
    // The most selective thing the basket must contain for the offer to
    // change it (none for offers on the whole basket without requirements),
    // and its hash.
    uint64_t needs_hash = 0;
    uint32_t index = 0;  // into offers_
    Needs needs = Needs::kNothing;
    bool valid = false;          // ValidateOffer
    bool member_checks = false;  // stores, dates, weekdays, hours or a usage limit
    // The offer names tiers as well as segments: it is in segment buckets,
    // so the member's tier is checked too. (A bucket's own audience needs
    // no check: the member is in it.)
    bool tier_check = false;
  };

  // Fills `ranks` with the ranks of the offers in the member's buckets
  // (unsorted; an offer in two of them twice) and returns the member's tier
  // id (-1 for a tier no offer names).
  int Gather(const MemberState& member, std::vector<uint32_t>* ranks) const;
  // Whether the offer of `rank` is meant for the member here and now, its
  // audience bucket aside.
  bool Targets(uint32_t rank, int tier, const MemberState& member,
               const CheckoutContext& context) const;
  // Sorts `ranks` into pricing order without repeats, as offers.
  std::vector<const loyalty::v1::Offer*> InOrder(std::vector<uint32_t>& ranks) const;
  int Intern(std::unordered_map<std::string, int>& names, const std::string& name);

  std::vector<loyalty::v1::Offer> offers_;  // by id
  std::vector<loyalty::v1::OfferView> views_;  // parallel to offers_
  std::vector<std::vector<int>> tiers_;        // parallel to offers_: interned tiers named
  std::vector<std::string> conditions_head_;   // parallel: conditions' words before the usage limit
  std::vector<Candidate> ranked_;              // by rank: priority desc, then id
  std::unordered_map<std::string, int> tier_ids_;
  std::unordered_map<std::string, int> segment_ids_;
  // Offer ranks per audience, each ascending.
  std::vector<uint32_t> general_;
  std::vector<std::vector<uint32_t>> by_tier_;     // by tier id
  std::vector<std::vector<uint32_t>> by_segment_;  // by segment id
};

}  // namespace loyalty::core
