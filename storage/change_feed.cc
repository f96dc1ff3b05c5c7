#include "storage/change_feed.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <tuple>
#include <vector>

#include "core/programme.h"
#include "loyalty/v1/server.pb.h"

namespace loyalty::storage {
namespace {

namespace v1 = loyalty::v1;
using core::MakeError;
using core::Result;

template <typename Message>
Result<Message> ParseRow(Statement& stmt, int column, const char* what) {
  Message m;
  const std::string_view blob = stmt.ColumnBlob(column);
  if (!m.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return MakeError(core::code::kInternal, std::string("corrupt ") + what);
  }
  return m;
}

// Merges the snapshot inside a stored MemberLedger into `out`, skipping the
// rest: the daily activity is most of the blob, and a page of a pull reads
// up to thousands of ledgers.
bool ParseLedgerSnapshot(std::string_view blob, v1::MemberSnapshot* out) {
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(blob.data()),
                                            static_cast<int>(blob.size()));
  std::string bytes;
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return in.ConsumedEntireMessage();
    if (WireFormatLite::GetTagFieldNumber(tag) == v1::MemberLedger::kSnapshotFieldNumber &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t size = 0;
      if (!in.ReadVarint32(&size) || !in.ReadString(&bytes, static_cast<int>(size)) ||
          !out->MergeFromString(bytes)) {
        return false;
      }
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
}

// Fills `change` with the current state of the changed row.
core::Status Fill(Database& db, const std::string& kind, const std::string& key,
                  v1::Change* change) {
  if (kind == "erased") {
    change->set_erased_member_id(key);
    return {};
  }
  const char* sql = kind == "member"      ? "SELECT ledger FROM members WHERE member_id = ?"
                    : kind == "offer"     ? "SELECT body, retired FROM offers WHERE id = ?"
                    : kind == "programme" ? "SELECT value FROM meta WHERE key = 'programme'"
                                          : nullptr;
  if (sql == nullptr) return {};  // a kind this server version does not send
  auto stmt = db.Prepare(sql);
  if (!stmt.ok()) return stmt.error();
  Statement& s = **stmt;
  if (kind != "programme") s.Bind(1, key);
  auto row = s.Step();
  if (!row.ok()) return row.error();
  core::Status status;
  if (kind == "member") {
    if (!*row) return MakeError(core::code::kInternal, "change for a missing member " + key);
    if (!ParseLedgerSnapshot(s.ColumnBlob(0), change->mutable_member())) {
      status = MakeError(core::code::kInternal, "corrupt member ledger of " + key);
    }
  } else if (kind == "offer") {
    if (!*row) return MakeError(core::code::kInternal, "change for a missing offer " + key);
    if (s.ColumnInt(1) != 0) {
      change->set_withdrawn_offer_id(key);
    } else if (auto offer = ParseRow<v1::Offer>(s, 0, "offer"); offer.ok()) {
      *change->mutable_offer() = std::move(*offer);
    } else {
      status = offer.error();
    }
  } else if (!*row) {
    *change->mutable_programme() = core::DefaultProgramme();
  } else if (auto programme = ParseRow<v1::Programme>(s, 0, "programme"); programme.ok()) {
    *change->mutable_programme() = std::move(*programme);
  } else {
    status = programme.error();
  }
  s.Reset();
  return status;
}

}  // namespace

Result<uint64_t> ReadLatestVersion(Database& db) {
  auto stmt = db.Prepare("SELECT coalesce(max(version), 0) FROM changes");
  if (!stmt.ok()) return stmt.error();
  auto row = (*stmt)->Step();
  if (!row.ok()) return row.error();
  const auto v = static_cast<uint64_t>((*stmt)->ColumnInt(0));
  (*stmt)->Reset();
  return v;
}

Result<v1::ChangesPage> ReadChangesPage(Database& db, uint64_t after_version,
                                        uint32_t max_changes, const std::string& scope_store) {
  if (max_changes == 0 || max_changes > 5000) max_changes = 1000;
  auto txn = Transaction::Begin(db, Transaction::Mode::kDeferred);
  if (!txn.ok()) return txn.error();
  auto latest = ReadLatestVersion(db);
  if (!latest.ok()) return latest.error();
  // A cursor from the future (the server was restored from a backup) is
  // served a full snapshot rather than nothing.
  if (after_version > *latest) after_version = 0;
  auto stmt =
      scope_store.empty()
          ? db.Prepare(
                "SELECT kind, key, version FROM changes WHERE version > ? ORDER BY version "
                "LIMIT ?")
          : db.Prepare(
                "SELECT kind, key, version FROM changes c WHERE version > ?1 AND (kind <> "
                "'member' OR EXISTS (SELECT 1 FROM member_stores m WHERE m.store_id = ?3 "
                "AND m.member_id = c.key)) ORDER BY version LIMIT ?2");
  if (!stmt.ok()) return stmt.error();
  (*stmt)->Bind(1, static_cast<int64_t>(after_version)).Bind(2, int64_t{max_changes});
  if (!scope_store.empty()) (*stmt)->Bind(3, scope_store);
  std::vector<std::tuple<std::string, std::string, uint64_t>> rows;
  for (;;) {
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    rows.emplace_back((*stmt)->ColumnText(0), (*stmt)->ColumnText(1),
                      static_cast<uint64_t>((*stmt)->ColumnInt(2)));
  }
  v1::ChangesPage page;
  page.set_cursor(after_version);
  for (const auto& [kind, key, version] : rows) {
    v1::Change* change = page.add_changes();
    change->set_version(version);
    if (auto s = Fill(db, kind, key, change); !s.ok()) return s.error();
    page.set_cursor(version);
  }
  page.set_has_more(rows.size() == max_changes);
  // Scoped, the changes after the last one sent may all be out of scope:
  // the whole feed up to `latest` has been considered.
  if (!scope_store.empty() && !page.has_more()) page.set_cursor(*latest);
  return page;
}

}  // namespace loyalty::storage
