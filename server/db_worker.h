// DbWorker: the one thread that runs every storage::ServerStore call
// (ServerStore is single-threaded, and SQLite work must never block an I/O
// thread). Callers Post a job; the job runs on the worker thread with the
// store and hands its result back itself (Connection::Send is thread-safe;
// HTTP sessions post back to their strand).
//
// The queue is bounded: Post returns false when `max_queued` jobs wait, and
// the caller answers "unavailable" instead of queueing without limit.
//
// Ownership: the worker owns the store. Stop() runs the jobs already queued,
// then joins the thread; later Posts are refused. Post is thread-safe;
// Stop and the destructor are for the owning thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "storage/server_store.h"

namespace loyalty::server {

class DbWorker {
 public:
  using Job = std::function<void(storage::ServerStore& store)>;

  DbWorker(std::unique_ptr<storage::ServerStore> store, std::size_t max_queued = 4096);
  ~DbWorker();
  DbWorker(const DbWorker&) = delete;
  DbWorker& operator=(const DbWorker&) = delete;

  // Queues `job`; false when the queue is full or the worker is stopping.
  [[nodiscard]] bool Post(Job job);

  // Jobs queued and not yet started (for metrics).
  std::size_t queued() const;

  // Runs what is queued, then stops the thread. Idempotent.
  void Stop();

 private:
  void Run();

  std::unique_ptr<storage::ServerStore> store_;
  const std::size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;   // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace loyalty::server
