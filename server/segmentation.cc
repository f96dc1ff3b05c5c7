#include "server/segmentation.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include "core/features.h"
#include "core/int_math.h"
#include "core/offers.h"
#include "core/programme.h"
#include "core/segment_expr.h"
#include "core/text.h"
#include "core/time_util.h"

namespace loyalty::server {
namespace {

namespace v1 = loyalty::v1;
using core::MakeError;
using Clock = std::chrono::steady_clock;

int64_t MillisSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// Holds a reader's snapshot for a scope.
class Snapshot {
 public:
  explicit Snapshot(storage::ServerReader& reader) : reader_(reader) {}
  ~Snapshot() {
    if (open_) reader_.EndSnapshot();
  }
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  core::Status Begin() {
    if (auto s = reader_.BeginSnapshot(); !s.ok()) return s;
    open_ = true;
    return {};
  }

 private:
  storage::ServerReader& reader_;
  bool open_ = false;
};

// Which of `set`'s segments a member is in (by definition index).
void EvaluateAll(const core::SegmentSet& set, const core::FeatureValues& f,
                 std::vector<char>* in) {
  in->assign(set.size(), 0);
  for (size_t i = 0; i < set.size(); ++i) (*in)[i] = set.Matches(i, f) ? 1 : 0;
}

// A promotion's targeting, as a terminal applies it (core/offers.h), over
// the members a scan reads: its segments, tiers and stores, each when given.
class Targeting {
 public:
  Targeting(const v1::Offer& offer, const core::SegmentSet& set)
      : tiers_(offer.tiers().begin(), offer.tiers().end()),
        stores_(offer.store_ids().begin(), offer.store_ids().end()),
        any_segment_(offer.segment_ids().empty()) {
    for (size_t i = 0; i < set.size(); ++i) {
      const std::string& id = set.definitions()[i].id();
      if (std::find(offer.segment_ids().begin(), offer.segment_ids().end(), id) !=
          offer.segment_ids().end()) {
        segments_.push_back(i);
      }
    }
  }

  // `in` is the member's segments (EvaluateAll).
  bool Reaches(const storage::ScannedMember& m, const std::vector<char>& in) const {
    if (!any_segment_ &&
        std::none_of(segments_.begin(), segments_.end(), [&](size_t i) { return in[i] != 0; })) {
      return false;
    }
    if (!tiers_.empty() && std::find(tiers_.begin(), tiers_.end(), m.tier) == tiers_.end()) {
      return false;
    }
    if (stores_.empty()) return true;
    return std::any_of(m.stores.begin(), m.stores.end(),
                       [&](const storage::StoreVisits& v) { return AtOurStore(v); });
  }

  // The member's visits in the last 30 days that can use it.
  int64_t Visits30d(const storage::ScannedMember& m) const {
    if (stores_.empty()) return m.features.visits_30d;
    int64_t visits = 0;
    for (const auto& v : m.stores) visits += AtOurStore(v) ? v.visits_30d : 0;
    return visits;
  }

  bool needs_tier() const { return !tiers_.empty(); }
  bool needs_stores() const { return !stores_.empty(); }

 private:
  bool AtOurStore(const storage::StoreVisits& v) const {
    return std::find(stores_.begin(), stores_.end(), v.store_id) != stores_.end();
  }

  std::vector<std::string> tiers_;
  std::vector<std::string> stores_;
  std::vector<size_t> segments_;  // definition indexes of the promotion's segments
  bool any_segment_;
};

}  // namespace

// ------------------------------------------------------------- FullPass --

std::vector<std::string> SplitMemberRange(std::string_view lo, std::string_view hi, int parts) {
  size_t prefix = 0;
  while (prefix < lo.size() && prefix < hi.size() && lo[prefix] == hi[prefix]) ++prefix;
  auto number = [&](std::string_view id) {
    uint64_t v = 0;
    for (size_t i = 0; i < 8; ++i) {
      v = v << 8 | (prefix + i < id.size() ? static_cast<unsigned char>(id[prefix + i]) : 0u);
    }
    return v;
  };
  const uint64_t a = number(lo), b = number(hi);
  std::vector<std::string> out;
  if (parts < 2 || b <= a) return out;
  for (int k = 1; k < parts; ++k) {
    const uint64_t x = a + (b - a) / static_cast<uint64_t>(parts) * static_cast<uint64_t>(k);
    std::string key(lo.substr(0, prefix));
    for (int i = 7; i >= 0; --i) key.push_back(static_cast<char>(x >> (8 * i) & 0xff));
    while (key.size() > prefix && key.back() == '\0') key.pop_back();
    if (out.empty() ? !key.empty() : key > out.back()) out.push_back(std::move(key));
  }
  return out;
}

FullPass::FullPass(int64_t now_ms, int apply_chunk, int scan_threads)
    : now_ms_(now_ms),
      apply_chunk_(apply_chunk),
      scan_threads_(scan_threads > 0
                        ? scan_threads
                        : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 2u))) {}

core::Status FullPass::Scan(storage::ServerReader& reader, const Progress& progress) {
  if (scanned_) return MakeError(core::code::kInternal, "the full pass was already scanned");
  scanned_ = true;
  const auto started = Clock::now();
  core::SegmentSet set;
  // What one scan thread read: its members, their features and saved
  // segments (words_ words each, as changed_bits_).
  struct Part {
    std::vector<std::string> ids;
    std::vector<core::FeatureValues> values;
    std::vector<uint64_t> saved_bits;
    core::TextPool texts;  // owns the values' texts
    uint64_t version = 0;
    core::Status status;
  };
  std::vector<Part> parts(1);
  {
    Snapshot snapshot(reader);
    if (auto s = snapshot.Begin(); !s.ok()) return s;
    auto version = reader.LatestVersion();
    if (!version.ok()) return version.error();
    parts[0].version = *version;
    auto defs = reader.Segments();
    if (!defs.ok()) return defs.error();
    set = core::SegmentSet(*defs);
    for (const auto& d : set.definitions()) segment_ids_.push_back(d.id());
    // One more bit: "holds a segment that is no longer defined".
    const size_t stale = segment_ids_.size();
    words_ = (stale + 1 + 63) / 64;
    std::unordered_map<std::string_view, size_t> index;
    for (size_t i = 0; i < segment_ids_.size(); ++i) index.emplace(segment_ids_[i], i);

    // Ranges of member ids, taken from a queue by the scan threads. Each
    // thread reads its own snapshot: a member is read once, in one of them,
    // and the writes recompute whoever changed after the oldest.
    std::vector<std::string> bounds;
    std::vector<std::unique_ptr<storage::ServerReader>> helpers;
    if (scan_threads_ > 1) {
      auto ids = reader.MemberIdBounds();
      if (!ids.ok()) return ids.error();
      if (*ids) bounds = SplitMemberRange((*ids)->first, (*ids)->second, 16 * scan_threads_);
      for (int i = 1; i < scan_threads_ && !bounds.empty(); ++i) {
        auto helper = reader.OpenAnother();
        if (!helper.ok()) {
          spdlog::warn("segmentation: scanning with fewer threads: {}", helper.error().message);
          break;
        }
        helpers.push_back(std::move(*helper));
      }
    }
    parts.resize(1 + helpers.size());
    std::atomic<size_t> next_range{0};
    std::atomic<int64_t> scanned{0};
    auto work = [&](storage::ServerReader& r, Part& part) {
      storage::MemberScanOptions options;
      options.now_ms = now_ms_;
      options.segment_rows = true;
      for (size_t range = next_range++; range <= bounds.size(); range = next_range++) {
        options.from_member = range == 0 ? std::string() : bounds[range - 1];
        options.to_member = range == bounds.size() ? std::string() : bounds[range];
        part.status = r.ScanMembers(options, [&](const storage::ScannedMember& m) {
          part.ids.emplace_back(m.member_id);
          part.values.push_back(m.features);
          core::Intern(part.texts, &part.values.back());
          const size_t base = part.saved_bits.size();
          part.saved_bits.resize(base + words_, 0);
          for (const std::string_view row : m.segment_rows) {
            auto it = index.find(row);
            const size_t bit = it != index.end() ? it->second : stale;
            part.saved_bits[base + bit / 64] |= uint64_t{1} << (bit % 64);
          }
          const int64_t n = ++scanned;
          if (progress) progress(n);
        });
        if (!part.status.ok()) return;
      }
    };
    std::vector<std::thread> threads;
    for (size_t i = 0; i < helpers.size(); ++i) {
      threads.emplace_back([&, i] {
        storage::ServerReader& r = *helpers[i];
        Part& part = parts[i + 1];
        Snapshot own(r);
        if (part.status = own.Begin(); !part.status.ok()) return;
        auto v = r.LatestVersion();
        if (!v.ok()) {
          part.status = v.error();
          return;
        }
        part.version = *v;
        work(r, part);
      });
    }
    work(reader, parts[0]);
    for (auto& t : threads) t.join();
  }
  scanned_version_ = parts[0].version;
  for (const Part& part : parts) {
    if (!part.status.ok()) return part.status;
    scanned_version_ = std::min(scanned_version_, part.version);
    members_ += static_cast<int64_t>(part.ids.size());
  }
  timings_.scan_ms = MillisSince(started);

  // Cut points over every member, then rescore and re-evaluate with them;
  // keep the members whose segments moved.
  const auto evaluating = Clock::now();
  core::CutPointsBuilder builder;
  builder.Reserve(static_cast<size_t>(members_));
  for (const Part& part : parts) {
    for (const auto& v : part.values) builder.Add(v);
  }
  cuts_ = std::move(builder).Build(now_ms_);
  std::vector<uint64_t> bits(words_);
  for (Part& part : parts) {
    for (size_t m = 0; m < part.values.size(); ++m) {
      core::ScoreFeatures(&cuts_, &part.values[m]);
      std::fill(bits.begin(), bits.end(), 0);
      for (size_t i = 0; i < set.size(); ++i) {
        if (set.Matches(i, part.values[m])) bits[i / 64] |= uint64_t{1} << (i % 64);
      }
      if (std::equal(bits.begin(), bits.end(), part.saved_bits.begin() + m * words_)) continue;
      changed_ids_.push_back(std::move(part.ids[m]));
      changed_bits_.insert(changed_bits_.end(), bits.begin(), bits.end());
    }
  }
  timings_.evaluate_ms = MillisSince(evaluating);
  return {};
}

core::Result<bool> FullPass::ApplyStep(storage::ServerStore& store) {
  if (!scanned_) return MakeError(core::code::kInternal, "the full pass was not scanned");
  const auto started = Clock::now();
  if (!installed_) {
    auto moved = store.InstallCutPoints(cuts_, scanned_version_, now_ms_);
    if (!moved.ok()) return moved.error();
    changed_ += *moved;
    installed_ = true;
  } else if (next_ < changed_ids_.size()) {
    const size_t end = std::min(changed_ids_.size(), next_ + static_cast<size_t>(apply_chunk_));
    std::vector<storage::SegmentAssignment> chunk;
    chunk.reserve(end - next_);
    for (size_t m = next_; m < end; ++m) {
      storage::SegmentAssignment& a = chunk.emplace_back();
      a.member_id = changed_ids_[m];
      for (size_t i = 0; i < segment_ids_.size(); ++i) {
        if (changed_bits_[m * words_ + i / 64] >> (i % 64) & 1) a.segment_ids.push_back(segment_ids_[i]);
      }
    }
    auto moved = store.ApplySegments(chunk, scanned_version_, now_ms_);
    if (!moved.ok()) return moved.error();
    changed_ += *moved;
    next_ = end;
  }
  timings_.apply_ms += MillisSince(started);
  if (next_ < changed_ids_.size()) return false;
  auto latest = store.LatestVersion();
  if (!latest.ok()) return latest.error();
  latest_version_ = *latest;
  return true;
}

core::Status FullPass::RunAll(storage::ServerReader& reader, storage::ServerStore& store) {
  if (auto s = Scan(reader); !s.ok()) return s;
  for (;;) {
    auto done = ApplyStep(store);
    if (!done.ok()) return done.error();
    if (*done) return {};
  }
}

// ------------------------------------------------------------- previews --

core::Result<v1::SegmentPreview> PreviewSegment(storage::ServerReader& reader,
                                                const v1::SegmentDefinition& segment,
                                                int64_t now_ms) {
  if (auto s = core::ValidateSegment(segment); !s.ok()) return s.error();
  auto expr = core::SegmentExpr::Parse(segment.expression());
  if (!expr.ok()) return expr.error();
  v1::SegmentPreview preview;
  preview.set_id(segment.id());
  int64_t total = 0, members = 0;
  storage::MemberScanOptions options;
  options.now_ms = now_ms;
  auto s = reader.ScanMembers(options, [&](const storage::ScannedMember& m) {
    ++total;
    if (!expr->Matches(m.features)) return;
    ++members;
    if (preview.sample_member_ids_size() < 10) {
      preview.add_sample_member_ids(std::string(m.member_id));
    }
  });
  if (!s.ok()) return s.error();
  preview.set_total_members(total);
  preview.set_members(members);
  return preview;
}

core::Status ValidatePromotion(std::span<const v1::SegmentDefinition> segments,
                               const v1::Programme& programme, const v1::Offer& offer,
                               int64_t now_ms) {
  if (auto s = core::ValidateOffer(offer); !s.ok()) return s;
  auto bad = [](std::string m) { return MakeError(core::code::kInvalidOffer, std::move(m)); };
  if (offer.ends_at_ms() != 0 && offer.ends_at_ms() <= now_ms) {
    return bad("the promotion's window ended at " + core::FormatDate(offer.ends_at_ms()) +
               " (ends_at_ms " + std::to_string(offer.ends_at_ms()) + ")");
  }
  if (offer.bonus_points() < 0 || offer.amount_off() < 0) return bad("the reward is negative");
  if (offer.budget_points() < 0 || offer.budget_discount() < 0) return bad("the budget is negative");
  for (const auto& id : offer.segment_ids()) {
    if (std::none_of(segments.begin(), segments.end(),
                     [&](const v1::SegmentDefinition& d) { return d.id() == id; })) {
      return bad("segment_ids: no segment \"" + id + "\" is defined");
    }
  }
  // The id travels in every sync frame, answer and log line, and the name
  // is what customers and cashiers read.
  if (offer.id().size() > 64 || !core::IsPrintableToken(offer.id())) {
    return bad("id must be at most 64 printable ASCII characters without spaces");
  }
  if (offer.name().empty()) return bad("name is required: customers and cashiers see it");
  if (offer.name().size() > 80 || core::HasControlCharacters(offer.name())) {
    return bad("name must be at most 80 bytes without control characters");
  }
  for (const auto& tier : offer.tiers()) {
    if (std::none_of(programme.tiers().begin(), programme.tiers().end(),
                     [&](const v1::Tier& t) { return t.name() == tier; })) {
      std::string names;
      for (const auto& t : programme.tiers()) names += (names.empty() ? "" : ", ") + t.name();
      return bad("tiers: the programme has no tier \"" + tier + "\" (it has " + names + ")");
    }
  }
  return {};
}

core::Status ValidatePromotion(storage::ServerStore& store, const v1::Offer& offer,
                               int64_t now_ms) {
  auto defs = store.Segments();
  if (!defs.ok()) return defs.error();
  auto programme = store.Programme();
  if (!programme.ok()) return programme.error();
  return ValidatePromotion(*defs, *programme, offer, now_ms);
}

core::Result<v1::PromotionPreview> PreviewPromotion(storage::ServerReader& reader,
                                                    const v1::Offer& offer, int64_t now_ms) {
  Snapshot snapshot(reader);
  if (auto s = snapshot.Begin(); !s.ok()) return s.error();
  auto defs = reader.Segments();
  if (!defs.ok()) return defs.error();
  auto programme = reader.Programme();
  if (!programme.ok()) return programme.error();
  if (auto s = ValidatePromotion(*defs, *programme, offer, now_ms); !s.ok()) return s.error();
  const core::SegmentSet set(*defs);
  const Targeting targeting(offer, set);
  const int64_t start = std::max(now_ms, offer.starts_at_ms());
  const int64_t end = offer.ends_at_ms() != 0 ? offer.ends_at_ms() : now_ms + 30 * core::kMillisPerDay;
  const int64_t window_days = std::max<int64_t>(1, (end - start) / core::kMillisPerDay);
  v1::PromotionPreview p;
  p.set_offer_id(offer.id());
  p.set_method(
      "reach: members its segments, tiers and stores (visited within 365 days) hold now, each "
      "condition when given; uses per member: visits in the last 30 days (at its stores, when it "
      "names stores) scaled to the window (at least 1, at most per_member_limit); cost per use "
      "from the member's average basket; points valued at the programme's redemption rate");
  int64_t reach = 0;
  core::Int128 estimated_points = 0, estimated_discount = 0;
  std::vector<char> in;
  storage::MemberScanOptions options;
  options.now_ms = now_ms;
  options.tier = targeting.needs_tier();
  options.stores = targeting.needs_stores();
  auto s = reader.ScanMembers(options, [&](const storage::ScannedMember& m) {
    EvaluateAll(set, m.features, &in);
    if (!targeting.Reaches(m, in)) return;
    ++reach;
    int64_t uses = std::max<int64_t>(1, targeting.Visits30d(m) * window_days / 30);
    if (offer.per_member_limit() > 0) uses = std::min<int64_t>(uses, offer.per_member_limit());
    const int64_t basket = std::max<int64_t>(0, m.features.avg_basket);
    const int64_t basket_points =
        basket * programme->points_per_unit() / std::max<int64_t>(1, programme->minor_units());
    int64_t points = 0, discount = 0;
    switch (offer.reward_case()) {
      case v1::Offer::kBonusPoints: points = offer.bonus_points(); break;
      case v1::Offer::kPointsMultiplierPct:
        points = basket_points * (int64_t{offer.points_multiplier_pct()} - 100) / 100;
        break;
      case v1::Offer::kPercentOff: discount = basket * offer.percent_off() / 100; break;
      case v1::Offer::kAmountOff: discount = std::min(basket, offer.amount_off()); break;
      case v1::Offer::kBuyXGetY: {
        const int64_t x = offer.buy_x_get_y().buy(), y = offer.buy_x_get_y().get();
        discount = x + y > 0 ? basket / (x + y) * y : 0;
        break;
      }
      case v1::Offer::REWARD_NOT_SET: break;
    }
    estimated_points += core::Int128{points} * uses;
    estimated_discount += core::Int128{discount} * uses;
  });
  if (!s.ok()) return s.error();
  // Summed in 128 bits and shown at most INT64_MAX: a huge (if valid)
  // reward over a million members must not wrap into a negative cost.
  auto clamp = [](core::Int128 v) {
    return static_cast<int64_t>(std::min<core::Int128>(v, std::numeric_limits<int64_t>::max()));
  };
  const core::Int128 point_value =
      programme->redemption_points() > 0
          ? estimated_points * programme->redemption_value() / programme->redemption_points()
          : 0;
  p.set_reach(reach);
  p.set_estimated_points(clamp(estimated_points));
  p.set_estimated_discount(clamp(estimated_discount));
  p.set_estimated_cost(clamp(estimated_discount + point_value));
  if (offer.budget_points() > 0 && p.estimated_points() > offer.budget_points()) {
    p.add_warnings("estimated points " + std::to_string(p.estimated_points()) +
                   " exceed the points budget " + std::to_string(offer.budget_points()));
  }
  if (offer.budget_discount() > 0 && p.estimated_discount() > offer.budget_discount()) {
    p.add_warnings("estimated discount " + std::to_string(p.estimated_discount()) +
                   " exceeds the discount budget " + std::to_string(offer.budget_discount()));
  }
  return p;
}

core::Result<v1::KpiReport> Kpis(storage::ServerReader& reader, int64_t since_ms, int64_t now_ms) {
  Snapshot snapshot(reader);
  if (auto s = snapshot.Begin(); !s.ok()) return s.error();
  auto defs = reader.Segments();
  if (!defs.ok()) return defs.error();
  auto offers = reader.Offers();
  if (!offers.ok()) return offers.error();
  auto uses = reader.OfferUses();
  if (!uses.ok()) return uses.error();
  auto moves = reader.SegmentMoves(since_ms);
  if (!moves.ok()) return moves.error();
  std::map<std::string, std::set<std::string>, std::less<>> used_by_member;  // member -> offers
  for (const auto& u : *uses) used_by_member[u.member_id].insert(u.offer_id);
  std::map<std::string, const v1::Offer*> offer_by_id;
  for (const auto& o : *offers) offer_by_id[o.id()] = &o;
  const core::SegmentSet set(*defs);
  std::vector<Targeting> targeting;
  bool tiers = false, stores = false;
  for (const auto& o : *offers) {
    targeting.emplace_back(o, set);
    tiers = tiers || targeting.back().needs_tier();
    stores = stores || targeting.back().needs_stores();
  }

  struct Agg {
    int64_t members = 0, visits = 0, spend = 0, basket_spend = 0, purchases = 0, redeemers = 0;
  };
  std::vector<Agg> seg(set.size());
  std::vector<int64_t> reach(offers->size());
  std::vector<char> in;
  storage::MemberScanOptions options;
  options.now_ms = now_ms;
  options.tier = tiers;
  options.stores = stores;
  auto s = reader.ScanMembers(options, [&](const storage::ScannedMember& m) {
    const core::FeatureValues& f = m.features;
    EvaluateAll(set, f, &in);
    auto used = used_by_member.find(m.member_id);
    for (size_t i = 0; i < set.size(); ++i) {
      if (!in[i]) continue;
      const std::string& id = set.definitions()[i].id();
      Agg& a = seg[i];
      ++a.members;
      a.visits += f.visits_30d;
      a.spend += f.spend_30d;
      a.basket_spend += f.spend_since_enrolment;
      a.purchases += f.purchases_since_enrolment;
      if (used == used_by_member.end()) continue;
      for (const auto& offer_id : used->second) {
        auto o = offer_by_id.find(offer_id);
        if (o != offer_by_id.end() &&
            std::find(o->second->segment_ids().begin(), o->second->segment_ids().end(), id) !=
                o->second->segment_ids().end()) {
          ++a.redeemers;
          break;
        }
      }
    }
    for (size_t o = 0; o < targeting.size(); ++o) reach[o] += targeting[o].Reaches(m, in) ? 1 : 0;
  });
  if (!s.ok()) return s.error();
  v1::KpiReport report;
  report.set_as_of_ms(now_ms);
  report.set_since_ms(since_ms);
  for (const auto& d : *defs) {
    Agg a;
    for (size_t i = 0; i < set.size(); ++i) {
      if (set.definitions()[i].id() == d.id()) a = seg[i];
    }
    auto* k = report.add_segments();
    k->set_segment_id(d.id());
    k->set_members(a.members);
    k->set_target_members(d.target_members());
    k->set_visits_30d(a.visits);
    k->set_spend_30d(a.spend);
    k->set_avg_basket(a.purchases > 0 ? a.basket_spend / a.purchases : 0);
    k->set_redemption_rate_pct(a.members > 0 ? a.redeemers * 100 / a.members : 0);
    if (auto m = moves->find(d.id()); m != moves->end()) {
      k->set_entered_since(m->second.first);
      k->set_left_since(m->second.second);
    }
  }
  std::map<std::string, v1::PromotionKpi> promos;
  for (size_t o = 0; o < offers->size(); ++o) {
    auto& k = promos[(*offers)[o].id()];
    k.set_offer_id((*offers)[o].id());
    k.set_reach(reach[o]);
  }
  for (const auto& u : *uses) {
    auto& k = promos[u.offer_id];
    k.set_offer_id(u.offer_id);
    k.set_redemptions(k.redemptions() + 1);
    k.set_points_given(k.points_given() + u.points);
    k.set_discount_given(k.discount_given() + u.discount);
  }
  for (auto& [_, k] : promos) *report.add_promotions() = std::move(k);
  return report;
}

// ------------------------------------------------------------ Segmenter --

std::shared_ptr<Segmenter> Segmenter::Create(boost::asio::io_context& ioc, DbWorker& db,
                                             std::chrono::minutes every,
                                             std::function<void(uint64_t)> feed_advanced,
                                             int chunk_members) {
  return std::shared_ptr<Segmenter>(
      new Segmenter(ioc, db, every, std::move(feed_advanced), chunk_members));
}

Segmenter::Segmenter(boost::asio::io_context& ioc, DbWorker& db, std::chrono::minutes every,
                     std::function<void(uint64_t)> feed_advanced, int chunk_members)
    : db_(db),
      timer_(ioc),
      every_(every),
      feed_advanced_(std::move(feed_advanced)),
      chunk_(chunk_members) {}

void Segmenter::Start() {
  RequestFullPass();
  Arm();
}

void Segmenter::Stop() {
  stopped_ = true;
  timer_.cancel();
}

void Segmenter::Arm() {
  timer_.expires_after(every_);
  timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopped_) return;
    self->RequestFullPass();
    self->Arm();
  });
}

void Segmenter::RequestFullPass() {
  if (stopped_) return;
  if (running_.exchange(true)) {
    again_ = true;
    return;
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  spdlog::info("segmentation: full pass started");
  auto pass = std::make_shared<FullPass>(now, chunk_);
  auto self = shared_from_this();
  // The scan reads on the reader thread; ingest keeps the database thread.
  const bool posted = db_.PostRead([self, pass](storage::ServerReader& reader) {
    if (self->stopped_) return self->Finish();
    if (auto s = pass->Scan(reader); !s.ok()) {
      spdlog::error("segmentation: full pass failed: {} ({})", s.error().message, s.error().code);
      return self->Finish();
    }
    self->PostApply(pass);
  });
  if (!posted) {
    spdlog::warn("segmentation: reader busy or unavailable; full pass deferred to the next schedule");
    running_ = false;
  }
}

void Segmenter::PostApply(std::shared_ptr<FullPass> pass) {
  auto self = shared_from_this();
  // One step per job, so ingest and sync jobs run between the chunks.
  const bool posted = db_.Post([self, pass](storage::ServerStore& store) {
    auto done = pass->ApplyStep(store);
    if (done.ok() && !*done && !self->stopped_) return self->PostApply(pass);
    if (!done.ok()) {
      spdlog::error("segmentation: full pass failed: {} ({})", done.error().message,
                    done.error().code);
    } else if (*done) {
      const auto& t = pass->timings();
      spdlog::info(
          "segmentation: full pass done: {} members, {} moved (scan {} ms, evaluate {} ms, "
          "writes {} ms)",
          pass->members(), pass->changed(), t.scan_ms, t.evaluate_ms, t.apply_ms);
      if (pass->changed() > 0 && self->feed_advanced_) self->feed_advanced_(pass->latest_version());
    }
    self->Finish();
  });
  if (!posted) {
    spdlog::warn("segmentation: database queue full; full pass deferred to the next schedule");
    Finish();
  }
}

void Segmenter::Finish() {
  running_ = false;
  if (again_.exchange(false)) RequestFullPass();
}

}  // namespace loyalty::server
