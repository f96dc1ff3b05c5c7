#include "storage/sqlite.h"

#include <string>

#include "storage/wal_batch_vfs.h"

namespace loyalty::storage {

core::Error SqliteError(sqlite3* db, int rc, std::string_view what) {
  std::string message(what);
  message += ": ";
  message += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return core::MakeError(core::code::kDiskFull, message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return core::MakeError(core::code::kDatabaseCorrupt, message);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
      return core::MakeError(core::code::kUnavailable, message);
    default:
      return core::MakeError(core::code::kInternal, message);
  }
}

// ------------------------------------------------------------ Statement --

Statement& Statement::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Statement& Statement::Bind(int index, std::string_view text) {
  sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindBlob(int index, std::string_view bytes) {
  sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindNull(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

Result<bool> Statement::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(db_, rc, sqlite3_sql(stmt_));
}

Status Statement::Run() {
  for (;;) {
    auto row = Step();
    if (!row.ok()) return row.error();
    if (!*row) return {};
  }
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string Statement::ColumnText(int index) const {
  const auto* p = sqlite3_column_text(stmt_, index);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<size_t>(sqlite3_column_bytes(stmt_, index)))
           : std::string();
}

std::string_view Statement::ColumnBlob(int index) const {
  const void* p = sqlite3_column_blob(stmt_, index);
  return p ? std::string_view(static_cast<const char*>(p),
                              static_cast<size_t>(sqlite3_column_bytes(stmt_, index)))
           : std::string_view();
}

// ------------------------------------------------------------- Database --

Result<std::unique_ptr<Database>> Database::Open(const std::string& path, const Options& options) {
  int flags = SQLITE_OPEN_NOMUTEX;
  flags |= options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (options.create && !options.read_only) flags |= SQLITE_OPEN_CREATE;
  sqlite3* raw = nullptr;
  const char* vfs = options.batch_wal_writes ? WalBatchVfsName() : nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, vfs);
  if (rc != SQLITE_OK) {
    core::Error error = SqliteError(raw, rc, "open " + path);
    sqlite3_close_v2(raw);
    return error;
  }
  std::unique_ptr<Database> db(new Database(raw));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);

  std::string pragmas;
  if (!options.read_only) pragmas += "PRAGMA journal_mode=WAL;";
  pragmas += options.durability == Durability::kFull ? "PRAGMA synchronous=FULL;"
                                                     : "PRAGMA synchronous=NORMAL;";
  pragmas += "PRAGMA foreign_keys=ON;";
  pragmas += "PRAGMA cache_size=-" + std::to_string(options.cache_size_kib) + ";";
  if (!options.read_only) {
    pragmas += "PRAGMA wal_autocheckpoint=" + std::to_string(options.wal_autocheckpoint_pages) + ";";
  }
  if (auto s = db->Exec(pragmas); !s.ok()) return s.error();
  return db;
}

Database::~Database() {
  statements_.clear();  // finalize before close
  sqlite3_close_v2(db_);
}

Status Database::Exec(std::string_view sql) {
  std::string owned(sql);
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, owned.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return {};
  std::string text = message ? message : sqlite3_errstr(rc);
  sqlite3_free(message);
  core::Error error = SqliteError(nullptr, rc, owned.substr(0, 60));
  error.message += " (" + text + ")";
  return error;
}

Status Database::Run(std::string_view sql) {
  auto stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.error();
  return (*stmt)->Run();
}

Result<Statement*> Database::Prepare(std::string_view sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) {
    it->second->Reset();
    return it->second.get();
  }
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db_, rc, "prepare");
  auto owned = std::make_unique<Statement>(db_, stmt);
  Statement* out = owned.get();
  statements_.emplace(std::string(sql), std::move(owned));
  return out;
}

Result<int> Database::UserVersion() {
  auto stmt = Prepare("PRAGMA user_version");
  if (!stmt.ok()) return stmt.error();
  auto row = (*stmt)->Step();
  if (!row.ok()) return row.error();
  const int version = static_cast<int>((*stmt)->ColumnInt(0));
  (*stmt)->Reset();
  return version;
}

// ---------------------------------------------------------- Transaction --

Result<Transaction> Transaction::Begin(Database& db, Mode mode) {
  const char* sql = mode == Mode::kDeferred    ? "BEGIN DEFERRED"
                    : mode == Mode::kImmediate ? "BEGIN IMMEDIATE"
                                               : "BEGIN EXCLUSIVE";
  if (auto s = db.Run(sql); !s.ok()) return s.error();
  return Transaction(&db);
}

Transaction::Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }

Transaction::~Transaction() { Rollback(); }

Status Transaction::Commit() {
  if (!db_) return core::MakeError(core::code::kInternal, "commit of a finished transaction");
  Status s = db_->Run("COMMIT");
  if (s.ok()) db_ = nullptr;
  // On failure the transaction may still be open; the destructor rolls back.
  return s;
}

void Transaction::Rollback() {
  if (!db_) return;
  if (!sqlite3_get_autocommit(db_->handle())) {
    (void)db_->Run("ROLLBACK");
  }
  db_ = nullptr;
}

// ------------------------------------------------------------ Savepoint --

Result<Savepoint> Savepoint::Begin(Database& db) {
  if (auto s = db.Run("SAVEPOINT request"); !s.ok()) return s.error();
  return Savepoint(&db);
}

Savepoint::Savepoint(Savepoint&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }

Savepoint::~Savepoint() { RollbackTo(); }

Status Savepoint::Release() {
  if (!db_) return {};
  Status s = db_->Run("RELEASE request");
  if (s.ok()) db_ = nullptr;
  return s;
}

void Savepoint::RollbackTo() {
  if (!db_) return;
  (void)db_->Run("ROLLBACK TO request");
  (void)db_->Run("RELEASE request");
  db_ = nullptr;
}

// ----------------------------------------------------------- Migrations --

Status Migrate(Database& db, std::span<const Migration> migrations) {
  auto current = db.UserVersion();
  if (!current.ok()) return current.error();
  const int latest = migrations.empty() ? 0 : migrations.back().version;
  if (*current > latest) {
    return core::MakeError(core::code::kUnavailable,
                           "database schema version " + std::to_string(*current) +
                               " is newer than this program knows (" + std::to_string(latest) +
                               "); refusing to downgrade");
  }
  for (const Migration& m : migrations) {
    if (m.version <= *current) continue;
    auto txn = Transaction::Begin(db, Transaction::Mode::kExclusive);
    if (!txn.ok()) return txn.error();
    if (auto s = db.Exec(m.sql); !s.ok()) return s.error();
    if (auto s = db.Exec("PRAGMA user_version=" + std::to_string(m.version)); !s.ok()) {
      return s.error();
    }
    if (auto s = txn->Commit(); !s.ok()) return s.error();
  }
  return {};
}

}  // namespace loyalty::storage
