#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <tuple>
#include <unordered_set>

#include "core/features.h"
#include "core/member_state.h"
#include "core/segment_expr.h"
#include "core/programme.h"
#include "core/time_util.h"
#include "storage/change_feed.h"
#include "storage/protobuf_blob.h"
#include "storage/server_store.h"
#include "storage/sqlite.h"

namespace loyalty::storage {
namespace {

namespace v1 = loyalty::v1;
using core::MakeError;
using core::Result;
using core::Status;

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE meta(
  key   TEXT PRIMARY KEY,
  value BLOB NOT NULL
) WITHOUT ROWID;

-- The authoritative member ledger; `ledger` is a loyalty.v1.MemberLedger.
CREATE TABLE members(
  member_id TEXT PRIMARY KEY,
  card_hash TEXT NOT NULL UNIQUE,
  ledger    BLOB NOT NULL
) WITHOUT ROWID;

-- Provisional ids from terminals that now mean a member.
CREATE TABLE member_aliases(
  alias     TEXT PRIMARY KEY,
  member_id TEXT NOT NULL
) WITHOUT ROWID;

-- Every applied event, keyed by its identity (store/terminal/epoch/seq).
CREATE TABLE events(
  event_key   TEXT PRIMARY KEY,
  uuid        TEXT NOT NULL,
  member_id   TEXT NOT NULL,
  occurred_ms INTEGER NOT NULL,
  body        BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX events_by_member ON events(member_id, occurred_ms);

CREATE TABLE terminals(
  store_id    TEXT NOT NULL,
  terminal_id TEXT NOT NULL,
  epoch       INTEGER NOT NULL,
  last_seq    INTEGER NOT NULL,
  PRIMARY KEY(store_id, terminal_id, epoch)
) WITHOUT ROWID;

CREATE TABLE stores(
  store_id        TEXT PRIMARY KEY,
  last_seen_ms    INTEGER NOT NULL DEFAULT 0,
  events_received INTEGER NOT NULL DEFAULT 0,
  events_rejected INTEGER NOT NULL DEFAULT 0,
  last_event_ms   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- The downlink change feed, compacted: the latest version of each thing.
CREATE TABLE changes(
  kind    TEXT NOT NULL,
  key     TEXT NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY(kind, key)
) WITHOUT ROWID;
CREATE UNIQUE INDEX changes_by_version ON changes(version);

CREATE TABLE offers(
  id      TEXT PRIMARY KEY,
  body    BLOB NOT NULL,
  retired INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE conflicts(
  id          INTEGER PRIMARY KEY,
  member_id   TEXT NOT NULL,
  body        BLOB NOT NULL
);

CREATE TABLE rejected_events(
  event_key   TEXT NOT NULL,
  store_id    TEXT NOT NULL,
  code        TEXT NOT NULL,
  message     TEXT NOT NULL,
  received_ms INTEGER NOT NULL,
  body        BLOB NOT NULL
);
)sql"},
    // Segmentation: per-event facts as columns (core::FactsOf) so the full
    // pass reads one covering index in member order; kind -1 marks rows from
    // before this migration, filled in by Init. Segment definitions, members'
    // segments and their moves (KPIs), consent/demographics, referrals.
    {2, R"sql(
ALTER TABLE events ADD COLUMN kind INTEGER NOT NULL DEFAULT -1;
ALTER TABLE events ADD COLUMN amount INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN party INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN cats TEXT NOT NULL DEFAULT '';
CREATE INDEX events_facts ON events(member_id, occurred_ms, kind, amount, party, cats);

CREATE TABLE segments(
  id   TEXT PRIMARY KEY,
  body BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE member_segments(
  member_id  TEXT NOT NULL,
  segment_id TEXT NOT NULL,
  since_ms   INTEGER NOT NULL,
  PRIMARY KEY(member_id, segment_id)
) WITHOUT ROWID;

CREATE TABLE segment_moves(
  segment_id TEXT NOT NULL,
  member_id  TEXT NOT NULL,
  at_ms      INTEGER NOT NULL,
  entered    INTEGER NOT NULL
);
CREATE INDEX segment_moves_by_time ON segment_moves(at_ms);

-- Head office's records of a member; never sent to terminals.
CREATE TABLE member_profiles(
  member_id     TEXT PRIMARY KEY,
  consent       INTEGER NOT NULL DEFAULT 0,
  age_band      TEXT NOT NULL DEFAULT '',
  sex           TEXT NOT NULL DEFAULT '',
  region        TEXT NOT NULL DEFAULT '',
  erased        INTEGER NOT NULL DEFAULT 0,
  referral_code TEXT UNIQUE
) WITHOUT ROWID;

-- A member enrolled with a referral code; credited_ms > 0 once the
-- referrer got the reward.
CREATE TABLE referrals(
  member_id   TEXT PRIMARY KEY,
  referrer_id TEXT NOT NULL,
  credited_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
)sql"},
    // Members in each store's scope (loyalty.v1.MEMBER_SCOPE_STORE): an event
    // at the store, or looked up from it. Filled from the events so far.
    {3, R"sql(
CREATE TABLE member_stores(
  store_id  TEXT NOT NULL,
  member_id TEXT NOT NULL,
  PRIMARY KEY(store_id, member_id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO member_stores(store_id, member_id)
  SELECT DISTINCT substr(event_key, 1, instr(event_key, '/') - 1), member_id FROM events;
)sql"},
    // events_facts (member_id, occurred_ms, ...) serves every lookup that
    // events_by_member served; keeping both cost ingest a random index page
    // per event.
    {4, R"sql(
DROP INDEX events_by_member;
)sql"},
    // The inbox: events acknowledged to their terminal and not folded into
    // the ledger yet, in arrival order (seq). Append writes it, Fold moves
    // its rows into `events` and the members' ledgers. Enrolments are
    // indexed by member id so that an upload can tell a member whose
    // enrolment waits here from an unknown one.
    {5, R"sql(
CREATE TABLE inbox(
  seq       INTEGER PRIMARY KEY,
  event_key TEXT NOT NULL UNIQUE,
  uuid      TEXT NOT NULL,
  member_id TEXT NOT NULL,
  enrolment INTEGER NOT NULL,
  body      BLOB NOT NULL
);
CREATE INDEX inbox_enrolments ON inbox(member_id) WHERE enrolment = 1;
)sql"},
};

std::string EventKey(const v1::EventId& id) {
  return id.store_id() + "/" + id.terminal_id() + "/" + std::to_string(id.epoch()) + "/" +
         std::to_string(id.seq());
}

std::string TerminalKey(const v1::EventId& id) {
  return id.store_id() + "/" + id.terminal_id() + "/" + std::to_string(id.epoch());
}

// Checks what the server needs of an event before applying it. The store id
// must be the uploader's own: a store can only write as itself (invariant 8).
Status ValidateEvent(const v1::Event& e, const std::string& store_id) {
  auto bad = [](std::string message) { return MakeError("invalid_event", std::move(message)); };
  const auto& id = e.id();
  if (id.store_id() != store_id) {
    return MakeError("wrong_store", "event claims store \"" + id.store_id() +
                                        "\" but was uploaded by store \"" + store_id + "\"");
  }
  if (id.terminal_id().empty()) return bad("event id has no terminal_id");
  if (id.seq() == 0) return bad("event id has no sequence number");
  if (id.uuid().empty()) return bad("event id has no uuid");
  if (e.member_id().empty()) return bad("event has no member_id");
  if (e.occurred_at_ms() <= 0) return bad("event has no occurred_at_ms");
  switch (e.body_case()) {
    case v1::Event::kEnrolment:
      if (e.enrolment().card_hash().size() != 64) return bad("enrolment without a card hash");
      break;
    case v1::Event::kPurchase:
      if (e.purchase().points_earned() < 0 || e.purchase().total() < 0) {
        return bad("purchase with negative points or total");
      }
      break;
    case v1::Event::kRedemption:
      if (e.redemption().points() <= 0) return bad("redemption of no points");
      break;
    case v1::Event::kReversal:
      if (e.reversal().points_reversed() < 0 || e.reversal().points_restored() < 0) {
        return bad("reversal with negative points");
      }
      break;
    case v1::Event::kVisit:
    case v1::Event::kAdjustment:
      break;
    case v1::Event::BODY_NOT_SET:
      return bad("event has no body");
  }
  return {};
}

// Orders a member's events by time, then event key: the order the fold
// sees them in. Keys are built once per event, not per comparison.
void SortByTimeAndKey(std::vector<v1::Event>& events) {
  if (events.size() < 2) return;
  std::vector<std::pair<int64_t, std::string>> order;
  std::vector<std::size_t> index(events.size());
  order.reserve(events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    order.emplace_back(events[i].occurred_at_ms(), EventKey(events[i].id()));
    index[i] = i;
  }
  std::sort(index.begin(), index.end(),
            [&](std::size_t a, std::size_t b) { return order[a] < order[b]; });
  std::vector<v1::Event> sorted;
  sorted.reserve(events.size());
  for (std::size_t i : index) sorted.push_back(std::move(events[i]));
  events = std::move(sorted);
}

// A terminal's sequence space: store, terminal, epoch.
using TerminalEpoch = std::tuple<std::string, std::string, uint64_t>;

int64_t DayOf(int64_t ms) { return ms >= 0 ? ms / core::kMillisPerDay : -1 - (-ms - 1) / core::kMillisPerDay; }

class SqliteServerStore final : public ServerStore {
 public:
  SqliteServerStore(std::unique_ptr<Database> db, std::string path,
                    const SegmentationOptions& options)
      : db_(std::move(db)), path_(std::move(path)), options_(options) {}

  Status Init() {
    if (auto s = Migrate(*db_, kMigrations); !s.ok()) return s;
    auto programme = LoadProgramme();
    if (!programme.ok()) return programme.error();
    programme_ = std::move(*programme);
    if (auto s = BackfillFacts(); !s.ok()) return s;
    if (auto s = LoadSegmentation(); !s.ok()) return s;
    auto count = db_->Prepare("SELECT count(*) FROM inbox");
    if (!count.ok()) return count.error();
    if (auto row = (*count)->Step(); !row.ok()) return row.error();
    unfolded_ = (*count)->ColumnInt(0);
    (*count)->Reset();
    return {};
  }

  // -------------------------------------------------------------- ingest --

  Result<IngestOutcome> Append(const std::string& store_id, std::vector<v1::Event> events,
                               int64_t now_ms) override {
    auto txn = Transaction::Begin(*db_);
    if (!txn.ok()) return txn.error();
    IngestOutcome out;
    // Each terminal's highest sequence number in the batch, written once
    // after the loop: the stored value is the max either way.
    std::map<TerminalEpoch, uint64_t> terminal_seqs;
    std::map<TerminalEpoch, uint64_t> stored_seqs;  // terminals.last_seq, read once
    // Member ids (as uploaded) found enrolled in this batch: remembered
    // across batches only if it commits.
    struct Found {
      std::unordered_set<std::string>& cache;
      std::vector<std::string> ids;
      bool committed = false;
      ~Found() {
        if (!committed) {
          for (const std::string& id : ids) cache.erase(id);
        }
      }
    } found{enrolled_, {}};
    int64_t last_event_ms = 0;
    int64_t rejected = 0;
    int64_t appended = 0;

    for (v1::Event& event : events) {
      auto reject = [&](const core::Error& error) -> Status {
        v1::EventRejection r;
        *r.mutable_id() = event.id();
        r.set_code(error.code);
        r.set_message(error.message);
        out.rejected.push_back(r);
        ++rejected;
        return RecordRejection(EventKey(event.id()), store_id, error, now_ms, event);
      };
      if (auto s = ValidateEvent(event, store_id); !s.ok()) {
        if (auto r = reject(s.error()); !r.ok()) return r.error();
        continue;
      }
      const std::string key = EventKey(event.id());
      // terminals.last_seq is at least every stored sequence number of its
      // terminal and epoch (this batch's are in terminal_seqs): above both,
      // the event cannot be stored yet, which is the usual case for a
      // terminal uploading its outbox in order.
      const TerminalEpoch terminal{event.id().store_id(), event.id().terminal_id(),
                                   event.id().epoch()};
      auto stored_seq = StoredLastSeq(terminal, stored_seqs);
      if (!stored_seq.ok()) return stored_seq.error();
      uint64_t& batch_seq = terminal_seqs[terminal];
      Result<std::optional<std::string>> seen = std::optional<std::string>();
      if (event.id().seq() <= std::max(*stored_seq, batch_seq)) seen = SeenUuid(key);
      if (!seen.ok()) return seen.error();
      if (*seen) {
        if (**seen == event.id().uuid()) {
          out.acknowledged.push_back(event.id());  // a resend: nothing changes
        } else if (auto r = reject(MakeError(
                       "sequence_reused",
                       "sequence number " + key +
                           " was already used by another event; the terminal must start a new "
                           "epoch"));
                   !r.ok()) {
          return r.error();
        }
        continue;
      }
      if (!enrolled_.contains(event.member_id())) {
        auto enrolled = IsEnrolled(event);
        if (!enrolled.ok()) return enrolled.error();
        if (!*enrolled) {
          if (auto r = reject(MakeError("unknown_member",
                                        "member " + event.member_id() + " is not enrolled"));
              !r.ok()) {
            return r.error();
          }
          continue;
        }
        enrolled_.insert(event.member_id());
        found.ids.push_back(event.member_id());
      }
      if (auto s = Exec("INSERT INTO inbox(event_key, uuid, member_id, enrolment, body) "
                        "VALUES(?, ?, ?, ?, ?)",
                        {key, event.id().uuid(), event.member_id()},
                        {event.has_enrolment() ? 1 : 0}, event.SerializeAsString());
          !s.ok()) {
        return s.error();
      }
      batch_seq = std::max(batch_seq, event.id().seq());
      out.acknowledged.push_back(event.id());
      ++appended;
      last_event_ms = std::max(last_event_ms, event.occurred_at_ms());
    }

    for (const auto& [terminal, seq] : terminal_seqs) {
      if (seq == 0) continue;  // none of its events was appended
      const auto& [terminal_store, terminal_id, epoch] = terminal;
      if (auto s = Exec("INSERT INTO terminals(store_id, terminal_id, epoch, last_seq) "
                        "VALUES(?, ?, ?, ?) ON CONFLICT DO UPDATE SET last_seq = "
                        "max(last_seq, excluded.last_seq)",
                        {terminal_store, terminal_id},
                        {static_cast<int64_t>(epoch), static_cast<int64_t>(seq)});
          !s.ok()) {
        return s.error();
      }
    }
    if (auto s = Exec("INSERT INTO stores(store_id, last_seen_ms, events_received, "
                      "events_rejected, last_event_ms) VALUES(?, ?, ?, ?, ?) "
                      "ON CONFLICT DO UPDATE SET last_seen_ms = excluded.last_seen_ms, "
                      "events_received = events_received + excluded.events_received, "
                      "events_rejected = events_rejected + excluded.events_rejected, "
                      "last_event_ms = max(last_event_ms, excluded.last_event_ms)",
                      {store_id},
                      {now_ms, appended, rejected, last_event_ms});
        !s.ok()) {
      return s.error();
    }
    if (auto s = txn->Commit(); !s.ok()) return s.error();
    found.committed = true;
    unfolded_ += appended;
    if (enrolled_.size() > kMaxEnrolledCache) enrolled_.clear();
    return out;
  }

  Result<FoldOutcome> Fold(int64_t max_events, int64_t now_ms) override {
    FoldOutcome out;
    if (unfolded_.load() == 0) {
      auto latest = LatestVersion();
      if (!latest.ok()) return latest.error();
      out.latest_version = *latest;
      return out;
    }
    auto txn = Transaction::Begin(*db_);
    if (!txn.ok()) return txn.error();
    auto latest = LatestVersion();
    if (!latest.ok()) return latest.error();
    feed_version_ = *latest;
    // The cached version means nothing once this transaction ends, however
    // it ends.
    struct ForgetVersion {
      std::optional<uint64_t>& v;
      ~ForgetVersion() { v.reset(); }
    } forget{feed_version_};

    std::vector<std::pair<std::string, v1::Event>> chunk;
    int64_t last_seq = 0;
    {
      auto stmt = db_->Prepare("SELECT seq, event_key, body FROM inbox ORDER BY seq LIMIT ?");
      if (!stmt.ok()) return stmt.error();
      (*stmt)->Bind(1, std::max<int64_t>(1, max_events));
      for (;;) {
        auto row = (*stmt)->Step();
        if (!row.ok()) return row.error();
        if (!*row) break;
        last_seq = (*stmt)->ColumnInt(0);
        auto event = ParseBlob<v1::Event>((*stmt)->ColumnBlob(2), "inbox event");
        if (!event.ok()) return event.error();
        chunk.emplace_back((*stmt)->ColumnText(1), std::move(*event));
      }
    }
    // New events per member (resolved id), folded after the loop so a member
    // is folded once per chunk however many of its events the chunk holds.
    std::map<std::string, std::vector<v1::Event>> fresh;
    std::set<std::pair<std::string, std::string>> member_stores;  // (store, member)
    // Event member id -> resolved member: aliases and members, once there,
    // stay for the transaction.
    std::map<std::string, std::string> resolved;
    for (auto& [key, event] : chunk) {
      Result<std::string> member = std::string();
      if (auto it = resolved.find(event.member_id()); it != resolved.end()) {
        member = it->second;
      } else {
        member = ResolveMember(event, now_ms);
        if (member.ok()) resolved.emplace(event.member_id(), *member);
      }
      if (!member.ok()) {
        if (core::IsStorageFailure(member.error().code)) return member.error();
        // Append let it in, so this is a bug, not the terminal's mistake: it
        // is kept with the rejected events (and counted against the store),
        // and never blocks the events behind it.
        const std::string& store_id = event.id().store_id();
        if (auto s = RecordRejection(key, store_id, member.error(), now_ms, event); !s.ok()) {
          return s.error();
        }
        if (auto s = Exec("UPDATE stores SET events_rejected = events_rejected + 1 WHERE "
                          "store_id = ?",
                          {store_id});
            !s.ok()) {
          return s.error();
        }
        v1::EventRejection r;
        *r.mutable_id() = event.id();
        r.set_code(member.error().code);
        r.set_message(member.error().message);
        out.rejected.push_back(std::move(r));
        continue;
      }
      if (auto s = InsertEvent(key, *member, event); !s.ok()) return s.error();
      if (event.has_enrolment() && !event.enrolment().referral_code().empty()) {
        if (auto s = RecordReferral(*member, event.enrolment().referral_code()); !s.ok()) {
          return s.error();
        }
      }
      member_stores.emplace(event.id().store_id(), *member);
      fresh[*member].push_back(std::move(event));
    }
    if (auto s = CreditReferrers(fresh, now_ms); !s.ok()) return s.error();
    for (auto& [member_id, member_events] : fresh) {
      if (auto s = ApplyToMember(member_id, member_events, now_ms); !s.ok()) return s.error();
      out.touched_members.push_back(member_id);
    }
    for (const auto& [store_id, member_id] : member_stores) {
      if (auto s = Exec("INSERT OR IGNORE INTO member_stores(store_id, member_id) VALUES(?, ?)",
                        {store_id, member_id});
          !s.ok()) {
        return s.error();
      }
    }
    if (auto s = Exec("DELETE FROM inbox WHERE seq <= ?", {}, {last_seq}); !s.ok()) {
      return s.error();
    }
    out.latest_version = *feed_version_;
    if (auto s = txn->Commit(); !s.ok()) return s.error();
    out.folded = static_cast<int64_t>(chunk.size());
    out.unfolded = unfolded_ -= out.folded;
    return out;
  }

  int64_t UnfoldedEvents() const override { return unfolded_.load(); }

  // ------------------------------------------------------------ downlink --

  Result<v1::ChangesPage> Changes(uint64_t after_version, uint32_t max_changes,
                                  const std::string& scope_store) override {
    return ReadChangesPage(*db_, after_version, max_changes, scope_store);
  }

  Result<std::optional<v1::MemberSnapshot>> LookupForStore(const std::string& card_hash,
                                                           const std::string& store_id) override {
    std::string member_id;
    {
      auto stmt = db_->Prepare("SELECT member_id FROM members WHERE card_hash = ?");
      if (!stmt.ok()) return stmt.error();
      (*stmt)->Bind(1, card_hash);
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (*row) member_id = (*stmt)->ColumnText(0);
      (*stmt)->Reset();
    }
    if (member_id.empty()) return std::optional<v1::MemberSnapshot>();
    auto txn = Transaction::Begin(*db_);
    if (!txn.ok()) return txn.error();
    auto ledger = LoadLedger(member_id);
    if (!ledger.ok()) return ledger.error();
    if (!*ledger) return std::optional<v1::MemberSnapshot>();
    if (auto s = Exec("INSERT OR IGNORE INTO member_stores(store_id, member_id) VALUES(?, ?)",
                      {store_id, member_id});
        !s.ok()) {
      return s.error();
    }
    // New in the store's scope: a new version of the member, so that it
    // reaches every terminal of the store through the feed, whatever their
    // cursors (and the feed readers' per-store caches learn it).
    if (db_->Changes() > 0) {
      auto version = Bump("member", member_id);
      if (!version.ok()) return version.error();
      (*ledger)->mutable_snapshot()->set_version(*version);
      if (auto s = SaveLedger(**ledger); !s.ok()) return s.error();
    }
    if (auto s = txn->Commit(); !s.ok()) return s.error();
    return std::optional<v1::MemberSnapshot>((*ledger)->snapshot());
  }

  Result<uint64_t> LatestVersion() override { return ReadLatestVersion(*db_); }

  // --------------------------------------------------------- head office --

  Result<std::optional<MemberRecord>> FindMember(const std::string& card_hash_or_id,
                                                 int history_limit) override {
    auto member_id = ResolveAlias(card_hash_or_id);
    if (!member_id.ok()) return member_id.error();
    std::string id = *member_id;
    {
      auto stmt = db_->Prepare("SELECT member_id FROM members WHERE card_hash = ?");
      if (!stmt.ok()) return stmt.error();
      (*stmt)->Bind(1, card_hash_or_id);
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (*row) id = (*stmt)->ColumnText(0);
      (*stmt)->Reset();
    }
    auto ledger = LoadLedger(id);
    if (!ledger.ok()) return ledger.error();
    if (!*ledger) return std::optional<MemberRecord>();
    MemberRecord record;
    record.ledger = std::move(**ledger);
    auto stmt = db_->Prepare(
        "SELECT body FROM (SELECT body, occurred_ms, event_key FROM events WHERE member_id = ? "
        "ORDER BY occurred_ms DESC, event_key DESC LIMIT ?) ORDER BY occurred_ms, event_key");
    if (!stmt.ok()) return stmt.error();
    (*stmt)->Bind(1, id).Bind(2, int64_t{history_limit});
    for (;;) {
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      auto event = ParseBlob<v1::Event>((*stmt)->ColumnBlob(0), "event");
      if (!event.ok()) return event.error();
      record.history.push_back(std::move(*event));
    }
    return std::optional<MemberRecord>(std::move(record));
  }

  Result<uint64_t> PutOffer(const v1::Offer& offer) override {
    auto txn = Transaction::Begin(*db_);
    if (!txn.ok()) return txn.error();
    if (auto s = Exec("INSERT INTO offers(id, body, retired) VALUES(?, ?, 0) ON CONFLICT(id) DO "
                      "UPDATE SET body = excluded.body, retired = 0",
                      {offer.id()}, {}, offer.SerializeAsString());
        !s.ok()) {
      return s.error();
    }
    auto version = Bump("offer", offer.id());
    if (!version.ok()) return version.error();
    if (auto s = txn->Commit(); !s.ok()) return s.error();
    return *version;
  }

  Result<uint64_t> RetireOffer(const std::string& offer_id) override {
    auto txn = Transaction::Begin(*db_);
    if (!txn.ok()) return txn.error();
    auto existing = LoadOffer(offer_id);
    if (!existing.ok()) return existing.error();
    if (auto s = Exec("UPDATE offers SET retired = 1 WHERE id = ?", {offer_id}); !s.ok()) {
      return s.error();
    }
    auto version = Bump("offer", offer_id);
    if (!version.ok()) return version.error();
    if (auto s = txn->Commit(); !s.ok()) return s.error();
    return *version;
  }

  Result<std::vector<v1::Offer>> Offers() override {
    auto stmt = db_->Prepare("SELECT body FROM offers WHERE retired = 0 ORDER BY id");
    if (!stmt.ok()) return stmt.error();
    std::vector<v1::Offer> out;
    for (;;) {
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      auto offer = ParseBlob<v1::Offer>((*stmt)->ColumnBlob(0), "offer");
      if (!offer.ok()) return offer.error();
      out.push_back(std::move(*offer));
    }
    return out;
  }

  Result<uint64_t> PutProgramme(const v1::Programme& programme) override {
    if (auto s = core::ValidateProgramme(programme); !s.ok()) return s.error();
    if (programme.version() <= programme_.version()) {
      return MakeError(core::code::kConflict,
                       "programme version " + std::to_string(programme.version()) +
                           " is not newer than the published version " +
                           std::to_string(programme_.version()));
    }
    // Versions only go up, so a slip of the keyboard (18446744073709551615)
    // would freeze the programme for good. Room for date-like versions
    // (2026112401) from the first load on.
    constexpr uint64_t kMaxStep = 10'000'000'000;
    if (programme.version() - programme_.version() > kMaxStep) {
      return MakeError(core::code::kInvalidProgramme,
                       "programme version " + std::to_string(programme.version()) +
                           " is more than " + std::to_string(kMaxStep) +
                           " past the published version " + std::to_string(programme_.version()) +
                           ": no later version could follow a slip like that; use the next "
                           "number");
    }
    auto txn = Transaction::Begin(*db_);
    if (!txn.ok()) return txn.error();
    if (auto s = Exec("INSERT INTO meta(key, value) VALUES('programme', ?) ON CONFLICT(key) DO "
                      "UPDATE SET value = excluded.value",
                      {}, {}, programme.SerializeAsString());
        !s.ok()) {
      return s.error();
    }
    auto version = Bump("programme", "current");
    if (!version.ok()) return version.error();
    if (auto s = txn->Commit(); !s.ok()) return s.error();
    programme_ = programme;
    return *version;
  }

  Result<v1::Programme> Programme() override { return programme_; }

  Result<std::vector<v1::Conflict>> Conflicts() override {
    auto stmt = db_->Prepare("SELECT id, body FROM conflicts ORDER BY id");
    if (!stmt.ok()) return stmt.error();
    std::vector<v1::Conflict> out;
    for (;;) {
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      auto conflict = ParseBlob<v1::Conflict>((*stmt)->ColumnBlob(1), "conflict");
      if (!conflict.ok()) return conflict.error();
      conflict->set_id(static_cast<uint64_t>((*stmt)->ColumnInt(0)));
      out.push_back(std::move(*conflict));
    }
    return out;
  }

  Result<std::vector<v1::StoreStatus>> StoreStatuses() override {
    std::map<std::string, v1::StoreStatus> by_store;
    {
      auto stmt = db_->Prepare(
          "SELECT store_id, last_seen_ms, events_received, events_rejected, last_event_ms FROM "
          "stores ORDER BY store_id");
      if (!stmt.ok()) return stmt.error();
      for (;;) {
        auto row = (*stmt)->Step();
        if (!row.ok()) return row.error();
        if (!*row) break;
        v1::StoreStatus& s = by_store[(*stmt)->ColumnText(0)];
        s.set_store_id((*stmt)->ColumnText(0));
        s.set_last_seen_ms((*stmt)->ColumnInt(1));
        s.set_events_received((*stmt)->ColumnInt(2));
        s.set_events_rejected((*stmt)->ColumnInt(3));
        s.set_last_event_at_ms((*stmt)->ColumnInt(4));
        s.set_lag_ms(s.last_event_at_ms() > 0 ? s.last_seen_ms() - s.last_event_at_ms() : 0);
      }
    }
    auto stmt = db_->Prepare(
        "SELECT store_id, terminal_id, epoch, last_seq FROM terminals ORDER BY 1, 2, 3");
    if (!stmt.ok()) return stmt.error();
    for (;;) {
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      v1::StoreStatus& s = by_store[(*stmt)->ColumnText(0)];
      s.set_store_id((*stmt)->ColumnText(0));
      auto* t = s.add_terminals();
      t->set_terminal_id((*stmt)->ColumnText(1));
      t->set_epoch(static_cast<uint64_t>((*stmt)->ColumnInt(2)));
      t->set_last_seq(static_cast<uint64_t>((*stmt)->ColumnInt(3)));
    }
    std::vector<v1::StoreStatus> out;
    for (auto& [_, s] : by_store) out.push_back(std::move(s));
    return out;
  }

  Status TouchStore(const std::string& store_id, int64_t now_ms) override {
    return Exec("INSERT INTO stores(store_id, last_seen_ms) VALUES(?, ?) ON CONFLICT DO UPDATE "
                "SET last_seen_ms = excluded.last_seen_ms",
                {store_id}, {now_ms});
  }

  Result<Totals> LedgerTotals() override {
    Totals totals;
    {
      auto stmt = db_->Prepare("SELECT count(*) FROM events");
      if (!stmt.ok()) return stmt.error();
      if (auto row = (*stmt)->Step(); !row.ok()) return row.error();
      totals.events = (*stmt)->ColumnInt(0);
      (*stmt)->Reset();
    }
    auto stmt = db_->Prepare("SELECT ledger FROM members");
    if (!stmt.ok()) return stmt.error();
    for (;;) {
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      auto ledger = ParseBlob<v1::MemberLedger>((*stmt)->ColumnBlob(0), "member ledger");
      if (!ledger.ok()) return ledger.error();
      ++totals.members;
      totals.points += ledger->snapshot().points_balance();
    }
    return totals;
  }

  // -------------------------------------------------------- segmentation --

  Result<std::vector<v1::SegmentDefinition>> Segments() override { return segment_defs_; }

  Status PutSegment(const v1::SegmentDefinition& segment) override {
    if (auto s = core::ValidateSegment(segment); !s.ok()) return s;
    if (auto s = Exec("INSERT INTO segments(id, body) VALUES(?, ?) ON CONFLICT(id) DO UPDATE SET "
                      "body = excluded.body",
                      {segment.id()}, {}, segment.SerializeAsString());
        !s.ok()) {
      return s;
    }
    return LoadSegmentation();
  }

  Status DeleteSegment(const std::string& id) override {
    // A published promotion aimed at the segment would silently stop
    // reaching anyone, and could not be published again as it stands.
    auto offers = Offers();
    if (!offers.ok()) return offers.error();
    std::string users;
    for (const auto& offer : *offers) {
      if (std::find(offer.segment_ids().begin(), offer.segment_ids().end(), id) !=
          offer.segment_ids().end()) {
        users += (users.empty() ? "" : ", ") + offer.id();
      }
    }
    if (!users.empty()) {
      return MakeError(core::code::kConflict,
                       "segment \"" + id + "\" is targeted by the published promotions " + users +
                           ": retire them or change their segment_ids first");
    }
    if (auto s = Exec("DELETE FROM segments WHERE id = ?", {id}); !s.ok()) return s;
    if (db_->Changes() == 0) return MakeError(core::code::kNotFound, "no segment \"" + id + "\"");
    return LoadSegmentation();
  }

  Result<v1::CutPoints> CutPoints() override { return cuts_; }

  Status PutCutPoints(const v1::CutPoints& cuts) override {
    if (auto s = Exec("INSERT INTO meta(key, value) VALUES('cut_points', ?) ON CONFLICT(key) DO "
                      "UPDATE SET value = excluded.value",
                      {}, {}, cuts.SerializeAsString());
        !s.ok()) {
      return s;
    }
    cuts_ = cuts;
    return {};
  }

  Result<std::unique_ptr<ServerReader>> OpenReader() override {
    return OpenSqliteServerReader(path_, options_);
  }

  Result<int64_t> InstallCutPoints(const v1::CutPoints& cuts, uint64_t scanned_version,
                                   int64_t now_ms) override {
    auto txn = Transaction::Begin(*db_);
    if (!txn.ok()) return txn.error();
    const v1::CutPoints previous = cuts_;
    auto changed = [&]() -> Result<int64_t> {
      if (auto s = PutCutPoints(cuts); !s.ok()) return s.error();
      std::vector<std::string> touched;
      auto stmt = db_->Prepare(
          "SELECT key FROM changes WHERE version > ? AND kind = 'member' ORDER BY key");
      if (!stmt.ok()) return stmt.error();
      (*stmt)->Bind(1, static_cast<int64_t>(scanned_version));
      for (;;) {
        auto row = (*stmt)->Step();
        if (!row.ok()) return row.error();
        if (!*row) break;
        touched.push_back((*stmt)->ColumnText(0));
      }
      int64_t n = 0;
      for (const std::string& member_id : touched) {
        auto moved = Resegment(member_id, std::nullopt, now_ms);
        if (!moved.ok()) return moved.error();
        n += *moved ? 1 : 0;
      }
      if (auto s = txn->Commit(); !s.ok()) return s.error();
      return n;
    }();
    if (!changed.ok()) cuts_ = previous;  // rolled back
    return changed;
  }

  Result<int64_t> ApplySegments(std::span<const SegmentAssignment> assignments,
                                uint64_t scanned_version, int64_t now_ms) override {
    auto txn = Transaction::Begin(*db_);
    if (!txn.ok()) return txn.error();
    int64_t changed = 0;
    for (const SegmentAssignment& a : assignments) {
      const std::string member_id(a.member_id);
      auto version = MemberVersion(member_id);
      if (!version.ok()) return version.error();
      std::optional<std::vector<std::string>> ids;  // nullopt: recompute
      if (*version <= scanned_version) ids.emplace(a.segment_ids.begin(), a.segment_ids.end());
      auto moved = Resegment(member_id, std::move(ids), now_ms);
      if (!moved.ok()) return moved.error();
      changed += *moved ? 1 : 0;
    }
    if (auto s = txn->Commit(); !s.ok()) return s.error();
    return changed;
  }

  SegmentationStats segmentation_stats() const override { return segmentation_stats_; }

  Result<std::optional<v1::MemberFeatures>> FeaturesOf(const std::string& member_id,
                                                      int64_t now_ms) override {
    return ComputeMemberFeatures(member_id, now_ms);
  }

  Result<uint64_t> PutConsent(const std::string& member_id, const v1::MemberConsent& consent,
                              int64_t now_ms) override {
    auto txn = Transaction::Begin(*db_);
    if (!txn.ok()) return txn.error();
    auto ledger = LoadLedger(member_id);
    if (!ledger.ok()) return ledger.error();
    if (!*ledger) return MakeError(core::code::kNotFound, "no member " + member_id);
    const bool yes = consent.consent();
    if (auto s = Exec("INSERT INTO member_profiles(member_id, consent) VALUES(?, ?) ON "
                      "CONFLICT(member_id) DO UPDATE SET consent = excluded.consent",
                      {member_id}, {yes ? 1 : 0});
        !s.ok()) {
      return s.error();
    }
    // The text columns are bound separately: Exec binds texts before ints.
    if (auto s = Exec("UPDATE member_profiles SET age_band = ?, sex = ?, region = ? WHERE "
                      "member_id = ?",
                      {yes ? consent.age_band() : "", yes ? consent.sex() : "",
                       yes ? consent.region() : "", member_id});
        !s.ok()) {
      return s.error();
    }
    if (auto s = UpdateSegments(member_id, now_ms, nullptr, (*ledger)->mutable_snapshot());
        !s.ok()) {
      return s.error();
    }
    auto version = Bump("member", member_id);
    if (!version.ok()) return version.error();
    (*ledger)->mutable_snapshot()->set_version(*version);
    if (auto s = SaveLedger(**ledger); !s.ok()) return s.error();
    if (auto s = txn->Commit(); !s.ok()) return s.error();
    return *version;
  }

  Result<uint64_t> EraseMember(const std::string& member_id) override {
    auto txn = Transaction::Begin(*db_);
    if (!txn.ok()) return txn.error();
    auto ledger = LoadLedger(member_id);
    if (!ledger.ok()) return ledger.error();
    if (!*ledger) return MakeError(core::code::kNotFound, "no member " + member_id);
    const std::string hash = RandomHex(64);
    v1::MemberSnapshot* snap = (*ledger)->mutable_snapshot();
    snap->set_display_name("");
    snap->set_card_hash(hash);
    snap->clear_segment_ids();
    snap->set_referral_code("");
    if (auto s = Exec("INSERT INTO member_profiles(member_id, erased) VALUES(?, 1) ON "
                      "CONFLICT(member_id) DO UPDATE SET erased = 1, consent = 0, age_band = '', "
                      "sex = '', region = '', referral_code = NULL",
                      {member_id});
        !s.ok()) {
      return s.error();
    }
    if (auto s = SyncSegmentRows(member_id, {}, 0); !s.ok()) return s.error();
    if (auto s = Exec("UPDATE members SET card_hash = ? WHERE member_id = ?", {hash, member_id});
        !s.ok()) {
      return s.error();
    }
    // Enrolment events carry the name and card hash: rewrite them.
    std::vector<std::pair<std::string, v1::Event>> enrolments;
    {
      auto stmt = db_->Prepare("SELECT event_key, body FROM events WHERE member_id = ? AND kind = 4");
      if (!stmt.ok()) return stmt.error();
      (*stmt)->Bind(1, member_id);
      for (;;) {
        auto row = (*stmt)->Step();
        if (!row.ok()) return row.error();
        if (!*row) break;
        auto e = ParseBlob<v1::Event>((*stmt)->ColumnBlob(1), "event");
        if (!e.ok()) return e.error();
        enrolments.emplace_back((*stmt)->ColumnText(0), std::move(*e));
      }
    }
    for (auto& [key, e] : enrolments) {
      e.mutable_enrolment()->set_display_name("");
      e.mutable_enrolment()->set_card_hash(hash);
      if (auto s = Exec("UPDATE events SET body = ?2 WHERE event_key = ?1", {key}, {},
                        e.SerializeAsString());
          !s.ok()) {
        return s.error();
      }
    }
    if (auto s = Exec("DELETE FROM changes WHERE kind = 'member' AND key = ?", {member_id});
        !s.ok()) {
      return s.error();
    }
    if (auto s = SaveLedger(**ledger); !s.ok()) return s.error();
    auto version = Bump("erased", member_id);
    if (!version.ok()) return version.error();
    if (auto s = txn->Commit(); !s.ok()) return s.error();
    return *version;
  }

  Result<std::optional<std::string>> ResolveMemberId(const std::string& key) override {
    auto found = FindMember(key, 0);
    if (!found.ok()) return found.error();
    if (!*found) return std::optional<std::string>();
    return std::optional<std::string>((*found)->ledger.snapshot().member_id());
  }

 private:
  // Runs a statement with text parameters, then integer parameters, then an
  // optional blob, bound in that order.
  Status Exec(std::string_view sql, std::initializer_list<std::string_view> texts,
              std::initializer_list<int64_t> ints = {}, std::optional<std::string> blob = {}) {
    auto stmt = db_->Prepare(sql);
    if (!stmt.ok()) return stmt.error();
    int i = 1;
    for (auto t : texts) (*stmt)->Bind(i++, t);
    for (auto n : ints) (*stmt)->Bind(i++, n);
    if (blob) (*stmt)->BindBlob(i++, *blob);
    return (*stmt)->Run();
  }

  // The stored last_seq of `terminal` (0: none yet), through `cache`.
  Result<uint64_t> StoredLastSeq(const TerminalEpoch& terminal,
                                 std::map<TerminalEpoch, uint64_t>& cache) {
    if (auto it = cache.find(terminal); it != cache.end()) return it->second;
    auto stmt = db_->Prepare(
        "SELECT last_seq FROM terminals WHERE store_id = ? AND terminal_id = ? AND epoch = ?");
    if (!stmt.ok()) return stmt.error();
    const auto& [store_id, terminal_id, epoch] = terminal;
    (*stmt)->Bind(1, store_id).Bind(2, terminal_id).Bind(3, static_cast<int64_t>(epoch));
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    const uint64_t seq = *row ? static_cast<uint64_t>((*stmt)->ColumnInt(0)) : 0;
    (*stmt)->Reset();
    cache.emplace(terminal, seq);
    return seq;
  }

  // The uuid stored under `key`, folded or still in the inbox.
  Result<std::optional<std::string>> SeenUuid(const std::string& key) {
    for (std::string_view sql : {"SELECT uuid FROM inbox WHERE event_key = ?",
                                 "SELECT uuid FROM events WHERE event_key = ?"}) {
      auto stmt = db_->Prepare(sql);
      if (!stmt.ok()) return stmt.error();
      (*stmt)->Bind(1, key);
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (!*row) continue;
      std::string uuid = (*stmt)->ColumnText(0);
      (*stmt)->Reset();
      return std::optional<std::string>(std::move(uuid));
    }
    return std::optional<std::string>();
  }

  // Whether the member an uploaded event names exists, or will once the
  // inbox is folded: an enrolment always does (it creates the member or
  // merges into the card's member); otherwise the id must be a member, an
  // alias of one, or the id of an enrolment waiting in the inbox.
  Result<bool> IsEnrolled(const v1::Event& event) {
    if (event.has_enrolment()) return true;
    auto resolved = ResolveAlias(event.member_id());
    if (!resolved.ok()) return resolved.error();
    auto exists = MemberExists(*resolved);
    if (!exists.ok() || *exists) return exists;
    auto stmt = db_->Prepare("SELECT 1 FROM inbox WHERE member_id = ? AND enrolment = 1");
    if (!stmt.ok()) return stmt.error();
    (*stmt)->Bind(1, event.member_id());
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    (*stmt)->Reset();
    return *row;
  }

  Status RecordRejection(const std::string& key, const std::string& store_id,
                         const core::Error& error, int64_t now_ms, const v1::Event& event) {
    return Exec("INSERT INTO rejected_events(event_key, store_id, code, message, received_ms, "
                "body) VALUES(?, ?, ?, ?, ?, ?)",
                {key, store_id, error.code, error.message}, {now_ms}, event.SerializeAsString());
  }

  Result<std::string> ResolveAlias(const std::string& id) {
    auto stmt = db_->Prepare("SELECT member_id FROM member_aliases WHERE alias = ?");
    if (!stmt.ok()) return stmt.error();
    (*stmt)->Bind(1, id);
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    std::string out = *row ? (*stmt)->ColumnText(0) : id;
    (*stmt)->Reset();
    return out;
  }

  // The member an event belongs to. An enrolment of a new card creates the
  // member under the terminal's provisional id, which the server thereby
  // confirms; an enrolment of a card already known (enrolled offline at two
  // stores) makes the provisional id an alias of the existing member.
  Result<std::string> ResolveMember(const v1::Event& event, int64_t now_ms) {
    auto resolved = ResolveAlias(event.member_id());
    if (!resolved.ok()) return resolved.error();
    auto known = MemberExists(*resolved);
    if (!known.ok()) return known.error();
    if (*known) return *resolved;
    if (event.body_case() != v1::Event::kEnrolment) {
      return MakeError("unknown_member", "member " + event.member_id() + " is not enrolled");
    }
    const auto& enrolment = event.enrolment();
    auto stmt = db_->Prepare("SELECT member_id FROM members WHERE card_hash = ?");
    if (!stmt.ok()) return stmt.error();
    (*stmt)->Bind(1, enrolment.card_hash());
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    if (*row) {
      std::string existing = (*stmt)->ColumnText(0);
      (*stmt)->Reset();
      if (auto s = Exec("INSERT OR IGNORE INTO member_aliases(alias, member_id) VALUES(?, ?)",
                        {event.member_id(), existing});
          !s.ok()) {
        return s.error();
      }
      auto merged = LoadLedger(existing);
      if (!merged.ok()) return merged.error();
      (*merged)->add_aliases(event.member_id());
      if (auto s = SaveLedger(**merged); !s.ok()) return s.error();
      return existing;
    }
    v1::MemberLedger fresh;
    auto* snap = fresh.mutable_snapshot();
    snap->set_member_id(event.member_id());
    snap->set_card_hash(enrolment.card_hash());
    snap->set_display_name(enrolment.display_name());
    snap->set_language(enrolment.language());
    if (programme_.tiers_size() > 0) snap->set_tier(programme_.tiers(0).name());
    fresh.set_enrolled_at_ms(event.occurred_at_ms() > 0 ? event.occurred_at_ms() : now_ms);
    if (auto s = Exec("INSERT INTO members(member_id, card_hash, ledger) VALUES(?, ?, ?)",
                      {event.member_id(), enrolment.card_hash()}, {},
                      fresh.SerializeAsString());
        !s.ok()) {
      return s.error();
    }
    return event.member_id();
  }

  // Folds a member's new events into its ledger with the same core rules the
  // terminals use, decides the tier (with grace), records overdraws and
  // publishes the new snapshot to the change feed.
  Status ApplyToMember(const std::string& member_id, std::vector<v1::Event>& events,
                       int64_t now_ms) {
    auto loaded = LoadLedger(member_id);
    if (!loaded.ok()) return loaded.error();
    if (!*loaded) return MakeError(core::code::kInternal, "member vanished during ingest");
    v1::MemberLedger ledger = std::move(**loaded);
    SortByTimeAndKey(events);
    const v1::MemberSnapshot before = ledger.snapshot();
    core::MemberState state = core::FoldMember(programme_, &before, events, now_ms);

    // Qualification is recomputed from daily activity, so the window keeps
    // moving on the server even for members who stop coming.
    std::map<int64_t, v1::DailyActivity> days;
    for (const auto& d : ledger.activity()) days[d.day()] = d;
    for (const v1::Event& e : events) {
      const int64_t day = DayOf(e.occurred_at_ms());
      v1::DailyActivity& d = days[day];
      d.set_day(day);
      if (e.has_visit()) d.set_visits(d.visits() + 1);
      if (e.has_purchase()) d.set_spend(d.spend() + e.purchase().qualifying_spend());
      if (e.has_reversal()) d.set_spend(d.spend() - e.reversal().qualifying_spend_reversed());
    }
    const int64_t window_days = core::QualifyingWindowDays(programme_);
    const int64_t first_day = DayOf(now_ms) - window_days + 1;
    ledger.clear_activity();
    int64_t visits = 0, spend = 0;
    for (auto& [day, d] : days) {
      if (day < first_day) continue;
      visits += d.visits();
      spend += d.spend();
      *ledger.add_activity() = d;
    }
    spend = std::max<int64_t>(0, spend);
    const core::TierDecision tier = core::DecideTier(
        programme_, before.tier(), before.tier_kept_until_ms(), visits, spend, now_ms);

    v1::MemberSnapshot* snap = ledger.mutable_snapshot();
    snap->set_points_balance(state.points_balance);
    snap->clear_lots();
    for (const auto& lot : state.lots) *snap->add_lots() = lot;
    snap->set_qualifying_visits(visits);
    snap->set_qualifying_spend(spend);
    snap->set_tier(tier.tier);
    snap->set_tier_kept_until_ms(tier.kept_until_ms);
    snap->clear_offer_uses();
    for (const auto& [offer, uses] : state.offer_uses) (*snap->mutable_offer_uses())[offer] = uses;
    snap->set_as_of_ms(now_ms);
    for (const v1::Event& e : events) {
      auto& seq = (*snap->mutable_included_seq())[TerminalKey(e.id())];
      seq = std::max<uint64_t>(seq, e.id().seq());
    }

    if (state.points_balance < 0 && before.points_balance() >= state.points_balance) {
      v1::Conflict conflict;
      conflict.set_member_id(member_id);
      conflict.set_kind("overdraw");
      conflict.set_balance_after(state.points_balance);
      conflict.set_detected_at_ms(now_ms);
      std::string detail = "redemptions and reversals took the balance to " +
                           std::to_string(state.points_balance) + " points";
      conflict.set_detail(detail);
      auto debits = OverdrawingDebits(member_id, state.points_balance);
      if (!debits.ok()) return debits.error();
      for (const std::string& key : *debits) conflict.add_event_ids(key);
      if (conflict.event_ids_size() > 0) {
        if (auto s = Exec("INSERT INTO conflicts(member_id, body) VALUES(?, ?)", {member_id}, {},
                          conflict.SerializeAsString());
            !s.ok()) {
          return s;
        }
      }
    }
    if (auto s = UpdateSegments(member_id, now_ms, nullptr, snap); !s.ok()) return s;
    auto version = Bump("member", member_id);
    if (!version.ok()) return version.error();
    snap->set_version(*version);
    return SaveLedger(ledger);
  }

  // The debits (redemptions, reversals, negative adjustments) that together
  // overdrew a member, newest first: walking back from the newest, up to
  // and including the one after which the balance was last non-negative. So
  // two stores' redemptions, uploaded in different batches, are both named.
  // Credits in between are ignored: the list may name one debit too many,
  // never too few.
  Result<std::vector<std::string>> OverdrawingDebits(const std::string& member_id,
                                                     int64_t balance_after) {
    auto stmt = db_->Prepare(
        "SELECT event_key, body FROM events WHERE member_id = ? "
        "ORDER BY occurred_ms DESC, event_key DESC LIMIT 500");
    if (!stmt.ok()) return stmt.error();
    (*stmt)->Bind(1, member_id);
    std::vector<std::string> keys;
    int64_t debited = 0;
    for (;;) {
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      auto e = ParseBlob<v1::Event>((*stmt)->ColumnBlob(1), "event");
      if (!e.ok()) return e.error();
      int64_t debit = 0;
      if (e->has_redemption()) debit = e->redemption().points();
      if (e->has_reversal()) debit = e->reversal().points_reversed();
      if (e->has_adjustment() && e->adjustment().points() < 0) debit = -e->adjustment().points();
      if (debit <= 0) continue;
      keys.push_back((*stmt)->ColumnText(0));
      debited += debit;
      // Balance just after this debit, had the newer ones not happened.
      if (balance_after + debited - debit >= 0) break;
    }
    return keys;
  }

  Result<uint64_t> Bump(std::string_view kind, std::string_view key) {
    uint64_t version = 0;
    if (feed_version_) {
      version = *feed_version_ + 1;
    } else {
      auto latest = LatestVersion();
      if (!latest.ok()) return latest.error();
      version = *latest + 1;
    }
    if (auto s = Exec("INSERT INTO changes(kind, key, version) VALUES(?, ?, ?) ON CONFLICT DO "
                      "UPDATE SET version = excluded.version",
                      {kind, key}, {static_cast<int64_t>(version)});
        !s.ok()) {
      return s.error();
    }
    if (feed_version_) feed_version_ = version;
    return version;
  }

  Result<std::optional<v1::MemberLedger>> LoadLedger(const std::string& member_id) {
    auto stmt = db_->Prepare("SELECT ledger FROM members WHERE member_id = ?");
    if (!stmt.ok()) return stmt.error();
    (*stmt)->Bind(1, member_id);
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    if (!*row) return std::optional<v1::MemberLedger>();
    auto ledger = ParseBlob<v1::MemberLedger>((*stmt)->ColumnBlob(0), "member ledger");
    (*stmt)->Reset();
    if (!ledger.ok()) return ledger.error();
    return std::optional<v1::MemberLedger>(std::move(*ledger));
  }

  // Without reading the ledger, which may span overflow pages.
  Result<bool> MemberExists(const std::string& member_id) {
    auto stmt = db_->Prepare("SELECT 1 FROM members WHERE member_id = ?");
    if (!stmt.ok()) return stmt.error();
    (*stmt)->Bind(1, member_id);
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    const bool found = *row;
    (*stmt)->Reset();
    return found;
  }

  Status SaveLedger(const v1::MemberLedger& ledger) {
    auto stmt = db_->Prepare("UPDATE members SET ledger = ? WHERE member_id = ?");
    if (!stmt.ok()) return stmt.error();
    return (*stmt)
        ->BindBlob(1, ledger.SerializeAsString())
        .Bind(2, ledger.snapshot().member_id())
        .Run();
  }

  Result<std::pair<v1::Offer, bool>> LoadOffer(const std::string& id) {
    auto stmt = db_->Prepare("SELECT body, retired FROM offers WHERE id = ?");
    if (!stmt.ok()) return stmt.error();
    (*stmt)->Bind(1, id);
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    if (!*row) return MakeError(core::code::kNotFound, "no offer \"" + id + "\"");
    auto offer = ParseBlob<v1::Offer>((*stmt)->ColumnBlob(0), "offer");
    const bool retired = (*stmt)->ColumnInt(1) != 0;
    (*stmt)->Reset();
    if (!offer.ok()) return offer.error();
    return std::make_pair(std::move(*offer), retired);
  }

  Result<v1::Programme> LoadProgramme() {
    auto stmt = db_->Prepare("SELECT value FROM meta WHERE key = 'programme'");
    if (!stmt.ok()) return stmt.error();
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    if (!*row) return core::DefaultProgramme();
    auto programme = ParseBlob<v1::Programme>((*stmt)->ColumnBlob(0), "programme");
    (*stmt)->Reset();
    return programme;
  }

  // ------------------------------------------------- segmentation helpers --

  Status InsertEvent(const std::string& key, const std::string& member_id, const v1::Event& event) {
    const core::EventFacts facts = core::FactsOf(event);
    return Exec("INSERT INTO events(event_key, uuid, member_id, cats, occurred_ms, kind, amount, "
                "party, body) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                {key, event.id().uuid(), member_id, facts.categories},
                {event.occurred_at_ms(), static_cast<int64_t>(facts.kind), facts.amount,
                 facts.party},
                event.SerializeAsString());
  }

  // Rows from before migration 2 get their facts columns once.
  // Once done it is recorded in meta, so a large ledger is not scanned for
  // kind = -1 (no index serves it) at every start.
  Status BackfillFacts() {
    auto done = db_->Prepare("SELECT 1 FROM meta WHERE key = 'facts_backfilled'");
    if (!done.ok()) return done.error();
    auto found = (*done)->Step();
    if (!found.ok()) return found.error();
    (*done)->Reset();
    if (*found) return {};
    for (;;) {
      std::vector<std::pair<std::string, v1::Event>> rows;
      {
        auto stmt = db_->Prepare("SELECT event_key, body FROM events WHERE kind = -1 LIMIT 10000");
        if (!stmt.ok()) return stmt.error();
        for (;;) {
          auto row = (*stmt)->Step();
          if (!row.ok()) return row.error();
          if (!*row) break;
          auto e = ParseBlob<v1::Event>((*stmt)->ColumnBlob(1), "event");
          if (!e.ok()) return e.error();
          rows.emplace_back((*stmt)->ColumnText(0), std::move(*e));
        }
      }
      if (rows.empty()) {
        return Exec("INSERT OR IGNORE INTO meta(key, value) VALUES('facts_backfilled', '1')", {});
      }
      auto txn = Transaction::Begin(*db_);
      if (!txn.ok()) return txn.error();
      for (const auto& [key, e] : rows) {
        const core::EventFacts f = core::FactsOf(e);
        if (auto s = Exec("UPDATE events SET cats = ?1, kind = ?3, amount = ?4, party = ?5 WHERE "
                          "event_key = ?2",
                          {f.categories, key}, {static_cast<int64_t>(f.kind), f.amount, f.party});
            !s.ok()) {
          return s;
        }
      }
      if (auto s = txn->Commit(); !s.ok()) return s;
    }
  }

  Status LoadSegmentation() {
    auto seeded = db_->Prepare("SELECT 1 FROM meta WHERE key = 'segments_seeded'");
    if (!seeded.ok()) return seeded.error();
    auto row = (*seeded)->Step();
    if (!row.ok()) return row.error();
    const bool was_seeded = *row;
    (*seeded)->Reset();
    if (!was_seeded) {
      for (const auto& d : core::DefaultSegments()) {
        if (auto s = Exec("INSERT OR IGNORE INTO segments(id, body) VALUES(?, ?)", {d.id()}, {},
                          d.SerializeAsString());
            !s.ok()) {
          return s;
        }
      }
      if (auto s = Exec("INSERT INTO meta(key, value) VALUES('segments_seeded', '1')", {});
          !s.ok()) {
        return s;
      }
    }
    segment_defs_.clear();
    auto stmt = db_->Prepare("SELECT body FROM segments ORDER BY id");
    if (!stmt.ok()) return stmt.error();
    for (;;) {
      auto r = (*stmt)->Step();
      if (!r.ok()) return r.error();
      if (!*r) break;
      auto d = ParseBlob<v1::SegmentDefinition>((*stmt)->ColumnBlob(0), "segment");
      if (!d.ok()) return d.error();
      segment_defs_.push_back(std::move(*d));
    }
    segments_ = core::SegmentSet(segment_defs_);
    auto cuts = db_->Prepare("SELECT value FROM meta WHERE key = 'cut_points'");
    if (!cuts.ok()) return cuts.error();
    auto c = (*cuts)->Step();
    if (!c.ok()) return c.error();
    if (*c) {
      auto parsed = ParseBlob<v1::CutPoints>((*cuts)->ColumnBlob(0), "cut points");
      (*cuts)->Reset();
      if (!parsed.ok()) return parsed.error();
      cuts_ = std::move(*parsed);
    }
    return {};
  }

  struct Profile {
    bool erased = false;
    v1::MemberConsent consent;
    std::string referral_code;
  };

  Result<Profile> LoadProfile(const std::string& member_id) {
    auto stmt = db_->Prepare(
        "SELECT erased, consent, age_band, sex, region, coalesce(referral_code, '') FROM "
        "member_profiles WHERE member_id = ?");
    if (!stmt.ok()) return stmt.error();
    (*stmt)->Bind(1, member_id);
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    Profile p;
    if (*row) {
      p.erased = (*stmt)->ColumnInt(0) != 0;
      p.consent.set_consent((*stmt)->ColumnInt(1) != 0);
      p.consent.set_age_band((*stmt)->ColumnText(2));
      p.consent.set_sex((*stmt)->ColumnText(3));
      p.consent.set_region((*stmt)->ColumnText(4));
      p.referral_code = (*stmt)->ColumnText(5);
      (*stmt)->Reset();
    }
    return p;
  }

  // Folds the member's facts (one range of the covering index) into `fold`
  // and loads its profile; false for an erased member.
  Result<bool> FoldMemberFacts(const std::string& member_id, core::FeatureFold* fold,
                               Profile* profile) {
    auto loaded = LoadProfile(member_id);
    if (!loaded.ok()) return loaded.error();
    *profile = std::move(*loaded);
    if (profile->erased) return false;
    auto stmt = db_->Prepare(
        "SELECT occurred_ms, kind, amount, party, cats FROM events INDEXED BY events_facts "
        "WHERE member_id = ?");
    if (!stmt.ok()) return stmt.error();
    (*stmt)->Bind(1, member_id);
    for (;;) {
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      const auto kind = static_cast<core::FactKind>((*stmt)->ColumnInt(1));
      fold->Add((*stmt)->ColumnInt(0), kind, (*stmt)->ColumnInt(2), (*stmt)->ColumnInt(3),
                kind == core::FactKind::kPurchase ? (*stmt)->ColumnBlob(4) : std::string_view());
    }
    return true;
  }

  // The member's features and segments now, from the facts columns; nullopt
  // for an erased member.
  Result<std::optional<v1::MemberFeatures>> ComputeMemberFeatures(const std::string& member_id,
                                                                  int64_t now_ms) {
    core::FeatureFold fold(core::FeatureContext{now_ms, options_.utc_offset_minutes, &cuts_});
    Profile profile;
    auto folded = FoldMemberFacts(member_id, &fold, &profile);
    if (!folded.ok()) return folded.error();
    if (!*folded) return std::optional<v1::MemberFeatures>();
    v1::MemberFeatures f = fold.Finish(member_id, &profile.consent);
    for (auto& id : segments_.Evaluate(f)) f.add_segment_ids(std::move(id));
    return std::optional<v1::MemberFeatures>(std::move(f));
  }

  // The member's segment ids now (definition order); nullopt when erased.
  // What ComputeMemberFeatures gives, without building the message.
  Result<std::optional<std::vector<std::string>>> ComputeMemberSegments(
      const std::string& member_id, int64_t now_ms) {
    core::FeatureFold& fold = incremental_fold_;  // reused: no allocation per member
    fold.Reset(core::FeatureContext{now_ms, options_.utc_offset_minutes, &cuts_});
    Profile profile;
    auto folded = FoldMemberFacts(member_id, &fold, &profile);
    if (!folded.ok()) return folded.error();
    if (!*folded) return std::optional<std::vector<std::string>>();
    const v1::MemberConsent& c = profile.consent;
    core::FeatureValues values;
    fold.Finish(core::Demographics{c.consent(), c.age_band(), c.sex(), c.region()}, &values);
    return std::optional<std::vector<std::string>>(segments_.Evaluate(values));
  }

  // Makes member_segments hold `ids` for the member, recording the moves
  // (KPIs); true when anything changed.
  Result<bool> SyncSegmentRows(const std::string& member_id, const std::vector<std::string>& ids,
                               int64_t now_ms) {
    std::set<std::string> current;
    {
      auto stmt = db_->Prepare("SELECT segment_id FROM member_segments WHERE member_id = ?");
      if (!stmt.ok()) return stmt.error();
      (*stmt)->Bind(1, member_id);
      for (;;) {
        auto row = (*stmt)->Step();
        if (!row.ok()) return row.error();
        if (!*row) break;
        current.insert((*stmt)->ColumnText(0));
      }
    }
    const std::set<std::string> wanted(ids.begin(), ids.end());
    if (current == wanted) return false;
    for (const auto& id : current) {
      if (wanted.count(id)) continue;
      if (auto s = Exec("DELETE FROM member_segments WHERE member_id = ? AND segment_id = ?",
                        {member_id, id});
          !s.ok()) {
        return s.error();
      }
      if (auto s = Exec("INSERT INTO segment_moves(segment_id, member_id, at_ms, entered) "
                        "VALUES(?, ?, ?, 0)",
                        {id, member_id}, {now_ms});
          !s.ok()) {
        return s.error();
      }
    }
    for (const auto& id : wanted) {
      if (current.count(id)) continue;
      if (auto s = Exec("INSERT INTO member_segments(member_id, segment_id, since_ms) "
                        "VALUES(?, ?, ?)",
                        {member_id, id}, {now_ms});
          !s.ok()) {
        return s.error();
      }
      if (auto s = Exec("INSERT INTO segment_moves(segment_id, member_id, at_ms, entered) "
                        "VALUES(?, ?, ?, 1)",
                        {id, member_id}, {now_ms});
          !s.ok()) {
        return s.error();
      }
    }
    return true;
  }

  // Puts `ids` into the snapshot, and the member's referral code while they
  // are a champion (created the first time).
  Status FillSnapshotSegments(const std::vector<std::string>& ids, v1::MemberSnapshot* snap) {
    snap->clear_segment_ids();
    for (const auto& id : ids) snap->add_segment_ids(id);
    const bool champion = std::find(ids.begin(), ids.end(), kChampions) != ids.end();
    if (!champion) {
      snap->set_referral_code("");
      return {};
    }
    auto profile = LoadProfile(snap->member_id());
    if (!profile.ok()) return profile.error();
    std::string code = profile->referral_code;
    if (code.empty()) {
      // Random, so that codes cannot be guessed from one another; checked
      // against the codes already given, since at a million members two
      // draws colliding is likely (birthday bound), not rare.
      for (int attempt = 0;; ++attempt) {
        code = "R" + RandomCode(8);
        auto taken = db_->Prepare("SELECT 1 FROM member_profiles WHERE referral_code = ?");
        if (!taken.ok()) return taken.error();
        (*taken)->Bind(1, code);
        auto row = (*taken)->Step();
        if (!row.ok()) return row.error();
        (*taken)->Reset();
        if (!*row) break;
        if (attempt == 16) {
          return MakeError(core::code::kInternal, "no free referral code after 16 draws");
        }
      }
      if (auto s = Exec("INSERT INTO member_profiles(member_id, referral_code) VALUES(?, ?) ON "
                        "CONFLICT(member_id) DO UPDATE SET referral_code = excluded.referral_code",
                        {snap->member_id(), code});
          !s.ok()) {
        return s;
      }
    }
    snap->set_referral_code(code);
    return {};
  }

  // Incremental update of one member inside the caller's transaction.
  Status UpdateSegments(const std::string& member_id, int64_t now_ms,
                        const v1::MemberFeatures* precomputed, v1::MemberSnapshot* snap) {
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::string> ids;
    if (precomputed != nullptr) {
      ids.assign(precomputed->segment_ids().begin(), precomputed->segment_ids().end());
    } else {
      auto computed = ComputeMemberSegments(member_id, now_ms);
      if (!computed.ok()) return computed.error();
      if (*computed) ids = std::move(**computed);
    }
    // The snapshot holds the member's saved segments (member_segments and
    // the snapshot change together): when they are still right, as they
    // mostly are, neither needs touching.
    const bool same = std::equal(ids.begin(), ids.end(), snap->segment_ids().begin(),
                                 snap->segment_ids().end());
    Status filled;
    if (!same || (std::find(ids.begin(), ids.end(), kChampions) != ids.end() &&
                  snap->referral_code().empty())) {
      if (auto s = SyncSegmentRows(member_id, ids, now_ms); !s.ok()) return s.error();
      filled = FillSnapshotSegments(ids, snap);
    }
    ++segmentation_stats_.incremental_members;
    segmentation_stats_.incremental_ns +=
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                             started)
            .count();
    return filled;
  }

  // The full pass's write of one member: makes its saved segments, snapshot
  // and feed hold `ids` (recomputed from its events when nullopt). False
  // when nothing changed or the member is erased.
  Result<bool> Resegment(const std::string& member_id, std::optional<std::vector<std::string>> ids,
                         int64_t now_ms) {
    if (ids) {
      auto profile = LoadProfile(member_id);
      if (!profile.ok()) return profile.error();
      if (profile->erased) return false;
    } else {
      auto computed = ComputeMemberSegments(member_id, now_ms);
      if (!computed.ok()) return computed.error();
      if (!*computed) return false;
      ids = std::move(**computed);
    }
    auto moved = SyncSegmentRows(member_id, *ids, now_ms);
    if (!moved.ok()) return moved.error();
    if (!*moved) return false;
    auto ledger = LoadLedger(member_id);  // members are never deleted, only erased
    if (!ledger.ok()) return ledger.error();
    if (!*ledger) return MakeError(core::code::kInternal, "segments of an unknown member");
    if (auto s = FillSnapshotSegments(*ids, (*ledger)->mutable_snapshot()); !s.ok()) {
      return s.error();
    }
    auto bumped = Bump("member", member_id);
    if (!bumped.ok()) return bumped.error();
    (*ledger)->mutable_snapshot()->set_version(*bumped);
    if (auto s = SaveLedger(**ledger); !s.ok()) return s.error();
    return true;
  }

  Result<uint64_t> MemberVersion(const std::string& member_id) {
    auto stmt = db_->Prepare("SELECT version FROM changes WHERE kind = 'member' AND key = ?");
    if (!stmt.ok()) return stmt.error();
    (*stmt)->Bind(1, member_id);
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    const uint64_t v = *row ? static_cast<uint64_t>((*stmt)->ColumnInt(0)) : 0;
    (*stmt)->Reset();
    return v;
  }

  Status RecordReferral(const std::string& member_id, const std::string& code) {
    auto stmt = db_->Prepare(
        "SELECT member_id FROM member_profiles WHERE referral_code = ? AND erased = 0");
    if (!stmt.ok()) return stmt.error();
    (*stmt)->Bind(1, code);
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    if (!*row) return {};  // unknown code: the enrolment stands, nobody is credited
    const std::string referrer = (*stmt)->ColumnText(0);
    (*stmt)->Reset();
    if (referrer == member_id) return {};
    return Exec("INSERT OR IGNORE INTO referrals(member_id, referrer_id) VALUES(?, ?)",
                {member_id, referrer});
  }

  // A referred member's first purchase credits the referrer once, with a
  // server-side Adjustment event (so balances stay folds over events).
  Status CreditReferrers(std::map<std::string, std::vector<v1::Event>>& fresh, int64_t now_ms) {
    if (options_.referral_reward_points <= 0) return {};
    std::vector<std::pair<std::string, std::string>> credits;  // referred, referrer
    for (const auto& [member_id, events] : fresh) {
      if (std::none_of(events.begin(), events.end(),
                       [](const v1::Event& e) { return e.has_purchase(); })) {
        continue;
      }
      auto stmt = db_->Prepare(
          "SELECT referrer_id FROM referrals WHERE member_id = ? AND credited_ms = 0");
      if (!stmt.ok()) return stmt.error();
      (*stmt)->Bind(1, member_id);
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (*row) credits.emplace_back(member_id, (*stmt)->ColumnText(0));
      (*stmt)->Reset();
    }
    for (const auto& [referred, referrer] : credits) {
      auto stmt = db_->Prepare(
          "SELECT coalesce(max(last_seq), 0) FROM terminals WHERE store_id = 'server' AND "
          "terminal_id = 'referral' AND epoch = 1");
      if (!stmt.ok()) return stmt.error();
      if (auto row = (*stmt)->Step(); !row.ok()) return row.error();
      const int64_t seq = (*stmt)->ColumnInt(0) + 1;
      (*stmt)->Reset();
      v1::Event credit;
      credit.mutable_id()->set_store_id("server");
      credit.mutable_id()->set_terminal_id("referral");
      credit.mutable_id()->set_epoch(1);
      credit.mutable_id()->set_seq(static_cast<uint64_t>(seq));
      credit.mutable_id()->set_uuid("referral-" + referred);
      credit.set_occurred_at_ms(now_ms);
      credit.set_member_id(referrer);
      credit.mutable_adjustment()->set_points(options_.referral_reward_points);
      credit.mutable_adjustment()->set_reason("referral of " + referred);
      credit.mutable_adjustment()->set_actor("server");
      if (auto s = InsertEvent(EventKey(credit.id()), referrer, credit); !s.ok()) return s;
      if (auto s = Exec("INSERT INTO terminals(store_id, terminal_id, epoch, last_seq) VALUES("
                        "'server', 'referral', 1, ?) ON CONFLICT DO UPDATE SET last_seq = "
                        "excluded.last_seq",
                        {}, {seq});
          !s.ok()) {
        return s;
      }
      if (auto s = Exec("UPDATE referrals SET credited_ms = ?2 WHERE member_id = ?1", {referred},
                        {now_ms});
          !s.ok()) {
        return s;
      }
      fresh[referrer].push_back(std::move(credit));
    }
    return {};
  }

  static std::string RandomCode(int n) {
    static constexpr char kAlphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::string out;
    for (int i = 0; i < n; ++i) out.push_back(kAlphabet[rng() % (sizeof kAlphabet - 1)]);
    return out;
  }

  static std::string RandomHex(int n) {
    static constexpr char kHex[] = "0123456789abcdef";
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::string out;
    for (int i = 0; i < n; ++i) out.push_back(kHex[rng() % 16]);
    return out;
  }

  static constexpr const char* kChampions = "rfm-champions";

  std::unique_ptr<Database> db_;
  const std::string path_;
  v1::Programme programme_;
  const SegmentationOptions options_;
  std::vector<v1::SegmentDefinition> segment_defs_;
  core::SegmentSet segments_;
  v1::CutPoints cuts_;
  core::FeatureFold incremental_fold_{core::FeatureContext{}};
  SegmentationStats segmentation_stats_;
  // The change feed's latest version while Fold's transaction runs (the
  // only writer), so each Bump need not query it; unset otherwise.
  std::optional<uint64_t> feed_version_;
  // Member ids (as uploaded) known to be enrolled: Append checks each
  // event's member once, not once per event. Members are never deleted, so
  // an id stays valid; the set is dropped when it grows past the cap.
  std::unordered_set<std::string> enrolled_;
  static constexpr std::size_t kMaxEnrolledCache = 1'000'000;
  // Rows in the inbox; written on the database thread after each commit,
  // read from any thread (UnfoldedEvents).
  std::atomic<int64_t> unfolded_{0};
};

}  // namespace

Result<std::unique_ptr<ServerStore>> OpenSqliteServerStore(const std::string& path,
                                                            const SegmentationOptions& options) {
  // The ledger outgrows any page cache, but ingest keeps coming back to the
  // same index pages (members' latest events, the change feed's tail): a
  // large cache keeps them in the process instead of re-reading them from
  // the OS for every batch, and a longer WAL lets a checkpoint write a hot
  // page once for many batches.
  Database::Options db_options;
  db_options.cache_size_kib = 256 * 1024;
  db_options.wal_autocheckpoint_pages = 8000;
  auto db = Database::Open(path, db_options);
  if (!db.ok()) return db.error();
  auto store = std::make_unique<SqliteServerStore>(std::move(*db), path, options);
  if (auto s = store->Init(); !s.ok()) return s.error();
  return std::unique_ptr<ServerStore>(std::move(store));
}

}  // namespace loyalty::storage
