// Acknowledged means durable (design invariant 2): clients stream commits
// while the agent is killed with SIGKILL at random moments. After every
// restart, each acknowledged commit is present exactly once: replaying it
// returns the same answer, balances equal the sum of the acknowledged points,
// and the event log holds exactly the events those commits produced.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "core/card.h"
#include "loyalty/v1/api.pb.h"
#include "proto/json.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace loyalty {
namespace {

using testing::HttpClient;
using testing::Process;

constexpr int kMembers = 5;
constexpr int kClients = 4;
constexpr int kKills = 22;

std::string Card(int i) {
  const std::string payload = "60000000000" + std::to_string(1000 + i);
  return payload + core::LuhnCheckDigit(payload);
}

struct Sent {
  int member = 0;
  std::string body;
  std::string response;  // empty until acknowledged
};

class Agent {
 public:
  explicit Agent(const testing::TempDir& dir) : dir_(dir) {}
  int Start() {
    process_ = std::make_unique<Process>(
        std::vector<std::string>{testing::BuiltBinary("agent/loyalty-agent"), "--data-dir",
                                 dir_.file("data"), "--listen", "127.0.0.1:0"},
        dir_.file("agent.log"));
    const std::string rest = process_->WaitForLine("listening on 127.0.0.1:");
    if (rest.empty()) return 0;
    return std::atoi(rest.c_str());
  }
  void Kill() { process_->Kill(); }
  std::string Log() { return process_ ? process_->Log() : ""; }

 private:
  const testing::TempDir& dir_;
  std::unique_ptr<Process> process_;
};

int64_t Balance(HttpClient& http, int member) {
  auto res = http.Get("/v1/members/" + Card(member));
  EXPECT_EQ(res.status, 200) << res.body;
  v1::MemberResponse parsed;
  EXPECT_EQ(proto::ParseJson(res.body, &parsed), "") << res.body;
  return parsed.member().points_balance();
}

TEST(CrashTest, AcknowledgedCommitsSurviveSigkillExactlyOnce) {
  testing::TempDir dir;
  Agent agent(dir);
  int port = agent.Start();
  ASSERT_GT(port, 0) << agent.Log();
  {
    HttpClient http("127.0.0.1", port);
    for (int i = 0; i < kMembers; ++i) {
      auto res = http.Post("/v1/members", R"({"card":")" + Card(i) +
                                              R"(","display_name":"Crash )" +
                                              std::to_string(i) + "\"}");
      ASSERT_EQ(res.status, 201) << res.body;
    }
  }

  std::mutex mu;
  std::map<std::string, Sent> sent;  // by pos_txn_id
  std::atomic<int64_t> next_txn{0};
  std::mt19937 rng(20261123);

  for (int round = 0; round < kKills; ++round) {
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        HttpClient http("127.0.0.1", port);
        std::mt19937 local(static_cast<unsigned>(round * 100 + c));
        while (!stop) {
          const int64_t n = next_txn++;
          const std::string id = "crash-" + std::to_string(n);
          const int member = static_cast<int>(local() % kMembers);
          const std::string body =
              R"({"pos_txn_id":")" + id + R"(","card":")" + Card(member) +
              R"(","lines":[{"sku":"S1","category":"Coffee","quantity":)" +
              std::to_string(1 + local() % 3) + R"(,"unit_price":)" +
              std::to_string(100 + local() % 5000) + "}]}";
          {
            std::lock_guard lock(mu);
            sent[id] = Sent{member, body, ""};
          }
          auto res = http.Post("/v1/checkout/commit", body);
          if (res.status == 200) {
            std::lock_guard lock(mu);
            sent[id].response = res.body;
          } else if (res.status == 0) {
            return;  // the agent died; the outcome of `id` is unknown
          } else {
            ADD_FAILURE() << "unexpected " << res.status << " " << res.body;
            return;
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 400));
    agent.Kill();
    stop = true;
    for (auto& t : clients) t.join();

    port = agent.Start();
    ASSERT_GT(port, 0) << "agent did not restart after kill " << round << "\n" << agent.Log();
    HttpClient http("127.0.0.1", port);

    // Every acknowledged commit replays to the very same answer; commits
    // whose answer was lost are resolved by replaying them (idempotent).
    std::lock_guard lock(mu);
    for (auto& [id, s] : sent) {
      auto res = http.Post("/v1/checkout/commit", s.body);
      ASSERT_EQ(res.status, 200) << id << ": " << res.body;
      if (s.response.empty()) {
        s.response = res.body;
      } else {
        ASSERT_EQ(res.body, s.response) << "replay of acknowledged " << id << " differs";
      }
    }

    std::map<int, int64_t> expected;
    for (const auto& [id, s] : sent) {
      v1::CommitResponse parsed;
      ASSERT_EQ(proto::ParseJson(s.response, &parsed), "");
      expected[s.member] += parsed.points_earned();
    }
    for (int m = 0; m < kMembers; ++m) {
      EXPECT_EQ(Balance(http, m), expected[m]) << "member " << m << " after kill " << round;
    }
    // Each commit writes a visit and a purchase; enrolments one event each.
    auto health = http.Get("/v1/health");
    v1::HealthResponse parsed;
    ASSERT_EQ(proto::ParseJson(health.body, &parsed), "") << health.body;
    EXPECT_EQ(parsed.pending_events(), kMembers + 2 * static_cast<int64_t>(sent.size()));
  }
  EXPECT_GT(sent.size(), 100u) << "the test should stream a meaningful number of commits";
}

}  // namespace
}  // namespace loyalty
