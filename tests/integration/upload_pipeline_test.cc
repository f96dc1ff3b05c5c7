// The sync client's pipelined upload (several UploadBatches in flight) end
// to end: sync::AgentSync in-process on a real terminal database, against
// the in-test sync server (real transport, real ledger), with batches small
// enough that one round keeps several in flight.
#include <utility>  // before Asio (Boost 1.74)

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "pki/ca.h"
#include "storage/agent_store.h"
#include "sync/agent_sync.h"
#include "tests/server/test_events.h"
#include "tests/support/temp_dir.h"
#include "tests/sync/sync_test_server.h"

namespace loyalty {
namespace {

using server::testing::Enrol;
using server::testing::HashOf;
using server::testing::NowMs;
using server::testing::Purchase;

class UploadPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pki::InitCa(dir_.path() / "ca").ok());
    ASSERT_TRUE(pki::IssueServer(dir_.path() / "ca", "127.0.0.1", dir_.path() / "server-tls").ok());
    ASSERT_TRUE(pki::IssueStore(dir_.path() / "ca", "S1", dir_.path() / "tls-S1").ok());
    server_ = std::make_unique<testing::SyncTestServer>(dir_.path() / "server-tls",
                                                        dir_.file("ledger.db"));
    ASSERT_TRUE(server_->ok());
    storage::Database::Options o;
    auto store = storage::AgentStore::Open(dir_.file("agent.db"), o);
    ASSERT_TRUE(store.ok()) << store.error().message;
    terminal_ = std::move(*store);
  }

  core::Status Write(const std::function<core::Status(storage::AgentStore&)>& fn) {
    auto txn = storage::Transaction::Begin(terminal_->db());
    if (!txn.ok()) return txn.error();
    if (auto s = fn(*terminal_); !s.ok()) return s;
    return txn->Commit();
  }

  std::unique_ptr<sync::AgentSync> StartSync(int batch_events, int in_flight) {
    sync::AgentSyncOptions o;
    o.host = "127.0.0.1";
    o.port = server_->port();
    o.server_name = "127.0.0.1";
    o.terminal_id = "till-1";
    o.db_path = dir_.file("agent.db");
    o.tls_dir = dir_.path() / "tls-S1";
    o.interval = std::chrono::hours(1);
    o.batch_events = batch_events;
    o.batches_in_flight = in_flight;
    sync::AgentSyncHost host;
    host.write = [this](std::function<core::Status(storage::AgentStore&)> fn) { return Write(fn); };
    auto started = sync::AgentSync::Start(std::move(o), std::move(host));
    EXPECT_TRUE(started.ok()) << started.error().message;
    return started.ok() ? std::move(*started) : nullptr;
  }

  ::loyalty::testing::TempDir dir_;
  std::unique_ptr<testing::SyncTestServer> server_;
  std::unique_ptr<storage::AgentStore> terminal_;
};

TEST_F(UploadPipelineTest, BatchesInFlightReachTheServerExactlyOnceInOrder) {
  ASSERT_TRUE(Write([](storage::AgentStore& s) -> core::Status {
                if (auto r = s.AppendEvent(Enrol("S1", 1, "p-1", HashOf(1))); !r.ok()) return r;
                for (uint64_t seq = 2; seq <= 40; ++seq) {
                  if (auto r = s.AppendEvent(Purchase("S1", seq, "p-1", 10)); !r.ok()) return r;
                }
                return {};
              }).ok());
  auto client = StartSync(3, 3);
  ASSERT_NE(client, nullptr);
  auto status = client->SyncNow(std::chrono::seconds(60));
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(status->pending_events, 0);
  EXPECT_EQ(status->dead_letters, 0);
  client->Stop();
  const auto totals = server_->Totals();
  EXPECT_EQ(totals.events, 40);
  EXPECT_EQ(totals.points, 390);
  EXPECT_GT(server_->batches(), 13);  // 40 events in batches of 3
}

TEST_F(UploadPipelineTest, RestoredTerminalMovesToANewEpochWithBatchesInFlightExactlyOnce) {
  // The terminal's earlier life uploaded seqs 1..4 before its disk died.
  auto seeded = server_->WithStore([](storage::ServerStore& s) {
    std::vector<v1::Event> life = {Enrol("S1", 1, "p-1", HashOf(1)), Purchase("S1", 2, "p-1", 1),
                                   Purchase("S1", 3, "p-1", 1), Purchase("S1", 4, "p-1", 1)};
    return s.Ingest("S1", life, NowMs());
  });
  ASSERT_TRUE(seeded.ok());
  // Restored from an older backup, it records seqs 1..20 again as other
  // events: the first batch collides, the ones behind it (in flight) are
  // partly new under the old epoch and must not be uploaded twice.
  ASSERT_TRUE(Write([](storage::AgentStore& s) -> core::Status {
                for (uint64_t seq = 1; seq <= 20; ++seq) {
                  v1::Event e =
                      seq == 1 ? Enrol("S1", 1, "p-1", HashOf(1)) : Purchase("S1", seq, "p-1", 10);
                  e.mutable_id()->set_uuid("restored-" + std::to_string(seq));
                  if (auto r = s.AppendEvent(e); !r.ok()) return r;
                }
                return {};
              }).ok());
  auto client = StartSync(3, 3);
  ASSERT_NE(client, nullptr);
  auto status = client->SyncNow(std::chrono::seconds(60));
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(status->pending_events, 0);
  EXPECT_EQ(status->dead_letters, 0);
  EXPECT_GT(status->epoch, 1u);
  client->Stop();
  const auto totals = server_->Totals();
  EXPECT_EQ(totals.events, 4 + 20);  // both lives, each event once
  EXPECT_EQ(totals.points, 3 + 19 * 10);
}

}  // namespace
}  // namespace loyalty
