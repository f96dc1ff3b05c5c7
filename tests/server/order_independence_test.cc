// Order independence (sync issue): random event scripts on several
// terminals, delivered to the ledger in random interleavings and batch
// sizes, with random resends, always give the same ledger. Each terminal's
// own events arrive in sequence order, as an agent uploads its outbox.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "storage/server_store.h"
#include "tests/server/test_events.h"
#include "tests/support/temp_dir.h"

namespace loyalty::server::testing {
namespace {

struct Summary {
  std::map<std::string, std::tuple<int64_t, std::string, int64_t, int64_t>> members;
  int64_t events = 0;
  int64_t points = 0;
  bool operator==(const Summary&) const = default;
};

constexpr int kMembers = 4;

std::string MemberId(int m) { return "p-member-" + std::to_string(m); }

// Terminal t's script: enrolments on the first terminal, then purchases and
// redemptions for random members.
std::vector<std::vector<v1::Event>> Scripts(uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<std::pair<std::string, std::string>> terminals = {
      {"S1", "till-1"}, {"S2", "till-1"}, {"S2", "till-2"}};
  std::vector<std::vector<v1::Event>> scripts(terminals.size());
  uint64_t seq = 0;
  for (int m = 0; m < kMembers; ++m) {
    scripts[0].push_back(Enrol("S1", ++seq, MemberId(m), HashOf(m)));
  }
  for (size_t t = 0; t < terminals.size(); ++t) {
    uint64_t s = t == 0 ? seq : 0;
    for (int i = 0; i < 25; ++i) {
      const std::string member = MemberId(static_cast<int>(rng() % kMembers));
      const auto& [store, till] = terminals[t];
      if (rng() % 4 == 0) {
        scripts[t].push_back(Redeem(store, ++s, member, 1 + rng() % 20, till));
      } else {
        scripts[t].push_back(Purchase(store, ++s, member, 1 + rng() % 50, till));
      }
    }
  }
  return scripts;
}

Summary Deliver(const std::vector<std::vector<v1::Event>>& scripts, uint32_t seed,
                const std::string& path) {
  std::mt19937 rng(seed);
  auto store = storage::OpenSqliteServerStore(path);
  EXPECT_TRUE(store.ok());
  storage::ServerStore& ledger = **store;
  const int64_t now = NowMs();
  std::vector<std::vector<v1::Event>> sent;
  auto ingest = [&](const std::vector<v1::Event>& batch) {
    const std::string uploader = batch.front().id().store_id();
    auto outcome = ledger.Ingest(uploader, batch, now);
    ASSERT_TRUE(outcome.ok()) << outcome.error().message;
    EXPECT_TRUE(outcome->rejected.empty()) << outcome->rejected[0].message();
  };
  // The enrolments reach the server before anything refers to the members.
  std::vector<size_t> next(scripts.size(), 0);
  ingest({scripts[0].begin(), scripts[0].begin() + kMembers});
  next[0] = kMembers;
  for (;;) {
    std::vector<size_t> open;
    for (size_t t = 0; t < scripts.size(); ++t) {
      if (next[t] < scripts[t].size()) open.push_back(t);
    }
    if (open.empty()) break;
    const size_t t = open[rng() % open.size()];
    const size_t n = std::min<size_t>(1 + rng() % 6, scripts[t].size() - next[t]);
    std::vector<v1::Event> batch(scripts[t].begin() + static_cast<std::ptrdiff_t>(next[t]),
                                 scripts[t].begin() + static_cast<std::ptrdiff_t>(next[t] + n));
    next[t] += n;
    ingest(batch);
    sent.push_back(batch);
    if (rng() % 3 == 0) ingest(sent[rng() % sent.size()]);  // an acknowledgement was lost
  }
  Summary summary;
  for (int m = 0; m < kMembers; ++m) {
    auto record = ledger.FindMember(MemberId(m), 0);
    EXPECT_TRUE(record.ok() && record->has_value());
    const auto& snap = (*record)->ledger.snapshot();
    summary.members[MemberId(m)] = {snap.points_balance(), snap.tier(), snap.qualifying_visits(),
                                    snap.qualifying_spend()};
  }
  auto totals = ledger.LedgerTotals();
  EXPECT_TRUE(totals.ok());
  summary.events = totals->events;
  summary.points = totals->points;
  return summary;
}

TEST(OrderIndependence, AnyInterleavingWithResendsGivesTheSameLedger) {
  for (uint32_t script_seed = 1; script_seed <= 4; ++script_seed) {
    const auto scripts = Scripts(script_seed);
    loyalty::testing::TempDir dir;
    const Summary reference = Deliver(scripts, 1000, dir.file("reference.db"));
    EXPECT_EQ(reference.events, kMembers + 3 * 25);
    for (uint32_t order = 1; order <= 8; ++order) {
      const Summary other =
          Deliver(scripts, order * 7919, dir.file("order-" + std::to_string(order) + ".db"));
      EXPECT_TRUE(other == reference) << "script " << script_seed << ", delivery order " << order;
    }
  }
}

}  // namespace
}  // namespace loyalty::server::testing
