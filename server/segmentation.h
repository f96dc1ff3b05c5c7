// Segmentation jobs of loyalty-server (core/features.h, core/segment_expr.h
// define the features and the expression format; ServerStore keeps members'
// segments current after every ingested batch, incrementally).
//
// FullPass: the recompute of every member, in steps small enough to
// interleave with ingest and sync on the one database thread:
//   phase 1  ScanFeatures chunk by chunk (one index scan in member order);
//   then     programme-wide cut points (RFM quintiles, spend percentiles)
//            from every member's features, saved for incremental updates;
//            every member rescored and re-evaluated with them;
//   phase 2  ApplySegments chunk by chunk; a member ingested after its chunk
//            was scanned is recomputed from its events at that point.
// Segmenter runs FullPass on the DbWorker, one step per job, on a schedule
// (members whose windows expired move without events), at start and after a
// segment definition changes.
//
// Previews and KPIs (EvaluateSegment, PreviewPromotion, Kpis) scan every
// member in one call: they run on the database thread and block it for the
// scan (seconds at a million members).
//
// Thread safety: FullPass and the free functions belong to the database
// thread. Segmenter's public methods may be called from any thread.
#pragma once

#include <utility>  // before Asio (Boost 1.74)

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>

#include "core/result.h"
#include "loyalty/v1/segments.pb.h"
#include "server/db_worker.h"
#include "storage/server_store.h"

namespace loyalty::server {

class FullPass {
 public:
  FullPass(int64_t now_ms, int chunk_members) : now_ms_(now_ms), chunk_(chunk_members) {}
  // One unit of work; true when the pass is complete.
  core::Result<bool> Step(storage::ServerStore& store);
  // Runs every step (tests, benchmarks).
  core::Status RunAll(storage::ServerStore& store);

  int64_t members() const { return static_cast<int64_t>(features_.size()); }
  int64_t changed() const { return changed_; }
  uint64_t latest_version() const { return latest_version_; }

 private:
  int64_t now_ms_;
  int chunk_;
  bool scanned_ = false;
  std::string cursor_;
  std::vector<loyalty::v1::MemberFeatures> features_;
  std::vector<std::pair<size_t, uint64_t>> chunk_ends_;  // end index, scanned version
  size_t applied_chunks_ = 0;
  int64_t changed_ = 0;
  uint64_t latest_version_ = 0;
};

// How many members `segment` holds now (validated first: invalid_segment).
core::Result<loyalty::v1::SegmentPreview> PreviewSegment(storage::ServerStore& store,
                                                         const loyalty::v1::SegmentDefinition& segment,
                                                         int64_t now_ms);

// Checks a promotion for publishing: core::ValidateOffer, every segment id
// defined, the window not ended at `now_ms`, no negative reward or budget.
core::Status ValidatePromotion(storage::ServerStore& store, const loyalty::v1::Offer& offer,
                               int64_t now_ms);

// Reach and estimated cost of a promotion (validated first). Method: reach
// counts members matching its tiers and segments now; each is assumed to use
// it once per 30 days' visits within the window (at most per_member_limit, at
// least once), over their average basket: bonus_points per use; multiplier
// (pct - 100) % of basket points; percent_off of the basket; amount_off; buy
// X get Y as basket / (X + Y) * Y. Points are valued at the programme's
// redemption rate.
core::Result<loyalty::v1::PromotionPreview> PreviewPromotion(storage::ServerStore& store,
                                                             const loyalty::v1::Offer& offer,
                                                             int64_t now_ms);

// Per segment and per promotion (since `since_ms` for segment moves).
core::Result<loyalty::v1::KpiReport> Kpis(storage::ServerStore& store, int64_t since_ms,
                                          int64_t now_ms);

class Segmenter : public std::enable_shared_from_this<Segmenter> {
 public:
  // `feed_advanced` is told the feed version after a pass moved members.
  static std::shared_ptr<Segmenter> Create(boost::asio::io_context& ioc, DbWorker& db,
                                           std::chrono::minutes every,
                                           std::function<void(uint64_t)> feed_advanced,
                                           int chunk_members = 5000);
  // Starts the schedule with a pass now.
  void Start();
  // Starts a full pass unless one is running (then another follows it).
  void RequestFullPass();
  void Stop();

 private:
  Segmenter(boost::asio::io_context& ioc, DbWorker& db, std::chrono::minutes every,
            std::function<void(uint64_t)> feed_advanced, int chunk_members);
  void Arm();
  void PostStep(std::shared_ptr<FullPass> pass);

  DbWorker& db_;
  boost::asio::steady_timer timer_;
  const std::chrono::minutes every_;
  const std::function<void(uint64_t)> feed_advanced_;
  const int chunk_;
  std::atomic<bool> running_{false};
  std::atomic<bool> again_{false};
  std::atomic<bool> stopped_{false};
};

}  // namespace loyalty::server
