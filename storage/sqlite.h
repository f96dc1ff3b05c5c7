// A small RAII layer over SQLite: Database (one connection), Statement (a
// prepared statement, cached per connection), Transaction (rolled back on
// destruction unless committed) and versioned migrations.
//
// SQLite's result codes stay inside storage/: failures come back as
// core::Error with the project's codes ("disk_full" for SQLITE_FULL,
// "unavailable" for busy/locked/I/O errors, "internal" otherwise).
//
// Thread safety: a Database and its statements belong to one thread at a
// time (SQLite is opened in multi-thread mode, not serialized). Use one
// connection per thread; WAL lets readers run beside the single writer.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/result.h"

namespace loyalty::storage {

using core::Result;
using core::Status;

// Builds an Error from a SQLite result code and the connection's message.
core::Error SqliteError(sqlite3* db, int rc, std::string_view what);

class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binds by 1-based index. Text and blobs are copied (SQLITE_TRANSIENT) so a
  // temporary argument cannot dangle.
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, std::string_view text);
  Statement& BindBlob(int index, std::string_view bytes);
  Statement& BindNull(int index);

  // Advances: true with a row, false when done; an Error otherwise.
  Result<bool> Step();
  // Runs to completion, ignoring rows.
  Status Run();
  // Clears bindings and rewinds; called automatically by Database::Prepare.
  void Reset();

  int64_t ColumnInt(int index) const { return sqlite3_column_int64(stmt_, index); }
  std::string ColumnText(int index) const;
  std::string_view ColumnBlob(int index) const;  // valid until the next Step/Reset
  bool ColumnIsNull(int index) const { return sqlite3_column_type(stmt_, index) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class Transaction;

class Database {
 public:
  enum class Durability {
    kFull,    // synchronous=FULL: a commit is on disk when it returns
    kNormal,  // synchronous=NORMAL: for readers and bulk loads
  };
  struct Options {
    bool read_only = false;
    bool create = true;
    Durability durability = Durability::kFull;
    int busy_timeout_ms = 5000;
    int cache_size_kib = 4096;
    // WAL pages before an automatic checkpoint (SQLite's default is 1000).
    // A larger WAL lets a checkpoint write a hot page once for many commits.
    int wal_autocheckpoint_pages = 1000;
    // Write each transaction's WAL frames with one system call instead of
    // two per page (storage/wal_batch_vfs.h). Off only for a baseline that
    // measures SQLite as it comes.
    bool batch_wal_writes = true;
  };

  // Opens `path` in WAL mode with foreign keys on.
  static Result<std::unique_ptr<Database>> Open(const std::string& path, const Options& options);

  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements without results (parsed every time).
  Status Exec(std::string_view sql);

  // Runs one statement without results through the statement cache: for
  // the hot path (BEGIN, COMMIT, savepoints).
  Status Run(std::string_view sql);

  // A prepared statement for `sql`, cached on this connection and reset
  // before it is handed out. The reference stays valid while the Database
  // lives; do not hold it across another Prepare of the same SQL.
  Result<Statement*> Prepare(std::string_view sql);

  int64_t LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }
  int Changes() const { return sqlite3_changes(db_); }
  sqlite3* handle() const { return db_; }

  // PRAGMA user_version.
  Result<int> UserVersion();

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  // Looked up by string_view without allocating (transparent hashing).
  struct SqlHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::unique_ptr<Statement>, SqlHash, std::equal_to<>>
      statements_;
};

// A transaction on one connection. Rolls back in its destructor unless
// Commit() succeeded; never throws.
class Transaction {
 public:
  enum class Mode { kDeferred, kImmediate, kExclusive };

  static Result<Transaction> Begin(Database& db, Mode mode = Mode::kImmediate);
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  ~Transaction();

  Status Commit();
  void Rollback();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_;
};

// Savepoints let one failing request inside a group commit roll back alone.
class Savepoint {
 public:
  static Result<Savepoint> Begin(Database& db);
  Savepoint(Savepoint&& other) noexcept;
  Savepoint& operator=(Savepoint&&) = delete;
  Savepoint(const Savepoint&) = delete;
  ~Savepoint();
  Status Release();
  void RollbackTo();

 private:
  explicit Savepoint(Database* db) : db_(db) {}
  Database* db_;
};

// One schema step. Migrations run in order inside one transaction each; the
// database's user_version records the last applied step.
struct Migration {
  int version;
  const char* sql;
};

// Applies every migration whose version is above user_version. A database
// from a newer release (user_version above the last known step) is refused:
// downgrades would silently lose data.
Status Migrate(Database& db, std::span<const Migration> migrations);

}  // namespace loyalty::storage
