// SyncService: the server side of the sync protocol (sync.proto) on top of
// the transport's framed connections (sync/connection.h). It
//   - answers UploadBatch with UploadAck (ServerStore::Ingest, one
//     transaction per batch, the store id taken from the certificate only),
//   - answers ChangesRequest with ChangesPage (ServerStore::Changes),
//   - sends PushNotification (correlation id 0) to every open connection
//     when the change feed advances, coalesced: at most one push per
//     connection per `push_delay`, always carrying the latest version,
//   - logs why a connection was refused, and why events were rejected.
// Every store call runs on the DbWorker; results go back with
// Connection::Send (thread-safe). Jobs hold only a weak_ptr to their
// connection, so a queued job never keeps a dead connection alive.
//
// Ownership: shared_ptr; the callbacks it hands to sync::Server hold it.
// `db` and `metrics` must outlive it (stop the sync server, CloseAll, then
// stop the DbWorker). Thread safety: every public method may be called from
// any thread.
#pragma once

#include <utility>  // before Asio (Boost 1.74)

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "server/db_worker.h"
#include "server/metrics.h"
#include "sync/connection.h"

namespace loyalty::server {

struct SyncServiceOptions {
  std::chrono::milliseconds push_delay{200};  // coalescing window for pushes
};

class SyncService : public std::enable_shared_from_this<SyncService> {
 public:
  static std::shared_ptr<SyncService> Create(boost::asio::io_context& ioc, DbWorker& db,
                                             ServerMetrics& metrics,
                                             SyncServiceOptions options = {});
  SyncService(const SyncService&) = delete;
  SyncService& operator=(const SyncService&) = delete;

  // The callbacks for sync::Server::Listen.
  sync::ConnectionCallbacks Callbacks();

  // The change feed now reaches `version`: push it to every open connection
  // (coalesced). Call after a head-office change (promotion, programme,
  // segments, erasure) that terminals must learn without waiting for their
  // sync interval; ingested member changes reach them on that interval.
  void FeedAdvanced(uint64_t version);

  // Store id -> its connected terminals: terminal id -> clock skew (the
  // terminal's clock minus the server's, ms), for the admin API.
  std::map<std::string, std::map<std::string, int64_t>> ConnectedTerminals() const;

  // Closes every open connection (at shutdown).
  void CloseAll();

  // Closes the open connections whose certificate a handshake against `ctx`
  // would refuse now (after a CRL reload: a revoked store stops at once,
  // not at its next connection). Returns how many it closed.
  int CloseRevoked(boost::asio::ssl::context& ctx);

 private:
  struct Peer {
    std::weak_ptr<sync::Connection> connection;
    std::string store_id;
    uint64_t pushed_version = 0;  // the last version pushed to it
    std::string terminal_id;
    int64_t clock_skew_ms = 0;
  };

  SyncService(boost::asio::io_context& ioc, DbWorker& db, ServerMetrics& metrics,
              SyncServiceOptions options);

  void OnOpen(const sync::ConnectionPtr& connection);
  void OnFrame(const sync::ConnectionPtr& connection, v1::Frame frame);
  void OnClose(const sync::ConnectionPtr& connection, const core::Error& reason);
  void HandleUpload(const sync::ConnectionPtr& connection, uint64_t correlation_id,
                    v1::UploadBatch batch);
  void HandleChanges(const sync::ConnectionPtr& connection, uint64_t correlation_id,
                     const v1::ChangesRequest& request);
  void HandleLookup(const sync::ConnectionPtr& connection, uint64_t correlation_id,
                    const v1::MemberLookup& request);
  void Send(const sync::ConnectionPtr& connection, v1::Frame frame);
  void SendError(const sync::ConnectionPtr& connection, uint64_t correlation_id,
                 const core::Error& error);
  void PushNow();  // on strand_

  DbWorker& db_;
  ServerMetrics& metrics_;
  const SyncServiceOptions options_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer push_timer_;  // on strand_
  bool push_armed_ = false;               // on strand_

  mutable std::mutex mu_;
  std::map<const sync::Connection*, Peer> peers_;  // guarded by mu_
  uint64_t latest_version_ = 0;                    // guarded by mu_
};

}  // namespace loyalty::server
