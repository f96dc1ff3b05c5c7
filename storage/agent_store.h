// AgentStore: the terminal's SQLite database and every query the agent runs
// against it. Tables:
//   meta      key/value: programme, terminal epoch(s), sync cursor, card-hash
//             key id
//   members   member snapshots keyed by the keyed hash of the card number
//             (no plaintext card numbers at rest)
//   events    the append-only event log with the per-terminal sequence
//             number; also the sync outbox (acked = 0); an event written by
//             a POS request also holds that request's stored response
//   requests  POS request ids (commit, void, redeem) with a digest of the
//             request and where its stored response is: replays and
//             conflicts
//   offers    the offers this terminal applies
//   dead_letters  events the server refused for good (sync)
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
  // When non-zero, the response is kept in the row of this event (appended
  // with it, see AppendEvent) instead of the request's own row: PutRequest
  // ignores `response`, FindRequest fills it in.
  uint64_t seq = 0;
};

// An event the server refused for good, kept for an operator.
struct DeadLetterRow {
  uint64_t seq = 0;
  std::string event_key;  // store/terminal/epoch/seq
  std::string code;
  std::string message;
  int64_t rejected_at_ms = 0;
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
  // `response` (optional) is the serialized answer to the request that
  // wrote it, for a StoredRequest with this seq.
  Status AppendEvent(const loyalty::v1::Event& event, std::string_view response = {});
  Result<uint64_t> LastSeq();
  Result<int64_t> CountUnackedEvents();

  // ---- sync outbox (events with acked = 0, all at or above a mark kept in
  // meta "outbox_from", so that finding them is a short rowid range scan)
  // Up to `limit` outbox events with seq > after_seq, in seq order.
  Result<std::vector<StoredEvent>> UnackedEvents(uint64_t after_seq, int limit);
  // The same events as they are stored (serialized loyalty.v1.Event), for
  // an upload that sends them as they are; the total body size is capped at
  // `max_bytes` (the first event always comes).
  struct StoredBody {
    uint64_t seq = 0;
    std::string body;
  };
  Result<std::vector<StoredBody>> UnackedEventBodies(uint64_t after_seq, int limit,
                                                     std::size_t max_bytes);
  Result<std::optional<StoredEvent>> EventBySeq(uint64_t seq);
  // The server holds the events first_seq..last_seq: they leave the outbox.
  Status MarkAcked(uint64_t first_seq, uint64_t last_seq);
  Status MarkAcked(uint64_t seq) { return MarkAcked(seq, seq); }
  // The server refused the event for good: copied to dead_letters and out of
  // the outbox (acked = 2); the event itself stays in the log.
  Status DeadLetter(uint64_t seq, std::string_view event_key, std::string_view code,
                    std::string_view message, int64_t now_ms);
  Result<std::vector<DeadLetterRow>> DeadLetters(int limit);
  Result<int64_t> CountDeadLetters();
  // Starts epoch `new_epoch`: every outbox event with seq >= from_seq keeps
  // its seq and uuid but moves to the new epoch; meta "epoch" becomes the new
  // epoch and "epochs" (every epoch this terminal used) gains it. Returns how
  // many events were re-keyed.
  Result<int64_t> RekeyUnacked(uint64_t from_seq, uint64_t new_epoch);
  // Every epoch this terminal has used, oldest first.
  Result<std::vector<uint64_t>> Epochs();

  // ---- downlink
  // The server confirmed or merged a member under another id: local events
  // and requests follow.
  Status RenameMember(std::string_view old_id, std::string_view new_id);
  Status DeleteMember(std::string_view member_id);
  Result<int64_t> CountMembers();

  // ---- requests
  Result<std::optional<StoredRequest>> FindRequest(std::string_view kind, std::string_view id);
  Status PutRequest(std::string_view kind, std::string_view id, const StoredRequest& request);
  // How many requests of `kind` have ids starting with `prefix`.
  Result<int64_t> CountRequests(std::string_view kind, std::string_view prefix);

  // ---- programme, offers, meta
  Result<std::optional<loyalty::v1::Programme>> LoadProgramme();
  Status SaveProgramme(const loyalty::v1::Programme& programme);
  Result<std::vector<loyalty::v1::Offer>> LoadOffers();
  Status PutOffer(const loyalty::v1::Offer& offer);
  Status DeleteOffer(std::string_view offer_id);
  Status ReplaceOffers(const std::vector<loyalty::v1::Offer>& offers);
  Result<std::optional<std::string>> GetMeta(std::string_view key);
  Status PutMeta(std::string_view key, std::string_view value);

 private:
  explicit AgentStore(std::unique_ptr<Database> db) : db_(std::move(db)) {}
  // Every event below this seq has left the outbox.
  Result<uint64_t> OutboxFrom();
  // After event `seq` left the outbox: moves the mark past the events that
  // have all left it.
  Status AdvanceOutbox(uint64_t seq);
  std::unique_ptr<Database> db_;
};

}  // namespace loyalty::storage
