// A narrower member scope: a terminal started with --member-scope store
// replicates only the members seen at its store and asks loyalty-server for
// the others while online. Real loyalty-server, real loyalty-agent processes,
// real mutual TLS.
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "core/card.h"
#include "loyalty/v1/api.pb.h"
#include "proto/json.h"
#include "storage/agent_store.h"
#include "tests/server/server_fixture.h"
#include "tests/support/http_client.h"

namespace loyalty::server::testing {
namespace {

using ::loyalty::testing::BuiltBinary;
using ::loyalty::testing::HttpClient;
using ::loyalty::testing::HttpResponse;
using ::loyalty::testing::Process;

std::string Card(int n) {
  std::string payload = "60359900010" + std::to_string(1000 + n);
  payload.push_back(core::LuhnCheckDigit(payload));
  return payload;
}

class ScopedAgent {
 public:
  ScopedAgent(const std::filesystem::path& dir, const std::string& name, const std::string& store,
              const std::filesystem::path& bundle, uint16_t server_port, bool store_scope)
      : data_(dir / ("data-" + name)), bundle_(bundle) {
    std::vector<std::string> argv = {BuiltBinary("agent/loyalty-agent"),
                                     "--data-dir", data_.string(),
                                     "--listen", "127.0.0.1:0",
                                     "--store-id", store,
                                     "--server", "127.0.0.1:" + std::to_string(server_port),
                                     "--tls-dir", bundle.string(),
                                     "--sync-interval-ms", "60000",
                                     "--lookup-timeout-ms", "10000"};
    if (store_scope) {
      argv.push_back("--member-scope");
      argv.push_back("store");
    }
    process_ = std::make_unique<Process>(argv, (dir / (name + ".log")).string());
    const std::string rest = process_->WaitForLine("listening on 127.0.0.1:");
    EXPECT_FALSE(rest.empty()) << process_->Log();
    http_ = std::make_unique<HttpClient>("127.0.0.1", std::atoi(rest.c_str()));
  }

  HttpClient& http() { return *http_; }
  std::string Log() const { return process_->Log(); }

  // One sync round that succeeds (the server may still be accepting).
  void Sync() {
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (http_->Request("POST", "/v1/sync?timeout_ms=20000", "", 30000).status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "no sync round succeeded\n" << Log();
  }

  HttpResponse Enrol(const std::string& card) {
    return http_->Post("/v1/members", R"({"card":")" + card + R"(","display_name":"M"})");
  }
  HttpResponse Commit(const std::string& txn, const std::string& card, int64_t price) {
    return http_->Post("/v1/checkout/commit",
                       R"({"pos_txn_id":")" + txn + R"(","card":")" + card +
                           R"(","lines":[{"sku":"S","category":"Coffee","quantity":1,)"
                           R"("unit_price":)" +
                           std::to_string(price) + "}]}");
  }
  // The balance the terminal shows, or -1 with the status in *status.
  int64_t Balance(const std::string& card, int* status = nullptr) {
    auto res = http_->Get("/v1/members/" + card);
    if (status) *status = res.status;
    if (res.status != 200) return -1;
    v1::MemberResponse m;
    EXPECT_EQ(proto::ParseJson(res.body, &m), "") << res.body;
    return m.member().points_balance();
  }
  // Whether the terminal's database holds the member (replicated or looked up).
  bool Holds(const std::string& card) {
    std::ifstream key_file(bundle_ / "card-hash.key", std::ios::binary);
    const std::string key((std::istreambuf_iterator<char>(key_file)), {});
    storage::Database::Options read;
    read.read_only = true;
    auto store = storage::AgentStore::Open((data_ / "agent.db").string(), read);
    EXPECT_TRUE(store.ok());
    auto row = (*store)->FindMemberByCardHash(core::CardHash(key, card));
    EXPECT_TRUE(row.ok());
    return row.ok() && row->has_value();
  }

 private:
  std::filesystem::path data_;
  std::filesystem::path bundle_;
  std::unique_ptr<Process> process_;
  std::unique_ptr<HttpClient> http_;
};

int64_t MetricValue(const std::string& metrics, const std::string& name) {
  const auto at = metrics.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stoll(metrics.substr(at + name.size() + 2));
}

TEST_F(ServerProcessTest, StoreScopedTerminalLooksUpOtherStoresMembersOnline) {
  ScopedAgent everyone(tmp(), "s1", "S1", tmp() / "store1", sync_port_, false);
  ScopedAgent scoped(tmp(), "s2", "S2", tmp() / "store2", sync_port_, true);

  // Members of store S1, and one of S2's own.
  for (int n : {1, 2, 3, 4}) ASSERT_EQ(everyone.Enrol(Card(n)).status, 201);
  ASSERT_EQ(everyone.Commit("s1-a", Card(1), 2000).status, 200);
  // Connected first, so the enrolment's lookup (a miss) reaches the server.
  scoped.Sync();
  ASSERT_EQ(scoped.Enrol(Card(9)).status, 201);
  everyone.Sync();
  scoped.Sync();
  everyone.Sync();

  // Store S2's terminal holds its own member only; S1's (scope all) holds both.
  EXPECT_TRUE(scoped.Holds(Card(9)));
  EXPECT_FALSE(scoped.Holds(Card(1)));
  EXPECT_FALSE(scoped.Holds(Card(2)));
  EXPECT_TRUE(everyone.Holds(Card(9)));

  // A card of S1 at S2: looked up on the server, then held locally.
  const int64_t balance = everyone.Balance(Card(1));
  ASSERT_GT(balance, 0);
  EXPECT_EQ(scoped.Balance(Card(1)), balance) << scoped.Log();
  EXPECT_TRUE(scoped.Holds(Card(1)));

  // Later changes of a looked-up member reach S2 through the feed.
  ASSERT_EQ(everyone.Commit("s1-b", Card(1), 3000).status, 200);
  everyone.Sync();
  const int64_t after = everyone.Balance(Card(1));
  ASSERT_GT(after, balance);
  scoped.Sync();
  EXPECT_EQ(scoped.Balance(Card(1)), after);

  // A commit and an enrolment of S1's cards at S2: the commit is recorded
  // for the existing member, the enrolment is refused as already enrolled.
  auto commit = scoped.Commit("s2-a", Card(2), 1500);
  EXPECT_EQ(commit.status, 200) << commit.body << scoped.Log();
  auto enrol = scoped.Enrol(Card(3));
  EXPECT_EQ(enrol.status, 409) << enrol.body;
  EXPECT_NE(enrol.body.find("already_enrolled"), std::string::npos) << enrol.body;

  // A card nobody enrolled: unknown_card, from the terminal and the server.
  int status = 0;
  EXPECT_EQ(scoped.Balance(Card(7), &status), -1);
  EXPECT_EQ(status, 404);

  auto metrics = Admin()->Call("GET", "/metrics");
  ASSERT_TRUE(metrics && metrics->status == 200u);
  EXPECT_EQ(MetricValue(metrics->body, "loyalty_member_lookups_found_total"), 3) << metrics->body;
  // Misses: card 9 before its enrolment, card 7.
  EXPECT_EQ(MetricValue(metrics->body, "loyalty_member_lookups_missed_total"), 2) << metrics->body;

  // Offline: held members are still served; others are unknown at once.
  ASSERT_EQ(server_->Terminate(), 0);
  EXPECT_EQ(scoped.Balance(Card(1)), after);
  EXPECT_EQ(scoped.Balance(Card(4), &status), -1);
  EXPECT_EQ(status, 404);
  server_.reset();
}

}  // namespace
}  // namespace loyalty::server::testing
