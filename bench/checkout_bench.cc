// In-process checkout benchmarks, each measured side by side with its
// physical baseline in the same run:
//   quote   vs a bare SQLite lookup of one member by an indexed text key
//   commit  vs a bare SQLite single-row insert transaction, WAL +
//           synchronous=FULL, on the same disk
// Iterations alternate between the two so both see the same machine state.
//
// Environment: LOYALTY_BENCH_DIR (data, default /var/tmp/loyalty-bench),
// LOYALTY_BENCH_MEMBERS (default 1000000), LOYALTY_BENCH_OFFERS (1000),
// LOYALTY_BENCH_QUOTES and LOYALTY_BENCH_COMMITS (iterations: 200000, 3000).
#include <benchmark/benchmark.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>

#include "agent/checkout_service.h"
#include "bench/bench_data.h"
#include "bench/latency.h"
#include "core/card.h"
#include "storage/agent_store.h"

namespace loyalty::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct World {
  std::string dir;
  int64_t members = 0;
  std::unique_ptr<agent::CheckoutService> service;
  std::unique_ptr<storage::AgentStore> reader;  // for the bare lookup
  std::string key;
};
World* g_world = nullptr;

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoll(v) : fallback;
}

int64_t Nanos(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

v1::QuoteRequest Basket(const std::string& card, std::mt19937_64& rng) {
  static const char* kCategories[] = {"Coffee", "Bakery", "Dairy", "Produce", "Snacks"};
  v1::QuoteRequest req;
  req.set_card(card);
  for (int i = 0; i < 4; ++i) {
    auto* line = req.add_lines();
    line->set_sku("SKU-" + std::to_string(rng() % 5000));
    line->set_category(kCategories[rng() % 5]);
    line->set_quantity(1 + static_cast<int64_t>(rng() % 3));
    line->set_unit_price(99 + static_cast<int64_t>(rng() % 1500));
  }
  return req;
}

void BM_QuoteVsBareLookup(benchmark::State& state) {
  World& w = *g_world;
  std::mt19937_64 rng(7);
  Latencies quote, bare;
  for (auto _ : state) {
    const int64_t i = static_cast<int64_t>(rng() % static_cast<uint64_t>(w.members));
    const std::string card = CardNumber(i);
    const std::string hash = core::CardHash(w.key, card);

    auto t0 = Clock::now();
    auto row = w.reader->FindMemberByCardHash(hash);
    auto t1 = Clock::now();
    benchmark::DoNotOptimize(row);
    if (!row.ok() || !row->has_value()) state.SkipWithError("member missing");

    const v1::QuoteRequest req = Basket(card, rng);
    auto t2 = Clock::now();
    auto result = w.service->Quote(req);
    auto t3 = Clock::now();
    if (!result.ok()) state.SkipWithError(result.error().message.c_str());
    benchmark::DoNotOptimize(result);
    bare.Add(Nanos(t0, t1));
    quote.Add(Nanos(t2, t3));
  }
  state.counters["quote_p50_us"] = quote.PercentileMicros(0.50);
  state.counters["quote_p99_us"] = quote.PercentileMicros(0.99);
  state.counters["bare_lookup_p50_us"] = bare.PercentileMicros(0.50);
  state.counters["bare_lookup_p99_us"] = bare.PercentileMicros(0.99);
}

void BM_CommitVsBareInsert(benchmark::State& state) {
  World& w = *g_world;
  storage::Database::Options options;  // WAL + synchronous=FULL, like the agent
  options.batch_wal_writes = false;    // SQLite as it comes
  auto bare_db = storage::Database::Open(w.dir + "/bare.db", options);
  if (!bare_db.ok() ||
      !(*bare_db)->Exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, body BLOB)").ok()) {
    state.SkipWithError("cannot open bare database");
    return;
  }
  storage::Database& bare = **bare_db;
  // Seeded by how many events the terminal already holds: a fixed seed sent
  // every run's commits to the same few thousand members, whose local
  // (never synced) events then piled up run after run, so each commit
  // folded a longer history and the ratio drifted with the data
  // directory's age rather than with the code.
  auto last_seq = w.reader->LastSeq();
  std::mt19937_64 rng(11 + (last_seq.ok() ? *last_seq : 0));
  static int64_t txn_counter = 0;
  const std::string payload(200, 'x');
  Latencies commit, insert;
  for (auto _ : state) {
    auto t0 = Clock::now();
    {
      auto txn = storage::Transaction::Begin(bare);
      auto stmt = bare.Prepare("INSERT INTO t(body) VALUES(?)");
      (void)(*stmt)->BindBlob(1, payload).Run();
      (void)txn->Commit();
    }
    auto t1 = Clock::now();

    const int64_t i = static_cast<int64_t>(rng() % static_cast<uint64_t>(w.members));
    v1::QuoteRequest basket = Basket(CardNumber(i), rng);
    v1::CommitRequest req;
    req.set_pos_txn_id("bench-" + std::to_string(::getpid()) + "-" +
                       std::to_string(++txn_counter));
    req.set_card(basket.card());
    *req.mutable_lines() = basket.lines();
    auto t2 = Clock::now();
    // Not a std::promise: its set_value makes a futex call even when nobody
    // waits, and a lone commit answers on this very thread.
    std::mutex mutex;
    std::condition_variable answered;
    std::optional<core::Result<v1::CommitResponse>> answer;
    w.service->Commit(req, [&](core::Result<v1::CommitResponse> r) {
      std::lock_guard lock(mutex);
      answer.emplace(std::move(r));
      answered.notify_one();
    });
    std::unique_lock lock(mutex);
    answered.wait(lock, [&] { return answer.has_value(); });
    const core::Result<v1::CommitResponse>& result = *answer;
    auto t3 = Clock::now();
    if (!result.ok()) state.SkipWithError(result.error().message.c_str());
    insert.Add(Nanos(t0, t1));
    commit.Add(Nanos(t2, t3));
  }
  const double c50 = commit.PercentileMicros(0.5), b50 = insert.PercentileMicros(0.5);
  state.counters["commit_p50_us"] = c50;
  state.counters["commit_p99_us"] = commit.PercentileMicros(0.99);
  state.counters["bare_insert_p50_us"] = b50;
  state.counters["bare_insert_p99_us"] = insert.PercentileMicros(0.99);
  state.counters["ratio_p50"] = b50 > 0 ? c50 / b50 : 0;
}

}  // namespace
}  // namespace loyalty::bench

int main(int argc, char** argv) {
  using namespace loyalty;
  benchmark::Initialize(&argc, argv);
  bench::World world;
  world.dir = std::getenv("LOYALTY_BENCH_DIR") ? std::getenv("LOYALTY_BENCH_DIR")
                                               : "/var/tmp/loyalty-bench";
  world.members = bench::EnvInt("LOYALTY_BENCH_MEMBERS", 1'000'000);
  const int offers = static_cast<int>(bench::EnvInt("LOYALTY_BENCH_OFFERS", 1000));
  std::filesystem::create_directories(world.dir);

  const auto t0 = std::chrono::steady_clock::now();
  if (auto s = bench::Seed({world.dir, world.members, offers, 100}); !s.ok()) {
    std::cerr << "seed failed: " << s.error().message << "\n";
    return 1;
  }
  std::cerr << "seeded " << world.members << " members, " << offers << " offers in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
            << " s\n";
  // A terminal's database is hot in the OS page cache in production; read it
  // once so the first random lookups do not measure the disk.
  {
    std::ifstream db(world.dir + "/agent.db", std::ios::binary);
    std::vector<char> chunk(1 << 20);
    while (db.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || db.gcount() > 0) {
    }
  }
  auto key = bench::EnsureCardHashKey(world.dir);
  world.key = *key;
  agent::ServiceOptions options;
  options.data_dir = world.dir;
  options.card_hash_key = world.key;
  auto service = agent::OpenCheckoutService(options);
  if (!service.ok()) {
    std::cerr << "open failed: " << service.error().message << "\n";
    return 1;
  }
  world.service = std::move(*service);
  storage::Database::Options read_options;
  read_options.read_only = true;
  world.reader = std::move(*storage::AgentStore::Open(world.dir + "/agent.db", read_options));
  bench::g_world = &world;

  benchmark::RegisterBenchmark("BM_QuoteVsBareLookup", bench::BM_QuoteVsBareLookup)
      ->Iterations(bench::EnvInt("LOYALTY_BENCH_QUOTES", 200000))
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_CommitVsBareInsert", bench::BM_CommitVsBareInsert)
      ->Iterations(bench::EnvInt("LOYALTY_BENCH_COMMITS", 3000))
      ->Unit(benchmark::kMicrosecond);

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  world.service->Stop();
  return 0;
}
