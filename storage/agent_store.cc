#include "storage/agent_store.h"

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
};

template <typename Message>
Result<Message> ParseBlob(std::string_view blob, const char* what) {
  Message m;
  if (!m.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return MakeError(core::code::kInternal, std::string("corrupt ") + what + " record");
  }
  return m;
}

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

Status AgentStore::AppendEvent(const loyalty::v1::Event& event) {
  auto stmt = db_->Prepare("INSERT INTO events(seq, member_id, body) VALUES(?, ?, ?)");
  if (!stmt.ok()) return stmt.error();
  return (*stmt)
      ->Bind(1, static_cast<int64_t>(event.id().seq()))
      .Bind(2, event.member_id())
      .BindBlob(3, event.SerializeAsString())
      .Run();
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
  auto stmt = db_->Prepare("SELECT count(*) FROM events WHERE acked = 0");
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
  auto stmt =
      db_->Prepare("SELECT digest, response, member_id FROM requests WHERE kind = ? AND id = ?");
  if (!stmt.ok()) return stmt.error();
  Statement& s = **stmt;
  s.Bind(1, kind).Bind(2, id);
  auto row = s.Step();
  if (!row.ok()) return row.error();
  if (!*row) return std::optional<StoredRequest>();
  StoredRequest out{std::string(s.ColumnBlob(0)), std::string(s.ColumnBlob(1)), s.ColumnText(2)};
  s.Reset();
  return std::optional<StoredRequest>(std::move(out));
}

Status AgentStore::PutRequest(std::string_view kind, std::string_view id,
                              const StoredRequest& request) {
  auto stmt = db_->Prepare(
      "INSERT INTO requests(kind, id, digest, response, member_id) VALUES(?, ?, ?, ?, ?)");
  if (!stmt.ok()) return stmt.error();
  return (*stmt)
      ->Bind(1, kind)
      .Bind(2, id)
      .BindBlob(3, request.digest)
      .BindBlob(4, request.response)
      .Bind(5, request.member_id)
      .Run();
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
