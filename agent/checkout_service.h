// CheckoutService: the terminal's loyalty operations, independent of HTTP.
//
// Reads (lookup, quote, health) run on the caller's thread against a
// per-thread read-only SQLite connection, from the last committed state.
// Writes (enrol, commit, void, redeem) are queued and applied in order by one
// writer at a time, which group-commits them (one durable transaction for
// everything queued meanwhile, synchronous=FULL) and only then calls each
// callback (design invariant 2: acknowledged means durable). Because one
// writer applies all writes, a balance is re-checked inside the transaction
// and no two requests can spend it twice. The writer is the calling thread
// itself when no write is in progress (a lone checkout then needs no thread
// hand-off), else the service's writer thread; sync writes always go to the
// writer thread.
//
// Callbacks run on the thread that applied the write: the writer thread, or
// the caller's own, possibly before the call returns. They must be quick and
// must not call back into the service synchronously (queueing another write
// is fine). The service must outlive every pending callback; Stop() drains
// the queue. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "loyalty/v1/api.pb.h"
#include "loyalty/v1/domain.pb.h"

namespace loyalty::storage {
class AgentStore;
}  // namespace loyalty::storage

namespace loyalty::agent {

struct ServiceOptions {
  std::string data_dir;
  std::string store_id = "store-1";
  std::string terminal_id = "till-1";
  std::string card_hash_key;  // programme-wide key for card hashes (raw bytes)
  int64_t offline_reserve_points = -1;  // -1: the programme's
  int utc_offset_minutes = 0;
  // Upper bound on writes in one group commit.
  int max_batch = 256;
  // When set, installed if no programme is stored or this version is newer.
  std::optional<loyalty::v1::Programme> programme;
  // When set, replaces the stored offers (until head office pushes others).
  std::optional<std::vector<loyalty::v1::Offer>> offers;
};

class CheckoutService {
 public:
  template <typename T>
  using Callback = std::function<void(core::Result<T>)>;

  virtual ~CheckoutService() = default;

  virtual core::Result<loyalty::v1::MemberResponse> LookupMember(std::string_view card) = 0;
  virtual core::Result<loyalty::v1::QuoteResponse> Quote(const loyalty::v1::QuoteRequest& req) = 0;
  virtual loyalty::v1::HealthResponse Health() = 0;

  // For the customer display: the programme in force, and the offers meant
  // for everyone here and now (no tier or segment condition), highest
  // priority first.
  virtual loyalty::v1::Programme CurrentProgramme() = 0;
  virtual std::vector<loyalty::v1::OfferView> GeneralOffers() = 0;

  virtual void Enrol(loyalty::v1::EnrolRequest req, Callback<loyalty::v1::MemberResponse> done) = 0;
  virtual void Commit(loyalty::v1::CommitRequest req,
                      Callback<loyalty::v1::CommitResponse> done) = 0;
  virtual void Void(loyalty::v1::VoidRequest req, Callback<loyalty::v1::VoidResponse> done) = 0;
  virtual void Redeem(loyalty::v1::RedeemRequest req,
                      Callback<loyalty::v1::RedeemResponse> done) = 0;

  // Events not yet acknowledged by the server (the sync outbox).
  virtual int64_t PendingEvents() = 0;

  // ---- for the sync client (sync/agent_sync.h)

  // Queues `write` behind the requests already queued and runs it on the
  // writer thread, atomically (its own savepoint inside the durable group
  // commit); `done` gets its status, or the commit's, once durable. Because
  // it shares the single writer, sync never waits on SQLite's lock against
  // checkouts, and the service re-reads what `write` may change (the terminal
  // epoch after a re-key, the outbox size after acks) before the next request.
  virtual void SubmitSyncWrite(std::function<core::Status(storage::AgentStore&)> write,
                               std::function<void(core::Status)> done) = 0;

  // Re-reads the programme and offers from the database and swaps the
  // catalogue; requests already running keep the one they started with.
  virtual core::Status ReloadCatalogue() = 0;

  // `hook` runs on the writing thread after every durable group commit that
  // appended events (e.g. to wake the sync client). It must be quick and must
  // not call into the service. Set it before traffic starts.
  virtual void SetCommitHook(std::function<void()> hook) = 0;

  // Stops accepting writes, finishes the queued ones, joins the writer.
  virtual void Stop() = 0;
};

// Opens (creating and migrating if needed) the terminal database in
// options.data_dir and starts the writer thread.
core::Result<std::unique_ptr<CheckoutService>> OpenCheckoutService(const ServiceOptions& options);

}  // namespace loyalty::agent
