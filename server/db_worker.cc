#include "server/db_worker.h"

#include <spdlog/spdlog.h>

namespace loyalty::server {

DbWorker::DbWorker(std::unique_ptr<storage::ServerStore> store, std::size_t max_queued,
                   std::size_t max_queued_reads)
    : store_(std::move(store)) {
  writes_.max_queued = max_queued;
  reads_.max_queued = max_queued_reads;
  auto reader = store_->OpenReader();
  if (reader.ok()) {
    reader_ = std::move(*reader);
  } else {
    spdlog::error("no read connection: full passes, previews and KPIs are unavailable: {} ({})",
                  reader.error().message, reader.error().code);
  }
  writer_ = std::thread([this] { Run(writes_, *store_); });
  if (reader_) reader_thread_ = std::thread([this] { Run(reads_, *reader_); });
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
