// Real certificates from loyalty::pki in a temp dir, real TLS on 127.0.0.1
// with an ephemeral port. Waits are on events with generous limits; nothing
// asserts on elapsed time.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <condition_variable>
#include <future>
#include <thread>

#include "pki/bundle.h"
#include "pki/ca.h"
#include "sync/connection.h"
#include "sync/framing.h"
#include "sync/server.h"
#include "sync/tls.h"
#include "tests/pki/temp_dir.h"

namespace loyalty::sync {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
using net::ip::tcp;
using SslContextPtr = std::shared_ptr<net::ssl::context>;

constexpr auto kWait = std::chrono::seconds(60);

// What the server's callbacks saw, shared with the test thread.
struct ServerEvents {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<pki::Identity> opened;
  std::vector<std::string> terminals;
  std::vector<core::Error> closed;

  template <typename Pred>
  bool WaitUntil(Pred pred) {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, kWait, [&] { return pred(); });
  }
};

struct ClientOutcome {
  bool opened = false;
  core::Error error;  // why it closed, when it did not open
};

// A TLS client that sends raw bytes, to play a misbehaving agent.
class RawClient {
 public:
  explicit RawClient(SslContextPtr ctx) : ctx_(std::move(ctx)), stream_(ioc_, *ctx_) {}

  beast::error_code Connect(const tcp::endpoint& endpoint) {
    Lowest().expires_after(kWait);
    Lowest().async_connect(endpoint, [this](beast::error_code ec) { ec_ = ec; });
    return Run();
  }
  beast::error_code Handshake() {
    Lowest().expires_after(kWait);
    stream_.async_handshake(net::ssl::stream_base::client,
                            [this](beast::error_code ec) { ec_ = ec; });
    return Run();
  }
  beast::error_code Write(const std::string& bytes, bool tls = true) {
    Lowest().expires_after(kWait);
    auto done = [this](beast::error_code ec, std::size_t) { ec_ = ec; };
    if (tls) {
      net::async_write(stream_, net::buffer(bytes), done);
    } else {
      net::async_write(Lowest(), net::buffer(bytes), done);
    }
    return Run();
  }
  // Everything received until the server closes (or kWait passes).
  std::string ReadUntilClosed(bool tls = true) {
    std::string received;
    char buf[4096];
    for (;;) {
      Lowest().expires_after(kWait);
      std::size_t n = 0;
      auto done = [&](beast::error_code ec, std::size_t bytes) {
        ec_ = ec;
        n = bytes;
      };
      if (tls) {
        stream_.async_read_some(net::buffer(buf), done);
      } else {
        Lowest().async_read_some(net::buffer(buf), done);
      }
      Run();
      received.append(buf, n);
      if (ec_) return received;
    }
  }

 private:
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }
  beast::error_code Run() {
    ioc_.restart();
    ioc_.run();
    return ec_;
  }

  net::io_context ioc_;
  SslContextPtr ctx_;
  net::ssl::stream<beast::tcp_stream> stream_;
  beast::error_code ec_;
};

// The first frame in `bytes`, if any.
std::optional<v1::Frame> FirstFrame(const std::string& bytes) {
  DecodeResult result =
      DecodeFrame(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  if (auto* decoded = std::get_if<DecodedFrame>(&result)) return decoded->frame;
  return std::nullopt;
}

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pki::InitCa(Ca()).ok());
    ASSERT_TRUE(pki::IssueServer(Ca(), "127.0.0.1", tmp_ / "server").ok());
    ASSERT_TRUE(pki::IssueStore(Ca(), "S-001", tmp_ / "store").ok());
    runner_ = std::thread([this] { ioc_.run(); });
    StartServer(ServerOptions{});
  }

  void TearDown() override {
    if (server_) server_->Stop();
    work_.reset();
    ioc_.stop();
    runner_.join();
  }

  std::filesystem::path Ca() const { return tmp_ / "ca"; }

  void StartServer(ServerOptions options) {
    if (server_) server_->Stop();
    ConnectionCallbacks callbacks;
    callbacks.on_open = [this](const ConnectionPtr& conn) {
      std::lock_guard<std::mutex> lock(events_.mutex);
      events_.opened.push_back(conn->peer());
      events_.terminals.push_back(conn->peer_hello().terminal_id());
      events_.changed.notify_all();
    };
    callbacks.on_frame = [](const ConnectionPtr& conn, v1::Frame frame) {
      // Echo an UploadAck for each batch, so the test sees frames both ways.
      if (!frame.has_upload_batch()) return;
      v1::Frame ack;
      ack.set_correlation_id(frame.correlation_id());
      ack.mutable_upload_ack()->set_batch_id(frame.upload_batch().batch_id());
      conn->Send(std::move(ack));
    };
    callbacks.on_close = [this](const ConnectionPtr&, const core::Error& error) {
      std::lock_guard<std::mutex> lock(events_.mutex);
      events_.closed.push_back(error);
      events_.changed.notify_all();
    };
    auto server = Server::Listen(ioc_, {net::ip::make_address("127.0.0.1"), 0}, ServerContext(),
                                 options, callbacks);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = *server;
  }

  SslContextPtr ServerContext() {
    auto bundle = pki::LoadBundle(tmp_ / server_bundle_);
    EXPECT_TRUE(bundle.ok());
    auto ctx = MakeServerContext(*bundle, Ca() / "crl.pem");
    EXPECT_TRUE(ctx.ok()) << ctx.error().message;
    return *ctx;
  }

  SslContextPtr ClientContext(const std::filesystem::path& bundle_dir) {
    auto bundle = pki::LoadBundle(bundle_dir);
    EXPECT_TRUE(bundle.ok()) << bundle.error().message;
    auto ctx = MakeClientContext(*bundle);
    EXPECT_TRUE(ctx.ok()) << ctx.error().message;
    return *ctx;
  }

  // Connects, waits for open or close, and closes if it opened.
  ClientOutcome RunClient(SslContextPtr ctx, const std::string& server_name = "127.0.0.1",
                          std::uint32_t protocol_version = kProtocolVersion) {
    auto promise = std::make_shared<std::promise<ClientOutcome>>();
    auto settled = std::make_shared<std::atomic<bool>>(false);
    ConnectionCallbacks callbacks;
    callbacks.on_open = [promise, settled](const ConnectionPtr& conn) {
      if (!settled->exchange(true)) promise->set_value({true, {}});
      conn->Close();
    };
    callbacks.on_close = [promise, settled](const ConnectionPtr&, const core::Error& error) {
      if (!settled->exchange(true)) promise->set_value({false, error});
    };
    v1::Hello hello;
    hello.set_protocol_version(protocol_version);
    hello.set_terminal_id("T1");
    hello.set_agent_version("test");
    Connection::Connect(ioc_.get_executor(), std::move(ctx), "127.0.0.1",
                        server_->local_endpoint().port(), server_name, hello, {}, callbacks);
    auto future = promise->get_future();
    if (future.wait_for(kWait) != std::future_status::ready) {
      return {false, core::MakeError("test_timeout", "no outcome")};
    }
    return future.get();
  }

  // Waits for the server to report one more closed connection; returns it.
  core::Error NextServerClose(std::size_t closed_before) {
    EXPECT_TRUE(events_.WaitUntil([&] { return events_.closed.size() > closed_before; }));
    std::lock_guard<std::mutex> lock(events_.mutex);
    return events_.closed.size() > closed_before ? events_.closed[closed_before] : core::Error{};
  }

  void ExpectServerStillAccepts() {
    ClientOutcome ok = RunClient(ClientContext(tmp_ / "store"));
    EXPECT_TRUE(ok.opened) << ok.error.code << ": " << ok.error.message;
  }

  loyalty::testing::TempDir tmp_;
  net::io_context ioc_;
  net::executor_work_guard<net::io_context::executor_type> work_ = net::make_work_guard(ioc_);
  std::thread runner_;
  std::string server_bundle_ = "server";
  std::shared_ptr<Server> server_;
  ServerEvents events_;
};

TEST_F(ConnectionTest, MutualTlsHelloTellsTheServerTheStoreIdFromTheCertificate) {
  ClientOutcome outcome = RunClient(ClientContext(tmp_ / "store"));
  ASSERT_TRUE(outcome.opened) << outcome.error.code << ": " << outcome.error.message;
  ASSERT_TRUE(events_.WaitUntil([&] { return !events_.opened.empty(); }));
  std::lock_guard<std::mutex> lock(events_.mutex);
  EXPECT_EQ(events_.opened[0], (pki::Identity{pki::IdentityKind::kStore, "S-001"}));
  EXPECT_EQ(events_.terminals[0], "T1");
}

TEST_F(ConnectionTest, FramesFlowBothWaysOnceOpen) {
  auto acked = std::make_shared<std::promise<std::uint64_t>>();
  ConnectionCallbacks callbacks;
  callbacks.on_open = [](const ConnectionPtr& conn) {
    v1::Frame batch;
    batch.set_correlation_id(5);
    batch.mutable_upload_batch()->set_batch_id(42);
    batch.mutable_upload_batch()->add_events()->set_member_id("m1");
    conn->Send(std::move(batch));
  };
  callbacks.on_frame = [acked](const ConnectionPtr& conn, v1::Frame frame) {
    acked->set_value(frame.upload_ack().batch_id());
    conn->Close();
  };
  v1::Hello hello;
  hello.set_terminal_id("T9");
  auto conn =
      Connection::Connect(ioc_.get_executor(), ClientContext(tmp_ / "store"), "127.0.0.1",
                          server_->local_endpoint().port(), "127.0.0.1", hello, {}, callbacks);
  auto future = acked->get_future();
  ASSERT_EQ(future.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(future.get(), 42u);
  EXPECT_EQ(NextServerClose(0).code, code::kConnectionClosed);
}

TEST_F(ConnectionTest, ClientWithoutCertificateIsRefused) {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
  std::string ca_pem = pki::LoadBundle(tmp_ / "store")->ca_pem;
  ctx->add_certificate_authority(net::buffer(ca_pem));
  ctx->set_verify_mode(net::ssl::verify_peer);
  EXPECT_FALSE(RunClient(ctx).opened);
  EXPECT_EQ(NextServerClose(0).code, code::kTlsHandshakeFailed);
  ExpectServerStillAccepts();
}

TEST_F(ConnectionTest, CertificateFromAnotherCaIsRefused) {
  ASSERT_TRUE(pki::InitCa(tmp_ / "rogue-ca").ok());
  ASSERT_TRUE(pki::IssueStore(tmp_ / "rogue-ca", "S-001", tmp_ / "rogue").ok());
  auto rogue = pki::LoadBundle(tmp_ / "rogue");
  ASSERT_TRUE(rogue.ok());
  rogue->ca_pem = pki::LoadBundle(tmp_ / "store")->ca_pem;  // trusts the real server
  EXPECT_FALSE(RunClient(*MakeClientContext(*rogue)).opened);
  core::Error error = NextServerClose(0);
  EXPECT_EQ(error.code, code::kTlsHandshakeFailed);
  ExpectServerStillAccepts();
}

TEST_F(ConnectionTest, ExpiredCertificateIsRefused) {
  pki::IssueOptions past;
  past.not_before = std::chrono::system_clock::now() - std::chrono::days(30);
  past.validity = std::chrono::days(1);
  ASSERT_TRUE(pki::IssueStore(Ca(), "S-002", tmp_ / "expired", past).ok());
  EXPECT_FALSE(RunClient(ClientContext(tmp_ / "expired")).opened);
  core::Error error = NextServerClose(0);
  EXPECT_EQ(error.code, code::kTlsHandshakeFailed);
  EXPECT_NE(error.message.find("expired"), std::string::npos) << error.message;
}

TEST_F(ConnectionTest, RevokedCertificateIsRefusedAfterCrlReload) {
  ASSERT_TRUE(RunClient(ClientContext(tmp_ / "store")).opened);
  ASSERT_TRUE(pki::Revoke(Ca(), "S-001").ok());
  server_->SetTlsContext(ServerContext());
  EXPECT_FALSE(RunClient(ClientContext(tmp_ / "store")).opened);
  // The first connection's close may be reported late; find the refusal.
  ASSERT_TRUE(events_.WaitUntil([&] {
    for (const core::Error& e : events_.closed) {
      if (e.code == code::kTlsHandshakeFailed) return true;
    }
    return false;
  }));
  {
    std::lock_guard<std::mutex> lock(events_.mutex);
    bool said_revoked = false;
    for (const core::Error& e : events_.closed) {
      said_revoked |= e.message.find("revoked") != std::string::npos;
    }
    EXPECT_TRUE(said_revoked);
  }
  ASSERT_TRUE(pki::IssueStore(Ca(), "S-003", tmp_ / "other").ok());
  EXPECT_TRUE(RunClient(ClientContext(tmp_ / "other")).opened);
}

TEST_F(ConnectionTest, ClientRefusesAServerCertificateForAnotherHost) {
  ClientOutcome outcome = RunClient(ClientContext(tmp_ / "store"), "sync.example.test");
  EXPECT_FALSE(outcome.opened);
  EXPECT_EQ(outcome.error.code, code::kTlsHandshakeFailed);
}

TEST_F(ConnectionTest, ClientAcceptsAServerCertificateForTheExpectedDnsName) {
  ASSERT_TRUE(pki::IssueServer(Ca(), "sync.example.test", tmp_ / "dns-server").ok());
  server_bundle_ = "dns-server";
  StartServer(ServerOptions{});
  EXPECT_TRUE(RunClient(ClientContext(tmp_ / "store"), "sync.example.test").opened);
  EXPECT_FALSE(RunClient(ClientContext(tmp_ / "store"), "other.example.test").opened);
}

TEST_F(ConnectionTest, AdminCertificateCannotSyncAsAStore) {
  ASSERT_TRUE(pki::IssueAdmin(Ca(), "alice", tmp_ / "admin").ok());
  ClientOutcome outcome = RunClient(ClientContext(tmp_ / "admin"));
  EXPECT_FALSE(outcome.opened);
  EXPECT_EQ(outcome.error.code, code::kForbiddenIdentity);
  EXPECT_EQ(NextServerClose(0).code, code::kForbiddenIdentity);
}

TEST_F(ConnectionTest, UnsupportedProtocolVersionGetsAClearErrorAndClose) {
  ClientOutcome outcome = RunClient(ClientContext(tmp_ / "store"), "127.0.0.1", 99);
  EXPECT_FALSE(outcome.opened);
  EXPECT_EQ(outcome.error.code, code::kUnsupportedProtocolVersion);
  EXPECT_NE(outcome.error.message.find("99"), std::string::npos) << outcome.error.message;
  EXPECT_EQ(NextServerClose(0).code, code::kUnsupportedProtocolVersion);
}

TEST_F(ConnectionTest, GarbageBeforeTlsClosesAndServerKeepsAccepting) {
  RawClient raw(ClientContext(tmp_ / "store"));
  ASSERT_FALSE(raw.Connect(server_->local_endpoint()));
  raw.Write("GET / HTTP/1.1\r\nHost: x\r\n\r\n", /*tls=*/false);
  raw.ReadUntilClosed(/*tls=*/false);
  EXPECT_EQ(NextServerClose(0).code, code::kTlsHandshakeFailed);
  ExpectServerStillAccepts();
}

TEST_F(ConnectionTest, GarbageFrameGetsBadFrameAndClose) {
  RawClient raw(ClientContext(tmp_ / "store"));
  ASSERT_FALSE(raw.Connect(server_->local_endpoint()));
  ASSERT_FALSE(raw.Handshake());
  raw.Write(std::string("\0\0\0\4\xff\xff\xff\xff", 8));
  auto reply = FirstFrame(raw.ReadUntilClosed());
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->error().code(), code::kBadFrame);
  EXPECT_TRUE(reply->error().fatal());
  EXPECT_EQ(NextServerClose(0).code, code::kBadFrame);
  ExpectServerStillAccepts();
}

TEST_F(ConnectionTest, OversizeFrameIsRefusedFromItsHeader) {
  ServerOptions options;
  options.connection.max_frame_size = 1024;
  StartServer(options);
  RawClient raw(ClientContext(tmp_ / "store"));
  ASSERT_FALSE(raw.Connect(server_->local_endpoint()));
  ASSERT_FALSE(raw.Handshake());
  raw.Write(std::string("\0\0\4\1", 4));  // 1025 bytes announced, none sent
  auto reply = FirstFrame(raw.ReadUntilClosed());
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->error().code(), code::kFrameTooLarge);
  EXPECT_EQ(NextServerClose(0).code, code::kFrameTooLarge);
  ExpectServerStillAccepts();
}

TEST_F(ConnectionTest, FirstFrameMustBeHello) {
  RawClient raw(ClientContext(tmp_ / "store"));
  ASSERT_FALSE(raw.Connect(server_->local_endpoint()));
  ASSERT_FALSE(raw.Handshake());
  v1::Frame batch;
  batch.mutable_upload_batch()->set_batch_id(1);
  raw.Write(*EncodeFrame(batch));
  auto reply = FirstFrame(raw.ReadUntilClosed());
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->error().code(), code::kExpectedHello);
}

TEST_F(ConnectionTest, SilentClientIsDroppedAfterTheHandshakeTimeout) {
  ServerOptions options;
  options.connection.handshake_timeout = std::chrono::milliseconds(200);
  StartServer(options);
  RawClient raw(ClientContext(tmp_ / "store"));
  ASSERT_FALSE(raw.Connect(server_->local_endpoint()));
  raw.ReadUntilClosed(/*tls=*/false);  // returns when the server gives up
  EXPECT_EQ(NextServerClose(0).code, code::kTimeout);
  ExpectServerStillAccepts();
}

TEST_F(ConnectionTest, ConnectToAClosedPortFails) {
  tcp::acceptor probe(ioc_, {net::ip::make_address("127.0.0.1"), 0});
  std::uint16_t port = probe.local_endpoint().port();
  probe.close();  // nothing listens there now
  auto promise = std::make_shared<std::promise<core::Error>>();
  ConnectionCallbacks callbacks;
  callbacks.on_close = [promise](const ConnectionPtr&, const core::Error& e) {
    promise->set_value(e);
  };
  Connection::Connect(ioc_.get_executor(), ClientContext(tmp_ / "store"), "127.0.0.1", port,
                      "127.0.0.1", v1::Hello(), {}, callbacks);
  auto future = promise->get_future();
  ASSERT_EQ(future.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(future.get().code, code::kConnectFailed);
}

}  // namespace
}  // namespace loyalty::sync
