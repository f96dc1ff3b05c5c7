// Sync end to end: real loyalty-agent processes talk mutual TLS to an
// in-test sync server built from the real transport (sync::Server) and the
// real ledger (storage::OpenSqliteServerStore), sometimes through a proxy
// that cuts connections. Waits poll for conditions with generous limits;
// nothing asserts on elapsed time.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <thread>

#include "core/card.h"
#include "loyalty/v1/api.pb.h"
#include "pki/ca.h"
#include "proto/json.h"
#include "tests/support/eventually.h"
#include "tests/support/free_port.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/sync/sync_test_server.h"

namespace loyalty {
namespace {

using testing::Eventually;
using testing::FreePort;
using testing::HttpClient;
using testing::Process;

std::string Card(int i) {
  const std::string payload = "60000000000" + std::to_string(2000 + i);
  return payload + core::LuhnCheckDigit(payload);
}

// The head-office CA, a server bundle for 127.0.0.1 and store bundles.
class Pki {
 public:
  explicit Pki(const testing::TempDir& dir) : dir_(dir) {
    ok_ = pki::InitCa(dir_.path() / "ca").ok() &&
          pki::IssueServer(dir_.path() / "ca", "127.0.0.1", dir_.path() / "server-tls").ok();
  }
  bool ok() const { return ok_; }
  std::string Store(const std::string& id) {
    auto out = dir_.path() / ("tls-" + id);
    if (!std::filesystem::exists(out / "cert.pem")) {
      EXPECT_TRUE(pki::IssueStore(dir_.path() / "ca", id, out).ok());
    }
    return out.string();
  }
  std::filesystem::path ServerBundle() const { return dir_.path() / "server-tls"; }

 private:
  const testing::TempDir& dir_;
  bool ok_ = false;
};

class Agent {
 public:
  Agent(const testing::TempDir& dir, std::string store, std::string tls_dir, uint16_t server_port,
        std::string name = "")
      : dir_(dir),
        store_(std::move(store)),
        tls_dir_(std::move(tls_dir)),
        server_port_(server_port),
        name_(name.empty() ? store_ : name) {}

  std::vector<std::string> Argv() const {
    return {testing::BuiltBinary("agent/loyalty-agent"),
            "--data-dir",
            dir_.file("data-" + name_),
            "--listen",
            "127.0.0.1:0",
            "--store-id",
            store_,
            "--terminal-id",
            "T1",
            "--server",
            "127.0.0.1:" + std::to_string(server_port_),
            "--tls-dir",
            tls_dir_,
            "--sync-interval-ms",
            "500"};
  }

  int Start() {
    process_ = std::make_unique<Process>(Argv(), dir_.file("agent-" + name_ + ".log"));
    const std::string rest = process_->WaitForLine("listening on 127.0.0.1:");
    port_ = rest.empty() ? 0 : std::atoi(rest.c_str());
    if (port_ > 0) http_ = std::make_unique<HttpClient>("127.0.0.1", port_);
    return port_;
  }
  void Kill() { process_->Kill(); }
  int Terminate() { return process_->Terminate(); }
  std::string Log() const { return process_ ? process_->Log() : ""; }
  HttpClient& http() { return *http_; }

  v1::SyncStatusResponse Status() {
    v1::SyncStatusResponse out;
    auto res = http_->Get("/v1/sync");
    EXPECT_EQ(res.status, 200) << res.body;
    EXPECT_EQ(proto::ParseJson(res.body, &out), "") << res.body;
    return out;
  }

  // POST /v1/sync until a round succeeds with an empty outbox.
  bool SyncUntilDrained(std::chrono::seconds limit = std::chrono::seconds(180)) {
    return Eventually(
        [&] {
          auto res = http_->Request("POST", "/v1/sync?timeout_ms=20000", "", 30000);
          if (res.status != 200) return false;
          v1::SyncStatusResponse s;
          return proto::ParseJson(res.body, &s).empty() && s.pending_events() == 0;
        },
        limit);
  }

  v1::MemberView Member(int card) {
    auto res = http_->Get("/v1/members/" + Card(card));
    EXPECT_EQ(res.status, 200) << res.body;
    v1::MemberResponse parsed;
    EXPECT_EQ(proto::ParseJson(res.body, &parsed), "") << res.body;
    return parsed.member();
  }

  void Enrol(int card) {
    auto res =
        http_->Post("/v1/members", R"({"card":")" + Card(card) + R"(","display_name":"Member )" +
                                       std::to_string(card) + "\"}");
    ASSERT_EQ(res.status, 201) << res.body;
  }

  // `count` checkouts spread over cards first_card .. first_card + members - 1.
  void Checkouts(int members, int count, const std::string& prefix, int threads = 4,
                 int first_card = 0) {
    std::atomic<int> next{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&] {
        HttpClient http("127.0.0.1", port_);
        for (int n = next++; n < count; n = next++) {
          const std::string body =
              R"({"pos_txn_id":")" + prefix + std::to_string(n) + R"(","card":")" +
              Card(first_card + n % members) +
              R"(","lines":[{"sku":"S1","category":"Coffee","quantity":1,"unit_price":)" +
              std::to_string(100 + (n * 37) % 2000) + "}]}";
          auto res = http.Post("/v1/checkout/commit", body);
          if (res.status != 200) {
            ADD_FAILURE() << prefix << n << ": " << res.status << " " << res.body;
            return;
          }
        }
      });
    }
    for (auto& w : workers) w.join();
  }

 private:
  const testing::TempDir& dir_;
  std::string store_, tls_dir_;
  uint16_t server_port_;
  std::string name_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
  std::unique_ptr<HttpClient> http_;
};

class SyncTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(pki_.ok()); }
  testing::TempDir dir_;
  Pki pki_{dir_};
};

TEST_F(SyncTest, OfflineCheckoutsReachTheServerExactlyOnceWhenItComesUp) {
  constexpr int kMembers = 10;
  constexpr int kCheckouts = 1000;
  const uint16_t server_port = FreePort();
  Agent agent(dir_, "S1", pki_.Store("S1"), server_port);
  ASSERT_GT(agent.Start(), 0) << agent.Log();
  for (int i = 0; i < kMembers; ++i) agent.Enrol(i);
  agent.Checkouts(kMembers, kCheckouts, "off-");

  // Server down: the round fails and the state says so.
  auto res = agent.http().Request("POST", "/v1/sync?timeout_ms=20000", "", 30000);
  EXPECT_EQ(res.status, 503) << res.body;
  auto offline = agent.Status();
  EXPECT_FALSE(offline.connected());
  EXPECT_EQ(offline.pending_events(), kMembers + 2 * kCheckouts);
  EXPECT_TRUE(offline.has_last_error());

  testing::SyncTestServer server(pki_.ServerBundle(), dir_.file("ledger.db"), server_port);
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE(agent.SyncUntilDrained()) << agent.Log();
  // One more round brings the snapshots of the last batch down.
  ASSERT_TRUE(agent.SyncUntilDrained());

  const auto totals = server.Totals();
  EXPECT_EQ(totals.events, kMembers + 2 * kCheckouts);  // exactly once
  EXPECT_EQ(totals.members, kMembers);
  int64_t agent_points = 0;
  for (int i = 0; i < kMembers; ++i) agent_points += agent.Member(i).points_balance();
  EXPECT_EQ(agent_points, totals.points);
  EXPECT_GT(totals.points, 0);
  auto online = agent.Status();
  EXPECT_TRUE(online.connected());
  EXPECT_FALSE(online.has_last_error());
  EXPECT_GT(online.cursor(), 0u);
  EXPECT_EQ(online.dead_letters(), 0);
}

TEST_F(SyncTest, TwoStoresOfflineWithOneMemberConvergeOnTheServersBalance) {
  const uint16_t server_port = FreePort();
  Agent a(dir_, "S1", pki_.Store("S1"), server_port);
  Agent b(dir_, "S2", pki_.Store("S2"), server_port);
  ASSERT_GT(a.Start(), 0) << a.Log();
  ASSERT_GT(b.Start(), 0) << b.Log();
  // The same card enrolled at both stores while both are offline.
  a.Enrol(7);
  b.Enrol(7);
  a.Checkouts(1, 20, "a-", 1, 7);
  b.Checkouts(1, 30, "b-", 1, 7);
  const int64_t earned_a = a.Member(7).points_balance();
  const int64_t earned_b = b.Member(7).points_balance();
  ASSERT_GT(earned_a, 0);
  ASSERT_GT(earned_b, 0);

  testing::SyncTestServer server(pki_.ServerBundle(), dir_.file("ledger.db"), server_port);
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE(a.SyncUntilDrained()) << a.Log();
  ASSERT_TRUE(b.SyncUntilDrained()) << b.Log();
  ASSERT_TRUE(a.SyncUntilDrained()) << a.Log();

  const auto totals = server.Totals();
  EXPECT_EQ(totals.members, 1);  // merged, not two members
  EXPECT_EQ(totals.events, 2 + 2 * (20 + 30));
  EXPECT_EQ(totals.points, earned_a + earned_b);
  // Both terminals show the authoritative member, neither counting its own
  // events twice.
  ASSERT_TRUE(Eventually([&] {
    auto ma = a.Member(7);
    auto mb = b.Member(7);
    return ma.points_balance() == totals.points && mb.points_balance() == totals.points &&
           ma.tier() == mb.tier() && ma.member_id() == mb.member_id();
  })) << a.Member(7).DebugString()
      << b.Member(7).DebugString();
}

TEST_F(SyncTest, ConnectionsCutMidFrameOrAfterCommitLoseAndDoubleNothing) {
  constexpr int kMembers = 5;
  constexpr int kCheckouts = 400;
  testing::SyncTestServer server(pki_.ServerBundle(), dir_.file("ledger.db"));
  ASSERT_TRUE(server.ok());
  testing::CuttingProxy proxy(server.port());
  // Handshakes are a few KB, batches tens to hundreds: many cuts land mid-frame.
  proxy.SetRandomCut(1500, 150000);
  Agent agent(dir_, "S1", pki_.Store("S1"), proxy.port());
  ASSERT_GT(agent.Start(), 0) << agent.Log();
  for (int i = 0; i < kMembers; ++i) agent.Enrol(i);
  agent.Checkouts(kMembers, kCheckouts, "cut-");
  // More sales keep arriving, so cuts keep landing in upload frames.
  int extra = 0;
  ASSERT_TRUE(Eventually([&] {
    agent.Checkouts(kMembers, 20, "more-" + std::to_string(extra++) + "-", 1);
    agent.http().Request("POST", "/v1/sync?timeout_ms=5000", "", 15000);
    return proxy.cuts() >= 10;
  })) << "cuts: "
      << proxy.cuts();
  const int checkouts = kCheckouts + 20 * extra;

  // Now the server commits batches and drops the connection before the ack.
  proxy.SetRandomCut(0, 0);
  proxy.SetCutAfterBytes(0);
  server.DropAfterCommit(3);
  agent.Checkouts(kMembers, 200, "drop-");
  ASSERT_TRUE(agent.SyncUntilDrained()) << agent.Log();
  ASSERT_TRUE(agent.SyncUntilDrained());

  EXPECT_EQ(server.drops_left(), 0);  // acks were really lost after commits
  const auto totals = server.Totals();
  EXPECT_EQ(totals.events, kMembers + 2 * (checkouts + 200));
  int64_t agent_points = 0;
  for (int i = 0; i < kMembers; ++i) agent_points += agent.Member(i).points_balance();
  EXPECT_EQ(agent_points, totals.points);
  EXPECT_EQ(agent.Status().dead_letters(), 0);
}

TEST_F(SyncTest, APublishedOfferReachesAConnectedTerminalByPush) {
  testing::SyncTestServer server(pki_.ServerBundle(), dir_.file("ledger.db"));
  ASSERT_TRUE(server.ok());
  Agent agent(dir_, "S1", pki_.Store("S1"), server.port());
  ASSERT_GT(agent.Start(), 0) << agent.Log();
  agent.Enrol(1);
  ASSERT_TRUE(agent.SyncUntilDrained()) << agent.Log();
  v1::Offer offer;
  offer.set_id("push-1");
  offer.set_name("Pushed bonus");
  offer.set_bonus_points(25);
  server.PutOffer(offer);
  ASSERT_TRUE(Eventually([&] {
    auto res = agent.http().Get("/v1/members/" + Card(1));
    return res.body.find("push-1") != std::string::npos;
  })) << agent.Log();
}

TEST_F(SyncTest, ASecondAgentOnTheSameDataDirectoryRefusesToStart) {
  Agent first(dir_, "S1", pki_.Store("S1"), FreePort(), "shared");
  ASSERT_GT(first.Start(), 0) << first.Log();
  Agent second(dir_, "S1", pki_.Store("S1"), FreePort(), "shared");
  Process p(second.Argv(), dir_.file("second.log"));
  EXPECT_EQ(p.Wait(), 2);
  EXPECT_NE(p.Log().find("another loyalty-agent is already running"), std::string::npos) << p.Log();
  EXPECT_EQ(first.Terminate(), 0);
}

TEST_F(SyncTest, AnExpiredCertificateIsReportedWithTheWayBack) {
  const auto tls = dir_.path() / "tls-expired";
  pki::IssueOptions old;
  old.not_before = std::chrono::system_clock::now() - std::chrono::hours(48);
  old.validity = std::chrono::hours(24);
  ASSERT_TRUE(pki::IssueStore(dir_.path() / "ca", "S9", tls, old).ok());
  testing::SyncTestServer server(pki_.ServerBundle(), dir_.file("ledger.db"));
  ASSERT_TRUE(server.ok());
  Agent agent(dir_, "S9", tls.string(), server.port());
  ASSERT_GT(agent.Start(), 0) << agent.Log();
  auto res = agent.http().Request("POST", "/v1/sync?timeout_ms=20000", "", 30000);
  EXPECT_EQ(res.status, 503);
  EXPECT_NE(res.body.find("certificate_expired"), std::string::npos) << res.body;
  auto status = agent.Status();
  EXPECT_EQ(status.last_error().code(), "certificate_expired");
  EXPECT_NE(status.last_error().message().find("loyaltyctl pki renew"), std::string::npos);

  // Renewed at head office and copied in: the next attempt picks it up.
  ASSERT_TRUE(pki::Renew(dir_.path() / "ca", tls).ok());
  ASSERT_TRUE(agent.SyncUntilDrained()) << agent.Log();
}

}  // namespace
}  // namespace loyalty
