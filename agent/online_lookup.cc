#include "agent/online_lookup.h"

#include <spdlog/spdlog.h>

#include "core/card.h"

namespace loyalty::agent {

namespace v1 = loyalty::v1;

namespace {

bool IsUnknownCard(const core::Error& e) { return e.code == core::code::kUnknownCard; }

}  // namespace

OnlineLookupService::OnlineLookupService(CheckoutService* inner, std::string card_hash_key,
                                         Lookup lookup)
    : inner_(inner), key_(std::move(card_hash_key)), lookup_(std::move(lookup)) {
  thread_ = std::thread([this] { RunLookups(); });
}

OnlineLookupService::~OnlineLookupService() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void OnlineLookupService::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  inner_->Stop();
}

bool OnlineLookupService::Fetch(std::string_view card) {
  auto normalized = core::NormalizeCardNumber(card);
  if (!normalized.ok()) return false;
  auto found = lookup_(core::CardHash(key_, *normalized));
  if (!found.ok()) {
    // Offline or slow: the terminal answers from what it holds, as always.
    spdlog::debug("online member lookup failed: {} ({})", found.error().message,
                  found.error().code);
    return false;
  }
  return found->has_value();
}

void OnlineLookupService::Later(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      tasks_.push_back(std::move(task));
      cv_.notify_one();
      return;
    }
  }
  task();  // stopping: run here; Fetch fails fast once sync has stopped
}

void OnlineLookupService::RunLookups() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
    if (tasks_.empty()) return;  // stopping and drained
    auto task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

core::Result<v1::MemberResponse> OnlineLookupService::LookupMember(std::string_view card) {
  auto r = inner_->LookupMember(card);
  if (!r.ok() && IsUnknownCard(r.error()) && Fetch(card)) return inner_->LookupMember(card);
  return r;
}

core::Result<v1::QuoteResponse> OnlineLookupService::Quote(const v1::QuoteRequest& req) {
  auto r = inner_->Quote(req);
  if (!r.ok() && IsUnknownCard(r.error()) && Fetch(req.card())) return inner_->Quote(req);
  return r;
}

void OnlineLookupService::Enrol(v1::EnrolRequest req, Callback<v1::MemberResponse> done) {
  // Looked up first, so a member of another store gets already_enrolled
  // here as at a terminal that replicates everyone.
  Later([this, req = std::move(req), done = std::move(done)]() mutable {
    if (!inner_->LookupMember(req.card()).ok()) Fetch(req.card());
    inner_->Enrol(std::move(req), std::move(done));
  });
}

void OnlineLookupService::Commit(v1::CommitRequest req, Callback<v1::CommitResponse> done) {
  v1::CommitRequest copy = req;
  inner_->Commit(std::move(req), [this, copy = std::move(copy), done = std::move(done)](
                                     core::Result<v1::CommitResponse> r) mutable {
    if (r.ok() || !IsUnknownCard(r.error())) return done(std::move(r));
    Later([this, copy = std::move(copy), done = std::move(done), r = std::move(r)]() mutable {
      if (!Fetch(copy.card())) return done(std::move(r));
      inner_->Commit(std::move(copy), std::move(done));
    });
  });
}

void OnlineLookupService::Redeem(v1::RedeemRequest req, Callback<v1::RedeemResponse> done) {
  v1::RedeemRequest copy = req;
  inner_->Redeem(std::move(req), [this, copy = std::move(copy), done = std::move(done)](
                                     core::Result<v1::RedeemResponse> r) mutable {
    if (r.ok() || !IsUnknownCard(r.error())) return done(std::move(r));
    Later([this, copy = std::move(copy), done = std::move(done), r = std::move(r)]() mutable {
      if (!Fetch(copy.card())) return done(std::move(r));
      inner_->Redeem(std::move(copy), std::move(done));
    });
  });
}

}  // namespace loyalty::agent
