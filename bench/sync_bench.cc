// Sync benchmarks, each against its physical baseline in the same run, with a
// real loyalty-server process on loopback and the agent's real sync client
// (sync::AgentSync over the checkout service's writer, as loyalty-agent wires
// it):
//
//   ingest    one terminal with a backlog of N events (default 100,000),
//             recorded through the checkout service (enrolments, then
//             checkouts of visit + purchase), uploads it until every event is
//             acknowledged; versus a bare SQLite insert of the same rows
//             (key, uuid, member, time, body) into a fresh file on the same
//             disk, 100 rows per transaction, WAL, synchronous=FULL.
//             Target: product >= 0.5 x bare. The server acknowledges what
//             its inbox holds and folds it into the ledger when uploads
//             pause; the whole round (upload, fold, and the pull that
//             follows) is printed too, and the ledger checked complete.
//             The server's event count is that of the folded ledger.
//   catch-up  a second store's terminal syncs, goes offline, records 10,000
//             events (a week) while the other store's backlog changes the
//             feed, then reconnects: time from connect until its outbox is
//             acknowledged and the downlink pulled. Target: < 2 s.
//
// Environment: LOYALTY_BENCH_DIR (work directory, default
// /var/tmp/loyalty-sync-bench; wiped first), SYNC_BENCH_EVENTS (100000),
// SYNC_BENCH_MEMBERS (10000), SYNC_BENCH_CATCHUP_EVENTS (10000),
// SYNC_BENCH_CATCHUP_MEMBERS (2000), SYNC_BENCH_SERVER (the loyalty-server
// binary; default: the one in this build), SYNC_BENCH_KEEP=1 keeps the work
// directory.
#include <utility>  // before Asio (Boost 1.74)

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "agent/checkout_service.h"
#include "bench/bench_data.h"
#include "bench/sync_fixture.h"
#include "storage/sqlite.h"
#include "sync/agent_sync.h"

namespace loyalty::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoll(v) : fallback;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

[[noreturn]] void Die(const std::string& what, const core::Error& error) {
  std::cerr << "sync_bench: " << what << ": " << error.message << " (" << error.code << ")\n";
  std::exit(1);
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Waits for every callback of the requests it started, with at most
// `max_in_flight` outstanding, so the writer's group commit stays full.
class InFlight {
 public:
  explicit InFlight(int max_in_flight) : max_(max_in_flight) {}
  void Acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return n_ < max_; });
    ++n_;
  }
  void Release(const core::Status& s) {
    std::lock_guard lock(mu_);
    --n_;
    if (!s.ok() && !error_) error_ = s.error();
    cv_.notify_all();
  }
  core::Status Drain() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return n_ == 0; });
    if (error_) return *error_;
    return {};
  }

 private:
  const int max_;
  std::mutex mu_;
  std::condition_variable cv_;
  int n_ = 0;
  std::optional<core::Error> error_;
};

// One terminal: the checkout service on its own data directory, as
// loyalty-agent runs it.
struct Terminal {
  std::string store_id;
  std::string terminal_id;
  fs::path data_dir;
  fs::path bundle;
  std::unique_ptr<agent::CheckoutService> service;

  static Terminal Open(const fs::path& dir, const std::string& store_id,
                       const std::string& terminal_id) {
    Terminal t;
    t.store_id = store_id;
    t.terminal_id = terminal_id;
    t.data_dir = dir / ("agent-" + store_id + "-" + terminal_id);
    t.bundle = StoreBundle(dir, store_id);
    fs::create_directories(t.data_dir);
    agent::ServiceOptions o;
    o.data_dir = t.data_dir.string();
    o.store_id = store_id;
    o.terminal_id = terminal_id;
    o.card_hash_key = ReadFile(t.bundle / "card-hash.key");
    auto service = agent::OpenCheckoutService(o);
    if (!service.ok()) Die("open the checkout service", service.error());
    t.service = std::move(*service);
    return t;
  }

  // Enrols cards [first, first + count) through the checkout service.
  void Enrol(int64_t first, int64_t count) {
    InFlight flight(512);
    for (int64_t i = first; i < first + count; ++i) {
      v1::EnrolRequest req;
      req.set_card(CardNumber(i));
      req.set_display_name("Member " + std::to_string(i));
      req.set_language("en");
      flight.Acquire();
      service->Enrol(std::move(req), [&flight](core::Result<v1::MemberResponse> r) {
        flight.Release(r.ok() ? core::Status() : core::Status(r.error()));
      });
    }
    if (auto s = flight.Drain(); !s.ok()) Die("enrol", s.error());
  }

  // Records checkouts (a visit and a purchase each) by random members among
  // cards [first, first + members) until the outbox holds `events`.
  void Checkouts(int64_t first, int64_t members, int64_t events, uint64_t seed) {
    static const char* kCategories[] = {"Coffee", "Bakery", "Dairy", "Produce", "Snacks"};
    std::mt19937_64 rng(seed);
    InFlight flight(512);
    const int64_t needed = (events - service->PendingEvents() + 1) / 2;
    for (int64_t n = 0; n < needed; ++n) {
      v1::CommitRequest req;
      req.set_pos_txn_id(terminal_id + "-" + std::to_string(seed) + "-" + std::to_string(n));
      req.set_card(CardNumber(first + static_cast<int64_t>(rng() % static_cast<uint64_t>(members))));
      const int lines = 1 + static_cast<int>(rng() % 5);
      for (int l = 0; l < lines; ++l) {
        auto* line = req.add_lines();
        line->set_sku("SKU-" + std::to_string(rng() % 5000));
        line->set_category(kCategories[rng() % 5]);
        line->set_quantity(1 + static_cast<int64_t>(rng() % 3));
        line->set_unit_price(99 + static_cast<int64_t>(rng() % 1500));
      }
      req.set_party_size(1);
      flight.Acquire();
      service->Commit(std::move(req), [&flight](core::Result<v1::CommitResponse> r) {
        flight.Release(r.ok() ? core::Status() : core::Status(r.error()));
      });
    }
    if (auto s = flight.Drain(); !s.ok()) Die("checkout", s.error());
  }

  // Starts the agent's sync client against the server, as loyalty-agent
  // does (writes through the service's writer thread). It connects and
  // starts its first round at once.
  std::unique_ptr<sync::AgentSync> StartSync(uint16_t port) {
    sync::AgentSyncOptions o;
    o.host = "127.0.0.1";
    o.port = port;
    o.server_name = "127.0.0.1";
    o.terminal_id = terminal_id;
    o.db_path = (data_dir / "agent.db").string();
    o.tls_dir = bundle;
    o.interval = std::chrono::hours(1);  // rounds only when asked (or pushed)
    sync::AgentSyncHost host;
    agent::CheckoutService* svc = service.get();
    host.write = [svc](std::function<core::Status(storage::AgentStore&)> write) {
      std::promise<core::Status> promise;
      auto future = promise.get_future();
      svc->SubmitSyncWrite(std::move(write),
                           [&promise](core::Status s) { promise.set_value(std::move(s)); });
      return future.get();
    };
    host.catalogue_changed = [svc] { (void)svc->ReloadCatalogue(); };
    auto started = sync::AgentSync::Start(std::move(o), std::move(host));
    if (!started.ok()) Die("start the sync client", started.error());
    return std::move(*started);
  }

  // One sync from connect until the outbox is acknowledged and the downlink
  // pulled (SyncNow waits for a round that started after the call; if the
  // first round had already started, the second is a quick empty one).
  // `acked_seconds`: from connect until the outbox was empty (every event
  // acknowledged), watched from another thread every millisecond.
  struct Synced {
    double seconds = 0;
    double acked_seconds = 0;
    sync::SyncStatus status;
  };
  Synced SyncFromConnect(uint16_t port, const std::function<void()>& on_acked = {}) {
    std::atomic<bool> done{false};
    std::atomic<int64_t> acked_us{-1};
    const auto t0 = Clock::now();
    std::thread watch([&] {
      while (!done.load()) {
        if (service->PendingEvents() == 0) {
          acked_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0)
                         .count();
          if (on_acked) on_acked();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
    auto client = StartSync(port);
    auto status = client->SyncNow(std::chrono::minutes(10));
    const auto t1 = Clock::now();
    done = true;
    watch.join();
    if (!status.ok()) Die("sync", status.error());
    client->Stop();
    const double total = Seconds(t0, t1);
    return Synced{total, acked_us >= 0 ? static_cast<double>(acked_us) / 1e6 : total,
                  std::move(*status)};
  }
};

struct Row {
  std::string key, uuid, member_id;
  int64_t occurred_ms = 0;
  std::string body;
};

// The terminal's outbox as the rows the server stores for each event.
std::vector<Row> OutboxRows(const fs::path& db_path) {
  storage::Database::Options o;
  o.read_only = true;
  auto db = storage::Database::Open(db_path.string(), o);
  if (!db.ok()) Die("open the agent database", db.error());
  auto stmt = (*db)->Prepare("SELECT body FROM events WHERE acked = 0 ORDER BY seq");
  if (!stmt.ok()) Die("read the outbox", stmt.error());
  std::vector<Row> rows;
  for (;;) {
    auto row = (*stmt)->Step();
    if (!row.ok()) Die("read the outbox", row.error());
    if (!*row) break;
    v1::Event e;
    const auto blob = (*stmt)->ColumnBlob(0);
    e.ParseFromArray(blob.data(), static_cast<int>(blob.size()));
    const auto& id = e.id();
    rows.push_back(Row{id.store_id() + "/" + id.terminal_id() + "/" + std::to_string(id.epoch()) +
                           "/" + std::to_string(id.seq()),
                       id.uuid(), e.member_id(), e.occurred_at_ms(), std::string(blob)});
  }
  return rows;
}

// The physical limit: the same rows into a fresh SQLite file, 100 per
// transaction, WAL, synchronous=FULL. Rows per second.
double BareInsert(const fs::path& path, const std::vector<Row>& rows) {
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path.string() + suffix);
  storage::Database::Options o;  // WAL + synchronous=FULL
  o.batch_wal_writes = false;    // SQLite as it comes
  auto db = storage::Database::Open(path.string(), o);
  if (!db.ok()) Die("open the bare database", db.error());
  storage::Database& bare = **db;
  if (auto s = bare.Exec("CREATE TABLE events(event_key TEXT PRIMARY KEY, uuid TEXT NOT NULL, "
                         "member_id TEXT NOT NULL, occurred_ms INTEGER NOT NULL, "
                         "body BLOB NOT NULL) WITHOUT ROWID");
      !s.ok()) {
    Die("create the bare table", s.error());
  }
  const auto t0 = Clock::now();
  for (size_t i = 0; i < rows.size(); i += 100) {
    auto txn = storage::Transaction::Begin(bare);
    if (!txn.ok()) Die("bare begin", txn.error());
    for (size_t j = i; j < std::min(rows.size(), i + 100); ++j) {
      auto stmt = bare.Prepare(
          "INSERT INTO events(event_key, uuid, member_id, occurred_ms, body) VALUES(?, ?, ?, ?, ?)");
      if (!stmt.ok()) Die("bare insert", stmt.error());
      const Row& r = rows[j];
      if (auto s = (*stmt)->Bind(1, r.key).Bind(2, r.uuid).Bind(3, r.member_id)
                       .Bind(4, r.occurred_ms).BindBlob(5, r.body).Run();
          !s.ok()) {
        Die("bare insert", s.error());
      }
    }
    if (auto s = txn->Commit(); !s.ok()) Die("bare commit", s.error());
  }
  return static_cast<double>(rows.size()) / Seconds(t0, Clock::now());
}

// CPU time of this process (the agent's checkout service and sync client).
double OwnCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int64_t ServerEventCount(const fs::path& db_path, const std::string& store_id) {
  storage::Database::Options o;
  o.read_only = true;
  auto db = storage::Database::Open(db_path.string(), o);
  if (!db.ok()) Die("open the server database", db.error());
  auto stmt = (*db)->Prepare("SELECT count(*) FROM events WHERE event_key >= ? AND event_key < ?");
  if (!stmt.ok()) Die("count server events", stmt.error());
  (*stmt)->Bind(1, store_id + "/").Bind(2, store_id + "0");
  auto row = (*stmt)->Step();
  if (!row.ok()) Die("count server events", row.error());
  return (*stmt)->ColumnInt(0);
}

int Run() {
  spdlog::set_level(spdlog::level::warn);
  const fs::path dir = std::getenv("LOYALTY_BENCH_DIR") && *std::getenv("LOYALTY_BENCH_DIR")
                           ? fs::path(std::getenv("LOYALTY_BENCH_DIR"))
                           : fs::path("/var/tmp/loyalty-sync-bench");
  const int64_t events = EnvInt("SYNC_BENCH_EVENTS", 100000);
  const int64_t members = EnvInt("SYNC_BENCH_MEMBERS", 10000);
  const int64_t catchup_events = EnvInt("SYNC_BENCH_CATCHUP_EVENTS", 10000);
  const int64_t catchup_members = EnvInt("SYNC_BENCH_CATCHUP_MEMBERS", 2000);
  const char* server_env = std::getenv("SYNC_BENCH_SERVER");
  const std::string server_bin =
      server_env && *server_env ? server_env : SiblingBinary("server/loyalty-server");
  if (members >= events) {
    std::cerr << "sync_bench: SYNC_BENCH_MEMBERS must be below SYNC_BENCH_EVENTS\n";
    return 2;
  }

  fs::remove_all(dir);
  fs::create_directories(dir);
  std::cout << "work directory " << dir.string() << "\n";
  if (auto s = MakePki(dir, {"S1", "S2"}); !s.ok()) Die("create the CA and bundles", s.error());
  auto server = ServerProcess::Start(server_bin, dir, {"--log-level", "warn"});
  if (!server.ok()) Die("start loyalty-server", server.error());
  const uint16_t port = (*server)->sync_port();
  std::cout << "loyalty-server pid " << (*server)->pid() << " on 127.0.0.1:" << port << "\n";

  // Store S2's terminal: enrols its members and syncs (its cursor now
  // reaches the feed), then goes offline for a week of checkouts.
  std::cout << "== preparing: store S2 syncs, then records " << catchup_events
            << " events offline\n";
  Terminal s2 = Terminal::Open(dir, "S2", "till-1");
  s2.Enrol(1'000'000, catchup_members);
  auto first = s2.SyncFromConnect(port);
  if (first.status.pending_events != 0) {
    std::cerr << "sync_bench: S2's first sync left " << first.status.pending_events
              << " events\n";
    return 1;
  }
  s2.Checkouts(1'000'000, catchup_members, catchup_events, 2);
  const int64_t s2_backlog = s2.service->PendingEvents();

  // Store S1's terminal: a backlog of `events`.
  std::cout << "== preparing: store S1 records a backlog of " << events << " events ("
            << members << " members)\n";
  Terminal s1 = Terminal::Open(dir, "S1", "till-1");
  const auto b0 = Clock::now();
  s1.Enrol(0, members);
  s1.Checkouts(0, members, events, 1);
  const int64_t backlog = s1.service->PendingEvents();
  std::cout << "   recorded " << backlog << " events in " << Seconds(b0, Clock::now())
            << " s through the checkout service\n";

  // The bare baseline, on the same disk, in the same run, before and after
  // the product (the better of the two is the limit we compare with).
  const std::vector<Row> rows = OutboxRows(s1.data_dir / "agent.db");
  size_t bytes = 0;
  for (const Row& r : rows) bytes += r.body.size();
  std::cout << "== ingest: " << rows.size() << " events, " << bytes / rows.size()
            << " bytes per event body\n";
  const double bare_before = BareInsert(dir / "bare.db", rows);

  const double cpu0 = (*server)->CpuSeconds();
  const double own0 = OwnCpuSeconds();
  double server_cpu_acked = 0, agent_cpu_acked = 0;
  auto ingest = s1.SyncFromConnect(port, [&] {
    server_cpu_acked = (*server)->CpuSeconds() - cpu0;
    agent_cpu_acked = OwnCpuSeconds() - own0;
  });
  const double server_cpu = (*server)->CpuSeconds() - cpu0;
  const double bare_after = BareInsert(dir / "bare.db", rows);
  const double bare = std::max(bare_before, bare_after);
  const int64_t on_server = ServerEventCount((*server)->db_path(), "S1");
  const double product = static_cast<double>(backlog) / ingest.acked_seconds;
  std::cout << "   bare insert (100 rows/txn, WAL, synchronous=FULL): " << static_cast<int64_t>(bare_before)
            << " rows/s before, " << static_cast<int64_t>(bare_after) << " rows/s after\n";
  std::cout << "   product sync: " << backlog << " events acknowledged in " << ingest.acked_seconds
            << " s = " << static_cast<int64_t>(product) << " events/s; the whole round (the "
            << "ledger folded, the downlink pulled) " << ingest.seconds << " s = "
            << static_cast<int64_t>(static_cast<double>(backlog) / ingest.seconds)
            << " events/s (server CPU " << server_cpu << " s); pending "
            << ingest.status.pending_events << ", dead letters " << ingest.status.dead_letters
            << ", in the server's ledger " << on_server << "\n";
  const double ratio = product / bare;
  std::cout << "   CPU until acknowledged: server " << server_cpu_acked << " s, agent "
            << agent_cpu_acked << " s\n";
  std::cout << "   ratio product / bare = " << ratio << " (target >= 0.5: "
            << (ratio >= 0.5 ? "met" : "NOT met") << ")\n";

  // Catch-up: S2 reconnects after its week offline.
  const uint64_t cursor_before = first.status.cursor;
  auto catchup = s2.SyncFromConnect(port);
  std::cout << "== catch-up: store S2 uploads " << s2_backlog << " events and pulls changes "
            << cursor_before << " -> " << catchup.status.cursor << ": " << catchup.seconds
            << " s from connect (target < 2 s: " << (catchup.seconds < 2 ? "met" : "NOT met")
            << "); pending " << catchup.status.pending_events << ", dead letters "
            << catchup.status.dead_letters << "\n";
  std::cout << "server RSS " << (*server)->RssKib() / 1024 << " MiB, peak "
            << (*server)->PeakRssKib() / 1024 << " MiB\n";

  const bool ok = ingest.status.pending_events == 0 && ingest.status.dead_letters == 0 &&
                  on_server == backlog && catchup.status.pending_events == 0 &&
                  catchup.status.dead_letters == 0;
  s1.service->Stop();
  s2.service->Stop();
  const int status = (*server)->Stop();
  if (status != 0) std::cerr << "sync_bench: loyalty-server exited with " << status << "\n";
  if (!EnvInt("SYNC_BENCH_KEEP", 0)) fs::remove_all(dir);
  if (!ok) {
    std::cerr << "sync_bench: the sync did not complete as expected\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace loyalty::bench

int main() { return loyalty::bench::Run(); }
