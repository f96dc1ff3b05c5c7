// An in-test sync server: the real ledger (storage::OpenSqliteServerStore)
// behind the real transport (sync::Server, mutual TLS), answering the sync
// protocol the way loyalty-server does: UploadBatch -> Ingest -> UploadAck,
// ChangesRequest -> Changes -> ChangesPage, and a PushNotification to every
// open connection when the feed advances. Store calls are serialised by a
// mutex and run on the I/O thread (fine for tests).
//
// Fault injection: DropAfterCommit(n) makes the next n upload batches commit
// and then close the connection without sending the ack.
//
// Thread-safe; owns its I/O thread. Also a TCP proxy that cuts connections.
#pragma once

#include <utility>  // before Asio (Boost 1.74)

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "storage/server_store.h"
#include "sync/connection.h"
#include "sync/server.h"

namespace loyalty::testing {

class SyncTestServer {
 public:
  // Listens on 127.0.0.1:`port` (0: ephemeral) with the server bundle in
  // `tls_dir`, ledger in `db_path`.
  SyncTestServer(const std::filesystem::path& tls_dir, const std::string& db_path,
                 uint16_t port = 0);
  ~SyncTestServer();

  uint16_t port() const { return port_; }
  bool ok() const { return server_ != nullptr; }

  // Runs `fn` on the ledger under the store lock.
  template <typename Fn>
  auto WithStore(Fn fn) {
    std::lock_guard lock(store_mutex_);
    return fn(*store_);
  }
  storage::ServerStore::Totals Totals();
  // Publishes an offer (and pushes it).
  void PutOffer(const loyalty::v1::Offer& offer);
  void DropAfterCommit(int n) { drop_after_commit_ = n; }
  int drops_left() const { return drop_after_commit_; }
  int batches() const { return batches_; }
  // Closes every open connection (the server stays up).
  void CloseAll();

 private:
  void OnFrame(const sync::ConnectionPtr& conn, loyalty::v1::Frame frame);
  void Push(uint64_t version);

  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      ioc_.get_executor()};
  std::thread thread_;
  std::shared_ptr<sync::Server> server_;
  uint16_t port_ = 0;
  std::mutex store_mutex_;
  std::unique_ptr<storage::ServerStore> store_;
  std::mutex conns_mutex_;
  std::set<sync::ConnectionPtr> conns_;
  std::atomic<int> drop_after_commit_{0};
  std::atomic<int> batches_{0};
};

// A TCP proxy on 127.0.0.1 forwarding to `target_port`. With cut_after_bytes
// > 0, each connection is cut (both sides closed) once that many bytes in
// total went through it, so frames are cut in the middle; set it to 0 to
// forward faithfully.
class CuttingProxy {
 public:
  explicit CuttingProxy(uint16_t target_port);
  ~CuttingProxy();
  uint16_t port() const { return port_; }
  void SetCutAfterBytes(std::size_t n) { cut_after_ = n; }
  // Each new connection is cut after a random number of bytes in [lo, hi]
  // (0, 0: as SetCutAfterBytes says).
  void SetRandomCut(std::size_t lo, std::size_t hi) {
    cut_lo_ = lo;
    cut_hi_ = hi;
  }
  int cuts() const { return cuts_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
  std::atomic<std::size_t> cut_after_{0};
  std::atomic<std::size_t> cut_lo_{0};
  std::atomic<std::size_t> cut_hi_{0};
  std::atomic<int> cuts_{0};
};

}  // namespace loyalty::testing
