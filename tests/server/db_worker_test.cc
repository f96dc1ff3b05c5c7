// The database thread's fold policy (server/db_worker.h) on a real ledger
// file: uploads are acknowledged from the inbox, Post jobs see everything
// folded, the worker folds by itself once uploads pause, and a backlog past
// the limit is folded before the next upload.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "server/db_worker.h"
#include "storage/server_store.h"
#include "tests/server/test_events.h"
#include "tests/support/temp_dir.h"

namespace loyalty::server {
namespace {

using namespace loyalty::server::testing;
using namespace std::chrono_literals;

class DbWorkerTest : public ::testing::Test {
 protected:
  std::unique_ptr<DbWorker> Start(FoldOptions fold) {
    auto store = storage::OpenSqliteServerStore(dir_.file("server.db"));
    EXPECT_TRUE(store.ok()) << store.error().message;
    if (!store.ok()) return nullptr;
    return std::make_unique<DbWorker>(std::move(*store), 4096, 64, 1, std::move(fold));
  }

  // A worker that folds only when asked to (before a job or a read), never
  // on its own during a test.
  std::unique_ptr<DbWorker> StartNeverQuiet() {
    FoldOptions never_quiet;
    never_quiet.quiet = 1h;
    return Start(std::move(never_quiet));
  }

  // Runs `fn` on the database thread through `post` and returns its value.
  template <typename Fn>
  static auto On(DbWorker& db, bool (DbWorker::*post)(DbWorker::Job), Fn fn) {
    using T = decltype(fn(std::declval<storage::ServerStore&>()));
    auto promise = std::make_shared<std::promise<T>>();
    auto future = promise->get_future();
    EXPECT_TRUE((db.*post)([promise, fn](storage::ServerStore& s) { promise->set_value(fn(s)); }));
    return future.get();
  }

  // Appends a member's enrolment and `purchases` purchases of 10 points.
  static int64_t Upload(DbWorker& db, uint64_t first_seq, int purchases, const std::string& member,
                        int card) {
    return On(db, &DbWorker::PostUpload, [=](storage::ServerStore& s) -> int64_t {
      std::vector<v1::Event> events = {Enrol("S1", first_seq, member, HashOf(card))};
      for (int i = 1; i <= purchases; ++i) {
        events.push_back(Purchase("S1", first_seq + static_cast<uint64_t>(i), member, 10));
      }
      auto out = s.Append("S1", std::move(events), NowMs());
      return out.ok() ? static_cast<int64_t>(out->acknowledged.size()) : -1;
    });
  }

  static int64_t Balance(storage::ServerStore& s, const std::string& member) {
    auto found = s.FindMember(member, 0);
    return found.ok() && *found ? (*found)->ledger.snapshot().points_balance() : -1;
  }

  ::loyalty::testing::TempDir dir_;
};

TEST_F(DbWorkerTest, AnUploadIsAcknowledgedFromTheInboxAndAPostJobSeesItFolded) {
  auto db = StartNeverQuiet();
  ASSERT_TRUE(db);
  EXPECT_EQ(Upload(*db, 1, 3, "p-1", 1), 4);
  // A health check runs without folding: the events wait in the inbox.
  EXPECT_EQ(On(*db, &DbWorker::PostNow, [](storage::ServerStore& s) { return s.UnfoldedEvents(); }),
            4);
  EXPECT_EQ(db->unfolded(), 4);
  // Any other job first folds everything acknowledged.
  EXPECT_EQ(On(*db, &DbWorker::Post,
               [](storage::ServerStore& s) { return std::make_pair(s.UnfoldedEvents(), Balance(s, "p-1")); }),
            std::make_pair(int64_t{0}, int64_t{30}));
  EXPECT_EQ(db->unfolded(), 0);
}

TEST_F(DbWorkerTest, APullAfterAnUploadIsServedByAFeedReaderWithTheUploadFolded) {
  auto db = StartNeverQuiet();
  ASSERT_TRUE(db);
  EXPECT_EQ(Upload(*db, 1, 2, "p-1", 1), 3);
  ASSERT_EQ(db->unfolded(), 3);
  // Several pulls waiting at once share the fold.
  std::vector<std::future<int64_t>> balances;
  for (int i = 0; i < 3; ++i) {
    auto promise = std::make_shared<std::promise<int64_t>>();
    balances.push_back(promise->get_future());
    ASSERT_TRUE(db->PostFeedFolded([promise](storage::ServerReader& reader) {
      auto page = reader.Changes(0, 100, "");
      int64_t balance = -1;
      if (page.ok()) {
        for (const auto& change : page->changes()) {
          if (change.has_member() && change.member().member_id() == "p-1") {
            balance = change.member().points_balance();
          }
        }
      }
      promise->set_value(balance);
    }));
  }
  for (auto& b : balances) EXPECT_EQ(b.get(), 20);
  EXPECT_EQ(db->unfolded(), 0);
}

TEST_F(DbWorkerTest, AScanPostedWhileEventsWaitReadsThemFolded) {
  auto db = StartNeverQuiet();
  ASSERT_TRUE(db);
  EXPECT_EQ(Upload(*db, 1, 4, "p-1", 1), 5);
  auto promise = std::make_shared<std::promise<int64_t>>();
  auto members = promise->get_future();
  ASSERT_TRUE(db->PostRead([promise](storage::ServerReader& reader) {
    storage::MemberScanOptions options;
    options.now_ms = NowMs();
    int64_t n = 0;
    auto s = reader.ScanMembers(options, [&n](const storage::ScannedMember&) { ++n; });
    promise->set_value(s.ok() ? n : -1);
  }));
  EXPECT_EQ(members.get(), 1);
  EXPECT_EQ(db->unfolded(), 0);
}

TEST_F(DbWorkerTest, TheWorkerFoldsByItselfOnceUploadsPause) {
  FoldOptions fold;
  fold.quiet = 5ms;
  std::atomic<int64_t> folded{0};
  fold.on_fold = [&folded](const storage::FoldOutcome& step) { folded += step.folded; };
  auto db = Start(std::move(fold));
  ASSERT_TRUE(db);
  EXPECT_EQ(Upload(*db, 1, 2, "p-1", 1), 3);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (db->unfolded() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_EQ(db->unfolded(), 0);
  db->Stop();  // on_fold ran on the database thread: joined now
  EXPECT_EQ(folded.load(), 3);
}

TEST_F(DbWorkerTest, ABacklogPastTheLimitIsFoldedBeforeTheNextUpload) {
  FoldOptions fold;
  fold.quiet = 1h;
  fold.max_unfolded = 2;
  auto db = Start(std::move(fold));
  ASSERT_TRUE(db);
  EXPECT_EQ(Upload(*db, 1, 1, "p-1", 1), 2);  // 2 waiting: at the limit, not past it
  EXPECT_EQ(db->unfolded(), 2);
  EXPECT_EQ(Upload(*db, 3, 1, "p-2", 2), 2);  // 2 more
  EXPECT_EQ(db->unfolded(), 4);
  // Past the limit: the next upload first folds a step (all four fit in one).
  const int64_t seen = On(*db, &DbWorker::PostUpload,
                          [](storage::ServerStore& s) { return s.UnfoldedEvents(); });
  EXPECT_EQ(seen, 0);
}

TEST_F(DbWorkerTest, StoppingLeavesTheInboxForTheNextStart) {
  {
    auto db = StartNeverQuiet();
    ASSERT_TRUE(db);
    EXPECT_EQ(Upload(*db, 1, 1, "p-1", 1), 2);
    db->Stop();
  }
  auto db = StartNeverQuiet();
  ASSERT_TRUE(db);
  EXPECT_EQ(db->unfolded(), 2);
  EXPECT_EQ(On(*db, &DbWorker::Post, [](storage::ServerStore& s) { return Balance(s, "p-1"); }), 10);
}

}  // namespace
}  // namespace loyalty::server
