// loyalty-server refuses every party it must not serve, says why in its log,
// stores nothing for them, and stays up.
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "pki/bundle.h"
#include "pki/ca.h"
#include "pki/files.h"
#include "tests/server/server_fixture.h"
#include "tests/server/test_events.h"

namespace loyalty::server::testing {
namespace {

namespace net = boost::asio;
namespace ssl = net::ssl;

// A client context trusting our CA and presenting `cert_bundle`'s
// certificate (from any CA), or none.
SslContextPtr CustomContext(const std::filesystem::path& trusted_ca,
                            const std::optional<std::filesystem::path>& cert_bundle) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  auto ca_pem = pki::ReadFile(trusted_ca / "ca.pem");
  EXPECT_TRUE(ca_pem.ok());
  ctx->add_certificate_authority(net::buffer(*ca_pem));
  ctx->set_verify_mode(ssl::verify_peer);
  if (cert_bundle) {
    auto cert = pki::ReadFile(*cert_bundle / "cert.pem");
    auto key = pki::ReadFile(*cert_bundle / "key.pem");
    EXPECT_TRUE(cert.ok() && key.ok());
    ctx->use_certificate_chain(net::buffer(*cert));
    ctx->use_private_key(net::buffer(*key), ssl::context::pem);
  }
  return ctx;
}

v1::Frame Upload(std::vector<v1::Event> events) {
  v1::Frame f;
  f.mutable_upload_batch()->set_batch_id(1);
  for (auto& e : events) *f.mutable_upload_batch()->add_events() = std::move(e);
  return f;
}

class ServerSecurityTest : public ServerProcessTest {
 protected:
  // Connects with `ctx` and expects the server to refuse; then checks the
  // server still serves a good client.
  void ExpectRefused(SslContextPtr ctx, const std::string& log_needle) {
    SyncClient client(std::move(ctx), sync_port_);
    EXPECT_FALSE(client.WaitOpen());
    EXPECT_TRUE(LogHas(log_needle)) << server_->Log();
    ExpectServing();
  }

  void ExpectServing() {
    auto good = ConnectStore("store2");
    ASSERT_TRUE(good->WaitOpen()) << server_->Log();
    auto stores = Admin()->Call("GET", "/v1/admin/stores");
    ASSERT_TRUE(stores.ok());
    EXPECT_EQ(stores->body.find("\"S1\""), std::string::npos) << "S1 must have no record";
  }

  // Raw TLS bytes from a valid store certificate.
  void SendRaw(const std::string& bytes) {
    net::io_context ioc;
    ssl::stream<boost::beast::tcp_stream> stream(ioc, *BundleContext("store1"));
    boost::beast::get_lowest_layer(stream).expires_after(kWait);
    boost::beast::get_lowest_layer(stream).connect(
        net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), sync_port_));
    stream.handshake(ssl::stream_base::client);
    net::write(stream, net::buffer(bytes));
    char buf[4096];
    boost::system::error_code ec;
    while (!ec) stream.read_some(net::buffer(buf), ec);  // until the server closes
  }
};

TEST_F(ServerSecurityTest, ClientWithoutCertificateIsRefused) {
  ExpectRefused(CustomContext(ca(), std::nullopt), "refused: tls_handshake_failed");
}

TEST_F(ServerSecurityTest, CertificateFromAnotherCaIsRefused) {
  ASSERT_TRUE(pki::InitCa(tmp() / "other-ca").ok());
  ASSERT_TRUE(pki::IssueStore(tmp() / "other-ca", "S1", tmp() / "rogue").ok());
  ExpectRefused(CustomContext(ca(), tmp() / "rogue"), "refused: tls_handshake_failed");
}

TEST_F(ServerSecurityTest, ExpiredCertificateIsRefused) {
  pki::IssueOptions expired;
  expired.not_before = std::chrono::system_clock::now() - std::chrono::days(10);
  expired.validity = std::chrono::days(1);
  ASSERT_TRUE(pki::IssueStore(ca(), "S1", tmp() / "expired", expired).ok());
  ExpectRefused(BundleContext("expired"), "certificate has expired");
}

TEST_F(ServerSecurityTest, RevokedCertificateIsRefusedAfterTheCrlReloads) {
  // A store connected before the revocation is cut off when the CRL reloads:
  // a stolen certificate must not keep writing for as long as its
  // connection lasts. The other store stays connected.
  auto before = ConnectStore("store1");
  ASSERT_TRUE(before->WaitOpen());
  auto other = ConnectStore("store2");
  ASSERT_TRUE(other->WaitOpen());
  ASSERT_TRUE(pki::Revoke(ca(), "S1").ok());
  ASSERT_TRUE(LogHas("reloaded; new connections are checked against it")) << server_->Log();
  const core::Error reason = before->WaitClosed();
  EXPECT_NE(reason.code, "still_open") << reason.message;
  EXPECT_TRUE(LogHas("store S1: its certificate is no longer valid")) << server_->Log();
  v1::Frame ping;
  ping.mutable_changes_request()->set_after_version(0);
  ping.mutable_changes_request()->set_max_changes(10);
  EXPECT_TRUE(other->Call(ping).has_value()) << "the other store's connection must stay open";

  SyncClient client(BundleContext("store1"), sync_port_);
  EXPECT_FALSE(client.WaitOpen());
  EXPECT_TRUE(LogHas("certificate revoked")) << server_->Log();
  auto good = ConnectStore("store2");
  EXPECT_TRUE(good->WaitOpen());
}

TEST_F(ServerSecurityTest, AdminCertificateOnTheSyncPortIsRefused) {
  ExpectRefused(BundleContext("admin"),
                "refused: forbidden_identity: expected a store certificate, got admin \"alice\"");
}

TEST_F(ServerSecurityTest, StoreCertificateOnTheAdminPortIsRefused) {
  auto reply = Admin("store1")->Call("GET", "/v1/admin/stores");
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->status, 403u);
  EXPECT_TRUE(
      LogHas("refused: forbidden_identity: expected an admin certificate, got store \"S1\""))
      << server_->Log();
}

TEST_F(ServerSecurityTest, StoreUploadingAnotherStoresEventsIsRejected) {
  auto client = ConnectStore("store1");
  ASSERT_TRUE(client->WaitOpen());
  auto ack = client->Call(Upload({Enrol("S2", 1, "p-1", HashOf(1))}));
  ASSERT_TRUE(ack && ack->has_upload_ack());
  EXPECT_EQ(ack->upload_ack().acknowledged_size(), 0);
  ASSERT_EQ(ack->upload_ack().rejected_size(), 1);
  EXPECT_EQ(ack->upload_ack().rejected(0).code(), "wrong_store");
  EXPECT_TRUE(
      LogHas("store S1 uploaded event S2/till-1/1/1 of another store; rejected (wrong_store)"))
      << server_->Log();
  EXPECT_EQ(Admin()->Call("GET", "/v1/admin/members/p-1")->status, 404u);
}

TEST_F(ServerSecurityTest, GarbageBytesCloseTheConnectionAndTheServerStaysUp) {
  SendRaw(std::string("\x00\x00\x00\x05hello", 9));
  EXPECT_TRUE(LogHas("refused: bad_frame")) << server_->Log();
  ExpectServing();
}

TEST_F(ServerSecurityTest, OversizeFrameClosesTheConnectionAndTheServerStaysUp) {
  SendRaw(std::string("\x7f\xff\xff\xff", 4));
  EXPECT_TRUE(LogHas("refused: frame_too_large")) << server_->Log();
  ExpectServing();
}

}  // namespace
}  // namespace loyalty::server::testing
