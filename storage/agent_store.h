// AgentStore: the terminal's SQLite database and every query the agent runs
// against it. Tables:
//   meta      key/value: programme, terminal epoch, sync cursor
//   members   member snapshots keyed by the keyed hash of the card number
//             (no plaintext card numbers at rest)
//   events    the append-only event log with the per-terminal sequence
//             number; also the sync outbox (acked = 0)
//   requests  POS request ids (commit, void, redeem) with a digest of the
//             request and the stored response: replays and conflicts
//   offers    the offers this terminal applies
//
// One AgentStore wraps one connection and belongs to one thread at a time.
// The agent opens one writer (durability FULL) and a few readers.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "loyalty/v1/domain.pb.h"
#include "storage/sqlite.h"

namespace loyalty::storage {

struct MemberRow {
  std::string member_id;
  std::string card_hash;
  std::optional<loyalty::v1::MemberSnapshot> snapshot;  // absent: provisional
  std::string display_name;                             // as enrolled here
};

struct StoredEvent {
  uint64_t seq = 0;
  loyalty::v1::Event event;
};

struct StoredRequest {
  std::string digest;    // of the canonical request
  std::string response;  // serialized response message
  std::string member_id;
};

class AgentStore {
 public:
  // Opens `path`, creating it and applying migrations when not read-only.
  static Result<std::unique_ptr<AgentStore>> Open(const std::string& path,
                                                  const Database::Options& options);

  Database& db() { return *db_; }

  // ---- members
  Result<std::optional<MemberRow>> FindMemberByCardHash(std::string_view card_hash);
  Result<std::optional<MemberRow>> FindMemberById(std::string_view member_id);
  Status InsertMember(const MemberRow& row);
  // Installs a server snapshot (insert or replace by card hash).
  Status PutSnapshot(const loyalty::v1::MemberSnapshot& snapshot);

  // ---- events
  // This member's events with seq > after_seq, in order.
  Result<std::vector<StoredEvent>> MemberEvents(std::string_view member_id, uint64_t after_seq);
  // Appends an event; its id.seq must be the next sequence number.
  Status AppendEvent(const loyalty::v1::Event& event);
  Result<uint64_t> LastSeq();
  Result<int64_t> CountUnackedEvents();

  // ---- requests
  Result<std::optional<StoredRequest>> FindRequest(std::string_view kind, std::string_view id);
  Status PutRequest(std::string_view kind, std::string_view id, const StoredRequest& request);
  // How many requests of `kind` have ids starting with `prefix`.
  Result<int64_t> CountRequests(std::string_view kind, std::string_view prefix);

  // ---- programme, offers, meta
  Result<std::optional<loyalty::v1::Programme>> LoadProgramme();
  Status SaveProgramme(const loyalty::v1::Programme& programme);
  Result<std::vector<loyalty::v1::Offer>> LoadOffers();
  Status ReplaceOffers(const std::vector<loyalty::v1::Offer>& offers);
  Result<std::optional<std::string>> GetMeta(std::string_view key);
  Status PutMeta(std::string_view key, std::string_view value);

 private:
  explicit AgentStore(std::unique_ptr<Database> db) : db_(std::move(db)) {}
  std::unique_ptr<Database> db_;
};

}  // namespace loyalty::storage
