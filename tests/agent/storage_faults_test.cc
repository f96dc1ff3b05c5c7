// A real loyalty-agent whose storage fails under it:
// - its disk fills up (its data directory is on a small tmpfs the test
//   fills): writes answer 503 "disk_full" and change nothing, reads keep
//   answering, and once there is room the same request goes through, once;
// - its database file is damaged: requests that meet the damage answer 503
//   "database_corrupt", and health turns "degraded" (503) with what to do.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <boost/beast/http/verb.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "ctl/http_client.h"
#include "loyalty/v1/api.pb.h"
#include "proto/json.h"
#include "tests/agent/agent_process.h"
#include "tests/support/small_disk.h"

namespace loyalty::agent {
namespace {

using boost::beast::http::verb;
using loyalty::agent_test::AgentProcess;
using loyalty::testing::SmallDisk;
namespace v1 = loyalty::v1;

std::string Card(int n) { return agent_test::TestCard(n); }

v1::CommitRequest Basket(const std::string& card, const std::string& txn) {
  v1::CommitRequest req;
  req.set_card(card);
  req.set_pos_txn_id(txn);
  auto* line = req.add_lines();
  line->set_sku("COF-1");
  line->set_category("Coffee");
  line->set_quantity(3);
  line->set_unit_price(450);
  return req;
}

void Enrol(ctl::HttpClient& client, const std::string& card) {
  v1::EnrolRequest enrol;
  enrol.set_card(card);
  enrol.set_display_name("Ana");
  auto enrolled = client.Call(verb::post, "/v1/members", proto::ToJson(enrol));
  ASSERT_TRUE(enrolled.ok());
  ASSERT_EQ(enrolled->status, 201u) << enrolled->body;
}

std::string ErrorCode(const std::string& body) {
  v1::ErrorResponse error;
  if (!proto::ParseJson(body, &error).empty()) return "";
  return error.error().code();
}

TEST(DiskFull, WritesAnswer503AndChangeNothingUntilThereIsRoomAgain) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  SmallDisk disk(8 << 20);
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here: " << disk.why();

  std::string error;
  auto agent = AgentProcess::Start({"--store-id", "S1", "--terminal-id", "till-1",
                                    "--offline-reserve-points", "0", "--log-level", "warn"},
                                   &error, disk.file("data"));
  ASSERT_TRUE(agent) << error;
  auto url = ctl::ParseUrl(agent->url());
  ASSERT_TRUE(url.ok());
  ctl::HttpClient client(*url);
  auto call = [&](verb method, const std::string& target, const std::string& body = "") {
    auto reply = client.Call(method, target, body);
    EXPECT_TRUE(reply.ok()) << (reply.ok() ? "" : reply.error().message);
    return reply.ok() ? std::move(*reply) : ctl::HttpReply{};
  };
  auto balance = [&](const std::string& card) {
    auto reply = call(verb::get, "/v1/members/" + card);
    EXPECT_EQ(reply.status, 200u) << reply.body;
    v1::MemberResponse member;
    EXPECT_EQ(proto::ParseJson(reply.body, &member), "") << reply.body;
    return member.member().points_balance();
  };

  const std::string card = Card(1);
  v1::EnrolRequest enrol;
  enrol.set_card(card);
  enrol.set_display_name("Ana");
  ASSERT_EQ(call(verb::post, "/v1/members", proto::ToJson(enrol)).status, 201u);
  auto first = call(verb::post, "/v1/checkout/commit", proto::ToJson(Basket(card, "txn-1")));
  ASSERT_EQ(first.status, 200u) << first.body;
  const int64_t before = balance(card);
  ASSERT_GT(before, 0);

  ASSERT_GT(disk.FillUp("filler"), 0u);
  const std::string second = proto::ToJson(Basket(card, "txn-2"));
  auto refused = call(verb::post, "/v1/checkout/commit", second);
  EXPECT_EQ(refused.status, 503u) << refused.body;
  EXPECT_EQ(ErrorCode(refused.body), "disk_full") << refused.body;
  v1::EnrolRequest other;
  other.set_card(Card(2));
  other.set_display_name("Bo");
  auto refused_enrol = call(verb::post, "/v1/members", proto::ToJson(other));
  EXPECT_EQ(refused_enrol.status, 503u) << refused_enrol.body;
  EXPECT_EQ(ErrorCode(refused_enrol.body), "disk_full") << refused_enrol.body;
  // Reads still answer, and nothing changed.
  EXPECT_EQ(balance(card), before);
  EXPECT_EQ(call(verb::get, "/v1/members/" + Card(2)).status, 404u);
  EXPECT_EQ(call(verb::get, "/v1/health").status, 200u);

  // Room again: the refused checkout goes through, once.
  std::filesystem::remove(disk.file("filler"));
  auto accepted = call(verb::post, "/v1/checkout/commit", second);
  ASSERT_EQ(accepted.status, 200u) << accepted.body;
  v1::CommitResponse committed;
  ASSERT_EQ(proto::ParseJson(accepted.body, &committed), "");
  EXPECT_GT(committed.points_earned(), 0);
  EXPECT_EQ(committed.points_balance(), before + committed.points_earned());
  auto replay = call(verb::post, "/v1/checkout/commit", second);
  EXPECT_EQ(replay.status, 200u);
  EXPECT_EQ(replay.body, accepted.body);
  EXPECT_EQ(balance(card), before + committed.points_earned());
  EXPECT_EQ(call(verb::post, "/v1/members", proto::ToJson(other)).status, 201u);

  EXPECT_EQ(agent->Terminate(), 0) << agent->Stderr();
}

// The root page of `table` in the database at `path`, read with SQLite.
int64_t RootPage(const std::string& path, const std::string& table) {
  sqlite3* db = nullptr;
  int64_t page = -1;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    const std::string sql = "SELECT rootpage FROM sqlite_schema WHERE name = '" + table + "'";
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      page = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close_v2(db);
  return page;
}

TEST(DamagedDatabase, RequestsThatMeetTheDamageAnswer503AndHealthSaysWhatToDo) {
  agent_test::TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::vector<std::string> flags = {"--store-id", "S1", "--terminal-id", "till-1",
                                          "--log-level", "warn"};
  const std::string card = Card(1);
  std::string error;
  {
    auto agent = AgentProcess::Start(flags, &error, data);
    ASSERT_TRUE(agent) << error;
    auto url = ctl::ParseUrl(agent->url());
    ASSERT_TRUE(url.ok());
    ctl::HttpClient client(*url);
    ASSERT_NO_FATAL_FAILURE(Enrol(client, card));
    ASSERT_EQ(agent->Terminate(), 0);  // a clean stop checkpoints the WAL into agent.db
  }
  // Garbage over the members table's root page.
  const std::string db_path = data + "/agent.db";
  const int64_t page = RootPage(db_path, "members");
  ASSERT_GT(page, 1);
  {
    std::fstream f(db_path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp((page - 1) * 4096);
    const std::string garbage(4096, '\xa5');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }

  auto agent = AgentProcess::Start(flags, &error, data);
  ASSERT_TRUE(agent) << error;
  auto url = ctl::ParseUrl(agent->url());
  ASSERT_TRUE(url.ok());
  ctl::HttpClient client(*url);
  auto health = client.Call(verb::get, "/v1/health");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200u) << "nothing has met the damage yet: " << health->body;

  auto lookup = client.Call(verb::get, "/v1/members/" + card);
  ASSERT_TRUE(lookup.ok());
  EXPECT_EQ(lookup->status, 503u) << lookup->body;
  EXPECT_EQ(ErrorCode(lookup->body), "database_corrupt") << lookup->body;

  health = client.Call(verb::get, "/v1/health");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 503u) << health->body;
  v1::HealthResponse degraded;
  ASSERT_EQ(proto::ParseJson(health->body, &degraded), "") << health->body;
  EXPECT_EQ(degraded.status(), "degraded");
  EXPECT_NE(degraded.problem().find("loyaltyctl doctor"), std::string::npos) << health->body;
  auto metrics = client.Call(verb::get, "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("loyalty_database_damaged 1"), std::string::npos) << metrics->body;
  EXPECT_NE(agent->Stderr().find("is damaged"), std::string::npos) << agent->Stderr();
  // The operator's view: loyaltyctl health prints the problem and fails.
  const auto ctl = agent_test::RunProcess({agent_test::CtlBinary(), "health", "--url", agent->url()});
  EXPECT_EQ(ctl.exit_code, 1) << ctl.out << ctl.err;
  EXPECT_NE(ctl.out.find("degraded"), std::string::npos) << ctl.out << ctl.err;
  EXPECT_NE(ctl.out.find("loyaltyctl doctor"), std::string::npos) << ctl.out << ctl.err;
  EXPECT_EQ(agent->Terminate(), 0) << agent->Stderr();
}

// Damage that a reader connection meets as it opens (the WAL of a running
// agent overwritten) turns health degraded too, not only damage a statement
// meets.
TEST(DamagedDatabase, DamageMetWhileOpeningAReaderTurnsHealthDegraded) {
  agent_test::TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::string card = Card(2);
  std::string error;
  auto agent = AgentProcess::Start(
      {"--store-id", "S1", "--terminal-id", "till-1", "--log-level", "warn"}, &error, data);
  ASSERT_TRUE(agent) << error;
  auto url = ctl::ParseUrl(agent->url());
  ASSERT_TRUE(url.ok());
  ctl::HttpClient client(*url);
  ASSERT_NO_FATAL_FAILURE(Enrol(client, card));

  // Nothing has read yet, so no reader connection is open: the first one
  // opens over the garbage.
  const std::string wal = data + "/agent.db-wal";
  const auto size = std::filesystem::file_size(wal);
  ASSERT_GT(size, 0u);
  {
    std::fstream f(wal, std::ios::in | std::ios::out | std::ios::binary);
    const std::string garbage(size, '\xa5');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  auto lookup = client.Call(verb::get, "/v1/members/" + card);
  ASSERT_TRUE(lookup.ok());
  EXPECT_EQ(lookup->status, 503u) << lookup->body;
  EXPECT_EQ(ErrorCode(lookup->body), "database_corrupt") << lookup->body;

  auto health = client.Call(verb::get, "/v1/health");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 503u) << health->body;
  v1::HealthResponse degraded;
  ASSERT_EQ(proto::ParseJson(health->body, &degraded), "") << health->body;
  EXPECT_EQ(degraded.status(), "degraded");
  auto metrics = client.Call(verb::get, "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("loyalty_database_damaged 1"), std::string::npos) << metrics->body;
  EXPECT_NE(agent->Stderr().find("is damaged"), std::string::npos) << agent->Stderr();
}

}  // namespace
}  // namespace loyalty::agent
