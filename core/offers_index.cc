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
  entries_.resize(offers_.size());
  views_.reserve(offers_.size());
  for (size_t i = 0; i < offers_.size(); ++i) {
    const Offer& o = offers_[i];
    Entry& e = entries_[i];
    for (const auto& t : o.tiers()) e.tiers.push_back(Intern(tier_ids_, t));
    for (const auto& s : o.segment_ids()) e.segments.push_back(Intern(segment_ids_, s));
    e.priority = o.priority();
    e.member_checks = !o.store_ids().empty() || o.starts_at_ms() > 0 || o.ends_at_ms() > 0 ||
                      !o.weekdays().empty() || o.from_hour() != o.to_hour() ||
                      o.per_member_limit() > 0;
    e.valid = ValidateOffer(o).ok();
    std::string_view needs;
    if (!o.required_sku().empty()) {
      e.needs = Entry::Needs::kSku;
      needs = o.required_sku();
    } else if (o.scope().kind() == OfferScope::SKU) {
      e.needs = Entry::Needs::kSku;
      needs = o.scope().value();
    } else if (!o.required_category().empty()) {
      e.needs = Entry::Needs::kCategory;
      needs = o.required_category();
    } else if (o.scope().kind() == OfferScope::CATEGORY) {
      e.needs = Entry::Needs::kCategory;
      needs = o.scope().value();
    }
    e.needs_hash = Hash(needs);
    views_.push_back(MakeOfferView(o, programme, nobody));
    if (o.per_member_limit() > 0) {
      Offer unlimited = o;
      unlimited.set_per_member_limit(0);
      e.conditions_head = MakeOfferView(unlimited, programme, nobody).conditions();
    }
  }
  by_tier_.resize(tier_ids_.size());
  by_segment_.resize(segment_ids_.size());
  for (size_t i = 0; i < offers_.size(); ++i) {
    const Entry& e = entries_[i];
    const auto index = static_cast<uint32_t>(i);
    if (!e.segments.empty()) {
      for (int s : e.segments) by_segment_[static_cast<size_t>(s)].push_back(index);
    } else if (!e.tiers.empty()) {
      for (int t : e.tiers) by_tier_[static_cast<size_t>(t)].push_back(index);
    } else {
      general_.push_back(index);
    }
  }
  // An offer listing a segment (or tier) twice is in its bucket once.
  for (auto* buckets : {&by_tier_, &by_segment_}) {
    for (auto& bucket : *buckets) {
      bucket.erase(std::unique(bucket.begin(), bucket.end()), bucket.end());
    }
  }
}

int OfferIndex::Intern(std::unordered_map<std::string, int>& names, const std::string& name) {
  return names.try_emplace(name, static_cast<int>(names.size())).first->second;
}

void OfferIndex::TargetedIndexes(const MemberState& member, const CheckoutContext& context,
                                 std::vector<uint32_t>* out) const {
  out->clear();
  out->insert(out->end(), general_.begin(), general_.end());
  const int tier = Lookup(tier_ids_, member.tier);
  if (tier >= 0) {
    const auto& bucket = by_tier_[static_cast<size_t>(tier)];
    out->insert(out->end(), bucket.begin(), bucket.end());
  }
  int segments[8];
  std::vector<int> more_segments;  // members in more than 8 segments
  size_t segment_count = 0;
  for (const std::string& name : member.segment_ids) {
    const int id = Lookup(segment_ids_, name);
    if (id < 0) continue;
    if (segment_count < std::size(segments)) {
      segments[segment_count++] = id;
    } else {
      more_segments.push_back(id);
    }
    const auto& bucket = by_segment_[static_cast<size_t>(id)];
    out->insert(out->end(), bucket.begin(), bucket.end());
  }
  std::sort(out->begin(), out->end());
  out->erase(std::unique(out->begin(), out->end()), out->end());

  const auto in_segment = [&](int id) {
    return std::find(segments, segments + segment_count, id) != segments + segment_count ||
           std::find(more_segments.begin(), more_segments.end(), id) != more_segments.end();
  };
  std::erase_if(*out, [&](uint32_t i) {
    const Entry& e = entries_[i];
    if (!e.tiers.empty() && !Contains(e.tiers, tier)) return true;
    if (!e.segments.empty() && std::none_of(e.segments.begin(), e.segments.end(), in_segment)) {
      return true;
    }
    return e.member_checks && !IsOfferAvailable(offers_[i], member, context);
  });
  std::sort(out->begin(), out->end(), [&](uint32_t a, uint32_t b) {
    const int32_t pa = entries_[a].priority, pb = entries_[b].priority;
    return pa != pb ? pa > pb : a < b;
  });
}

std::vector<const Offer*> OfferIndex::Targeted(const MemberState& member,
                                               const CheckoutContext& context) const {
  std::vector<uint32_t> indexes;
  TargetedIndexes(member, context, &indexes);
  std::vector<const Offer*> out;
  out.reserve(indexes.size());
  for (uint32_t i : indexes) out.push_back(&offers_[i]);
  return out;
}

std::vector<const Offer*> OfferIndex::ForBasket(
    const MemberState& member, const CheckoutContext& context,
    std::span<const loyalty::v1::BasketLine> lines) const {
  std::vector<uint32_t> indexes;
  TargetedIndexes(member, context, &indexes);
  std::vector<uint64_t> skus, categories;
  skus.reserve(lines.size());
  categories.reserve(lines.size());
  for (const auto& line : lines) {
    skus.push_back(Hash(line.sku()));
    categories.push_back(Hash(line.category()));
  }
  // True when some line has `value` (by hash, then by text).
  const auto basket_has = [&](const std::vector<uint64_t>& hashes, uint64_t hash, bool sku,
                              const std::string& value) {
    for (size_t k = 0; k < lines.size(); ++k) {
      if (hashes[k] == hash && (sku ? lines[k].sku() : lines[k].category()) == value) return true;
    }
    return false;
  };
  std::vector<const Offer*> out;
  out.reserve(indexes.size());
  for (uint32_t i : indexes) {
    const Entry& e = entries_[i];
    if (!e.valid) continue;
    const Offer& o = offers_[i];
    switch (e.needs) {
      case Entry::Needs::kNothing:
        break;
      case Entry::Needs::kSku: {
        const std::string& sku = o.required_sku().empty() ? o.scope().value() : o.required_sku();
        if (!basket_has(skus, e.needs_hash, true, sku)) continue;
        break;
      }
      case Entry::Needs::kCategory: {
        const std::string& category =
            o.required_category().empty() ? o.scope().value() : o.required_category();
        if (!basket_has(categories, e.needs_hash, false, category)) continue;
        break;
      }
    }
    out.push_back(&o);
  }
  return out;
}

loyalty::v1::OfferView OfferIndex::View(const Offer* offer, const MemberState& member) const {
  const auto i = static_cast<size_t>(offer - offers_.data());
  loyalty::v1::OfferView view = views_[i];
  if (offer->per_member_limit() > 0) {
    const int64_t left = OfferUsesLeft(*offer, member);
    const std::string& head = entries_[i].conditions_head;
    view.set_conditions(head + (head.empty() ? "" : ", ") +
                        UsageLimitWords(offer->per_member_limit(), left));
    view.set_uses_left(left);
  }
  return view;
}

}  // namespace loyalty::core
