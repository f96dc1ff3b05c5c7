#include "server/db_worker.h"

#include <spdlog/spdlog.h>

namespace loyalty::server {

DbWorker::DbWorker(std::unique_ptr<storage::ServerStore> store, std::size_t max_queued)
    : store_(std::move(store)), max_queued_(max_queued), thread_([this] { Run(); }) {}

DbWorker::~DbWorker() { Stop(); }

bool DbWorker::Post(Job job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || jobs_.size() >= max_queued_) return false;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

std::size_t DbWorker::queued() const {
  std::lock_guard lock(mu_);
  return jobs_.size();
}

void DbWorker::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void DbWorker::Run() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and everything queued has run
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    // A job that throws would take the only database thread with it; jobs
    // report failures as values, so an exception here is a bug worth logging.
    try {
      job(*store_);
    } catch (const std::exception& e) {
      spdlog::error("database job failed: {}", e.what());
    }
  }
}

}  // namespace loyalty::server
