#include "storage/change_feed.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "core/programme.h"
#include "loyalty/v1/server.pb.h"
#include "storage/protobuf_blob.h"

namespace loyalty::storage {
namespace {

namespace v1 = loyalty::v1;
using core::MakeError;
using core::Result;

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
    } else if (auto offer = ParseBlob<v1::Offer>(s.ColumnBlob(0), "offer"); offer.ok()) {
      *change->mutable_offer() = std::move(*offer);
    } else {
      status = offer.error();
    }
  } else if (!*row) {
    *change->mutable_programme() = core::DefaultProgramme();
  } else if (auto programme = ParseBlob<v1::Programme>(s.ColumnBlob(0), "programme"); programme.ok()) {
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

namespace {

using Row = std::tuple<std::string, std::string, uint64_t>;  // kind, key, version

uint32_t PageSize(uint32_t max_changes) {
  return max_changes == 0 || max_changes > 5000 ? 1000 : max_changes;
}

// In-scope feed rows after `after` (at most `limit`; 0: all), by version.
Result<std::vector<Row>> SelectRows(Database& db, uint64_t after, uint32_t limit,
                                    const std::string& scope_store) {
  const std::string in_scope =
      scope_store.empty() ? "" : " AND (kind <> 'member' OR EXISTS (SELECT 1 FROM member_stores m "
                                 "WHERE m.store_id = ?3 AND m.member_id = c.key))";
  auto stmt = db.Prepare("SELECT kind, key, version FROM changes c WHERE version > ?1" + in_scope +
                         " ORDER BY version" + (limit > 0 ? " LIMIT ?2" : ""));
  if (!stmt.ok()) return stmt.error();
  (*stmt)->Bind(1, static_cast<int64_t>(after));
  if (limit > 0) (*stmt)->Bind(2, int64_t{limit});
  if (!scope_store.empty()) (*stmt)->Bind(3, scope_store);
  std::vector<Row> rows;
  for (;;) {
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    rows.emplace_back((*stmt)->ColumnText(0), (*stmt)->ColumnText(1),
                      static_cast<uint64_t>((*stmt)->ColumnInt(2)));
  }
  return rows;
}

// The page for `rows` (the first `max_changes` in-scope changes after
// `after`, or fewer when the feed ends), inside the caller's transaction.
Result<v1::ChangesPage> BuildPage(Database& db, const std::vector<Row>& rows, uint64_t after,
                                  uint32_t max_changes, bool scoped, uint64_t latest) {
  v1::ChangesPage page;
  page.set_cursor(after);
  for (const auto& [kind, key, version] : rows) {
    v1::Change* change = page.add_changes();
    change->set_version(version);
    if (auto s = Fill(db, kind, key, change); !s.ok()) return s.error();
    page.set_cursor(version);
  }
  page.set_has_more(rows.size() == max_changes);
  // Scoped, the changes after the last one sent may all be out of scope:
  // the whole feed up to `latest` has been considered.
  if (scoped && !page.has_more()) page.set_cursor(latest);
  return page;
}

// The version the feed holds for (kind, key) now; 0 when none.
Result<uint64_t> CurrentVersion(Database& db, const std::string& kind, const std::string& key) {
  auto stmt = db.Prepare("SELECT version FROM changes WHERE kind = ? AND key = ?");
  if (!stmt.ok()) return stmt.error();
  (*stmt)->Bind(1, kind).Bind(2, key);
  auto row = (*stmt)->Step();
  if (!row.ok()) return row.error();
  const uint64_t version = *row ? static_cast<uint64_t>((*stmt)->ColumnInt(0)) : 0;
  (*stmt)->Reset();
  return version;
}

// Starts a page's read transaction on `db` and reads the feed's latest
// version. A cursor from the future (the server was restored from a backup)
// is moved to 0: it is served a full snapshot rather than nothing.
Result<Transaction> BeginPage(Database& db, uint64_t* after_version, uint64_t* latest) {
  auto txn = Transaction::Begin(db, Transaction::Mode::kDeferred);
  if (!txn.ok()) return txn.error();
  auto version = ReadLatestVersion(db);
  if (!version.ok()) return version.error();
  *latest = *version;
  if (*after_version > *latest) *after_version = 0;
  return txn;
}

}  // namespace

Result<v1::ChangesPage> ReadChangesPage(Database& db, uint64_t after_version,
                                        uint32_t max_changes, const std::string& scope_store) {
  max_changes = PageSize(max_changes);
  uint64_t latest = 0;
  auto txn = BeginPage(db, &after_version, &latest);
  if (!txn.ok()) return txn.error();
  auto rows = SelectRows(db, after_version, max_changes, scope_store);
  if (!rows.ok()) return rows.error();
  return BuildPage(db, *rows, after_version, max_changes, !scope_store.empty(), latest);
}

Result<v1::ChangesPage> ScopedFeedCache::Read(Database& db, uint64_t after_version,
                                              uint32_t max_changes, const std::string& store_id) {
  max_changes = PageSize(max_changes);
  uint64_t latest = 0;
  auto txn = BeginPage(db, &after_version, &latest);
  if (!txn.ok()) return txn.error();

  auto [it, fresh] = stores_.try_emplace(store_id);
  StoreFeed& feed = it->second;
  if (fresh || feed.scanned_to > latest) {  // new, or the ledger went back (a restore)
    feed = StoreFeed{after_version, after_version, {}};
  }
  if (after_version < feed.from) {
    auto rows = SelectRows(db, after_version, max_changes, store_id);
    if (!rows.ok()) return rows.error();
    return BuildPage(db, *rows, after_version, max_changes, true, latest);
  }
  if (feed.scanned_to < latest) {
    auto added = SelectRows(db, feed.scanned_to, 0, store_id);
    if (!added.ok()) return added.error();
    for (auto& [kind, key, version] : *added) {
      feed.entries.push_back(Entry{version, std::move(kind), std::move(key)});
    }
    feed.scanned_to = latest;
    while (feed.entries.size() > max_per_store_) {
      feed.from = feed.entries.front().version;
      feed.entries.pop_front();
    }
    if (after_version < feed.from) {  // trimmed past this cursor
      auto rows = SelectRows(db, after_version, max_changes, store_id);
      if (!rows.ok()) return rows.error();
      return BuildPage(db, *rows, after_version, max_changes, true, latest);
    }
  }
  // A change kept here may have been superseded (the member changed again,
  // or was erased): only the ones the feed still holds at their version are
  // sent, as the feed itself would list them.
  auto next = std::upper_bound(feed.entries.begin(), feed.entries.end(), after_version,
                               [](uint64_t v, const Entry& e) { return v < e.version; });
  std::vector<Row> rows;
  for (; next != feed.entries.end() && rows.size() < max_changes; ++next) {
    auto current = CurrentVersion(db, next->kind, next->key);
    if (!current.ok()) return current.error();
    if (*current == next->version) rows.emplace_back(next->kind, next->key, next->version);
  }
  return BuildPage(db, rows, after_version, max_changes, true, latest);
}

}  // namespace loyalty::storage
