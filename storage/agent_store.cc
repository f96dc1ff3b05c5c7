#include "storage/agent_store.h"

#include <algorithm>
#include <limits>
#include <string>

#include "storage/protobuf_blob.h"

namespace loyalty::storage {
namespace {

using core::MakeError;

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE meta(
  key   TEXT PRIMARY KEY,
  value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE members(
  card_hash    TEXT PRIMARY KEY,
  member_id    TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL DEFAULT '',
  snapshot     BLOB
) WITHOUT ROWID;

CREATE TABLE events(
  seq       INTEGER PRIMARY KEY,
  member_id TEXT NOT NULL,
  acked     INTEGER NOT NULL DEFAULT 0,
  body      BLOB NOT NULL
);
CREATE INDEX events_by_member ON events(member_id, seq);
CREATE INDEX events_unacked ON events(seq) WHERE acked = 0;

CREATE TABLE requests(
  kind      TEXT NOT NULL,
  id        TEXT NOT NULL,
  digest    BLOB NOT NULL,
  response  BLOB NOT NULL,
  member_id TEXT NOT NULL,
  PRIMARY KEY(kind, id)
) WITHOUT ROWID;

CREATE TABLE offers(
  id   TEXT PRIMARY KEY,
  body BLOB NOT NULL
) WITHOUT ROWID;
)sql"},
    // Sync: events the server refused for good (kept for an operator; acked
    // = 2 marks them in `events` so the outbox skips them without deleting
    // anything from the immutable log).
    {2, R"sql(
CREATE TABLE dead_letters(
  seq            INTEGER PRIMARY KEY,
  event_key      TEXT NOT NULL,
  code           TEXT NOT NULL,
  message        TEXT NOT NULL,
  rejected_at_ms INTEGER NOT NULL,
  body           BLOB NOT NULL
);
)sql"},
    // Fewer B-tree pages written per durable commit:
    // - The outbox is a rowid range: every event below meta "outbox_from"
    //   has left it (acked or dead-lettered), so a scan from there finds the
    //   rest without the events_unacked index and its page per commit.
    // - A request's response is kept in its event's row (`response`), where
    //   it fits in the page being appended to, not in `requests`, whose
    //   index-organised rows sent it to an overflow page; `requests.seq`
    //   names that event. Rows from before keep theirs in `requests`.
    {3, R"sql(
INSERT INTO meta(key, value)
  SELECT 'outbox_from', CAST(coalesce((SELECT min(seq) FROM events WHERE acked = 0),
                                      (SELECT coalesce(max(seq), 0) + 1 FROM events)) AS TEXT);
DROP INDEX events_unacked;
ALTER TABLE events ADD COLUMN response BLOB;
ALTER TABLE requests ADD COLUMN seq INTEGER;
)sql"},
};

constexpr const char* kOutboxFrom = "outbox_from";

}  // namespace

Result<std::unique_ptr<AgentStore>> AgentStore::Open(const std::string& path,
                                                     const Database::Options& options) {
  auto db = Database::Open(path, options);
  if (!db.ok()) return db.error();
  if (!options.read_only) {
    if (auto s = Migrate(**db, kMigrations); !s.ok()) return s.error();
  }
  return std::unique_ptr<AgentStore>(new AgentStore(std::move(*db)));
}

// -------------------------------------------------------------- members --

namespace {

Result<std::optional<MemberRow>> ReadMemberRow(Statement& s) {
  auto row = s.Step();
  if (!row.ok()) return row.error();
  if (!*row) return std::optional<MemberRow>();
  MemberRow out;
  out.card_hash = s.ColumnText(0);
  out.member_id = s.ColumnText(1);
  out.display_name = s.ColumnText(2);
  if (!s.ColumnIsNull(3)) {
    auto snap = ParseBlob<loyalty::v1::MemberSnapshot>(s.ColumnBlob(3), "member snapshot");
    if (!snap.ok()) return snap.error();
    out.snapshot = std::move(*snap);
  }
  s.Reset();
  return std::optional<MemberRow>(std::move(out));
}

}  // namespace

Result<std::optional<MemberRow>> AgentStore::FindMemberByCardHash(std::string_view card_hash) {
  auto stmt = db_->Prepare(
      "SELECT card_hash, member_id, display_name, snapshot FROM members WHERE card_hash = ?");
  if (!stmt.ok()) return stmt.error();
  (*stmt)->Bind(1, card_hash);
  return ReadMemberRow(**stmt);
}

Result<std::optional<MemberRow>> AgentStore::FindMemberById(std::string_view member_id) {
  auto stmt = db_->Prepare(
      "SELECT card_hash, member_id, display_name, snapshot FROM members WHERE member_id = ?");
  if (!stmt.ok()) return stmt.error();
  (*stmt)->Bind(1, member_id);
  return ReadMemberRow(**stmt);
}

Status AgentStore::InsertMember(const MemberRow& row) {
  auto stmt = db_->Prepare(
      "INSERT INTO members(card_hash, member_id, display_name, snapshot) VALUES(?, ?, ?, ?)");
  if (!stmt.ok()) return stmt.error();
  Statement& s = **stmt;
  s.Bind(1, row.card_hash).Bind(2, row.member_id).Bind(3, row.display_name);
  if (row.snapshot) {
    s.BindBlob(4, row.snapshot->SerializeAsString());
  } else {
    s.BindNull(4);
  }
  return s.Run();
}

Status AgentStore::PutSnapshot(const loyalty::v1::MemberSnapshot& snapshot) {
  auto stmt = db_->Prepare(
      "INSERT INTO members(card_hash, member_id, display_name, snapshot) VALUES(?, ?, ?, ?) "
      "ON CONFLICT(card_hash) DO UPDATE SET member_id = excluded.member_id, "
      "display_name = excluded.display_name, snapshot = excluded.snapshot");
  if (!stmt.ok()) return stmt.error();
  return (*stmt)
      ->Bind(1, snapshot.card_hash())
      .Bind(2, snapshot.member_id())
      .Bind(3, snapshot.display_name())
      .BindBlob(4, snapshot.SerializeAsString())
      .Run();
}

// --------------------------------------------------------------- events --

Result<std::vector<StoredEvent>> AgentStore::MemberEvents(std::string_view member_id,
                                                         uint64_t after_seq) {
  auto stmt =
      db_->Prepare("SELECT seq, body FROM events WHERE member_id = ? AND seq > ? ORDER BY seq");
  if (!stmt.ok()) return stmt.error();
  Statement& s = **stmt;
  s.Bind(1, member_id).Bind(2, static_cast<int64_t>(after_seq));
  std::vector<StoredEvent> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    auto event = ParseBlob<loyalty::v1::Event>(s.ColumnBlob(1), "event");
    if (!event.ok()) return event.error();
    out.push_back(StoredEvent{static_cast<uint64_t>(s.ColumnInt(0)), std::move(*event)});
  }
  return out;
}

Status AgentStore::AppendEvent(const loyalty::v1::Event& event, std::string_view response) {
  auto stmt =
      db_->Prepare("INSERT INTO events(seq, member_id, body, response) VALUES(?, ?, ?, ?)");
  if (!stmt.ok()) return stmt.error();
  Statement& s = **stmt;
  s.Bind(1, static_cast<int64_t>(event.id().seq()))
      .Bind(2, event.member_id())
      .BindBlob(3, event.SerializeAsString());
  if (response.empty()) {
    s.BindNull(4);
  } else {
    s.BindBlob(4, response);
  }
  return s.Run();
}

Result<uint64_t> AgentStore::OutboxFrom() {
  auto from = GetMeta(kOutboxFrom);
  if (!from.ok()) return from.error();
  if (!*from || (*from)->empty()) return uint64_t{1};
  return static_cast<uint64_t>(std::stoull(**from));
}

Status AgentStore::AdvanceOutbox(uint64_t seq) {
  auto from = OutboxFrom();
  if (!from.ok()) return from.error();
  if (seq < *from) return {};
  // The first event still in the outbox. Acknowledgements come in order, so
  // this scan is short: it starts where the last one ended.
  auto stmt =
      db_->Prepare("SELECT seq FROM events WHERE seq >= ? AND acked = 0 ORDER BY seq LIMIT 1");
  if (!stmt.ok()) return stmt.error();
  Statement& s = **stmt;
  s.Bind(1, static_cast<int64_t>(*from));
  auto row = s.Step();
  if (!row.ok()) return row.error();
  uint64_t next = 0;
  if (*row) {
    next = static_cast<uint64_t>(s.ColumnInt(0));
  } else {
    auto last = LastSeq();
    if (!last.ok()) return last.error();
    next = std::max(*last + 1, *from);
  }
  s.Reset();
  if (next == *from) return {};
  return PutMeta(kOutboxFrom, std::to_string(next));
}

Result<uint64_t> AgentStore::LastSeq() {
  auto stmt = db_->Prepare("SELECT coalesce(max(seq), 0) FROM events");
  if (!stmt.ok()) return stmt.error();
  auto row = (*stmt)->Step();
  if (!row.ok()) return row.error();
  const auto seq = static_cast<uint64_t>((*stmt)->ColumnInt(0));
  (*stmt)->Reset();
  return seq;
}

Result<int64_t> AgentStore::CountUnackedEvents() {
  auto from = OutboxFrom();
  if (!from.ok()) return from.error();
  auto stmt = db_->Prepare("SELECT count(*) FROM events WHERE seq >= ? AND acked = 0");
  if (!stmt.ok()) return stmt.error();
  (*stmt)->Bind(1, static_cast<int64_t>(*from));
  auto row = (*stmt)->Step();
  if (!row.ok()) return row.error();
  const int64_t n = (*stmt)->ColumnInt(0);
  (*stmt)->Reset();
  return n;
}

Result<std::vector<StoredEvent>> AgentStore::UnackedEvents(uint64_t after_seq, int limit) {
  auto bodies = UnackedEventBodies(after_seq, limit, std::numeric_limits<std::size_t>::max());
  if (!bodies.ok()) return bodies.error();
  std::vector<StoredEvent> out;
  out.reserve(bodies->size());
  for (const StoredBody& b : *bodies) {
    auto event = ParseBlob<loyalty::v1::Event>(b.body, "event");
    if (!event.ok()) return event.error();
    out.push_back(StoredEvent{b.seq, std::move(*event)});
  }
  return out;
}

Result<std::vector<AgentStore::StoredBody>> AgentStore::UnackedEventBodies(uint64_t after_seq,
                                                                          int limit,
                                                                          std::size_t max_bytes) {
  auto from = OutboxFrom();
  if (!from.ok()) return from.error();
  auto stmt = db_->Prepare(
      "SELECT seq, body FROM events WHERE seq > ? AND acked = 0 ORDER BY seq LIMIT ?");
  if (!stmt.ok()) return stmt.error();
  Statement& s = **stmt;
  s.Bind(1, static_cast<int64_t>(std::max(after_seq, *from - 1))).Bind(2, int64_t{limit});
  std::vector<StoredBody> out;
  std::size_t bytes = 0;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    const auto body = s.ColumnBlob(1);
    bytes += body.size();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(StoredBody{static_cast<uint64_t>(s.ColumnInt(0)), std::string(body)});
  }
  s.Reset();
  return out;
}

Result<std::optional<StoredEvent>> AgentStore::EventBySeq(uint64_t seq) {
  auto stmt = db_->Prepare("SELECT body, acked FROM events WHERE seq = ?");
  if (!stmt.ok()) return stmt.error();
  Statement& s = **stmt;
  s.Bind(1, static_cast<int64_t>(seq));
  auto row = s.Step();
  if (!row.ok()) return row.error();
  if (!*row) return std::optional<StoredEvent>();
  auto event = ParseBlob<loyalty::v1::Event>(s.ColumnBlob(0), "event");
  s.Reset();
  if (!event.ok()) return event.error();
  return std::optional<StoredEvent>(StoredEvent{seq, std::move(*event)});
}

Status AgentStore::MarkAcked(uint64_t first_seq, uint64_t last_seq) {
  auto stmt =
      db_->Prepare("UPDATE events SET acked = 1 WHERE seq BETWEEN ? AND ? AND acked = 0");
  if (!stmt.ok()) return stmt.error();
  if (auto s = (*stmt)
                   ->Bind(1, static_cast<int64_t>(first_seq))
                   .Bind(2, static_cast<int64_t>(last_seq))
                   .Run();
      !s.ok()) {
    return s;
  }
  return AdvanceOutbox(last_seq);
}

Status AgentStore::DeadLetter(uint64_t seq, std::string_view event_key, std::string_view code,
                              std::string_view message, int64_t now_ms) {
  auto stmt = db_->Prepare(
      "INSERT INTO dead_letters(seq, event_key, code, message, rejected_at_ms, body) "
      "SELECT seq, ?, ?, ?, ?, body FROM events WHERE seq = ? AND acked = 0 "
      "ON CONFLICT(seq) DO NOTHING");
  if (!stmt.ok()) return stmt.error();
  if (auto s = (*stmt)
                   ->Bind(1, event_key)
                   .Bind(2, code)
                   .Bind(3, message)
                   .Bind(4, now_ms)
                   .Bind(5, static_cast<int64_t>(seq))
                   .Run();
      !s.ok()) {
    return s;
  }
  auto mark = db_->Prepare("UPDATE events SET acked = 2 WHERE seq = ? AND acked = 0");
  if (!mark.ok()) return mark.error();
  if (auto s = (*mark)->Bind(1, static_cast<int64_t>(seq)).Run(); !s.ok()) return s;
  return AdvanceOutbox(seq);
}

Result<std::vector<DeadLetterRow>> AgentStore::DeadLetters(int limit) {
  auto stmt = db_->Prepare(
      "SELECT seq, event_key, code, message, rejected_at_ms FROM dead_letters ORDER BY seq "
      "LIMIT ?");
  if (!stmt.ok()) return stmt.error();
  Statement& s = **stmt;
  s.Bind(1, int64_t{limit});
  std::vector<DeadLetterRow> out;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    out.push_back(DeadLetterRow{static_cast<uint64_t>(s.ColumnInt(0)), s.ColumnText(1),
                                s.ColumnText(2), s.ColumnText(3), s.ColumnInt(4)});
  }
  return out;
}

Result<int64_t> AgentStore::CountDeadLetters() {
  auto stmt = db_->Prepare("SELECT count(*) FROM dead_letters");
  if (!stmt.ok()) return stmt.error();
  auto row = (*stmt)->Step();
  if (!row.ok()) return row.error();
  const int64_t n = (*stmt)->ColumnInt(0);
  (*stmt)->Reset();
  return n;
}

Result<int64_t> AgentStore::RekeyUnacked(uint64_t from_seq, uint64_t new_epoch) {
  auto events = UnackedEvents(from_seq - 1, std::numeric_limits<int>::max());
  if (!events.ok()) return events.error();
  for (StoredEvent& e : *events) {
    auto stmt = db_->Prepare("UPDATE events SET body = ? WHERE seq = ?");  // cached, reset
    if (!stmt.ok()) return stmt.error();
    // Same uuid, same seq: only the epoch changes, so the server tells the
    // re-keyed event from the one that first used this sequence number.
    e.event.mutable_id()->set_epoch(new_epoch);
    if (auto s = (*stmt)
                     ->BindBlob(1, e.event.SerializeAsString())
                     .Bind(2, static_cast<int64_t>(e.seq))
                     .Run();
        !s.ok()) {
      return s.error();
    }
  }
  auto epochs = Epochs();
  if (!epochs.ok()) return epochs.error();
  std::string list;
  for (uint64_t e : *epochs) list += std::to_string(e) + ",";
  list += std::to_string(new_epoch);
  if (auto s = PutMeta("epochs", list); !s.ok()) return s.error();
  if (auto s = PutMeta("epoch", std::to_string(new_epoch)); !s.ok()) return s.error();
  return static_cast<int64_t>(events->size());
}

Result<std::vector<uint64_t>> AgentStore::Epochs() {
  auto list = GetMeta("epochs");
  if (!list.ok()) return list.error();
  std::vector<uint64_t> out;
  if (*list) {
    std::string_view rest = **list;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string item(rest.substr(0, comma));
      if (!item.empty()) out.push_back(std::stoull(item));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (out.empty()) {
    // Databases from before re-keying know only their current epoch.
    auto current = GetMeta("epoch");
    if (!current.ok()) return current.error();
    out.push_back(*current ? std::stoull(**current) : 1);
  }
  return out;
}

Status AgentStore::RenameMember(std::string_view old_id, std::string_view new_id) {
  for (const char* sql : {"UPDATE events SET member_id = ?2 WHERE member_id = ?1",
                          "UPDATE requests SET member_id = ?2 WHERE member_id = ?1"}) {
    auto stmt = db_->Prepare(sql);
    if (!stmt.ok()) return stmt.error();
    if (auto s = (*stmt)->Bind(1, old_id).Bind(2, new_id).Run(); !s.ok()) return s;
  }
  return {};
}

Status AgentStore::DeleteMember(std::string_view member_id) {
  auto stmt = db_->Prepare("DELETE FROM members WHERE member_id = ?");
  if (!stmt.ok()) return stmt.error();
  return (*stmt)->Bind(1, member_id).Run();
}

Result<int64_t> AgentStore::CountMembers() {
  auto stmt = db_->Prepare("SELECT count(*) FROM members");
  if (!stmt.ok()) return stmt.error();
  auto row = (*stmt)->Step();
  if (!row.ok()) return row.error();
  const int64_t n = (*stmt)->ColumnInt(0);
  (*stmt)->Reset();
  return n;
}

// ------------------------------------------------------------- requests --

Result<std::optional<StoredRequest>> AgentStore::FindRequest(std::string_view kind,
                                                             std::string_view id) {
  // The response is in the request's row or, since migration 3, in its
  // event's.
  auto stmt = db_->Prepare(
      "SELECT r.digest, coalesce(e.response, r.response), r.member_id, coalesce(r.seq, 0) "
      "FROM requests r LEFT JOIN events e ON e.seq = r.seq WHERE r.kind = ? AND r.id = ?");
  if (!stmt.ok()) return stmt.error();
  Statement& s = **stmt;
  s.Bind(1, kind).Bind(2, id);
  auto row = s.Step();
  if (!row.ok()) return row.error();
  if (!*row) return std::optional<StoredRequest>();
  StoredRequest out{std::string(s.ColumnBlob(0)), std::string(s.ColumnBlob(1)), s.ColumnText(2),
                    static_cast<uint64_t>(s.ColumnInt(3))};
  s.Reset();
  return std::optional<StoredRequest>(std::move(out));
}

Status AgentStore::PutRequest(std::string_view kind, std::string_view id,
                              const StoredRequest& request) {
  auto stmt = db_->Prepare(
      "INSERT INTO requests(kind, id, digest, response, member_id, seq) "
      "VALUES(?1, ?2, ?3, coalesce(?4, X''), ?5, ?6)");
  if (!stmt.ok()) return stmt.error();
  Statement& s = **stmt;
  s.Bind(1, kind).Bind(2, id).BindBlob(3, request.digest).Bind(5, request.member_id);
  if (request.seq != 0) {
    // The response is in the event's row (AppendEvent), not here too.
    s.BindNull(4).Bind(6, static_cast<int64_t>(request.seq));
  } else {
    s.BindBlob(4, request.response).BindNull(6);
  }
  return s.Run();
}

Result<int64_t> AgentStore::CountRequests(std::string_view kind, std::string_view prefix) {
  auto stmt = db_->Prepare(
      "SELECT count(*) FROM requests WHERE kind = ? AND substr(id, 1, length(?2)) = ?2");
  if (!stmt.ok()) return stmt.error();
  Statement& s = **stmt;
  s.Bind(1, kind).Bind(2, prefix);
  auto row = s.Step();
  if (!row.ok()) return row.error();
  const int64_t n = s.ColumnInt(0);
  s.Reset();
  return n;
}

// ------------------------------------------------ programme, offers, meta --

Result<std::optional<std::string>> AgentStore::GetMeta(std::string_view key) {
  auto stmt = db_->Prepare("SELECT value FROM meta WHERE key = ?");
  if (!stmt.ok()) return stmt.error();
  Statement& s = **stmt;
  s.Bind(1, key);
  auto row = s.Step();
  if (!row.ok()) return row.error();
  if (!*row) return std::optional<std::string>();
  std::string value(s.ColumnBlob(0));
  s.Reset();
  return std::optional<std::string>(std::move(value));
}

Status AgentStore::PutMeta(std::string_view key, std::string_view value) {
  auto stmt = db_->Prepare(
      "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = "
      "excluded.value");
  if (!stmt.ok()) return stmt.error();
  return (*stmt)->Bind(1, key).BindBlob(2, value).Run();
}

Result<std::optional<loyalty::v1::Programme>> AgentStore::LoadProgramme() {
  auto blob = GetMeta("programme");
  if (!blob.ok()) return blob.error();
  if (!*blob) return std::optional<loyalty::v1::Programme>();
  auto programme = ParseBlob<loyalty::v1::Programme>(**blob, "programme");
  if (!programme.ok()) return programme.error();
  return std::optional<loyalty::v1::Programme>(std::move(*programme));
}

Status AgentStore::SaveProgramme(const loyalty::v1::Programme& programme) {
  return PutMeta("programme", programme.SerializeAsString());
}

Result<std::vector<loyalty::v1::Offer>> AgentStore::LoadOffers() {
  auto stmt = db_->Prepare("SELECT body FROM offers ORDER BY id");
  if (!stmt.ok()) return stmt.error();
  std::vector<loyalty::v1::Offer> out;
  for (;;) {
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    auto offer = ParseBlob<loyalty::v1::Offer>((*stmt)->ColumnBlob(0), "offer");
    if (!offer.ok()) return offer.error();
    out.push_back(std::move(*offer));
  }
  return out;
}

Status AgentStore::PutOffer(const loyalty::v1::Offer& offer) {
  auto stmt = db_->Prepare(
      "INSERT INTO offers(id, body) VALUES(?, ?) ON CONFLICT(id) DO UPDATE SET body = "
      "excluded.body");
  if (!stmt.ok()) return stmt.error();
  return (*stmt)->Bind(1, offer.id()).BindBlob(2, offer.SerializeAsString()).Run();
}

Status AgentStore::DeleteOffer(std::string_view offer_id) {
  auto stmt = db_->Prepare("DELETE FROM offers WHERE id = ?");
  if (!stmt.ok()) return stmt.error();
  return (*stmt)->Bind(1, offer_id).Run();
}

Status AgentStore::ReplaceOffers(const std::vector<loyalty::v1::Offer>& offers) {
  if (auto s = db_->Exec("DELETE FROM offers"); !s.ok()) return s;
  for (const auto& offer : offers) {
    auto stmt = db_->Prepare("INSERT INTO offers(id, body) VALUES(?, ?)");
    if (!stmt.ok()) return stmt.error();
    if (auto s = (*stmt)->Bind(1, offer.id()).BindBlob(2, offer.SerializeAsString()).Run();
        !s.ok()) {
      return s;
    }
  }
  return {};
}

}  // namespace loyalty::storage
