#include "server/db_worker.h"

#include <spdlog/spdlog.h>

namespace loyalty::server {

DbWorker::DbWorker(std::unique_ptr<storage::ServerStore> store, std::size_t max_queued,
                   std::size_t max_queued_reads, int feed_readers)
    : store_(std::move(store)) {
  writes_.max_queued = max_queued;
  reads_.max_queued = max_queued_reads;
  feed_.max_queued = max_queued;
  for (int i = 0; i < feed_readers; ++i) {
    auto feed = store_->OpenReader();
    if (!feed.ok()) {
      spdlog::error("no feed read connection; pulls run on the database thread: {} ({})",
                    feed.error().message, feed.error().code);
      break;
    }
    feed_readers_.push_back(std::move(*feed));
  }
  auto reader = store_->OpenReader();
  if (reader.ok()) {
    reader_ = std::move(*reader);
  } else {
    spdlog::error("no read connection: full passes, previews and KPIs are unavailable: {} ({})",
                  reader.error().message, reader.error().code);
  }
  writer_ = std::thread([this] { Run(writes_, *store_); });
  if (reader_) reader_thread_ = std::thread([this] { Run(reads_, *reader_); });
  for (auto& feed : feed_readers_) {
    feed_threads_.emplace_back([this, r = feed.get()] { Run(feed_, *r); });
  }
}

DbWorker::~DbWorker() { Stop(); }

bool DbWorker::Post(Job job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || writes_.jobs.size() >= writes_.max_queued) return false;
    writes_.jobs.push_back(std::move(job));
  }
  writes_.cv.notify_one();
  return true;
}

bool DbWorker::PostRead(ReadJob job) {
  {
    std::lock_guard lock(mu_);
    if (!reader_ || stopping_ || reads_.jobs.size() >= reads_.max_queued) return false;
    reads_.jobs.push_back(std::move(job));
  }
  reads_.cv.notify_one();
  return true;
}

bool DbWorker::PostFeed(ReadJob job) {
  {
    std::lock_guard lock(mu_);
    if (feed_readers_.empty() || stopping_ || feed_.jobs.size() >= feed_.max_queued) return false;
    feed_.jobs.push_back(std::move(job));
  }
  feed_.cv.notify_one();
  return true;
}

std::size_t DbWorker::queued() const {
  std::lock_guard lock(mu_);
  return writes_.jobs.size();
}

void DbWorker::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  writes_.cv.notify_one();
  reads_.cv.notify_one();
  feed_.cv.notify_all();
  for (auto& t : feed_threads_) {
    if (t.joinable()) t.join();
  }
  // The reader first: its jobs may still post writes (a full pass's steps,
  // refused once stopping).
  if (reader_thread_.joinable()) reader_thread_.join();
  if (writer_.joinable()) writer_.join();
}

template <typename J, typename Target>
void DbWorker::Run(Lane<J>& lane, Target& target) {
  for (;;) {
    J job;
    {
      std::unique_lock lock(mu_);
      lane.cv.wait(lock, [&] { return stopping_ || !lane.jobs.empty(); });
      if (lane.jobs.empty()) return;  // stopping, and everything queued has run
      job = std::move(lane.jobs.front());
      lane.jobs.pop_front();
    }
    // A job that throws would take its thread with it; jobs report failures
    // as values, so an exception here is a bug worth logging.
    try {
      job(target);
    } catch (const std::exception& e) {
      spdlog::error("database job failed: {}", e.what());
    }
  }
}

}  // namespace loyalty::server
