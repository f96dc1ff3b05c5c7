// The WAL-batching VFS against real files: what reaches the VFS below it,
// what other connections see, and what a killed process leaves on disk.
#include "storage/wal_batch_vfs.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "storage/sqlite.h"
#include "tests/support/temp_dir.h"

namespace loyalty::storage {
namespace {

// A VFS that counts the writes made to WAL files and otherwise is the
// default one: its WAL files keep the default methods but for xWrite.
std::atomic<int> g_wal_writes{0};
const sqlite3_io_methods* g_default_methods = nullptr;
sqlite3_io_methods g_counting_methods;

int CountingWrite(sqlite3_file* f, const void* data, int n, sqlite3_int64 offset) {
  ++g_wal_writes;
  return g_default_methods->xWrite(f, data, n, offset);
}

int CountingOpen(sqlite3_vfs* vfs, const char* name, sqlite3_file* f, int flags, int* out) {
  auto* base = static_cast<sqlite3_vfs*>(vfs->pAppData);
  const int rc = base->xOpen(base, name, f, flags, out);
  if (rc == SQLITE_OK && (flags & SQLITE_OPEN_WAL) && f->pMethods) {
    if (g_default_methods == nullptr) {
      g_default_methods = f->pMethods;
      g_counting_methods = *f->pMethods;
      g_counting_methods.xWrite = CountingWrite;
    }
    if (f->pMethods == g_default_methods) f->pMethods = &g_counting_methods;
  }
  return rc;
}

// "counting" (the default VFS, WAL writes counted) and "batch-over-counting".
void RegisterCountingVfses() {
  static bool done = [] {
    static sqlite3_vfs counting = *sqlite3_vfs_find(nullptr);
    counting.zName = "counting";
    counting.pAppData = sqlite3_vfs_find(nullptr);
    counting.xOpen = CountingOpen;
    sqlite3_vfs_register(&counting, 0);
    RegisterWalBatchVfs("batch-over-counting", &counting);
    return true;
  }();
  (void)done;
}

struct Connection {
  sqlite3* db = nullptr;
  Connection(const std::string& path, const char* vfs, const char* pragmas) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
              SQLITE_OK);
    Exec(pragmas);
  }
  ~Connection() { sqlite3_close_v2(db); }
  void Exec(const std::string& sql) {
    char* error = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (error ? error : "");
    sqlite3_free(error);
  }
  std::string Text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      const auto* text = sqlite3_column_text(stmt, 0);
      out = text ? reinterpret_cast<const char*>(text) : "";
    }
    sqlite3_finalize(stmt);
    return out;
  }
  int64_t Int(const std::string& sql) { return std::stoll(Text(sql)); }
};

// "WITH s(value) AS (...)": the integers 1..n, for INSERT ... SELECT.
std::string Series(int n) {
  return "WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < " +
         std::to_string(n) + ") ";
}

constexpr const char* kFull = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;";
constexpr const char* kNormal = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;";

// Writes to the WAL by each of three transactions that change rows in three
// B-trees (a table, its index, a second table), several pages each: one
// commit, then two after the WAL restarted from its start.
std::vector<int> WalWritesPerCommit(const std::string& path, const char* vfs) {
  Connection c(path, vfs, kFull);
  c.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, body BLOB); CREATE INDEX t_k ON t(k);"
         "CREATE TABLE r(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;");
  c.Exec("BEGIN; " + Series(2000) +
         "INSERT INTO t(k, body) SELECT 'k' || value, zeroblob(300) FROM s; COMMIT;");
  std::vector<int> writes;
  for (int i = 0; i < 3; ++i) {
    if (i == 1) c.Exec("PRAGMA wal_checkpoint(RESTART)");
    const int before = g_wal_writes.load();
    c.Exec("BEGIN; INSERT INTO t(k, body) VALUES('k77" + std::to_string(i) +
           "', zeroblob(2000)); INSERT INTO r VALUES('txn-" + std::to_string(i) +
           "', zeroblob(100)); COMMIT;");
    writes.push_back(g_wal_writes.load() - before);
  }
  return writes;
}

TEST(WalBatchVfs, WritesACommitsFramesWithOneCall) {
  RegisterCountingVfses();
  testing::TempDir dir;
  const std::vector<int> plain = WalWritesPerCommit(dir.file("plain.db"), "counting");
  const std::vector<int> batched =
      WalWritesPerCommit(dir.file("batched.db"), "batch-over-counting");
  // Below the default VFS, two calls a frame (header, page).
  EXPECT_GE(plain[0], 6);
  EXPECT_EQ(plain[0] % 2, 0);
  // One for the lot; after a restart the WAL's header is synced on its own
  // first, then the frames go in one call again.
  EXPECT_EQ(batched, (std::vector<int>{1, 2, 1}));
}

// Reads, sizes and truncations of a WAL see what was gathered but not yet
// written, as they would have with the default VFS.
TEST(WalBatchVfs, FileCallsSeeGatheredWrites) {
  testing::TempDir dir;
  const std::string db = dir.file("a.db");
  const std::string wal = db + "-wal";
  { Connection create(db, nullptr, ""); }
  sqlite3_vfs* vfs = sqlite3_vfs_find(WalBatchVfsName());
  ASSERT_NE(vfs, nullptr);
  std::vector<char> memory(static_cast<size_t>(vfs->szOsFile));
  auto* file = reinterpret_cast<sqlite3_file*>(memory.data());
  int flags = 0;
  ASSERT_EQ(vfs->xOpen(vfs, wal.c_str(), file,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_WAL, &flags),
            SQLITE_OK);
  const auto* io = file->pMethods;
  std::string header(24, '\0');  // bytes 4-7 zero: not a commit frame
  std::string page(4096, 'p');
  ASSERT_EQ(io->xWrite(file, header.data(), 24, 32), SQLITE_OK);
  ASSERT_EQ(io->xWrite(file, page.data(), 4096, 56), SQLITE_OK);
  std::string back(4096, '\0');
  ASSERT_EQ(io->xRead(file, back.data(), 4096, 56), SQLITE_OK);
  EXPECT_EQ(back, page);
  ASSERT_EQ(io->xWrite(file, header.data(), 24, 56 + 4096), SQLITE_OK);
  sqlite3_int64 size = 0;
  ASSERT_EQ(io->xFileSize(file, &size), SQLITE_OK);
  EXPECT_EQ(size, 56 + 4096 + 24);
  ASSERT_EQ(io->xTruncate(file, 56), SQLITE_OK);
  ASSERT_EQ(io->xFileSize(file, &size), SQLITE_OK);
  EXPECT_EQ(size, 56);
  ASSERT_EQ(io->xClose(file), SQLITE_OK);
  EXPECT_EQ(std::filesystem::file_size(wal), 56u);
}

// Another connection, through the default VFS, sees every commit as soon as
// it returns: with synchronous=NORMAL too, where no fsync flushes the frames
// before the connection publishes them.
void ExpectEachCommitVisible(const char* pragmas) {
  testing::TempDir dir;
  const std::string path = dir.file("a.db");
  Connection writer(path, WalBatchVfsName(), pragmas);
  writer.Exec("PRAGMA wal_autocheckpoint=20;");  // the WAL restarts often
  writer.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)");
  Connection reader(path, nullptr, "PRAGMA query_only=1;");
  std::mt19937 rng(3);
  int64_t bytes = 0;
  for (int i = 1; i <= 300; ++i) {
    const int size = static_cast<int>(rng() % 9000);
    bytes += size;
    writer.Exec("INSERT INTO t(body) VALUES(randomblob(" + std::to_string(size) + "))");
    ASSERT_EQ(reader.Int("SELECT count(*) FROM t"), i);
    ASSERT_EQ(reader.Int("SELECT sum(length(body)) FROM t"), bytes);
  }
  EXPECT_EQ(reader.Text("PRAGMA integrity_check"), "ok");
}

TEST(WalBatchVfs, OtherConnectionsSeeEachCommitWithFullSync) { ExpectEachCommitVisible(kFull); }

TEST(WalBatchVfs, OtherConnectionsSeeEachCommitWithNormalSync) {
  ExpectEachCommitVisible(kNormal);
}

// Transactions larger than the page cache (frames written before the
// commit, read back, rewritten in place) and than one gathered run; partial
// rollbacks. The default VFS then reads exactly what was committed.
TEST(WalBatchVfs, LargeTransactionsAndRollbacksStayConsistent) {
  testing::TempDir dir;
  const std::string path = dir.file("a.db");
  {
    Connection c(path, WalBatchVfsName(), kFull);
    c.Exec("PRAGMA cache_size=-64;");  // 64 KiB: spills mid-transaction
    c.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, body BLOB)");
    c.Exec("BEGIN; " + Series(3000) + "INSERT INTO t(n, body) SELECT value, randomblob(700) FROM s;"
           "SAVEPOINT s; UPDATE t SET n = -1; DELETE FROM t WHERE id % 3 = 0; ROLLBACK TO s;"
           "UPDATE t SET n = n * 2, body = randomblob(500) WHERE id % 2 = 0;"
           "UPDATE t SET n = n + 1 WHERE id % 2 = 0; RELEASE s; COMMIT;");
    c.Exec("BEGIN; DELETE FROM t WHERE id > 2500; ROLLBACK;");
    c.Exec("INSERT INTO t(n, body) VALUES(0, randomblob(200000))");  // overflow pages
  }
  Connection check(path, nullptr, "");
  EXPECT_EQ(check.Text("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(check.Int("SELECT count(*) FROM t"), 3001);
  // Odd ids keep n = id; even ids have n = 2 * id + 1.
  EXPECT_EQ(check.Int("SELECT count(*) FROM t WHERE id <= 3000 AND n != "
                      "CASE WHEN id % 2 = 0 THEN 2 * id + 1 ELSE id END"),
            0);
  EXPECT_EQ(check.Int("SELECT sum(length(body)) FROM t"), 1500 * 700 + 1500 * 500 + 200000);
}

// A process killed with SIGKILL right after its commits returned leaves them
// all in the WAL, with valid checksums: the default VFS recovers every one.
TEST(WalBatchVfs, CommitsSurviveSigkill) {
  testing::TempDir dir;
  const std::string path = dir.file("a.db");
  int acks[2];
  ASSERT_EQ(pipe(acks), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(acks[0]);
    Connection c(path, WalBatchVfsName(), kFull);
    c.Exec("PRAGMA wal_autocheckpoint=50;");
    c.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)");
    std::mt19937 rng(5);
    for (int i = 1; i <= 400; ++i) {
      const int size = i % 50 == 0 ? 150000 : static_cast<int>(rng() % 5000);
      c.Exec("INSERT INTO t(id, body) VALUES(" + std::to_string(i) + ", zeroblob(" +
             std::to_string(size) + "))");
      int32_t acked = i;
      if (write(acks[1], &acked, sizeof acked) != sizeof acked) _exit(2);
    }
    kill(getpid(), SIGKILL);  // no close, no checkpoint
    _exit(3);
  }
  close(acks[1]);
  int32_t last = 0, acked = 0;
  while (read(acks[0], &acked, sizeof acked) == sizeof acked) last = acked;
  close(acks[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  ASSERT_EQ(last, 400);

  Connection check(path, nullptr, "");
  EXPECT_EQ(check.Text("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(check.Int("SELECT count(*) FROM t"), 400);
  EXPECT_EQ(check.Int("SELECT max(id) FROM t"), 400);
}

// The Database layer opens through it unless told not to.
TEST(WalBatchVfs, DatabaseOpensThroughItByDefault) {
  testing::TempDir dir;
  Database::Options batched;
  Database::Options plain;
  plain.batch_wal_writes = false;
  auto a = Database::Open(dir.file("a.db"), batched);
  auto b = Database::Open(dir.file("b.db"), plain);
  ASSERT_TRUE(a.ok() && b.ok());
  sqlite3_vfs* vfs_a = nullptr;
  sqlite3_vfs* vfs_b = nullptr;
  ASSERT_EQ(sqlite3_file_control((*a)->handle(), "main", SQLITE_FCNTL_VFS_POINTER, &vfs_a),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_file_control((*b)->handle(), "main", SQLITE_FCNTL_VFS_POINTER, &vfs_b),
            SQLITE_OK);
  EXPECT_STREQ(vfs_a->zName, WalBatchVfsName());
  EXPECT_STREQ(vfs_b->zName, sqlite3_vfs_find(nullptr)->zName);
}

}  // namespace
}  // namespace loyalty::storage
