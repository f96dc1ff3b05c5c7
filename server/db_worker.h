// DbWorker: the threads that run the server's storage work. ServerStore is
// single-threaded, and SQLite work must never block an I/O thread:
// - the database thread runs every ServerStore call: uploads' Append
//   (PostUpload), and everything else (Post): sync lookups, admin, the full
//   pass's writes. It folds the inbox (storage/server_store.h) into the
//   ledger: in steps of ServerStore::kFoldChunk events once no job came for
//   `fold_quiet` (uploads paused), and before an upload while more than
//   `max_unfolded` events wait (so a steady stream of uploads cannot leave
//   the ledger behind without bound); and before every Post job, all of it
//   in steps of ServerStore::kFoldAllChunk, so that each such job sees
//   every acknowledged event in the ledger. An upload never waits for the
//   fold otherwise: a backlog is acknowledged at the rate the inbox takes
//   it;
// - the reader thread runs long read-only scans (PostRead) on a
//   ServerReader, a second connection: the full pass's scan, segment and
//   promotion previews, KPIs. SQLite's WAL lets it read a consistent
//   snapshot while the database thread commits, so a scan of a million
//   members never holds up ingest;
// - the feed readers (PostFeed), threads with a read connection each, serve
//   terminals' pulls of the change feed: short reads that wait neither for
//   ingest nor for a long scan, and use the second core.
// No read of the ledger runs before the events acknowledged so far are
// folded: a scan (PostRead) or pull (PostFeedFolded) posted while events
// wait is held until a fold job on the database thread has folded them;
// reads that arrive together share that job. From outside, an upload is
// applied before anyone can look, as if it had been applied before its
// acknowledgement.
// A job runs on its thread with the store (or reader) and hands its result
// back itself (Connection::Send is thread-safe; HTTP sessions post back to
// their strand).
//
// The queues are bounded: Post and PostRead return false when full, and the
// caller answers "unavailable" instead of queueing without limit.
//
// Ownership: the worker owns the store and its reader. Stop() runs the jobs
// already queued, then joins the threads; later posts are refused. Post and
// PostRead are thread-safe; Stop and the destructor are for the owning
// thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "storage/server_store.h"

namespace loyalty::server {

struct FoldOptions {
  std::chrono::milliseconds quiet{20};
  int64_t max_unfolded = 250'000;  // about 5 s of folding
  // Called on the database thread after each fold step (metrics, logs).
  std::function<void(const storage::FoldOutcome&)> on_fold;
};

class DbWorker {
 public:
  using Job = std::function<void(storage::ServerStore& store)>;
  using ReadJob = std::function<void(storage::ServerReader& reader)>;

  // Opens the reader with store->OpenReader(); without one (logged),
  // PostRead refuses every job.
  explicit DbWorker(std::unique_ptr<storage::ServerStore> store, std::size_t max_queued = 4096,
                    std::size_t max_queued_reads = 64, int feed_readers = 2,
                    FoldOptions fold = {});
  ~DbWorker();
  DbWorker(const DbWorker&) = delete;
  DbWorker& operator=(const DbWorker&) = delete;

  // Queues `job` for the database thread, to run once the inbox is folded;
  // false when the queue is full or the worker is stopping.
  [[nodiscard]] bool Post(Job job);
  // Queues an upload's Append for the database thread: it runs without
  // waiting for the fold. Same queue and limits as Post.
  [[nodiscard]] bool PostUpload(Job job);
  // Queues `job` to run without waiting for the fold (a health check).
  [[nodiscard]] bool PostNow(Job job);
  // Queues `job` for a feed reader once every event acknowledged so far is
  // folded (a terminal's pull after its upload must see it). False as
  // PostFeed.
  [[nodiscard]] bool PostFeedFolded(ReadJob job);
  // Events acknowledged and not yet folded into the ledger (thread-safe).
  int64_t unfolded() const { return store_->UnfoldedEvents(); }
  // Why the last fold step failed; empty once one succeeds (thread-safe).
  std::string fold_error() const;
  // Queues `job` for the reader thread once every event acknowledged so far
  // is folded; false when its queue is full, the worker is stopping or
  // there is no reader.
  [[nodiscard]] bool PostRead(ReadJob job);
  // Queues `job` for a feed reader; false when its queue is full, the worker
  // is stopping or there is no feed reader.
  [[nodiscard]] bool PostFeed(ReadJob job);

  // Jobs queued for the database thread and not yet started (for metrics).
  std::size_t queued() const;

  // Runs what is queued, then stops the threads. Idempotent.
  void Stop();

 private:
  enum class Wait { kFold, kUpload, kNothing };
  struct WriteJob {
    Job job;
    Wait wait = Wait::kFold;
  };
  template <typename J>
  struct Lane {
    std::deque<J> jobs;  // guarded by mu_
    std::size_t max_queued;
    std::condition_variable cv;
  };
  template <typename J, typename Target>
  void Run(Lane<J>& lane, Target& target);
  void RunWriter();
  bool Enqueue(WriteJob job);
  // One fold step of at most `max_events`; false when it failed (logged;
  // the next waits a while).
  bool FoldStep(int64_t max_events);
  void FoldEverything();
  // Holds `job` for `lane` until a fold (see the class comment); false when
  // the lane is full or the worker is stopping.
  bool HoldUntilFolded(Lane<ReadJob>& lane, ReadJob job);
  void ReleaseAfterFold();

  std::unique_ptr<storage::ServerStore> store_;
  std::unique_ptr<storage::ServerReader> reader_;
  mutable std::mutex mu_;
  Lane<WriteJob> writes_;
  FoldOptions fold_;
  // After a failed fold step, none before this (database thread only).
  std::chrono::steady_clock::time_point fold_after_{};
  std::string fold_error_;  // guarded by mu_
  // Guarded by mu_: reads waiting for a fold, with the lane each goes to.
  std::vector<std::pair<Lane<ReadJob>*, ReadJob>> after_fold_;
  bool release_queued_ = false;      // guarded by mu_: a ReleaseAfterFold job is queued
  Lane<ReadJob> reads_;
  Lane<ReadJob> feed_;
  std::vector<std::unique_ptr<storage::ServerReader>> feed_readers_;
  bool stopping_ = false;  // guarded by mu_
  std::thread writer_;
  std::thread reader_thread_;
  std::vector<std::thread> feed_threads_;
};

}  // namespace loyalty::server
