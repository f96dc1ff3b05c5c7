#include "storage/sqlite.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/temp_dir.h"

namespace loyalty::storage {
namespace {

std::unique_ptr<Database> OpenDb(const std::string& path) {
  auto db = Database::Open(path, Database::Options{});
  EXPECT_TRUE(db.ok()) << (db.ok() ? "" : db.error().message);
  return std::move(*db);
}

int64_t Count(Database& db, const char* sql) {
  auto stmt = db.Prepare(sql);
  EXPECT_TRUE(stmt.ok());
  auto row = (*stmt)->Step();
  EXPECT_TRUE(row.ok() && *row);
  return (*stmt)->ColumnInt(0);
}

TEST(Sqlite, OpensInWalModeWithFullSync) {
  testing::TempDir dir;
  auto db = OpenDb(dir.file("a.db"));
  auto stmt = db->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(stmt.ok());
  ASSERT_TRUE(*(*stmt)->Step());
  EXPECT_EQ((*stmt)->ColumnText(0), "wal");
  EXPECT_EQ(Count(*db, "PRAGMA synchronous"), 2);  // FULL
}

TEST(Sqlite, TransactionRollsBackUnlessCommitted) {
  testing::TempDir dir;
  auto db = OpenDb(dir.file("a.db"));
  ASSERT_TRUE(db->Exec("CREATE TABLE t(x INTEGER)").ok());
  {
    auto txn = Transaction::Begin(*db);
    ASSERT_TRUE(txn.ok());
    ASSERT_TRUE(db->Exec("INSERT INTO t VALUES(1)").ok());
  }
  EXPECT_EQ(Count(*db, "SELECT count(*) FROM t"), 0);
  {
    auto txn = Transaction::Begin(*db);
    ASSERT_TRUE(db->Exec("INSERT INTO t VALUES(1)").ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  EXPECT_EQ(Count(*db, "SELECT count(*) FROM t"), 1);
}

TEST(Sqlite, SavepointRollsBackOnlyItsOwnWork) {
  testing::TempDir dir;
  auto db = OpenDb(dir.file("a.db"));
  ASSERT_TRUE(db->Exec("CREATE TABLE t(x INTEGER)").ok());
  auto txn = Transaction::Begin(*db);
  ASSERT_TRUE(db->Exec("INSERT INTO t VALUES(1)").ok());
  {
    auto sp = Savepoint::Begin(*db);
    ASSERT_TRUE(db->Exec("INSERT INTO t VALUES(2)").ok());
  }  // rolled back
  {
    auto sp = Savepoint::Begin(*db);
    ASSERT_TRUE(db->Exec("INSERT INTO t VALUES(3)").ok());
    ASSERT_TRUE(sp->Release().ok());
  }
  ASSERT_TRUE(txn->Commit().ok());
  EXPECT_EQ(Count(*db, "SELECT sum(x) FROM t"), 4);
}

TEST(Sqlite, CachedStatementIsResetBetweenUses) {
  testing::TempDir dir;
  auto db = OpenDb(dir.file("a.db"));
  ASSERT_TRUE(db->Exec("CREATE TABLE t(x INTEGER); INSERT INTO t VALUES(1),(2),(3)").ok());
  for (int i = 0; i < 3; ++i) {
    auto stmt = db->Prepare("SELECT x FROM t ORDER BY x");
    ASSERT_TRUE(stmt.ok());
    ASSERT_TRUE(*(*stmt)->Step());  // abandoned mid-iteration on purpose
    EXPECT_EQ((*stmt)->ColumnInt(0), 1);
  }
}

TEST(Sqlite, BadSqlIsAnErrorNotACrash) {
  testing::TempDir dir;
  auto db = OpenDb(dir.file("a.db"));
  auto stmt = db->Prepare("SELEKT nonsense");
  ASSERT_FALSE(stmt.ok());
  EXPECT_EQ(stmt.error().code, core::code::kInternal);
}

TEST(Sqlite, FullDatabaseReportsDiskFull) {
  testing::TempDir dir;
  auto db = OpenDb(dir.file("a.db"));
  ASSERT_TRUE(db->Exec("CREATE TABLE t(x BLOB)").ok());
  const int64_t pages = Count(*db, "PRAGMA page_count");
  ASSERT_TRUE(db->Exec("PRAGMA max_page_count=" + std::to_string(pages + 2)).ok());
  auto stmt = db->Prepare("INSERT INTO t VALUES(?)");
  ASSERT_TRUE(stmt.ok());
  Status last;
  for (int i = 0; i < 50 && last.ok(); ++i) {
    (*stmt)->Reset();
    last = (*stmt)->BindBlob(1, std::string(4096, 'x')).Run();
  }
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(last.error().code, core::code::kDiskFull);
}

TEST(Sqlite, DamagedFilesReportDatabaseCorrupt) {
  testing::TempDir dir;
  // A page of the table overwritten with garbage.
  {
    auto db = OpenDb(dir.file("a.db"));
    ASSERT_TRUE(db->Exec("CREATE TABLE t(x INTEGER); INSERT INTO t VALUES(1)").ok());
  }  // closing the last connection checkpoints the WAL into the file
  {
    std::fstream f(dir.file("a.db"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);  // page 2: t's root
    const std::string garbage(4096, '\x5a');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  auto db = OpenDb(dir.file("a.db"));
  auto stmt = db->Prepare("SELECT count(*) FROM t");
  ASSERT_TRUE(stmt.ok());
  auto row = (*stmt)->Step();
  ASSERT_FALSE(row.ok());
  EXPECT_EQ(row.error().code, core::code::kDatabaseCorrupt) << row.error().message;
  EXPECT_TRUE(core::IsStorageFailure(row.error().code));

  // Not a database at all.
  {
    std::ofstream f(dir.file("b.db"), std::ios::binary);
    f << std::string(8192, '\x17');
  }
  auto opened = Database::Open(dir.file("b.db"), Database::Options{});
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, core::code::kDatabaseCorrupt) << opened.error().message;
}

TEST(Sqlite, MigrationsApplyOnceAndRefuseANewerSchema) {
  testing::TempDir dir;
  const Migration v1[] = {{1, "CREATE TABLE a(x)"}};
  const Migration v2[] = {{1, "CREATE TABLE a(x)"}, {2, "CREATE TABLE b(y)"}};
  {
    auto db = OpenDb(dir.file("m.db"));
    ASSERT_TRUE(Migrate(*db, v2).ok());
    ASSERT_TRUE(Migrate(*db, v2).ok());  // idempotent
    EXPECT_EQ(*db->UserVersion(), 2);
  }
  auto db = OpenDb(dir.file("m.db"));
  Status older = Migrate(*db, v1);
  ASSERT_FALSE(older.ok());
  EXPECT_NE(older.error().message.find("newer"), std::string::npos);
}

TEST(Sqlite, FailedMigrationLeavesTheSchemaAsItWas) {
  testing::TempDir dir;
  auto db = OpenDb(dir.file("m.db"));
  const Migration broken[] = {{1, "CREATE TABLE a(x)"}, {2, "CREATE TABLE b(y); BROKEN"}};
  EXPECT_FALSE(Migrate(*db, broken).ok());
  EXPECT_EQ(*db->UserVersion(), 1);
  EXPECT_EQ(Count(*db, "SELECT count(*) FROM sqlite_master WHERE name = 'b'"), 0);
}

}  // namespace
}  // namespace loyalty::storage
