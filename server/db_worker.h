// DbWorker: the threads that run the server's storage work. ServerStore is
// single-threaded, and SQLite work must never block an I/O thread:
// - the database thread runs every ServerStore call (Post): ingest, sync,
//   admin changes, the full pass's writes;
// - the reader thread runs long read-only scans (PostRead) on a
//   ServerReader, a second connection: the full pass's scan, segment and
//   promotion previews, KPIs. SQLite's WAL lets it read a consistent
//   snapshot while the database thread commits, so a scan of a million
//   members never holds up ingest;
// - the feed readers (PostFeed), threads with a read connection each, serve
//   terminals' pulls of the change feed: short reads that wait neither for
//   ingest nor for a long scan, and use the second core.
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

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "storage/server_store.h"

namespace loyalty::server {

class DbWorker {
 public:
  using Job = std::function<void(storage::ServerStore& store)>;
  using ReadJob = std::function<void(storage::ServerReader& reader)>;

  // Opens the reader with store->OpenReader(); without one (logged),
  // PostRead refuses every job.
  explicit DbWorker(std::unique_ptr<storage::ServerStore> store, std::size_t max_queued = 4096,
                    std::size_t max_queued_reads = 64, int feed_readers = 2);
  ~DbWorker();
  DbWorker(const DbWorker&) = delete;
  DbWorker& operator=(const DbWorker&) = delete;

  // Queues `job` for the database thread; false when the queue is full or
  // the worker is stopping.
  [[nodiscard]] bool Post(Job job);
  // Queues `job` for the reader thread; false when its queue is full, the
  // worker is stopping or there is no reader.
  [[nodiscard]] bool PostRead(ReadJob job);
  // Queues `job` for a feed reader; false when its queue is full, the worker
  // is stopping or there is no feed reader.
  [[nodiscard]] bool PostFeed(ReadJob job);

  // Jobs queued for the database thread and not yet started (for metrics).
  std::size_t queued() const;

  // Runs what is queued, then stops the threads. Idempotent.
  void Stop();

 private:
  template <typename J>
  struct Lane {
    std::deque<J> jobs;  // guarded by mu_
    std::size_t max_queued;
    std::condition_variable cv;
  };
  template <typename J, typename Target>
  void Run(Lane<J>& lane, Target& target);

  std::unique_ptr<storage::ServerStore> store_;
  std::unique_ptr<storage::ServerReader> reader_;
  mutable std::mutex mu_;
  Lane<Job> writes_;
  Lane<ReadJob> reads_;
  Lane<ReadJob> feed_;
  std::vector<std::unique_ptr<storage::ServerReader>> feed_readers_;
  bool stopping_ = false;  // guarded by mu_
  std::thread writer_;
  std::thread reader_thread_;
  std::vector<std::thread> feed_threads_;
};

}  // namespace loyalty::server
