// loyalty-agent: the store terminal daemon. Parses the configuration, opens
// the checkout service, serves the local API until SIGTERM/SIGINT, then
// stops accepting, lets in-flight requests finish and drains the service.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>
#include <future>
#include <iostream>
#include <string>
#include <vector>

#include "agent/api.h"
#include "agent/checkout_service.h"
#include "agent/config.h"
#include "agent/customer_display.h"
#include "agent/display_hub.h"
#include "agent/http_server.h"
#include "agent/metrics.h"
#include "core/card.h"
#include "pki/bundle.h"
#include "storage/agent_store.h"
#include "agent/online_lookup.h"
#include "sync/agent_sync.h"

namespace loyalty::agent {
namespace {

struct DemoMember {
  std::string card;
  const char* name;
};

std::vector<DemoMember> DemoMembers() {
  static constexpr const char* kNames[] = {"Ana Garcia", "Ben Okafor", "Chloe Martin",
                                           "Dmitri Ivanov", "Eva Novak"};
  std::vector<DemoMember> members;
  int i = 1;
  for (const char* name : kNames) {
    std::string payload = "60359900000000" + std::to_string(i++);
    payload.push_back(core::LuhnCheckDigit(payload));
    members.push_back({payload, name});
  }
  return members;
}

// Enrols the demo members when the store looks empty: nothing pending and the
// first demo card unknown. Returns the cards that exist afterwards.
std::vector<DemoMember> SeedDemo(CheckoutService& service) {
  std::vector<DemoMember> members = DemoMembers();
  auto first = service.LookupMember(members.front().card);
  if (first.ok()) return members;  // seeded on an earlier start
  if (service.Health().pending_events() > 0) {
    spdlog::info("demo: the store already has data; not seeding demo members");
    return {};
  }
  std::vector<DemoMember> enrolled;
  for (const DemoMember& m : members) {
    loyalty::v1::EnrolRequest req;
    req.set_card(m.card);
    req.set_display_name(m.name);
    req.set_language("en");
    std::promise<core::Result<loyalty::v1::MemberResponse>> promise;
    auto future = promise.get_future();
    service.Enrol(std::move(req), [&promise](core::Result<loyalty::v1::MemberResponse> r) {
      promise.set_value(std::move(r));
    });
    auto result = future.get();
    if (!result.ok() && result.error().code != core::code::kAlreadyEnrolled) {
      spdlog::warn("demo: cannot enrol {}: {} ({})", m.name, result.error().message,
                   result.error().code);
      continue;
    }
    enrolled.push_back(m);
  }
  return enrolled;
}

void LogDemo(const std::vector<DemoMember>& members, const std::string& base) {
  if (members.empty()) return;
  for (const DemoMember& m : members) spdlog::info("demo member: {} card {}", m.name, m.card);
  const std::string& card = members.front().card;
  spdlog::info("try: curl -s {}/v1/members/{}", base, card);
  spdlog::info(
      "try: curl -s -X POST {}/v1/checkout/quote -d "
      "'{{\"card\":\"{}\",\"lines\":[{{\"sku\":\"COF-1\",\"category\":\"Coffee\","
      "\"quantity\":2,\"unit_price\":350}}]}}'",
      base, card);
  spdlog::info(
      "try: curl -s -X POST {}/v1/checkout/commit -d "
      "'{{\"pos_txn_id\":\"demo-1\",\"card\":\"{}\",\"lines\":[{{\"sku\":\"COF-1\","
      "\"category\":\"Coffee\",\"quantity\":2,\"unit_price\":350}}]}}'",
      base, card);
}

// Starts the sync client. Its writes go through the service's writer thread
// (see CheckoutService::SubmitSyncWrite for why); each blocks the sync
// thread until durable, which keeps a round's steps in order.
core::Result<std::unique_ptr<sync::AgentSync>> StartSync(const AgentConfig& config,
                                                         const ServiceOptions& options,
                                                         CheckoutService* service) {
  // The server takes the store id from the certificate: events recorded
  // under another id would all be refused as wrong_store.
  auto bundle = pki::LoadBundle(config.tls_dir);
  if (!bundle.ok()) return bundle.error();
  auto identity = pki::BundleIdentity(*bundle);
  if (!identity.ok()) return identity.error();
  if (identity->kind != pki::IdentityKind::kStore || identity->id != config.store_id) {
    return core::MakeError(core::code::kInvalidRequest,
                           "--tls-dir holds a certificate for " +
                               std::string(pki::KindName(identity->kind)) + " \"" + identity->id +
                               "\", but --store-id is \"" + config.store_id +
                               "\"; use the store's own bundle");
  }
  sync::AgentSyncOptions o;
  o.host = config.server_host;
  o.port = config.server_port;
  o.server_name = config.server_name;
  o.terminal_id = config.terminal_id;
  o.db_path = (std::filesystem::path(options.data_dir) / "agent.db").string();
  o.tls_dir = config.tls_dir;
  o.interval = std::chrono::milliseconds(config.sync_interval_ms);
  o.member_scope =
      config.member_scope_store ? loyalty::v1::MEMBER_SCOPE_STORE : loyalty::v1::MEMBER_SCOPE_ALL;
  sync::AgentSyncHost host;
  host.write = [service](std::function<core::Status(storage::AgentStore&)> write) {
    std::promise<core::Status> promise;
    auto future = promise.get_future();
    service->SubmitSyncWrite(std::move(write),
                             [&promise](core::Status s) { promise.set_value(std::move(s)); });
    return future.get();
  };
  host.catalogue_changed = [service] {
    if (auto s = service->ReloadCatalogue(); !s.ok()) {
      spdlog::error("cannot reload the catalogue after sync: {} ({})", s.error().message,
                    s.error().code);
    }
  };
  auto started = sync::AgentSync::Start(std::move(o), std::move(host));
  if (!started.ok()) return started.error();
  sync::AgentSync* client = started->get();
  service->SetCommitHook([client] { client->Trigger(); });
  spdlog::info("sync with {} every {} ms (server name {})", config.server,
               config.sync_interval_ms,
               config.server_name.empty() ? config.server_host : config.server_name);
  return started;
}

int Run(int argc, char** argv) {
  auto config = ParseAgentConfig(std::vector<std::string>(argv, argv + argc));
  if (!config) {
    std::cerr << "loyalty-agent: " << config.error().message << "\n";
    return kConfigErrorExitCode;
  }
  if (config->help) {
    std::cout << AgentUsage();
    return 0;
  }

  auto logger = spdlog::stderr_color_mt("loyalty-agent");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(config->log_level));

  auto options = BuildServiceOptions(*config);
  if (!options) {
    std::cerr << "loyalty-agent: " << options.error().message << "\n";
    return kConfigErrorExitCode;
  }
  // One process per data directory: two writers would interleave sequence
  // numbers and both believe they own the outbox. The lock dies with the
  // process, so a crash never leaves it behind.
  const std::string lock_path = (std::filesystem::path(config->data_dir) / "agent.lock").string();
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    std::cerr << "loyalty-agent: another loyalty-agent is already running on data directory "
              << config->data_dir << " (" << lock_path << " is locked); stop it first\n";
    return kConfigErrorExitCode;
  }

  // Block the shutdown signals before any thread starts, so every thread
  // inherits the mask and only sigwait() below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto service_or = OpenCheckoutService(*options);
  if (!service_or) {
    spdlog::error("cannot open the terminal database in {}: {} ({})", config->data_dir,
                  service_or.error().message, service_or.error().code);
    return 1;
  }
  std::unique_ptr<CheckoutService> service = std::move(*service_or);

  std::vector<DemoMember> demo;
  if (config->demo) demo = SeedDemo(*service);

  std::unique_ptr<sync::AgentSync> sync_client;
  std::unique_ptr<CheckoutService> owned_inner;  // wrapped by an OnlineLookupService
  if (!config->server.empty()) {
    auto started = StartSync(*config, *options, service.get());
    if (!started) {
      spdlog::error("cannot start sync with {}: {} ({})", config->server,
                    started.error().message, started.error().code);
      service->Stop();
      return kConfigErrorExitCode;
    }
    sync_client = std::move(*started);
  }

  // A terminal replicating only its store's members asks the server for the
  // others; the decorator owns that, the rest of the agent is unchanged.
  if (sync_client && config->member_scope_store) {
    sync::AgentSync* client = sync_client.get();
    const auto timeout = std::chrono::milliseconds(config->lookup_timeout_ms);
    CheckoutService* inner = service.release();
    owned_inner.reset(inner);
    service = std::make_unique<OnlineLookupService>(
        inner, options->card_hash_key,
        [client, timeout](const std::string& hash) { return client->LookupMember(hash, timeout); });
    spdlog::info("member scope: this store's members; others are looked up on the server");
  }

  Metrics metrics(Api::RouteNames());
  CheckoutService* svc = service.get();
  metrics.AddGauge("loyalty_pending_events", "Events not yet acknowledged by the server.",
                   [svc] { return static_cast<double>(svc->PendingEvents()); });
  metrics.AddGauge("loyalty_database_damaged",
                   "1 once SQLite found the terminal database malformed (see /v1/health).",
                   [svc] { return svc->Health().status() == "ok" ? 0.0 : 1.0; });
  DisplayHub display;
  Api api(service.get(), &metrics, &display);
  if (sync_client) api.SetSync(sync_client.get());
  CustomerDisplayOptions display_options;
  display_options.language = config->display_language;
  display_options.idle_after_thanks = std::chrono::seconds(config->display_idle_seconds);
  CustomerDisplay customer_display(service.get(), &display, display_options);

  HttpServerOptions http;
  http.host = config->listen_host;
  http.port = config->listen_port;
  http.io_threads = config->io_threads;
  http.max_body_bytes = config->max_body_bytes;
  const int rejected = metrics.RouteIndex("rejected");
  http.on_rejected = [&metrics, rejected](unsigned status) {
    metrics.Observe(rejected, status, 0);
  };
  http.event_streams.emplace(
      CustomerDisplay::kEventsPath,
      [&customer_display](const HttpRequest&, std::shared_ptr<EventStream> stream) {
        customer_display.OpenStream(std::move(stream));
      });
  int exit_code = 0;
  {
    HttpServer server(
        std::move(http), [&api, &customer_display](const HttpRequest& request, Respond respond) {
          const std::string_view target(request.target().data(), request.target().size());
          if (CustomerDisplay::Serves(target.substr(0, target.find('?')))) {
            return customer_display.Handle(request, std::move(respond));
          }
          api.Handle(request, std::move(respond));
        });
    if (auto st = server.Start(); !st) {
      spdlog::error("{}", st.error().message);
      service->Stop();
      return 1;
    }
    const auto ep = server.local_endpoint();
    const std::string host =
        ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string();
    const std::string base = host + ":" + std::to_string(ep.port());
    // Scripts and tests read the port from this line (--listen ...:0), so it
    // is written even when the log level hides info messages.
    if (spdlog::should_log(spdlog::level::info)) {
      spdlog::info("listening on {} (store {}, terminal {})", base, config->store_id,
                   config->terminal_id);
    } else {
      std::cerr << "loyalty-agent: listening on " << base << std::endl;
    }
    LogDemo(demo, "http://" + base);
    spdlog::info("customer display: http://{}/display", base);

    int sig = 0;
    while (sigwait(&signals, &sig) != 0) {
    }
    spdlog::info("{} received; shutting down", strsignal(sig));
    server.Stop();
    // Sync writes go through the service: stop sync before draining it.
    if (sync_client) sync_client->Stop();
    // Responses still queued in the service are answered (and dropped by
    // the stopped server) before the server object goes away.
    service->Stop();
  }
  spdlog::info("stopped");
  return exit_code;
}

}  // namespace
}  // namespace loyalty::agent

int main(int argc, char** argv) { return loyalty::agent::Run(argc, argv); }
