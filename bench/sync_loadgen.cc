// sync_loadgen: many concurrent store agents against one real loyalty-server.
// It creates a CA, a server bundle and `--stores` store bundles, starts
// loyalty-server on loopback, then
//   1. connects `--connections` mutual-TLS sync connections (terminals spread
//      over the stores, at most `--handshakes` handshakes at a time), each
//      completing the Hello; the server's resident memory before and after
//      gives the memory per idle connection;
//   2. keeps all of them syncing for `--seconds`, like loyalty-agent: every
//      `--interval-ms` (jittered) each terminal uploads a batch of
//      `--batch` events (its member's enrolment first, then visits and
//      purchases), waits for the UploadAck and pulls the change feed after
//      its cursor until has_more is false; a push from the server triggers a
//      pull too (`--pull push`, the agent's behaviour; `round` pulls only
//      after uploads, `none` never);
//   3. reports connections held, failures, acknowledged events per second,
//      upload->ack latency, pulls and pushes, the server's CPU use and its
//      RSS / peak RSS, and memory per connection.
//
//   sync_loadgen [--connections 5000] [--stores 50] [--seconds 60]
//                [--interval-ms 5000] [--batch 2] [--pull push|round|none]
//                [--scope all|store]
//                [--handshakes 64] [--threads 1] [--dir DIR] [--server BIN]
//
// Each thread runs its own io_context and owns its terminals, so a
// terminal's state is only touched by that thread (no locks).
#include <utility>  // before Asio (Boost 1.74)

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/latency.h"
#include "bench/sync_fixture.h"
#include "pki/bundle.h"
#include "sync/connection.h"
#include "sync/tls.h"

namespace loyalty::bench {
namespace {

namespace fs = std::filesystem;
namespace net = boost::asio;
using Clock = std::chrono::steady_clock;

struct Config {
  int connections = 5000;
  int stores = 50;
  double seconds = 60;
  int interval_ms = 5000;
  int batch = 2;
  std::string pull = "push";
  std::string scope = "all";  // which members each terminal replicates
  int handshakes = 64;
  int threads = 1;
  std::string dir = "/var/tmp/loyalty-sync-loadgen";
  std::string server_bin;
};

struct Stats {
  std::atomic<int64_t> opened{0};
  std::atomic<int64_t> failed{0};   // never opened
  std::atomic<int64_t> dropped{0};  // closed after opening, not by us
  std::atomic<int64_t> uploads{0};  // batches acknowledged
  std::atomic<int64_t> acked{0};    // events acknowledged
  std::atomic<int64_t> rejected{0};
  std::atomic<int64_t> errors{0};  // SyncError answers
  std::atomic<int64_t> pulls{0};   // ChangesPages received
  std::atomic<int64_t> changes{0};
  std::atomic<int64_t> pushes{0};
  std::atomic<int64_t> overruns{0};  // a round still running when the next was due
  std::atomic<bool> measuring{false};
  std::mutex mu;
  std::map<std::string, int64_t> close_reasons;  // guarded by mu
};

// Bounds the handshakes in progress.
class Ramp {
 public:
  explicit Ramp(int max) : max_(max) {}
  void Acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return n_ < max_; });
    ++n_;
  }
  void Release() {
    std::lock_guard lock(mu_);
    --n_;
    cv_.notify_all();
  }
  void Drain() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return n_ == 0; });
  }

 private:
  const int max_;
  std::mutex mu_;
  std::condition_variable cv_;
  int n_ = 0;
};

struct Shard;

// One terminal. Touched only on its shard's thread once connecting starts.
struct Terminal {
  Shard* shard = nullptr;
  int index = 0;
  std::string store_id;
  std::string terminal_id;
  std::string member_id;
  std::string card_hash;
  sync::ConnectionPtr conn;
  std::unique_ptr<net::steady_timer> timer;
  bool open = false;
  bool closing = false;  // closed by us
  bool enrolled = false;
  bool busy = false;         // a round is running
  bool pull_wanted = false;  // a push arrived during the round
  uint64_t seq = 0;
  uint64_t cursor = 0;
  uint64_t next_correlation = 0;
  uint64_t upload_correlation = 0;
  uint64_t changes_correlation = 0;
  size_t upload_size = 0;
  Clock::time_point upload_sent;
};

struct Shard {
  net::io_context ioc{1};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::thread thread;
  std::vector<int64_t> ack_nanos;  // upload -> ack
  std::mt19937_64 rng;
};

class LoadGen {
 public:
  LoadGen(Config config, uint16_t port, std::vector<std::shared_ptr<net::ssl::context>> contexts)
      : config_(std::move(config)), port_(port), contexts_(std::move(contexts)), ramp_(config_.handshakes) {}

  void Start() {
    for (int i = 0; i < config_.threads; ++i) {
      auto shard = std::make_unique<Shard>();
      shard->work.emplace(shard->ioc.get_executor());
      shard->rng.seed(static_cast<uint64_t>(i) + 1);
      Shard* s = shard.get();
      shard->thread = std::thread([s] { s->ioc.run(); });
      shards_.push_back(std::move(shard));
    }
    terminals_.resize(static_cast<size_t>(config_.connections));
    for (int i = 0; i < config_.connections; ++i) {
      Terminal& t = terminals_[static_cast<size_t>(i)];
      t.shard = shards_[static_cast<size_t>(i % config_.threads)].get();
      t.index = i;
      t.store_id = "L" + std::to_string(i % config_.stores);
      t.terminal_id = "till-" + std::to_string(i / config_.stores);
      t.member_id = "p-lg-" + std::to_string(i);
      char hash[65];
      std::snprintf(hash, sizeof hash, "%064x", i + 1);
      t.card_hash = hash;
      t.timer = std::make_unique<net::steady_timer>(t.shard->ioc);
    }
  }

  // Opens every connection (Hello included); returns when each one opened
  // or failed.
  void ConnectAll() {
    for (auto& t : terminals_) {
      ramp_.Acquire();
      Connect(t);
    }
    ramp_.Drain();
  }

  // Starts the periodic rounds on every open terminal.
  void StartSyncing() {
    stats_.measuring = true;
    for (auto& t : terminals_) {
      net::post(t.shard->ioc, [this, &t] {
        if (!t.open) return;
        std::uniform_int_distribution<int> first(0, config_.interval_ms);
        Arm(t, std::chrono::milliseconds(first(t.shard->rng)));
      });
    }
  }

  void StopSyncing() {
    stats_.measuring = false;
    for (auto& t : terminals_) {
      net::post(t.shard->ioc, [&t] { t.timer->cancel(); });
    }
  }

  void CloseAll() {
    for (auto& t : terminals_) {
      net::post(t.shard->ioc, [&t] {
        t.closing = true;
        t.timer->cancel();
        if (t.conn) t.conn->Close();
      });
    }
    // Give the close_notify a moment, then stop the threads.
    std::this_thread::sleep_for(std::chrono::seconds(2));
    for (auto& s : shards_) {
      s->work.reset();
      s->ioc.stop();
    }
    for (auto& s : shards_) s->thread.join();
  }

  Stats& stats() { return stats_; }
  Latencies AckLatencies() {
    Latencies all;
    for (auto& s : shards_) {
      for (int64_t n : s->ack_nanos) all.Add(n);
    }
    return all;
  }

 private:
  void Connect(Terminal& t) {
    v1::Hello hello;
    hello.set_agent_version("sync_loadgen");
    hello.set_terminal_id(t.terminal_id);
    hello.set_epoch(1);
    sync::ConnectionCallbacks callbacks;
    callbacks.on_open = [this, &t](const sync::ConnectionPtr&) {
      t.open = true;
      ++stats_.opened;
      ramp_.Release();
    };
    callbacks.on_frame = [this, &t](const sync::ConnectionPtr&, v1::Frame frame) {
      OnFrame(t, std::move(frame));
    };
    callbacks.on_close = [this, &t](const sync::ConnectionPtr&, const core::Error& reason) {
      t.timer->cancel();
      if (!t.open) {
        ++stats_.failed;
        ramp_.Release();
      } else if (!t.closing) {
        ++stats_.dropped;
      }
      t.open = false;
      if (!t.closing) {
        std::lock_guard lock(stats_.mu);
        ++stats_.close_reasons[reason.code + ": " + reason.message];
      }
    };
    sync::ConnectionOptions options;
    options.handshake_timeout = std::chrono::seconds(60);
    options.idle_timeout = std::chrono::minutes(10);
    const auto& ctx = contexts_[static_cast<size_t>(t.index % config_.stores)];
    t.conn = sync::Connection::Connect(t.shard->ioc.get_executor(), ctx, "127.0.0.1", port_,
                                       "127.0.0.1", std::move(hello), options, std::move(callbacks));
  }

  void Arm(Terminal& t, std::chrono::milliseconds after) {
    t.timer->expires_after(after);
    t.timer->async_wait([this, &t](boost::system::error_code ec) {
      if (ec || !t.open || !stats_.measuring) return;
      if (t.busy) {
        ++stats_.overruns;
      } else {
        Upload(t);
      }
      std::uniform_int_distribution<int> jitter(config_.interval_ms * 3 / 4,
                                                config_.interval_ms * 5 / 4);
      Arm(t, std::chrono::milliseconds(jitter(t.shard->rng)));
    });
  }

  v1::Event NewEvent(Terminal& t, int64_t now_ms) {
    v1::Event e;
    auto* id = e.mutable_id();
    id->set_store_id(t.store_id);
    id->set_terminal_id(t.terminal_id);
    id->set_epoch(1);
    id->set_seq(++t.seq);
    char uuid[40];
    std::snprintf(uuid, sizeof uuid, "%08x-0000-4000-8000-%012llx", t.index,
                  static_cast<unsigned long long>(t.seq));
    id->set_uuid(uuid);
    e.set_occurred_at_ms(now_ms);
    e.set_member_id(t.member_id);
    return e;
  }

  void Upload(Terminal& t) {
    t.busy = true;
    const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    v1::Frame frame;
    auto* batch = frame.mutable_upload_batch();
    batch->set_batch_id(t.seq + 1);
    for (int i = 0; i < config_.batch; ++i) {
      v1::Event e = NewEvent(t, now_ms);
      if (!t.enrolled) {
        e.mutable_enrolment()->set_card_hash(t.card_hash);
        e.mutable_enrolment()->set_display_name("Load " + std::to_string(t.index));
        t.enrolled = true;
      } else if (i % 2 == 0) {
        e.mutable_visit()->set_pos_txn_id("lg-" + std::to_string(t.seq));
        e.mutable_visit()->set_party_size(1);
      } else {
        auto* p = e.mutable_purchase();
        p->set_pos_txn_id("lg-" + std::to_string(t.seq - 1));
        auto* line = p->add_lines();
        line->mutable_line()->set_sku("SKU-" + std::to_string(t.seq % 500));
        line->mutable_line()->set_category("Coffee");
        line->mutable_line()->set_quantity(1);
        line->mutable_line()->set_unit_price(350);
        line->set_gross(350);
        line->set_net(350);
        line->set_points(3);
        p->set_subtotal(350);
        p->set_total(350);
        p->set_points_earned(3);
        p->set_qualifying_spend(350);
      }
      *batch->add_events() = std::move(e);
    }
    t.upload_size = static_cast<size_t>(config_.batch);
    t.upload_correlation = ++t.next_correlation;
    frame.set_correlation_id(t.upload_correlation);
    t.upload_sent = Clock::now();
    t.conn->Send(std::move(frame));
  }

  void Pull(Terminal& t) {
    t.busy = true;
    v1::Frame frame;
    frame.mutable_changes_request()->set_after_version(t.cursor);
    frame.mutable_changes_request()->set_max_changes(500);
    frame.mutable_changes_request()->set_member_scope(
        config_.scope == "store" ? v1::MEMBER_SCOPE_STORE : v1::MEMBER_SCOPE_ALL);
    t.changes_correlation = ++t.next_correlation;
    frame.set_correlation_id(t.changes_correlation);
    t.conn->Send(std::move(frame));
  }

  void RoundDone(Terminal& t) {
    t.busy = false;
    if (t.pull_wanted && stats_.measuring) {
      t.pull_wanted = false;
      Pull(t);
    }
  }

  void OnFrame(Terminal& t, v1::Frame frame) {
    if (frame.has_push()) {
      ++stats_.pushes;
      if (config_.pull != "push" || !stats_.measuring) return;
      if (t.busy) {
        t.pull_wanted = true;
      } else {
        Pull(t);
      }
      return;
    }
    if (frame.has_error()) {
      ++stats_.errors;
      {
        std::lock_guard lock(stats_.mu);
        ++stats_.close_reasons["SyncError " + frame.error().code()];
      }
      return RoundDone(t);
    }
    if (frame.has_upload_ack() && frame.correlation_id() == t.upload_correlation) {
      t.shard->ack_nanos.push_back(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t.upload_sent)
              .count());
      ++stats_.uploads;
      stats_.acked += frame.upload_ack().acknowledged_size();
      stats_.rejected += frame.upload_ack().rejected_size();
      if (config_.pull == "none") return RoundDone(t);
      return Pull(t);
    }
    if (frame.has_changes_page() && frame.correlation_id() == t.changes_correlation) {
      ++stats_.pulls;
      stats_.changes += frame.changes_page().changes_size();
      t.cursor = frame.changes_page().cursor();
      if (frame.changes_page().has_more() && stats_.measuring) return Pull(t);
      return RoundDone(t);
    }
  }

  const Config config_;
  const uint16_t port_;
  const std::vector<std::shared_ptr<net::ssl::context>> contexts_;
  Ramp ramp_;
  Stats stats_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<Terminal> terminals_;
};

bool ParseArgs(int argc, char** argv, Config* c) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--connections") c->connections = std::stoi(next());
    else if (a == "--stores") c->stores = std::stoi(next());
    else if (a == "--seconds") c->seconds = std::stod(next());
    else if (a == "--interval-ms") c->interval_ms = std::stoi(next());
    else if (a == "--batch") c->batch = std::stoi(next());
    else if (a == "--pull") c->pull = next();
    else if (a == "--scope") c->scope = next();
    else if (a == "--handshakes") c->handshakes = std::stoi(next());
    else if (a == "--threads") c->threads = std::stoi(next());
    else if (a == "--dir") c->dir = next();
    else if (a == "--server") c->server_bin = next();
    else {
      std::cerr << "sync_loadgen: unknown option " << a << "\n";
      return false;
    }
  }
  if (c->connections < 1 || c->stores < 1 || c->threads < 1 || c->handshakes < 1 ||
      c->batch < 1 || c->interval_ms < 1 ||
      (c->pull != "push" && c->pull != "round" && c->pull != "none") ||
      (c->scope != "all" && c->scope != "store")) {
    std::cerr << "sync_loadgen: invalid option value\n";
    return false;
  }
  if (c->server_bin.empty()) c->server_bin = SiblingBinary("server/loyalty-server");
  return true;
}

int Run(int argc, char** argv) {
  Config config;
  try {
    if (!ParseArgs(argc, argv, &config)) return 2;
  } catch (const std::exception&) {
    std::cerr << "sync_loadgen: bad number in the options\n";
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  // Each connection holds a socket here too; loyalty-server raises its own.
  const uint64_t limit = RaiseFileLimit(static_cast<uint64_t>(config.connections) + 256);
  if (limit < static_cast<uint64_t>(config.connections) + 64) {
    std::cerr << "sync_loadgen: the open-file limit is " << limit << "; raise it (ulimit -n)\n";
    return 1;
  }

  const fs::path dir = config.dir;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<std::string> store_ids;
  for (int i = 0; i < config.stores; ++i) store_ids.push_back("L" + std::to_string(i));
  if (auto s = MakePki(dir, store_ids); !s.ok()) {
    std::cerr << "sync_loadgen: " << s.error().message << "\n";
    return 1;
  }
  std::vector<std::shared_ptr<net::ssl::context>> contexts;
  for (const auto& id : store_ids) {
    auto bundle = pki::LoadBundle(StoreBundle(dir, id));
    if (!bundle.ok()) return std::cerr << bundle.error().message << "\n", 1;
    auto ctx = sync::MakeClientContext(*bundle);
    if (!ctx.ok()) return std::cerr << ctx.error().message << "\n", 1;
    contexts.push_back(*ctx);
  }
  auto server = ServerProcess::Start(config.server_bin, dir, {"--log-level", "warn"});
  if (!server.ok()) {
    std::cerr << "sync_loadgen: " << server.error().message << "\n";
    return 1;
  }
  ServerProcess& srv = **server;
  std::this_thread::sleep_for(std::chrono::seconds(1));  // start-up work settles
  const int64_t rss_idle = srv.RssKib();
  std::cout << "loyalty-server pid " << srv.pid() << " on 127.0.0.1:" << srv.sync_port()
            << ", RSS " << rss_idle / 1024.0 << " MiB idle\n";

  LoadGen gen(config, srv.sync_port(), contexts);
  gen.Start();
  const double cpu0 = srv.CpuSeconds();
  const auto t0 = Clock::now();
  gen.ConnectAll();
  const double connect_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const int64_t opened = gen.stats().opened.load();
  const int64_t rss_open = srv.RssKib();
  std::cout << "== connect: " << opened << " of " << config.connections
            << " mutual-TLS connections open in " << connect_s << " s ("
            << opened / connect_s << "/s, server CPU " << srv.CpuSeconds() - cpu0 << " s), "
            << gen.stats().failed.load() << " failed\n";
  std::cout << "   server RSS " << rss_open / 1024.0 << " MiB = "
            << (opened > 0 ? static_cast<double>(rss_open - rss_idle) / static_cast<double>(opened)
                           : 0.0)
            << " KiB per idle connection\n";

  const double cpu1 = srv.CpuSeconds();
  gen.StartSyncing();
  const auto s0 = Clock::now();
  Stats& st = gen.stats();
  int64_t last_acked = 0;
  for (int sec = 1; sec <= static_cast<int>(config.seconds); ++sec) {
    std::this_thread::sleep_for(s0 + std::chrono::seconds(sec) - Clock::now());
    if (sec % 10 == 0 || sec == static_cast<int>(config.seconds)) {
      const int64_t acked = st.acked.load();
      std::cout << "   t=" << sec << " s: open " << st.opened - st.dropped << ", acked events "
                << acked << " (+" << acked - last_acked << "), pulls " << st.pulls
                << ", pushes " << st.pushes << ", server RSS " << srv.RssKib() / 1024 << " MiB\n"
                << std::flush;
      last_acked = acked;
    }
  }
  const double sync_s = std::chrono::duration<double>(Clock::now() - s0).count();
  const double server_cpu = srv.CpuSeconds() - cpu1;
  gen.StopSyncing();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // answers in flight arrive
  const int64_t rss_sync = srv.RssKib();
  const int64_t held = st.opened - st.dropped;
  gen.CloseAll();  // joins the threads: their samples are ours now
  Latencies lat = gen.AckLatencies();
  std::cout << "== sync for " << sync_s << " s, every " << config.interval_ms << " ms, "
            << config.batch << " events per upload, pull " << config.pull << "\n";
  std::cout << "   connections held " << held << " of " << config.connections << " ("
            << st.failed << " failed to open, " << st.dropped << " dropped)\n";
  std::cout << "   acknowledged " << st.acked << " events in " << st.uploads << " uploads = "
            << st.acked / sync_s << " events/s, " << st.uploads / sync_s
            << " uploads/s; rejected " << st.rejected << ", errors " << st.errors
            << ", rounds overrun " << st.overruns << "\n";
  std::cout << "   upload->ack latency p50 " << lat.PercentileMicros(0.5) / 1000 << " ms, p99 "
            << lat.PercentileMicros(0.99) / 1000 << " ms, max "
            << lat.PercentileMicros(1.0) / 1000 << " ms\n";
  std::cout << "   pulls " << st.pulls << " (" << st.changes << " changes), pushes received "
            << st.pushes << "\n";
  std::cout << "   server CPU " << server_cpu << " s in " << sync_s << " s = "
            << 100 * server_cpu / sync_s << "% of one core\n";
  std::cout << "   server RSS " << rss_sync / 1024.0 << " MiB, peak " << srv.PeakRssKib() / 1024.0
            << " MiB; " << (held > 0 ? static_cast<double>(rss_sync - rss_idle) / held : 0.0)
            << " KiB per connection while syncing\n";
  {
    std::lock_guard lock(st.mu);
    for (const auto& [reason, n] : st.close_reasons) {
      std::cout << "   closed or refused: " << n << " x " << reason << "\n";
    }
  }
  const bool all_held = held == config.connections && st.errors == 0 && st.rejected == 0;
  std::cout << "RESULT connections=" << config.connections << " held=" << held
            << " failed=" << st.failed << " dropped=" << st.dropped
            << " acked_per_s=" << static_cast<int64_t>(st.acked / sync_s)
            << " kib_per_conn_idle="
            << (opened > 0 ? (rss_open - rss_idle) / opened : 0)
            << " kib_per_conn_sync=" << (held > 0 ? (rss_sync - rss_idle) / held : 0)
            << " server_cpu_pct=" << static_cast<int64_t>(100 * server_cpu / sync_s) << "\n";
  srv.Stop();
  fs::remove_all(dir);
  return all_held ? 0 : 1;
}

}  // namespace
}  // namespace loyalty::bench

int main(int argc, char** argv) { return loyalty::bench::Run(argc, argv); }
