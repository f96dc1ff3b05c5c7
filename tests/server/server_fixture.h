// A running loyalty-server for process tests: a fresh CA, server, store and
// admin bundles in a temp dir (real certificates from loyalty::pki), the
// server on 127.0.0.1 with ephemeral ports, and clients that speak to it:
// SyncClient (a store agent, via sync::Connection) and AdminClient (ctl's
// HTTPS client). Waits are on events with generous limits; nothing asserts
// on elapsed time.
#pragma once

#include <gtest/gtest.h>

#include <utility>  // before Asio (Boost 1.74)

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "ctl/admin_client.h"
#include "sync/connection.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace loyalty::server::testing {

inline constexpr auto kWait = std::chrono::seconds(30);
using SslContextPtr = std::shared_ptr<boost::asio::ssl::context>;

// A store agent's end of a sync connection, driven from the test thread.
class SyncClient {
 public:
  SyncClient(SslContextPtr ctx, uint16_t port, std::string terminal = "till-1");
  ~SyncClient();

  bool WaitOpen();                                   // false when the connection closed instead
  core::Error WaitClosed();                          // the close reason
  std::optional<v1::Frame> Call(v1::Frame request);  // the answer with the same correlation id
  std::optional<v1::Frame> WaitPush(std::chrono::milliseconds timeout = kWait);
  void Close();

 private:
  boost::asio::io_context ioc_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread runner_;
  sync::ConnectionPtr connection_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  std::optional<core::Error> closed_;
  std::deque<v1::Frame> frames_;
  uint64_t next_id_ = 1;
};

class ServerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // The ordinary client context of a bundle under tmp().
  SslContextPtr BundleContext(const std::string& bundle);
  std::unique_ptr<SyncClient> ConnectStore(const std::string& bundle = "store1");
  std::unique_ptr<ctl::AdminClient> Admin(const std::string& bundle = "admin");
  // loyaltyctl admin with `args`; returns the exit status, output in *output.
  int Ctl(const std::vector<std::string>& args, std::string* output);

  // Waits (up to kWait) until the server's log contains `needle`.
  bool LogHas(const std::string& needle);

  std::filesystem::path tmp() const { return dir_.path(); }
  std::filesystem::path ca() const { return dir_.path() / "ca"; }

  ::loyalty::testing::TempDir dir_;
  std::unique_ptr<::loyalty::testing::Process> server_;
  uint16_t sync_port_ = 0;
  uint16_t admin_port_ = 0;
};

}  // namespace loyalty::server::testing
