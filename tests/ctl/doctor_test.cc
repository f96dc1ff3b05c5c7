// `loyaltyctl doctor` against real setups: a good terminal (a real
// loyalty-agent, a TLS server with certificates from loyalty::pki), a
// missing certificate, a certificate about to expire, a corrupt database.
#include "ctl/doctor_command.h"

#include <gtest/gtest.h>

#include <utility>  // before Asio (Boost 1.74)

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "pki/bundle.h"
#include "pki/ca.h"
#include "storage/agent_store.h"
#include "sync/tls.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace loyalty::ctl {
namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Accepts TLS connections with the server bundle and holds each open.
class TlsServer {
 public:
  explicit TlsServer(const fs::path& bundle_dir) : acceptor_(ioc_, {asio::ip::make_address("127.0.0.1"), 0}) {
    auto bundle = pki::LoadBundle(bundle_dir);
    EXPECT_TRUE(bundle.ok());
    auto ctx = sync::MakeServerContextWithoutCrl(*bundle);
    EXPECT_TRUE(ctx.ok());
    ctx_ = *ctx;
    Accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~TlsServer() {
    ioc_.stop();
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      auto stream = std::make_shared<asio::ssl::stream<tcp::socket>>(std::move(socket), *ctx_);
      stream->async_handshake(asio::ssl::stream_base::server,
                              [stream](boost::system::error_code) { /* held until stop */ });
      streams_.push_back(stream);
      Accept();
    });
  }
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::shared_ptr<asio::ssl::context> ctx_;
  std::vector<std::shared_ptr<asio::ssl::stream<tcp::socket>>> streams_;
  std::thread thread_;
};

struct Result {
  int code = -1;
  std::string out;
};

class DoctorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pki::InitCa(ca_).ok());
    ASSERT_TRUE(pki::IssueServer(ca_, "127.0.0.1", server_bundle_).ok());
    data_ = dir_.file("data");
    fs::create_directories(data_);
  }

  void IssueStore(std::chrono::seconds validity = pki::kDefaultLeafValidity) {
    pki::IssueOptions o;
    o.validity = validity;
    auto issued = pki::IssueStore(ca_, "store-7", store_bundle_, o);
    ASSERT_TRUE(issued.ok()) << issued.error().message;
  }

  std::string WriteConfig(uint16_t server_port) {
    const std::string path = dir_.file("agent.conf");
    std::ofstream(path) << "data-dir = " << data_ << "\nstore-id = store-7\n"
                        << "listen = 127.0.0.1:1\n"
                        << "server = 127.0.0.1:" << server_port << "\n"
                        << "tls-dir = " << store_bundle_.string() << "\n";
    return path;
  }

  Result Doctor(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"--config", dir_.file("agent.conf"), "--json",
                                     "--timeout-ms", "2000"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::ostringstream out, err;
    Result r;
    r.code = RunDoctor(args, out, err);
    r.out = out.str() + err.str();
    return r;
  }

  static std::string Row(const std::string& name, const std::string& status) {
    return "{\"name\":\"" + name + "\",\"status\":\"" + status + "\"";
  }

  loyalty::testing::TempDir dir_;
  fs::path ca_ = dir_.path() / "ca";
  fs::path server_bundle_ = dir_.path() / "server-bundle";
  fs::path store_bundle_ = dir_.path() / "store-bundle";
  std::string data_;
};

TEST_F(DoctorTest, GoodSetupIsAllOk) {
  IssueStore();
  TlsServer server(server_bundle_);
  WriteConfig(server.port());
  // A real agent on this data directory (offline: the doctor checks the
  // server itself), with the store id of the configuration.
  loyalty::testing::Process agent({loyalty::testing::BuiltBinary("agent/loyalty-agent"),
                                   "--data-dir", data_, "--listen", "127.0.0.1:0", "--store-id",
                                   "store-7"},
                                  dir_.file("agent.log"));
  const std::string rest = agent.WaitForLine("listening on 127.0.0.1:");
  ASSERT_FALSE(rest.empty()) << agent.Log();
  const std::string port = rest.substr(0, rest.find_first_not_of("0123456789"));

  Result r = Doctor({"--url", "http://127.0.0.1:" + port});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"ok\":true"), std::string::npos) << r.out;
  for (const char* name : {"config", "data-dir", "database", "certificates", "agent", "server"}) {
    EXPECT_NE(r.out.find(Row(name, "OK")), std::string::npos) << name << ": " << r.out;
  }

  // The human form says OK per line too.
  std::ostringstream out, err;
  EXPECT_EQ(RunDoctor({"--config", dir_.file("agent.conf"), "--url", "http://127.0.0.1:" + port},
                      out, err),
            0);
  EXPECT_NE(out.str().find("OK    certificates"), std::string::npos) << out.str();

  std::ostringstream pending, perr;
  EXPECT_EQ(RunDoctor({"--config", dir_.file("agent.conf"), "--pending"}, pending, perr), 0);
  EXPECT_EQ(pending.str(), "0\n");
}

TEST_F(DoctorTest, MissingCertificateFails) {
  IssueStore();
  fs::remove(store_bundle_ / "cert.pem");
  WriteConfig(1);
  Result r = Doctor({});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(Row("certificates", "FAIL")), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cert.pem is missing"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("loyaltyctl pki issue-store"), std::string::npos) << r.out;
}

TEST_F(DoctorTest, ExpiringCertificateWarns) {
  IssueStore(std::chrono::days(10));
  WriteConfig(1);
  Result r = Doctor({});
  EXPECT_NE(r.out.find(Row("certificates", "WARN")), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("expires in"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("loyaltyctl pki renew"), std::string::npos) << r.out;
}

TEST_F(DoctorTest, KeyReadableByOthersFails) {
  IssueStore();
  fs::permissions(store_bundle_ / "key.pem", fs::perms::group_read, fs::perm_options::add);
  WriteConfig(1);
  Result r = Doctor({});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find(Row("certificates", "FAIL")), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("chmod 0600"), std::string::npos) << r.out;
}

TEST_F(DoctorTest, CorruptDatabaseFails) {
  IssueStore();
  WriteConfig(1);
  const std::string db = data_ + "/agent.db";
  {
    auto store = storage::AgentStore::Open(db, {});
    ASSERT_TRUE(store.ok());
    // Enough rows for several pages of the events table and its indexes.
    for (int i = 1; i <= 400; ++i) {
      v1::Event e;
      e.mutable_id()->set_store_id("store-7");
      e.mutable_id()->set_epoch(1);
      e.mutable_id()->set_seq(static_cast<uint64_t>(i));
      e.set_member_id("m-" + std::to_string(i % 7));
      e.mutable_visit()->set_pos_txn_id(std::string(100, 'x'));
      ASSERT_TRUE((*store)->AppendEvent(e).ok());
    }
  }
  // Overwrite the middle of the file (not the header) with garbage.
  const auto size = fs::file_size(db);
  ASSERT_GT(size, 8 * 4096u);
  {
    std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 2 / 4096 * 4096));
    const std::string garbage(3 * 4096, '\x5a');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  Result r = Doctor({});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(Row("database", "FAIL")), std::string::npos) << r.out;
}

TEST_F(DoctorTest, UnreadableConfigFailsAndUsageErrorsExitTwo) {
  std::ostringstream out, err;
  EXPECT_EQ(RunDoctor({"--config", dir_.file("nope.conf")}, out, err), 1);
  EXPECT_NE(out.str().find("FAIL  config"), std::string::npos) << out.str();
  std::ostringstream out2, err2;
  EXPECT_EQ(RunDoctor({"--bogus"}, out2, err2), 2);
}

}  // namespace
}  // namespace loyalty::ctl
