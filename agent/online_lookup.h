// OnlineLookupService: the checkout service of a terminal that replicates
// only its own store's members (sync member scope "store", for very large
// programmes). It wraps the ordinary service and, when a card is not held
// locally, asks the server once over the sync connection; a member found
// there is installed locally (sync/agent_sync.h LookupMember) and the request
// is answered as if it had been replicated. Offline, or for a card the server
// does not know either, the answer is the wrapped service's unknown_card, so
// a POS sees the same contract in every scope.
//
// Lookups of reads (member view, quote) run on the caller's thread and hold
// it for at most the lookup timeout. Writes (enrol, commit, redeem) are
// answered by the wrapped service first; only an unknown card is retried,
// from the lookup thread this class owns, so the writer thread never waits on
// the network. Enrol looks the card up before enrolling, so a member of
// another store is not enrolled twice.
//
// Thread-safe. Stop() stops the lookup thread, then the wrapped service.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "agent/checkout_service.h"

namespace loyalty::agent {

class OnlineLookupService final : public CheckoutService {
 public:
  // The server's answer for a keyed card hash, installed locally when found.
  using Lookup = std::function<core::Result<std::optional<loyalty::v1::MemberSnapshot>>(
      const std::string& card_hash)>;

  // `inner` must outlive this object; `card_hash_key` is the programme's
  // card-hash key (raw bytes), the same the inner service uses.
  OnlineLookupService(CheckoutService* inner, std::string card_hash_key, Lookup lookup);
  ~OnlineLookupService() override;

  core::Result<loyalty::v1::MemberResponse> LookupMember(std::string_view card) override;
  core::Result<loyalty::v1::QuoteResponse> Quote(const loyalty::v1::QuoteRequest& req) override;
  loyalty::v1::HealthResponse Health() override { return inner_->Health(); }
  loyalty::v1::Programme CurrentProgramme() override { return inner_->CurrentProgramme(); }
  std::vector<loyalty::v1::OfferView> GeneralOffers() override { return inner_->GeneralOffers(); }

  void Enrol(loyalty::v1::EnrolRequest req, Callback<loyalty::v1::MemberResponse> done) override;
  void Commit(loyalty::v1::CommitRequest req, Callback<loyalty::v1::CommitResponse> done) override;
  void Void(loyalty::v1::VoidRequest req, Callback<loyalty::v1::VoidResponse> done) override {
    inner_->Void(std::move(req), std::move(done));  // a committed transaction is always local
  }
  void Redeem(loyalty::v1::RedeemRequest req, Callback<loyalty::v1::RedeemResponse> done) override;

  int64_t PendingEvents() override { return inner_->PendingEvents(); }
  void SubmitSyncWrite(std::function<core::Status(storage::AgentStore&)> write,
                       std::function<void(core::Status)> done) override {
    inner_->SubmitSyncWrite(std::move(write), std::move(done));
  }
  core::Status ReloadCatalogue() override { return inner_->ReloadCatalogue(); }
  void SetCommitHook(std::function<void()> hook) override { inner_->SetCommitHook(std::move(hook)); }
  void Stop() override;

 private:
  // True when the server knew the card and the member is now held locally.
  bool Fetch(std::string_view card);
  // Runs `task` on the lookup thread (or at once, failing, after Stop).
  void Later(std::function<void()> task);
  void RunLookups();

  CheckoutService* inner_;
  std::string key_;
  Lookup lookup_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::thread thread_;
};

}  // namespace loyalty::agent
