// A synthetic central-server ledger for the segmentation benchmark
// (bench/segmentation_bench.cc), written straight into the real server schema
// (created by storage::OpenSqliteServerStore's migrations) with bulk inserts,
// so a million members and twenty million events load in minutes rather
// than the hours ingest would take.
//
// The data is realistic, not uniform: members enrolled over two years, a
// heavy-tailed number of checkouts per member (lognormal; a third of the
// members stop coming at some point), each checkout a visit and a purchase
// at the member's home store or another one, party sizes, 1-5 basket lines
// in 30 categories with per-member favourites, store-local weekday and hour
// habits, occasional redemptions, voids and promotion uses, consent and
// demographics for a fifth of the members. Every event has a real protobuf
// body and the facts columns core::FactsOf gives it; every member a ledger
// folded with the same core rules the server uses.
//
// Single-threaded use; Generate uses a helper thread internally.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"
#include "loyalty/v1/domain.pb.h"

namespace loyalty::bench {

struct LedgerShape {
  int64_t members = 1'000'000;
  int64_t events = 20'000'000;  // about: the checkouts are drawn at random
};

struct LedgerSummary {
  int64_t members = 0;
  int64_t events = 0;
  int64_t generated_at_ms = 0;
  double seconds = 0;
};

// Creates the database at `path` (replacing any file there) with `shape`.
core::Result<LedgerSummary> GenerateLedger(const std::string& path, const LedgerShape& shape);

// Builds realistic uploads for existing members of a generated ledger: a
// store's terminal's checkouts (a visit and a purchase each, a redemption
// now and then) for members drawn at random.
class UploadMaker {
 public:
  // Reads the member ids of the ledger at `path`.
  static core::Result<UploadMaker> Open(const std::string& path);
  // About `events` events from store `store_id`, terminal `terminal_id`
  // (epoch 1, sequence numbers continuing across calls), at `now_ms`.
  std::vector<loyalty::v1::Event> Batch(const std::string& store_id,
                                        const std::string& terminal_id, int events,
                                        int64_t now_ms);
  size_t members() const { return member_ids_.size(); }

 private:
  std::vector<std::string> member_ids_;
  uint64_t seq_ = 0;
  uint64_t rng_state_ = 0x9e3779b97f4a7c15ull;
};

}  // namespace loyalty::bench
