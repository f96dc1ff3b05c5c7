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
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "loyalty/v1/domain.pb.h"
#include "loyalty/v1/segments.pb.h"
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

// Segmentation settings of a server (core/features.h).
struct SegmentationOptions {
  int utc_offset_minutes = 0;           // store local time for weekday / hour features
  int64_t referral_reward_points = 500;  // credited to a referrer, once per referred member
};

// One chunk of the full pass: the features of consecutive members (member
// id order), scored with the stored cut points.
struct FeatureChunk {
  std::vector<loyalty::v1::MemberFeatures> features;
  std::string last_member_id;  // resume after this; empty when the scan is done
  uint64_t scanned_version = 0;  // the feed version when the chunk was read
};

// A promotion's use, read from purchases (KPIs).
struct OfferUse {
  std::string member_id;
  std::string offer_id;
  int64_t discount = 0;
  int64_t points = 0;
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
  virtual core::Status DeleteSegment(const std::string& id) = 0;  // not_found
  virtual core::Result<loyalty::v1::CutPoints> CutPoints() = 0;
  virtual core::Status PutCutPoints(const loyalty::v1::CutPoints& cuts) = 0;
  // Features of up to `max_members` members with ids above `after_member_id`,
  // in one index scan (the full pass), scored with the stored cut points;
  // erased members are skipped.
  virtual core::Result<FeatureChunk> ScanFeatures(const std::string& after_member_id,
                                                  int max_members, int64_t now_ms) = 0;
  // Installs each features' segment_ids as the member's segments (feed bump
  // when they changed). A member ingested after `scanned_version` is
  // recomputed from its events instead. Returns how many members changed.
  virtual core::Result<int64_t> ApplySegments(
      std::span<const loyalty::v1::MemberFeatures> features, uint64_t scanned_version,
      int64_t now_ms) = 0;
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
  // Segment moves (entered or left) at or after `since_ms`:
  // segment id -> {entered, left}.
  virtual core::Result<std::map<std::string, std::pair<int64_t, int64_t>>> SegmentMoves(
      int64_t since_ms) = 0;
  // Every use of a promotion recorded in purchases.
  virtual core::Result<std::vector<OfferUse>> OfferUses() = 0;
  // The member id for a card hash, member id or alias (nullopt: unknown).
  virtual core::Result<std::optional<std::string>> ResolveMemberId(const std::string& key) = 0;
};

// The SQLite implementation, in `path` (created and migrated if needed).
core::Result<std::unique_ptr<ServerStore>> OpenSqliteServerStore(
    const std::string& path, const SegmentationOptions& options = {});

}  // namespace loyalty::storage
