#include "tests/server/server_fixture.h"

#include <boost/asio/strand.hpp>
#include <fstream>

#include "pki/bundle.h"
#include "pki/ca.h"
#include "sync/tls.h"

namespace loyalty::server::testing {

namespace net = boost::asio;
using ::loyalty::testing::BuiltBinary;
using ::loyalty::testing::Process;

SyncClient::SyncClient(SslContextPtr ctx, uint16_t port, std::string terminal) {
  work_.emplace(ioc_.get_executor());
  runner_ = std::thread([this] { ioc_.run(); });
  v1::Hello hello;
  hello.set_agent_version("test");
  hello.set_terminal_id(std::move(terminal));
  hello.set_epoch(1);
  sync::ConnectionCallbacks callbacks;
  callbacks.on_open = [this](const sync::ConnectionPtr&) {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  };
  callbacks.on_frame = [this](const sync::ConnectionPtr&, v1::Frame frame) {
    std::lock_guard lock(mu_);
    frames_.push_back(std::move(frame));
    cv_.notify_all();
  };
  callbacks.on_close = [this](const sync::ConnectionPtr&, const core::Error& e) {
    std::lock_guard lock(mu_);
    closed_ = e;
    cv_.notify_all();
  };
  sync::ConnectionOptions options;
  options.connect_timeout = kWait;
  options.handshake_timeout = kWait;
  connection_ = sync::Connection::Connect(net::make_strand(ioc_), std::move(ctx), "127.0.0.1", port,
                                          "127.0.0.1", hello, options, callbacks);
}

SyncClient::~SyncClient() {
  Close();
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(5), [this] { return closed_.has_value(); });
  }
  work_.reset();
  ioc_.stop();
  runner_.join();
}

bool SyncClient::WaitOpen() {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, kWait, [this] { return open_ || closed_; });
  return open_ && !closed_;
}

core::Error SyncClient::WaitClosed() {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, kWait, [this] { return closed_.has_value(); });
  return closed_.value_or(core::MakeError("still_open", "the connection did not close"));
}

std::optional<v1::Frame> SyncClient::Call(v1::Frame request) {
  uint64_t id;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
  }
  request.set_correlation_id(id);
  connection_->Send(std::move(request));
  std::unique_lock lock(mu_);
  std::optional<v1::Frame> answer;
  cv_.wait_for(lock, kWait, [&] {
    for (auto it = frames_.begin(); it != frames_.end(); ++it) {
      if (it->correlation_id() == id) {
        answer = std::move(*it);
        frames_.erase(it);
        return true;
      }
    }
    return closed_.has_value();
  });
  return answer;
}

std::optional<v1::Frame> SyncClient::WaitPush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  std::optional<v1::Frame> push;
  cv_.wait_for(lock, timeout, [&] {
    for (auto it = frames_.begin(); it != frames_.end(); ++it) {
      if (it->has_push()) {
        push = std::move(*it);
        frames_.erase(it);
        return true;
      }
    }
    return closed_.has_value();
  });
  return push;
}

void SyncClient::Close() { connection_->Close(); }

void ServerProcessTest::SetUp() {
  ASSERT_TRUE(pki::InitCa(ca()).ok());
  ASSERT_TRUE(pki::IssueServer(ca(), "127.0.0.1", tmp() / "server").ok());
  ASSERT_TRUE(pki::IssueStore(ca(), "S1", tmp() / "store1").ok());
  ASSERT_TRUE(pki::IssueStore(ca(), "S2", tmp() / "store2").ok());
  ASSERT_TRUE(pki::IssueAdmin(ca(), "alice", tmp() / "admin").ok());
  {
    std::ofstream key(tmp() / "server" / "card-hash.key", std::ios::binary);
    key << std::string(32, 'k');
  }
  server_ = std::make_unique<Process>(
      std::vector<std::string>{BuiltBinary("server/loyalty-server"), "--data-dir",
                               (tmp() / "data").string(), "--tls-dir", (tmp() / "server").string(),
                               "--crl", (ca() / "crl.pem").string(), "--crl-reload-seconds", "1",
                               "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                               "--log-level", "debug"},
      (tmp() / "server.log").string());
  const std::string sync_at = server_->WaitForLine("sync listening on 127.0.0.1:");
  const std::string admin_at = server_->WaitForLine("admin listening on 127.0.0.1:");
  ASSERT_FALSE(sync_at.empty()) << server_->Log();
  ASSERT_FALSE(admin_at.empty()) << server_->Log();
  sync_port_ = static_cast<uint16_t>(std::stoi(sync_at));
  admin_port_ = static_cast<uint16_t>(std::stoi(admin_at));
}

void ServerProcessTest::TearDown() {
  if (server_ && server_->running()) {
    EXPECT_EQ(server_->Terminate(), 0) << server_->Log();
  }
}

SslContextPtr ServerProcessTest::BundleContext(const std::string& bundle) {
  auto loaded = pki::LoadBundle(tmp() / bundle);
  EXPECT_TRUE(loaded.ok());
  auto ctx = sync::MakeClientContext(*loaded);
  EXPECT_TRUE(ctx.ok());
  return *ctx;
}

std::unique_ptr<SyncClient> ServerProcessTest::ConnectStore(const std::string& bundle) {
  return std::make_unique<SyncClient>(BundleContext(bundle), sync_port_);
}

std::unique_ptr<ctl::AdminClient> ServerProcessTest::Admin(const std::string& bundle) {
  ctl::Url url;
  url.host = "127.0.0.1";
  url.port = std::to_string(admin_port_);
  auto client = ctl::AdminClient::Create(url, tmp() / bundle);
  EXPECT_TRUE(client.ok());
  return client.ok() ? std::move(*client) : nullptr;
}

bool ServerProcessTest::LogHas(const std::string& needle) {
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (std::chrono::steady_clock::now() < deadline) {
    if (server_->Log().find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

int ServerProcessTest::Ctl(const std::vector<std::string>& args, std::string* output) {
  std::vector<std::string> argv = {BuiltBinary("ctl/loyaltyctl"), "admin"};
  argv.insert(argv.end(), args.begin(), args.end());
  static int n = 0;
  const std::string log = (tmp() / ("ctl-" + std::to_string(++n) + ".log")).string();
  Process ctl(argv, log);
  const int status = ctl.Wait();
  *output = ctl.Log();
  return status;
}

}  // namespace loyalty::server::testing
