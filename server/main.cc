// loyalty-server: the central server. Parses the configuration, opens the
// ledger, serves store agents (sync, mutual TLS) and head office (admin
// API, mutual TLS with admin certificates) until SIGTERM/SIGINT, then stops
// accepting, closes agent connections, drains the database queue and exits.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <utility>  // before Asio (Boost 1.74)

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "pki/bundle.h"
#include "pki/ca.h"
#include "server/admin_api.h"
#include "server/admin_http.h"
#include "server/config.h"
#include "server/crl_watcher.h"
#include "server/db_worker.h"
#include "server/metrics.h"
#include "server/segmentation.h"
#include "server/sync_service.h"
#include "storage/server_store.h"
#include "sync/server.h"

namespace loyalty::server {
namespace {

namespace fs = std::filesystem;
namespace net = boost::asio;

constexpr std::size_t kMinCardHashKeyBytes = 16;
constexpr std::size_t kMaxCardHashKeyBytes = 1024;

std::string HostPort(const net::ip::tcp::endpoint& ep) {
  const std::string host =
      ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string();
  return host + ":" + std::to_string(ep.port());
}

// <tls-dir>/card-hash.key, copied there by `loyaltyctl pki issue-server`.
// Absent: no lookups by card number. Present but unusable: a config error.
core::Result<std::optional<std::string>> LoadCardHashKey(const fs::path& tls_dir) {
  const fs::path path = tls_dir / pki::kCardHashKeyFile;
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::optional<std::string>();
  const auto size = fs::file_size(path, ec);
  if (ec || size < kMinCardHashKeyBytes || size > kMaxCardHashKeyBytes) {
    return core::MakeError(core::code::kInvalidRequest,
                           "--tls-dir: '" + path.string() + "' must hold " +
                               std::to_string(kMinCardHashKeyBytes) + " to " +
                               std::to_string(kMaxCardHashKeyBytes) + " bytes");
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in) {
    return core::MakeError(core::code::kInvalidRequest,
                           "--tls-dir: cannot read '" + path.string() + "'");
  }
  return std::optional<std::string>(ss.str());
}

// Every store connection holds a socket: raise the soft open-file limit to
// the hard one (systemd's LimitNOFILE, or the shell's ulimit -Hn), since the
// usual soft default of 1024 would refuse stores long before memory or CPU
// run out. Returns the soft limit now in force.
rlim_t RaiseOpenFileLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit.rlim_cur;
}

int Run(int argc, char** argv) {
  auto config = ParseServerConfig(std::vector<std::string>(argv, argv + argc));
  if (!config) {
    std::cerr << "loyalty-server: " << config.error().message << "\n";
    return kConfigErrorExitCode;
  }
  if (config->help) {
    std::cout << ServerUsage();
    return 0;
  }
  auto logger = spdlog::stderr_color_mt("loyalty-server");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  auto config_error = [](const std::string& message) {
    spdlog::critical("{}", message);
    std::cerr << "loyalty-server: " << message << "\n";
    return kConfigErrorExitCode;
  };

  auto bundle = pki::LoadBundle(config->tls_dir);
  if (!bundle) {
    return config_error("--tls-dir: " + bundle.error().message + " (" + bundle.error().code + ")");
  }
  auto identity = pki::BundleIdentity(*bundle);
  if (!identity || identity->kind != pki::IdentityKind::kServer) {
    return config_error("--tls-dir: '" + config->tls_dir +
                        "' is not a server bundle (use `loyaltyctl pki issue-server`)");
  }
  auto card_key = LoadCardHashKey(config->tls_dir);
  if (!card_key) return config_error(card_key.error().message);
  if (!*card_key) {
    spdlog::warn("no card-hash.key in {}: admin lookups by card number are disabled",
                 config->tls_dir);
  }
  std::error_code ec;
  fs::create_directories(config->data_dir, ec);
  if (ec || !fs::is_directory(config->data_dir, ec)) {
    return config_error("--data-dir: cannot create directory '" + config->data_dir + "'");
  }

  const rlim_t open_files = RaiseOpenFileLimit();
  spdlog::info("open-file limit {} (about that many store connections at most)", open_files);

  // Block the shutdown signals before any thread starts, so every thread
  // inherits the mask and only sigwait() below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::string db_path = (fs::path(config->data_dir) / "server.db").string();
  storage::SegmentationOptions segmentation;
  segmentation.utc_offset_minutes = config->utc_offset_minutes;
  segmentation.referral_reward_points = config->referral_reward_points;
  auto store = storage::OpenSqliteServerStore(db_path, segmentation);
  if (!store) {
    spdlog::error("cannot open the server database {}: {} ({})", db_path, store.error().message,
                  store.error().code);
    return 1;
  }

  // Declared so that the metrics and the database worker outlive the
  // io_context: handlers destroyed with it may still refer to them.
  ServerMetrics metrics;
  FoldOptions fold;
  fold.on_fold = [&metrics](const storage::FoldOutcome& step) {
    metrics.FeedVersion(step.latest_version);
    metrics.Folded(step.folded, step.unfolded);
  };
  const int64_t unfolded = (*store)->UnfoldedEvents();
  if (unfolded > 0) spdlog::info("{} acknowledged events wait to be folded into the ledger", unfolded);
  DbWorker db(std::move(*store), 4096, 64, 2, std::move(fold));
  net::io_context ioc(config->io_threads);

  auto watcher = CrlWatcher::Create(ioc, *bundle, config->crl_file, config->crl_explicit,
                                    std::chrono::seconds(config->crl_reload_seconds));
  if (!watcher) return config_error("TLS: " + watcher.error().message);

  auto sync = SyncService::Create(ioc, db, metrics);
  AdminApi admin_api(db, metrics, sync, *card_key);
  auto segmenter =
      Segmenter::Create(ioc, db, std::chrono::minutes(config->segment_pass_minutes),
                        [sync](uint64_t version) { sync->FeedAdvanced(version); });
  admin_api.SetSegmenter(segmenter);

  const auto sync_ep =
      net::ip::tcp::endpoint(net::ip::make_address(config->listen_host), config->listen_port);
  auto sync_server = sync::Server::Listen(
      ioc, sync_ep, (*watcher)->context(), sync::ServerOptions{}, sync->Callbacks(),
      [](const core::Error& e) { spdlog::warn("sync {}", e.message); });
  if (!sync_server) {
    spdlog::error("--listen: {}", sync_server.error().message);
    return 1;
  }
  const auto admin_ep =
      net::ip::tcp::endpoint(net::ip::make_address(config->admin_host), config->admin_port);
  auto admin_server = AdminHttpServer::Listen(
      ioc, admin_ep, (*watcher)->context(), AdminHttpOptions{},
      [&admin_api](AdminRequest request, std::function<void(AdminReply)> respond) {
        admin_api.Handle(std::move(request), std::move(respond));
      });
  if (!admin_server) {
    spdlog::error("--admin-listen: {}", admin_server.error().message);
    (*sync_server)->Stop();
    return 1;
  }
  (*watcher)->Start([s = *sync_server, a = *admin_server, sync](SslContextPtr ctx) {
    s->SetTlsContext(ctx);
    a->SetTlsContext(ctx);
    sync->CloseRevoked(*ctx);
  });
  // The feed version the push logic starts from, and the metric.
  if (!db.Post([sync](storage::ServerStore& st) {
        if (auto v = st.LatestVersion(); v.ok()) sync->FeedAdvanced(*v);
      })) {
    spdlog::warn("cannot read the feed version at start");
  }

  segmenter->Start();
  auto work = net::make_work_guard(ioc);
  std::vector<std::thread> threads;
  for (int i = 0; i < config->io_threads; ++i) threads.emplace_back([&ioc] { ioc.run(); });

  // Tests and scripts read the ports from these lines, so they are written
  // even when the log level hides info messages.
  const std::string sync_line = "sync listening on " + HostPort((*sync_server)->local_endpoint());
  const std::string admin_line =
      "admin listening on " + HostPort((*admin_server)->local_endpoint());
  for (const std::string& line : {sync_line, admin_line}) {
    if (spdlog::should_log(spdlog::level::info)) {
      spdlog::info("{}", line);
    } else {
      std::cerr << "loyalty-server: " << line << std::endl;
    }
  }
  spdlog::info("server {} ready; database {}", identity->id, db_path);

  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  spdlog::info("{} received; shutting down", strsignal(sig));
  (*sync_server)->Stop();
  (*admin_server)->Stop();
  (*watcher)->Stop();
  segmenter->Stop();
  sync->CloseAll();
  // Give the close_notify of open connections a moment to go out.
  for (int i = 0; i < 50 && metrics.connected() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  db.Stop();  // runs what is queued; answers to closed connections are dropped
  work.reset();
  ioc.stop();
  for (auto& t : threads) t.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace
}  // namespace loyalty::server

int main(int argc, char** argv) { return loyalty::server::Run(argc, argv); }
