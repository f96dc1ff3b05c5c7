#include "server/segmentation.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/features.h"
#include "core/offers.h"
#include "core/programme.h"
#include "core/segment_expr.h"
#include "core/time_util.h"

namespace loyalty::server {
namespace {

namespace v1 = loyalty::v1;
using core::MakeError;

constexpr int kScanChunk = 20000;

// Calls `visit` for every member's features (scored with the stored cuts).
core::Status ForEachMember(storage::ServerStore& store, int64_t now_ms,
                           const std::function<void(const v1::MemberFeatures&)>& visit) {
  std::string cursor;
  for (;;) {
    auto chunk = store.ScanFeatures(cursor, kScanChunk, now_ms);
    if (!chunk.ok()) return chunk.error();
    for (const auto& f : chunk->features) visit(f);
    if (chunk->last_member_id.empty()) return {};
    cursor = chunk->last_member_id;
  }
}

bool Intersects(const google::protobuf::RepeatedPtrField<std::string>& a,
                const google::protobuf::RepeatedPtrField<std::string>& b) {
  for (const auto& x : a) {
    if (std::find(b.begin(), b.end(), x) != b.end()) return true;
  }
  return false;
}

}  // namespace

// ------------------------------------------------------------- FullPass --

core::Result<bool> FullPass::Step(storage::ServerStore& store) {
  if (!scanned_) {
    auto chunk = store.ScanFeatures(cursor_, chunk_, now_ms_);
    if (!chunk.ok()) return chunk.error();
    for (auto& f : chunk->features) features_.push_back(std::move(f));
    chunk_ends_.emplace_back(features_.size(), chunk->scanned_version);
    cursor_ = chunk->last_member_id;
    if (!cursor_.empty()) return false;
    scanned_ = true;
    // Cut points over every member, then rescore and re-evaluate with them.
    v1::CutPoints cuts = core::ComputeCutPoints(features_, now_ms_);
    if (auto s = store.PutCutPoints(cuts); !s.ok()) return s.error();
    auto defs = store.Segments();
    if (!defs.ok()) return defs.error();
    const core::SegmentSet set(*defs);
    for (auto& f : features_) {
      core::ScoreFeatures(&cuts, &f);
      f.clear_segment_ids();
      for (auto& id : set.Evaluate(f)) f.add_segment_ids(std::move(id));
    }
    return false;
  }
  if (applied_chunks_ < chunk_ends_.size()) {
    const size_t begin = applied_chunks_ == 0 ? 0 : chunk_ends_[applied_chunks_ - 1].first;
    const auto [end, version] = chunk_ends_[applied_chunks_];
    auto changed = store.ApplySegments(
        std::span<const v1::MemberFeatures>(features_.data() + begin, end - begin), version,
        now_ms_);
    if (!changed.ok()) return changed.error();
    changed_ += *changed;
    ++applied_chunks_;
  }
  if (applied_chunks_ < chunk_ends_.size()) return false;
  auto latest = store.LatestVersion();
  if (!latest.ok()) return latest.error();
  latest_version_ = *latest;
  return true;
}

core::Status FullPass::RunAll(storage::ServerStore& store) {
  for (;;) {
    auto done = Step(store);
    if (!done.ok()) return done.error();
    if (*done) return {};
  }
}

// ------------------------------------------------------------- previews --

core::Result<v1::SegmentPreview> PreviewSegment(storage::ServerStore& store,
                                                const v1::SegmentDefinition& segment,
                                                int64_t now_ms) {
  if (auto s = core::ValidateSegment(segment); !s.ok()) return s.error();
  auto expr = core::SegmentExpr::Parse(segment.expression());
  if (!expr.ok()) return expr.error();
  v1::SegmentPreview preview;
  preview.set_id(segment.id());
  auto s = ForEachMember(store, now_ms, [&](const v1::MemberFeatures& f) {
    preview.set_total_members(preview.total_members() + 1);
    if (!expr->Matches(f)) return;
    preview.set_members(preview.members() + 1);
    if (preview.sample_member_ids_size() < 10) preview.add_sample_member_ids(f.member_id());
  });
  if (!s.ok()) return s.error();
  return preview;
}

core::Status ValidatePromotion(storage::ServerStore& store, const v1::Offer& offer,
                               int64_t now_ms) {
  if (auto s = core::ValidateOffer(offer); !s.ok()) return s;
  auto bad = [](std::string m) { return MakeError(core::code::kInvalidOffer, std::move(m)); };
  if (offer.ends_at_ms() != 0 && offer.ends_at_ms() <= now_ms) {
    return bad("the promotion's window ended at " + core::FormatDate(offer.ends_at_ms()) +
               " (ends_at_ms " + std::to_string(offer.ends_at_ms()) + ")");
  }
  if (offer.bonus_points() < 0 || offer.amount_off() < 0) return bad("the reward is negative");
  if (offer.budget_points() < 0 || offer.budget_discount() < 0) return bad("the budget is negative");
  auto defs = store.Segments();
  if (!defs.ok()) return defs.error();
  for (const auto& id : offer.segment_ids()) {
    if (std::none_of(defs->begin(), defs->end(),
                     [&](const v1::SegmentDefinition& d) { return d.id() == id; })) {
      return bad("segment_ids: no segment \"" + id + "\" is defined");
    }
  }
  return {};
}

core::Result<v1::PromotionPreview> PreviewPromotion(storage::ServerStore& store,
                                                    const v1::Offer& offer, int64_t now_ms) {
  if (auto s = ValidatePromotion(store, offer, now_ms); !s.ok()) return s.error();
  auto programme = store.Programme();
  if (!programme.ok()) return programme.error();
  const int64_t start = std::max(now_ms, offer.starts_at_ms());
  const int64_t end = offer.ends_at_ms() != 0 ? offer.ends_at_ms() : now_ms + 30 * core::kMillisPerDay;
  const int64_t window_days = std::max<int64_t>(1, (end - start) / core::kMillisPerDay);
  v1::PromotionPreview p;
  p.set_offer_id(offer.id());
  p.set_method(
      "reach: members in its segments now; uses per member: visits in the last 30 days scaled to "
      "the window (at least 1, at most per_member_limit); cost per use from the member's average "
      "basket; points valued at the programme's redemption rate");
  auto s = ForEachMember(store, now_ms, [&](const v1::MemberFeatures& f) {
    if (!offer.segment_ids().empty() && !Intersects(offer.segment_ids(), f.segment_ids())) return;
    p.set_reach(p.reach() + 1);
    int64_t uses = std::max<int64_t>(1, f.visits_30d() * window_days / 30);
    if (offer.per_member_limit() > 0) uses = std::min<int64_t>(uses, offer.per_member_limit());
    const int64_t basket = std::max<int64_t>(0, f.avg_basket());
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
    p.set_estimated_points(p.estimated_points() + points * uses);
    p.set_estimated_discount(p.estimated_discount() + discount * uses);
  });
  if (!s.ok()) return s.error();
  const int64_t point_value =
      programme->redemption_points() > 0
          ? p.estimated_points() * programme->redemption_value() / programme->redemption_points()
          : 0;
  p.set_estimated_cost(p.estimated_discount() + point_value);
  if (!offer.tiers().empty()) p.add_warnings("reach ignores the tier condition (members of every tier counted)");
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

core::Result<v1::KpiReport> Kpis(storage::ServerStore& store, int64_t since_ms, int64_t now_ms) {
  auto defs = store.Segments();
  if (!defs.ok()) return defs.error();
  auto offers = store.Offers();
  if (!offers.ok()) return offers.error();
  auto uses = store.OfferUses();
  if (!uses.ok()) return uses.error();
  auto moves = store.SegmentMoves(since_ms);
  if (!moves.ok()) return moves.error();
  std::map<std::string, std::set<std::string>> used_by_member;  // member -> offers
  for (const auto& u : *uses) used_by_member[u.member_id].insert(u.offer_id);
  std::map<std::string, const v1::Offer*> offer_by_id;
  for (const auto& o : *offers) offer_by_id[o.id()] = &o;

  struct Agg {
    int64_t members = 0, visits = 0, spend = 0, basket_spend = 0, purchases = 0, redeemers = 0;
  };
  std::map<std::string, Agg> seg;
  std::map<std::string, int64_t> reach;
  auto s = ForEachMember(store, now_ms, [&](const v1::MemberFeatures& f) {
    auto used = used_by_member.find(f.member_id());
    for (const auto& id : f.segment_ids()) {
      Agg& a = seg[id];
      ++a.members;
      a.visits += f.visits_30d();
      a.spend += f.spend_30d();
      a.basket_spend += f.spend_since_enrolment();
      a.purchases += f.purchases_since_enrolment();
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
    for (const auto& o : *offers) {
      if (o.segment_ids().empty() || Intersects(o.segment_ids(), f.segment_ids())) ++reach[o.id()];
    }
  });
  if (!s.ok()) return s.error();
  v1::KpiReport report;
  report.set_as_of_ms(now_ms);
  report.set_since_ms(since_ms);
  for (const auto& d : *defs) {
    const Agg& a = seg[d.id()];
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
  for (const auto& o : *offers) {
    auto& k = promos[o.id()];
    k.set_offer_id(o.id());
    k.set_reach(reach[o.id()]);
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
  PostStep(std::make_shared<FullPass>(now, chunk_));
}

void Segmenter::PostStep(std::shared_ptr<FullPass> pass) {
  auto self = shared_from_this();
  // One step per job, so ingest and sync jobs run between the chunks.
  const bool posted = db_.Post([self, pass](storage::ServerStore& store) {
    auto done = pass->Step(store);
    if (done.ok() && !*done && !self->stopped_) return self->PostStep(pass);
    if (!done.ok()) {
      spdlog::error("segmentation: full pass failed: {} ({})", done.error().message,
                    done.error().code);
    } else if (*done) {
      spdlog::info("segmentation: full pass done: {} members, {} moved", pass->members(),
                   pass->changed());
      if (pass->changed() > 0 && self->feed_advanced_) self->feed_advanced_(pass->latest_version());
    }
    self->running_ = false;
    if (self->again_.exchange(false)) self->RequestFullPass();
  });
  if (!posted) {
    spdlog::warn("segmentation: database queue full; full pass deferred to the next schedule");
    running_ = false;
  }
}

}  // namespace loyalty::server
