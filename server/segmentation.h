// Segmentation jobs of loyalty-server (core/features.h, core/segment_expr.h
// define the features and the expression format; ServerStore keeps members'
// segments current after every ingested batch, incrementally).
//
// FullPass: the recompute of every member's features and segments, in two
// phases so that ingest never waits for it:
//   Scan       on a ServerReader (the DbWorker's reader thread), in one read
//              snapshot: every member's features from one pass over the
//              events' covering index, kept as plain core::FeatureValues;
//              programme-wide cut points (RFM quintiles, spend percentiles)
//              from them; every member rescored and its segments evaluated;
//              only the members whose segments differ from their saved ones
//              are kept.
//   ApplyStep  on the database thread, one job per step: first the cut points
//              are installed and the members ingested while the scan read
//              are recomputed with them; then the changed members' segments
//              are written, `apply_chunk` members per transaction.
// The scan uses both cores of a small server: up to two readers take ranges
// of member ids from a queue, each in its own snapshot.
// Segmenter runs FullPass on a schedule (members whose windows expired move
// without events), at start and after a segment definition changes.
//
// Previews and KPIs (PreviewSegment, PreviewPromotion, Kpis) also scan every
// member through a ServerReader; the admin API runs them on the reader
// thread, so they do not block ingest either.
//
// Thread safety: a FullPass is used by one thread at a time (the Segmenter
// hands it from the reader thread to the database thread through the
// DbWorker's queues). Segmenter's public methods may be called from any
// thread.
#pragma once

#include <utility>  // before Asio (Boost 1.74)

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "loyalty/v1/segments.pb.h"
#include "server/db_worker.h"
#include "storage/server_store.h"

namespace loyalty::server {

class FullPass {
 public:
  // Where the time went, in milliseconds.
  struct Timings {
    int64_t scan_ms = 0;      // reading and folding every member's events
    int64_t evaluate_ms = 0;  // cut points, scores, segments, comparison
    int64_t apply_ms = 0;     // the database thread's steps, summed
  };
  // Told the number of members read so far, after each member (tests).
  using Progress = std::function<void(int64_t members_scanned)>;

  // `scan_threads` readers scan ranges of members side by side (0: one per
  // core, at most 2).
  explicit FullPass(int64_t now_ms, int apply_chunk = 1000, int scan_threads = 0);

  // Phase 1: reads and evaluates every member, once. With more than one
  // scan thread, `reader` opens the others' readers (OpenAnother) and
  // `progress` is called from every scan thread.
  core::Status Scan(storage::ServerReader& reader, const Progress& progress = {});
  // Phase 2, after Scan, on the database thread: one unit of writes; true
  // when the pass is complete.
  core::Result<bool> ApplyStep(storage::ServerStore& store);
  // Both phases on the calling thread (tests, benchmarks).
  core::Status RunAll(storage::ServerReader& reader, storage::ServerStore& store);

  int64_t members() const { return members_; }  // scanned, not erased
  int64_t changed() const { return changed_; }  // whose segments the pass moved
  uint64_t latest_version() const { return latest_version_; }
  const Timings& timings() const { return timings_; }

 private:
  int64_t now_ms_;
  int apply_chunk_;
  int scan_threads_;
  int64_t members_ = 0;
  uint64_t scanned_version_ = 0;
  loyalty::v1::CutPoints cuts_;
  std::vector<std::string> segment_ids_;  // of the definitions the scan evaluated
  // The members whose segments differ from their saved ones, and the
  // segments they belong to now: `words_` 64-bit words per member, bit i
  // for segment_ids_[i].
  std::vector<std::string> changed_ids_;
  std::vector<uint64_t> changed_bits_;
  size_t words_ = 1;
  bool scanned_ = false;
  bool installed_ = false;
  size_t next_ = 0;  // next changed member to write
  int64_t changed_ = 0;
  uint64_t latest_version_ = 0;
  Timings timings_;
};

// Member id boundaries that cut [lo, hi] into about `parts` ranges of equal
// width, reading the ids as numbers (the 8 bytes after their common prefix):
// balanced when ids are spread evenly, as the terminals' random ids are; the
// scan threads take ranges from a queue, so uneven ranges still share out.
std::vector<std::string> SplitMemberRange(std::string_view lo, std::string_view hi, int parts);

// How many members `segment` holds now (validated first: invalid_segment).
core::Result<loyalty::v1::SegmentPreview> PreviewSegment(storage::ServerReader& reader,
                                                         const loyalty::v1::SegmentDefinition& segment,
                                                         int64_t now_ms);

// Checks a promotion for publishing: core::ValidateOffer, the window not
// ended at `now_ms`, no negative reward or budget, every segment id among
// `segments`, every tier among the programme's, a printable id of at most
// 64 characters and a name.
core::Status ValidatePromotion(std::span<const loyalty::v1::SegmentDefinition> segments,
                               const loyalty::v1::Programme& programme,
                               const loyalty::v1::Offer& offer, int64_t now_ms);
// The same against the store's segment definitions and programme.
core::Status ValidatePromotion(storage::ServerStore& store, const loyalty::v1::Offer& offer,
                               int64_t now_ms);

// Reach and estimated cost of a promotion (validated first). Method: reach
// counts the members its targeting holds now: in one of its segments, of one
// of its tiers and a visitor (within 365 days) of one of its stores, each
// condition when the promotion has one. Each is assumed to use it once per
// 30 days' visits within the window (visits at its stores when it names
// stores; at most per_member_limit, at least once), over their average
// basket: bonus_points per use; multiplier (pct - 100) % of basket points;
// percent_off of the basket; amount_off; buy X get Y as basket / (X + Y) * Y.
// Points are valued at the programme's redemption rate.
core::Result<loyalty::v1::PromotionPreview> PreviewPromotion(storage::ServerReader& reader,
                                                             const loyalty::v1::Offer& offer,
                                                             int64_t now_ms);

// Per segment and per promotion (since `since_ms` for segment moves; a
// promotion's reach uses the same targeting as PreviewPromotion).
core::Result<loyalty::v1::KpiReport> Kpis(storage::ServerReader& reader, int64_t since_ms,
                                          int64_t now_ms);

class Segmenter : public std::enable_shared_from_this<Segmenter> {
 public:
  // `feed_advanced` is told the feed version after a pass moved members.
  static std::shared_ptr<Segmenter> Create(boost::asio::io_context& ioc, DbWorker& db,
                                           std::chrono::minutes every,
                                           std::function<void(uint64_t)> feed_advanced,
                                           int chunk_members = 1000);
  // Starts the schedule with a pass now.
  void Start();
  // Starts a full pass unless one is running (then another follows it).
  void RequestFullPass();
  void Stop();

 private:
  Segmenter(boost::asio::io_context& ioc, DbWorker& db, std::chrono::minutes every,
            std::function<void(uint64_t)> feed_advanced, int chunk_members);
  void Arm();
  void PostApply(std::shared_ptr<FullPass> pass);
  void Finish();

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
