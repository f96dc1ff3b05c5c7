// ServerStore: the central server's authoritative ledger, behind one
// interface so SQLite (the default) and PostgreSQL (to scale out) are
// interchangeable without touching ingest, sync sessions or the admin API.
//
// Guarantees every implementation keeps:
// - Ingest applies a batch and records its event ids in one transaction
//   (design invariant 4): a resent event changes nothing and is
//   acknowledged again; an event reusing another event's id (same store,
//   terminal, epoch and sequence number, different uuid) is rejected, never
//   silently deduplicated.
// - Every change a terminal must learn (member snapshot, offer, programme,
//   erasure) gets a new, strictly increasing version in the change feed
//   (invariant 6).
// - Overdraws are kept and reported as conflicts (invariant 7).
//
// Implementations are not thread-safe: the server runs all store calls on
// one database thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "loyalty/v1/domain.pb.h"
#include "loyalty/v1/server.pb.h"
#include "loyalty/v1/sync.pb.h"

namespace loyalty::storage {

struct IngestOutcome {
  std::vector<loyalty::v1::EventId> acknowledged;  // applied now or before
  std::vector<loyalty::v1::EventRejection> rejected;
  std::vector<std::string> touched_members;  // whose snapshot changed
  uint64_t latest_version = 0;
};

struct MemberRecord {
  loyalty::v1::MemberLedger ledger;
  std::vector<loyalty::v1::Event> history;  // newest last, at most `history_limit`
};

class ServerStore {
 public:
  virtual ~ServerStore() = default;

  // Applies `events` uploaded by `store_id` (from its certificate) at `now_ms`.
  virtual core::Result<IngestOutcome> Ingest(const std::string& store_id,
                                             std::span<const loyalty::v1::Event> events,
                                             int64_t now_ms) = 0;

  // Changes with version > after_version, oldest first, at most max_changes.
  // A cursor ahead of the feed (a restored server) or one the feed no longer
  // serves is answered from version 0: a full snapshot.
  virtual core::Result<loyalty::v1::ChangesPage> Changes(uint64_t after_version,
                                                         uint32_t max_changes) = 0;
  virtual core::Result<uint64_t> LatestVersion() = 0;

  // Head office.
  virtual core::Result<std::optional<MemberRecord>> FindMember(const std::string& card_hash_or_id,
                                                               int history_limit) = 0;
  virtual core::Result<uint64_t> PutOffer(const loyalty::v1::Offer& offer) = 0;
  virtual core::Result<uint64_t> RetireOffer(const std::string& offer_id) = 0;
  virtual core::Result<std::vector<loyalty::v1::Offer>> Offers() = 0;
  virtual core::Result<uint64_t> PutProgramme(const loyalty::v1::Programme& programme) = 0;
  virtual core::Result<loyalty::v1::Programme> Programme() = 0;
  virtual core::Result<std::vector<loyalty::v1::Conflict>> Conflicts() = 0;
  virtual core::Result<std::vector<loyalty::v1::StoreStatus>> StoreStatuses() = 0;
  virtual core::Status TouchStore(const std::string& store_id, int64_t now_ms) = 0;

  // Totals for tests and KPIs: number of applied events and the sum of all
  // members' balances.
  struct Totals {
    int64_t events = 0;
    int64_t members = 0;
    int64_t points = 0;
  };
  virtual core::Result<Totals> LedgerTotals() = 0;
};

// The SQLite implementation, in `path` (created and migrated if needed).
core::Result<std::unique_ptr<ServerStore>> OpenSqliteServerStore(const std::string& path);

}  // namespace loyalty::storage
