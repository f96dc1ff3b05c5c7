// ServerStore: the central server's authoritative ledger, behind one
// interface so SQLite (the default) and PostgreSQL (to scale out) are
// interchangeable without touching ingest, sync sessions or the admin API.
//
// Guarantees every implementation keeps:
// - Ingest happens in two steps, each one transaction. Append validates a
//   batch and records its events, with their ids, in the inbox: what it
//   acknowledges is durable, a resent event changes nothing and is
//   acknowledged again, and an event reusing another event's id (same
//   store, terminal, epoch and sequence number, different uuid) is
//   rejected, never silently deduplicated. Fold then moves events from the
//   inbox into the ledger, oldest first, and deletes them from the inbox in
//   the same transaction, so each event takes effect exactly once (design
//   invariant 4) whenever the process stops. Append checks everything Fold
//   needs (an event's member is enrolled, or its enrolment is in the inbox
//   ahead of it), so the rejections a terminal must know about are all in
//   Append's answer. Acknowledging needs no fold: a terminal's upload is
//   not held up by ledger, feature and segment work, which runs when
//   uploads pause (server/db_worker.h).
// - Every change a terminal must learn (member snapshot, offer, programme,
//   erasure) gets a new, strictly increasing version in the change feed
//   (invariant 6).
// - Overdraws are kept and reported as conflicts (invariant 7).
//
// Implementations are not thread-safe: the server runs all store calls on
// one database thread. Long read-only scans (the full segmentation pass,
// previews, KPIs) go through a ServerReader instead: its own connection,
// used from another thread, reading a consistent snapshot while ingest
// commits (SQLite's WAL lets one writer and readers run side by side).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/features.h"
#include "core/result.h"
#include "loyalty/v1/domain.pb.h"
#include "loyalty/v1/segments.pb.h"
#include "loyalty/v1/server.pb.h"
#include "loyalty/v1/sync.pb.h"

namespace loyalty::storage {

struct IngestOutcome {
  std::vector<loyalty::v1::EventId> acknowledged;  // recorded now or before
  std::vector<loyalty::v1::EventRejection> rejected;
  // Set by Ingest, after the fold; Append leaves them empty.
  std::vector<std::string> touched_members;  // whose snapshot changed
  uint64_t latest_version = 0;
};

// What a Fold step did.
struct FoldOutcome {
  int64_t folded = 0;    // events taken from the inbox
  int64_t unfolded = 0;  // events left in it
  // Events Fold could not apply (not expected: Append checks what Fold
  // needs); kept with the rejected events, counted against their store.
  std::vector<loyalty::v1::EventRejection> rejected;
  std::vector<std::string> touched_members;  // whose snapshot changed
  uint64_t latest_version = 0;
};

struct MemberRecord {
  loyalty::v1::MemberLedger ledger;
  std::vector<loyalty::v1::Event> history;  // newest last, at most `history_limit`
};

// Segmentation settings of a server (core/features.h).
struct SegmentationOptions {
  int utc_offset_minutes = 0;           // store local time for weekday / hour features
  int64_t referral_reward_points = 500;  // credited to a referrer, once per referred member
};

// The segments a full pass found a member in (ServerStore::ApplySegments).
// Views: the caller keeps the strings alive during the call.
struct SegmentAssignment {
  std::string_view member_id;
  std::vector<std::string_view> segment_ids;  // in definition order
};

// Work done keeping segments current as events arrive (benchmarks, metrics).
struct SegmentationStats {
  int64_t incremental_members = 0;  // members recomputed by ingest and consent changes
  int64_t incremental_ns = 0;       // time spent doing it
};

// A promotion's use, read from purchases (KPIs).
struct OfferUse {
  std::string member_id;
  std::string offer_id;
  int64_t discount = 0;
  int64_t points = 0;
};

class ServerReader;

class ServerStore {
 public:
  virtual ~ServerStore() = default;

  // Records `events` uploaded by `store_id` (from its certificate) at
  // `now_ms` in the inbox.
  virtual core::Result<IngestOutcome> Append(const std::string& store_id,
                                             std::vector<loyalty::v1::Event> events,
                                             int64_t now_ms) = 0;
  // Folds at most `max_events` of the oldest inbox events into the ledger.
  virtual core::Result<FoldOutcome> Fold(int64_t max_events, int64_t now_ms) = 0;
  // Events in the inbox. Thread-safe: read by the sync sessions and metrics
  // while the database thread appends and folds.
  virtual int64_t UnfoldedEvents() const = 0;

  // A fold step's size when uploads may be waiting: long enough to fold a
  // member once for several of its events, short enough (about 20 ms) not
  // to hold up an upload.
  static constexpr int64_t kFoldChunk = 1000;
  // When someone waits for the whole inbox anyway (FoldAll): each step
  // commits every page it dirtied (members' ledgers, indexes, the feed),
  // so fewer, larger steps write far less.
  static constexpr int64_t kFoldAllChunk = 10000;

  // Append, then Fold until the inbox is empty (the whole inbox, other
  // uploads' events too): the ledger reflects `events` on return. Events
  // Fold could not apply move from `acknowledged` to `rejected`.
  core::Result<IngestOutcome> Ingest(const std::string& store_id,
                                     std::vector<loyalty::v1::Event> events, int64_t now_ms);
  // Fold until the inbox is empty, in steps of kFoldAllChunk; the touched
  // members and the feed's latest version, summed over the steps.
  core::Result<FoldOutcome> FoldAll(int64_t now_ms);

  // Changes with version > after_version, oldest first, at most max_changes.
  // A cursor ahead of the feed (a restored server) or one the feed no longer
  // serves is answered from version 0: a full snapshot. With `scope_store`
  // set (loyalty.v1.MEMBER_SCOPE_STORE), member snapshots are only those of
  // members in that store's scope: an event at the store, or looked up from
  // it; everything else in the feed goes to every store.
  virtual core::Result<loyalty::v1::ChangesPage> Changes(uint64_t after_version,
                                                         uint32_t max_changes,
                                                         const std::string& scope_store) = 0;
  // Every member (loyalty.v1.MEMBER_SCOPE_ALL).
  core::Result<loyalty::v1::ChangesPage> Changes(uint64_t after_version, uint32_t max_changes) {
    return Changes(after_version, max_changes, std::string());
  }
  // The member holding `card_hash` (nullopt: none), for a terminal of
  // `store_id` that does not replicate it; the member joins the store's scope,
  // so its later changes reach that store's terminals through the feed.
  virtual core::Result<std::optional<loyalty::v1::MemberSnapshot>> LookupForStore(
      const std::string& card_hash, const std::string& store_id) = 0;
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

  // ---- segmentation (core/features.h, core/segment_expr.h)
  //
  // Ingest recomputes the features and segments of every member a batch
  // touches, in the same transaction, with the stored cut points; changed
  // segment ids go into the member's snapshot and so into the change feed.
  // A new database starts with core::DefaultSegments().
  virtual core::Result<std::vector<loyalty::v1::SegmentDefinition>> Segments() = 0;
  // Validates (core::ValidateSegment) and saves; members move at the next
  // ingest or full pass.
  virtual core::Status PutSegment(const loyalty::v1::SegmentDefinition& segment) = 0;
  // not_found; conflict while a published (not retired) promotion targets it.
  virtual core::Status DeleteSegment(const std::string& id) = 0;
  virtual core::Result<loyalty::v1::CutPoints> CutPoints() = 0;
  virtual core::Status PutCutPoints(const loyalty::v1::CutPoints& cuts) = 0;
  // A read-only view of this ledger on a connection of its own, for scans
  // on another thread (server/db_worker.h).
  virtual core::Result<std::unique_ptr<ServerReader>> OpenReader() = 0;
  // The full pass's writes (server/segmentation.h), after it read the
  // ledger at feed version `scanned_version`:
  // InstallCutPoints saves `cuts` and recomputes with them every member
  // changed after `scanned_version` (ingested while the pass was reading,
  // with the old cut points).
  virtual core::Result<int64_t> InstallCutPoints(const loyalty::v1::CutPoints& cuts,
                                                 uint64_t scanned_version, int64_t now_ms) = 0;
  // ApplySegments installs each assignment as the member's segments (moves
  // recorded, snapshot and feed bumped when they changed); a member changed
  // after `scanned_version` is recomputed from its events instead, an erased
  // one skipped. Both return how many members' segments changed.
  virtual core::Result<int64_t> ApplySegments(std::span<const SegmentAssignment> assignments,
                                              uint64_t scanned_version, int64_t now_ms) = 0;
  virtual SegmentationStats segmentation_stats() const = 0;
  // The member's features and segments now (not saved).
  virtual core::Result<std::optional<loyalty::v1::MemberFeatures>> FeaturesOf(
      const std::string& member_id, int64_t now_ms) = 0;
  // Consent and demographics (server only). Withdrawal deletes the
  // demographics; the member's segments are recomputed at once.
  virtual core::Result<uint64_t> PutConsent(const std::string& member_id,
                                            const loyalty::v1::MemberConsent& consent,
                                            int64_t now_ms) = 0;
  // Erases personal data: display name, demographics, referral code, card
  // hash (replaced by a random one), segment memberships; events and
  // balances stay, anonymous. Terminals get an erased_member_id change.
  virtual core::Result<uint64_t> EraseMember(const std::string& member_id) = 0;
  // The member id for a card hash, member id or alias (nullopt: unknown).
  virtual core::Result<std::optional<std::string>> ResolveMemberId(const std::string& key) = 0;
};

// The SQLite implementation, in `path` (created and migrated if needed).
core::Result<std::unique_ptr<ServerStore>> OpenSqliteServerStore(
    const std::string& path, const SegmentationOptions& options = {});

// ---------------------------------------------------------------- reader --

// What ServerReader::ScanMembers reads besides the features.
struct MemberScanOptions {
  int64_t now_ms = 0;
  // The members with from_member <= member id < to_member ("": no end).
  std::string from_member;
  std::string to_member;
  bool segment_rows = false;  // the member's current segments (as saved)
  bool tier = false;          // the member's tier (its snapshot's)
  bool stores = false;        // the stores the member visited within 365 days
};

// Visits of a member at one store.
struct StoreVisits {
  std::string_view store_id;
  int64_t visits_30d = 0;
  int64_t visits_365d = 0;
};

// One member as ScanMembers sees it. Everything, including the text views
// of `features`, is valid during the callback only.
struct ScannedMember {
  std::string_view member_id;
  // Scored with the cut points saved when the scan read them.
  const core::FeatureValues& features;
  std::span<const std::string_view> segment_rows;  // with MemberScanOptions::segment_rows
  std::string_view tier;                      // with MemberScanOptions::tier
  std::span<const StoreVisits> stores;        // with MemberScanOptions::stores
};

// A read-only view of the server ledger for long scans: the full pass,
// segment and promotion previews, KPIs. It has its own connection, so it
// runs on a thread other than the database thread and never blocks ingest.
// Not thread-safe: one thread at a time.
class ServerReader {
 public:
  virtual ~ServerReader() = default;

  // Between BeginSnapshot and EndSnapshot every call reads the ledger as it
  // was at BeginSnapshot; outside, each call reads its own snapshot.
  virtual core::Status BeginSnapshot() = 0;
  virtual void EndSnapshot() = 0;

  // Another reader of the same ledger (a connection of its own), for a scan
  // split across threads.
  virtual core::Result<std::unique_ptr<ServerReader>> OpenAnother() = 0;
  // ServerStore::Changes read on this connection: terminals' pulls served
  // off the database thread. Not inside BeginSnapshot (a page is a read
  // transaction of its own).
  virtual core::Result<loyalty::v1::ChangesPage> Changes(uint64_t after_version,
                                                         uint32_t max_changes,
                                                         const std::string& scope_store) = 0;
  // The smallest and largest member id that has events (nullopt: none).
  virtual core::Result<std::optional<std::pair<std::string, std::string>>> MemberIdBounds() = 0;

  virtual core::Result<uint64_t> LatestVersion() = 0;
  virtual core::Result<std::vector<loyalty::v1::SegmentDefinition>> Segments() = 0;
  virtual core::Result<loyalty::v1::CutPoints> CutPoints() = 0;
  virtual core::Result<loyalty::v1::Programme> Programme() = 0;
  virtual core::Result<std::vector<loyalty::v1::Offer>> Offers() = 0;  // not retired
  // Every use of a promotion recorded in purchases (reads every purchase).
  virtual core::Result<std::vector<OfferUse>> OfferUses() = 0;
  // Segment moves (entered or left) at or after `since_ms`:
  // segment id -> {entered, left}.
  virtual core::Result<std::map<std::string, std::pair<int64_t, int64_t>>> SegmentMoves(
      int64_t since_ms) = 0;

  // Calls `visit` for every member in the options' range that is not
  // erased, in member id order, with its features at `options.now_ms`: one
  // pass over the events' facts index in member order, merged with the
  // members' profiles (and, as asked, their saved segments and ledgers).
  virtual core::Status ScanMembers(const MemberScanOptions& options,
                                   const std::function<void(const ScannedMember&)>& visit) = 0;
};

// A reader of the SQLite ledger in `path` (which must exist).
core::Result<std::unique_ptr<ServerReader>> OpenSqliteServerReader(
    const std::string& path, const SegmentationOptions& options = {});

}  // namespace loyalty::storage
