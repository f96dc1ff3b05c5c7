// Upgrading a terminal never loses its outbox: a database with the previous
// release's schema (fixtures/agent_schema_v1.sql, migration 1 only) holding
// events the server has not acknowledged is opened by the current AgentStore
// and by the current loyalty-agent, which migrate it and still hold, count
// and hand out every unacknowledged event for upload.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "ctl/http_client.h"
#include "loyalty/v1/api.pb.h"
#include "loyalty/v1/domain.pb.h"
#include "proto/json.h"
#include "storage/agent_store.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace loyalty {
namespace {

std::string SourceDir() {
  const char* dir = std::getenv("LOYALTY_SOURCE_DIR");
  return dir ? dir : LOYALTY_TEST_SOURCE_DIR;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

v1::Event MakeEvent(uint64_t seq) {
  v1::Event e;
  e.mutable_id()->set_store_id("store-1");
  e.mutable_id()->set_terminal_id("till-1");
  e.mutable_id()->set_epoch(1);
  e.mutable_id()->set_seq(seq);
  e.mutable_id()->set_uuid("00000000-0000-4000-8000-00000000000" + std::to_string(seq));
  e.set_member_id("p-member-1");
  e.mutable_visit()->set_pos_txn_id("T-" + std::to_string(seq));
  return e;
}

// Writes the previous release's database: the v1 schema, one acknowledged
// event (seq 1) and three in the outbox (seq 2..4).
void WriteReleaseOneDatabase(const std::string& path) {
  const std::string schema = ReadText(SourceDir() + "/tests/packaging/fixtures/agent_schema_v1.sql");
  ASSERT_FALSE(schema.empty()) << "fixture not found under " << SourceDir();
  auto db = storage::Database::Open(path, {});
  ASSERT_TRUE(db.ok()) << db.error().message;
  ASSERT_TRUE((*db)->Exec(schema).ok());
  for (uint64_t seq = 1; seq <= 4; ++seq) {
    auto stmt = (*db)->Prepare("INSERT INTO events(seq, member_id, acked, body) VALUES(?, ?, ?, ?)");
    ASSERT_TRUE(stmt.ok());
    (*stmt)->Bind(1, static_cast<int64_t>(seq))
        .Bind(2, std::string_view("p-member-1"))
        .Bind(3, static_cast<int64_t>(seq == 1 ? 1 : 0))
        .BindBlob(4, MakeEvent(seq).SerializeAsString());
    ASSERT_TRUE((*stmt)->Run().ok());
  }
  auto version = (*db)->UserVersion();
  ASSERT_TRUE(version.ok());
  ASSERT_EQ(*version, 1);
}

TEST(Upgrade, AgentStoreMigratesAndKeepsTheOutbox) {
  testing::TempDir dir;
  const std::string path = dir.file("agent.db");
  ASSERT_NO_FATAL_FAILURE(WriteReleaseOneDatabase(path));

  auto store = storage::AgentStore::Open(path, {});
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto version = (*store)->db().UserVersion();
  ASSERT_TRUE(version.ok());
  EXPECT_GE(*version, 2) << "the migrations after release 1 ran";

  auto pending = (*store)->CountUnackedEvents();
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(*pending, 3);
  auto outbox = (*store)->UnackedEvents(0, 100);
  ASSERT_TRUE(outbox.ok());
  ASSERT_EQ(outbox->size(), 3u);
  for (std::size_t i = 0; i < outbox->size(); ++i) {
    const auto& e = (*outbox)[i];
    EXPECT_EQ(e.seq, i + 2);
    EXPECT_EQ(e.event.SerializeAsString(), MakeEvent(i + 2).SerializeAsString());
  }
  auto last = (*store)->LastSeq();
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, 4u);
  // The new table of migration 2 is usable.
  auto dead = (*store)->CountDeadLetters();
  ASSERT_TRUE(dead.ok());
  EXPECT_EQ(*dead, 0);
  // The upload path still works on the migrated rows.
  ASSERT_TRUE((*store)->MarkAcked(2).ok());
  auto after = (*store)->CountUnackedEvents();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, 2);
}

TEST(Upgrade, CurrentAgentStartsOnTheOldDatabaseAndCountsThePendingEvents) {
  testing::TempDir dir;
  const std::string data = dir.file("data");
  std::filesystem::create_directories(data);
  ASSERT_NO_FATAL_FAILURE(WriteReleaseOneDatabase(data + "/agent.db"));

  loyalty::testing::Process agent({loyalty::testing::BuiltBinary("agent/loyalty-agent"),
                                   "--data-dir", data, "--listen", "127.0.0.1:0"},
                                  dir.file("agent.log"));
  const std::string rest = agent.WaitForLine("listening on 127.0.0.1:");
  ASSERT_FALSE(rest.empty()) << agent.Log();
  const std::string port = rest.substr(0, rest.find_first_not_of("0123456789"));

  auto url = ctl::ParseUrl("http://127.0.0.1:" + port);
  ASSERT_TRUE(url.ok());
  ctl::HttpClient client(*url);
  auto reply = client.Call(boost::beast::http::verb::get, "/v1/health");
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  ASSERT_EQ(reply->status, 200u) << reply->body;
  v1::HealthResponse health;
  ASSERT_EQ(proto::ParseJson(reply->body, &health), "");
  EXPECT_EQ(health.pending_events(), 3) << reply->body;
  EXPECT_EQ(agent.Terminate(), 0) << agent.Log();

  // Still there after the agent's clean stop, still pending for upload.
  auto store = storage::AgentStore::Open(data + "/agent.db", {});
  ASSERT_TRUE(store.ok());
  auto pending = (*store)->CountUnackedEvents();
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(*pending, 3);
}

}  // namespace
}  // namespace loyalty
