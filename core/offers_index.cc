#include "core/offers_index.h"

#include <algorithm>
#include <functional>

namespace loyalty::core {
namespace {

using loyalty::v1::Offer;
using loyalty::v1::OfferScope;

uint64_t Hash(std::string_view s) { return std::hash<std::string_view>{}(s); }

// -1 for a name no offer mentions.
int Lookup(const std::unordered_map<std::string, int>& ids, const std::string& name) {
  const auto it = ids.find(name);
  return it == ids.end() ? -1 : it->second;
}

bool Contains(const std::vector<int>& ids, int id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

OfferIndex::OfferIndex(std::vector<Offer> offers, const loyalty::v1::Programme& programme)
    : offers_(std::move(offers)) {
  // Catalogue order is id order (as the terminal database lists them), so
  // that ties in priority break the way PriceBasket breaks them.
  std::stable_sort(offers_.begin(), offers_.end(),
                   [](const Offer& a, const Offer& b) { return a.id() < b.id(); });
  const MemberState nobody;
  const size_t n = offers_.size();
  tiers_.resize(n);
  conditions_head_.resize(n);
  views_.reserve(n);
  std::vector<uint32_t> rank_of(n);
  std::vector<uint32_t> by_rank(n);
  for (uint32_t i = 0; i < n; ++i) by_rank[i] = i;
  std::stable_sort(by_rank.begin(), by_rank.end(), [&](uint32_t a, uint32_t b) {
    return offers_[a].priority() > offers_[b].priority();
  });
  ranked_.resize(n);
  for (uint32_t rank = 0; rank < n; ++rank) {
    const uint32_t i = by_rank[rank];
    rank_of[i] = rank;
    const Offer& o = offers_[i];
    Candidate& c = ranked_[rank];
    c.index = i;
    c.valid = ValidateOffer(o).ok();
    c.member_checks = !o.store_ids().empty() || o.starts_at_ms() > 0 || o.ends_at_ms() > 0 ||
                      !o.weekdays().empty() || o.from_hour() != o.to_hour() ||
                      o.per_member_limit() > 0;
    c.tier_check = !o.tiers().empty() && !o.segment_ids().empty();
    std::string_view needs;
    if (!o.required_sku().empty()) {
      c.needs = Needs::kSku;
      needs = o.required_sku();
    } else if (o.scope().kind() == OfferScope::SKU) {
      c.needs = Needs::kSku;
      needs = o.scope().value();
    } else if (!o.required_category().empty()) {
      c.needs = Needs::kCategory;
      needs = o.required_category();
    } else if (o.scope().kind() == OfferScope::CATEGORY) {
      c.needs = Needs::kCategory;
      needs = o.scope().value();
    }
    c.needs_hash = Hash(needs);
  }
  for (uint32_t i = 0; i < n; ++i) {
    const Offer& o = offers_[i];
    for (const auto& t : o.tiers()) tiers_[i].push_back(Intern(tier_ids_, t));
    std::vector<int> segments;
    for (const auto& s : o.segment_ids()) segments.push_back(Intern(segment_ids_, s));
    by_tier_.resize(tier_ids_.size());
    by_segment_.resize(segment_ids_.size());
    if (!segments.empty()) {
      for (int s : segments) by_segment_[static_cast<size_t>(s)].push_back(rank_of[i]);
    } else if (!tiers_[i].empty()) {
      for (int t : tiers_[i]) by_tier_[static_cast<size_t>(t)].push_back(rank_of[i]);
    } else {
      general_.push_back(rank_of[i]);
    }
    views_.push_back(MakeOfferView(o, programme, nobody));
    if (o.per_member_limit() > 0) {
      Offer unlimited = o;
      unlimited.set_per_member_limit(0);
      conditions_head_[i] = MakeOfferView(unlimited, programme, nobody).conditions();
    }
  }
  // Ascending ranks; an offer listing a segment (or tier) twice is in its
  // bucket once.
  std::sort(general_.begin(), general_.end());
  for (auto* buckets : {&by_tier_, &by_segment_}) {
    for (auto& bucket : *buckets) {
      std::sort(bucket.begin(), bucket.end());
      bucket.erase(std::unique(bucket.begin(), bucket.end()), bucket.end());
    }
  }
}

int OfferIndex::Intern(std::unordered_map<std::string, int>& names, const std::string& name) {
  return names.try_emplace(name, static_cast<int>(names.size())).first->second;
}

int OfferIndex::Gather(const MemberState& member, std::vector<uint32_t>* ranks) const {
  ranks->clear();
  ranks->insert(ranks->end(), general_.begin(), general_.end());
  const int tier = Lookup(tier_ids_, member.tier);
  if (tier >= 0) {
    const auto& bucket = by_tier_[static_cast<size_t>(tier)];
    ranks->insert(ranks->end(), bucket.begin(), bucket.end());
  }
  for (const std::string& name : member.segment_ids) {
    const int id = Lookup(segment_ids_, name);
    if (id < 0) continue;
    const auto& bucket = by_segment_[static_cast<size_t>(id)];
    ranks->insert(ranks->end(), bucket.begin(), bucket.end());
  }
  return tier;
}

bool OfferIndex::Targets(uint32_t rank, int tier, const MemberState& member,
                         const CheckoutContext& context) const {
  const Candidate& c = ranked_[rank];
  if (c.tier_check && !Contains(tiers_[c.index], tier)) return false;
  return !c.member_checks || IsOfferAvailable(offers_[c.index], member, context);
}

std::vector<const Offer*> OfferIndex::InOrder(std::vector<uint32_t>& ranks) const {
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  std::vector<const Offer*> out;
  out.reserve(ranks.size());
  for (uint32_t rank : ranks) out.push_back(&offers_[ranked_[rank].index]);
  return out;
}

std::vector<const Offer*> OfferIndex::Targeted(const MemberState& member,
                                               const CheckoutContext& context) const {
  std::vector<uint32_t> ranks;
  const int tier = Gather(member, &ranks);
  std::erase_if(ranks, [&](uint32_t rank) { return !Targets(rank, tier, member, context); });
  return InOrder(ranks);
}

std::vector<const Offer*> OfferIndex::ForBasket(
    const MemberState& member, const CheckoutContext& context,
    std::span<const loyalty::v1::BasketLine> lines) const {
  std::vector<uint32_t> ranks;
  const int tier = Gather(member, &ranks);
  uint64_t skus[16], categories[16];
  const size_t hashed = std::min(lines.size(), std::size(skus));
  for (size_t k = 0; k < hashed; ++k) {
    skus[k] = Hash(lines[k].sku());
    categories[k] = Hash(lines[k].category());
  }
  // True when some line has `value`: by hash first, so that an offer whose
  // SKU is not in the basket is ruled out without reading the offer.
  const auto basket_has = [&](const Candidate& c) {
    const bool sku = c.needs == Needs::kSku;
    const uint64_t* hashes = sku ? skus : categories;
    const Offer* offer = nullptr;
    for (size_t k = 0; k < lines.size(); ++k) {
      if (k < hashed && hashes[k] != c.needs_hash) continue;
      if (offer == nullptr) offer = &offers_[c.index];
      const std::string& value =
          sku ? (offer->required_sku().empty() ? offer->scope().value() : offer->required_sku())
              : (offer->required_category().empty() ? offer->scope().value()
                                                    : offer->required_category());
      if ((sku ? lines[k].sku() : lines[k].category()) == value) return true;
    }
    return false;
  };
  std::erase_if(ranks, [&](uint32_t rank) {
    const Candidate& c = ranked_[rank];
    if (!c.valid) return true;
    if (c.needs != Needs::kNothing && !basket_has(c)) return true;
    return !Targets(rank, tier, member, context);
  });
  return InOrder(ranks);
}

loyalty::v1::OfferView OfferIndex::View(const Offer* offer, const MemberState& member) const {
  const auto i = static_cast<size_t>(offer - offers_.data());
  loyalty::v1::OfferView view = views_[i];
  if (offer->per_member_limit() > 0) {
    const int64_t left = OfferUsesLeft(*offer, member);
    const std::string& head = conditions_head_[i];
    view.set_conditions(head + (head.empty() ? "" : ", ") +
                        UsageLimitWords(offer->per_member_limit(), left));
    view.set_uses_left(left);
  }
  return view;
}

}  // namespace loyalty::core
