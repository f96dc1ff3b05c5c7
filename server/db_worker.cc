#include "server/db_worker.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "server/clock.h"

namespace loyalty::server {

DbWorker::DbWorker(std::unique_ptr<storage::ServerStore> store, std::size_t max_queued,
                   std::size_t max_queued_reads, int feed_readers, FoldOptions fold)
    : store_(std::move(store)), fold_(std::move(fold)) {
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
  writer_ = std::thread([this] { RunWriter(); });
  if (reader_) reader_thread_ = std::thread([this] { Run(reads_, *reader_); });
  for (auto& feed : feed_readers_) {
    feed_threads_.emplace_back([this, r = feed.get()] { Run(feed_, *r); });
  }
}

DbWorker::~DbWorker() { Stop(); }

bool DbWorker::Post(Job job) { return Enqueue(WriteJob{std::move(job), Wait::kFold}); }

bool DbWorker::PostUpload(Job job) { return Enqueue(WriteJob{std::move(job), Wait::kUpload}); }

bool DbWorker::PostNow(Job job) { return Enqueue(WriteJob{std::move(job), Wait::kNothing}); }

bool DbWorker::PostFeedFolded(ReadJob job) {
  if (store_->UnfoldedEvents() == 0) return PostFeed(std::move(job));
  {
    std::lock_guard lock(mu_);
    if (feed_readers_.empty()) return false;
  }
  return HoldUntilFolded(feed_, std::move(job));
}

bool DbWorker::HoldUntilFolded(Lane<ReadJob>& lane, ReadJob job) {
  {
    std::lock_guard lock(mu_);
    const auto held = std::count_if(after_fold_.begin(), after_fold_.end(),
                                    [&](const auto& entry) { return entry.first == &lane; });
    if (stopping_ || lane.jobs.size() + static_cast<std::size_t>(held) >= lane.max_queued) {
      return false;
    }
    after_fold_.emplace_back(&lane, std::move(job));
    if (release_queued_) return true;  // the queued release takes this one too
    release_queued_ = true;
  }
  if (Enqueue(WriteJob{[this](storage::ServerStore&) { ReleaseAfterFold(); }, Wait::kFold})) {
    return true;
  }
  // The database queue is full: read the ledger as it is rather than not at
  // all (a pull's next round gets the rest).
  ReleaseAfterFold();
  return true;
}

// Runs on the database thread after FoldEverything (a Wait::kFold job), so
// every read in after_fold_ follows the uploads acknowledged before it was
// posted, all folded now: uploads are appended on this thread too.
void DbWorker::ReleaseAfterFold() {
  {
    std::lock_guard lock(mu_);
    for (auto& [lane, job] : after_fold_) lane->jobs.push_back(std::move(job));
    after_fold_.clear();
    release_queued_ = false;
  }
  reads_.cv.notify_all();
  feed_.cv.notify_all();
}

std::string DbWorker::fold_error() const {
  std::lock_guard lock(mu_);
  return fold_error_;
}

bool DbWorker::Enqueue(WriteJob job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || writes_.jobs.size() >= writes_.max_queued) return false;
    writes_.jobs.push_back(std::move(job));
  }
  writes_.cv.notify_one();
  return true;
}

bool DbWorker::PostRead(ReadJob job) {
  if (!reader_) return false;
  if (store_->UnfoldedEvents() > 0) return HoldUntilFolded(reads_, std::move(job));
  {
    std::lock_guard lock(mu_);
    if (stopping_ || reads_.jobs.size() >= reads_.max_queued) return false;
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

bool DbWorker::FoldStep(int64_t max_events) {
  auto step = store_->Fold(max_events, NowMs());
  if (!step) {
    spdlog::error("folding acknowledged events into the ledger failed: {} ({}); {} wait, "
                  "retrying in a second",
                  step.error().message, step.error().code, store_->UnfoldedEvents());
    fold_after_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    std::lock_guard lock(mu_);
    fold_error_ = step.error().message + " (" + step.error().code + ")";
    return false;
  }
  {
    std::lock_guard lock(mu_);
    fold_error_.clear();
  }
  for (const auto& r : step->rejected) {
    spdlog::error("event {}/{}/{}/{} was acknowledged but cannot be folded: {} ({}); kept with "
                  "the rejected events",
                  r.id().store_id(), r.id().terminal_id(), r.id().epoch(), r.id().seq(),
                  r.message(), r.code());
  }
  if (fold_.on_fold) fold_.on_fold(*step);
  return true;
}

void DbWorker::FoldEverything() {
  while (store_->UnfoldedEvents() > 0 && std::chrono::steady_clock::now() >= fold_after_) {
    if (!FoldStep(storage::ServerStore::kFoldAllChunk)) return;
  }
}

void DbWorker::RunWriter() {
  // Set once no job came for fold_.quiet: fold step after step until one
  // comes.
  bool quiet = false;
  for (;;) {
    WriteJob job;
    {
      std::unique_lock lock(mu_);
      auto ready = [&] { return stopping_ || !writes_.jobs.empty(); };
      if (store_->UnfoldedEvents() > 0 && !stopping_) {
        const auto until =
            std::max(std::chrono::steady_clock::now() + (quiet ? std::chrono::milliseconds(0)
                                                                : fold_.quiet),
                     fold_after_);
        if (!writes_.cv.wait_until(lock, until, ready)) {
          quiet = true;
          lock.unlock();
          if (!FoldStep(storage::ServerStore::kFoldChunk)) quiet = false;
          continue;
        }
      } else {
        writes_.cv.wait(lock, ready);
      }
      if (writes_.jobs.empty()) return;  // stopping, and everything queued has run
      job = std::move(writes_.jobs.front());
      writes_.jobs.pop_front();
    }
    quiet = false;
    if (job.wait == Wait::kFold) {
      FoldEverything();
    } else if (job.wait == Wait::kUpload) {
      while (store_->UnfoldedEvents() > fold_.max_unfolded &&
             std::chrono::steady_clock::now() >= fold_after_ &&
             FoldStep(storage::ServerStore::kFoldChunk)) {
      }
    }
    try {
      job.job(*store_);
    } catch (const std::exception& e) {
      spdlog::error("database job failed: {}", e.what());
    }
  }
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
