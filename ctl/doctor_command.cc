#include "ctl/doctor_command.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>  // before Asio (Boost 1.74)

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <optional>
#include <sstream>

#include "agent/config.h"
#include "ctl/commands.h"
#include "ctl/http_client.h"
#include "loyalty/v1/api.pb.h"
#include "pki/bundle.h"
#include "proto/json.h"
#include "storage/agent_store.h"
#include "sync/tls.h"

namespace loyalty::ctl {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr const char* kDefaultConfig = "/etc/loyalty/agent.conf";
constexpr const char* kAgentUser = "loyalty-agent";
constexpr long kExpiryWarningDays = 30;

enum class Status { kOk, kWarn, kFail };

const char* StatusName(Status s) {
  switch (s) {
    case Status::kOk:
      return "OK";
    case Status::kWarn:
      return "WARN";
    case Status::kFail:
      return "FAIL";
  }
  return "?";
}

struct Check {
  std::string name;
  Status status = Status::kOk;
  std::string message;
  std::string fix;  // empty when there is nothing to do
};

struct Options {
  std::string config = kDefaultConfig;
  std::string url;  // empty: from the configuration's listen address
  int timeout_ms = 3000;
  bool json = false;
  bool pending = false;
};

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// The uid of the loyalty-agent system user, when the configuration is the
// one the packaged service runs with (as that user); otherwise who runs the
// agent is unknown and ownership is not checked.
std::optional<uid_t> AgentUid(const Options& o) {
  if (o.config != kDefaultConfig) return std::nullopt;
  struct passwd pw;
  struct passwd* result = nullptr;
  char buf[4096];
  if (getpwnam_r(kAgentUser, &pw, buf, sizeof buf, &result) != 0 || result == nullptr) {
    return std::nullopt;
  }
  return pw.pw_uid;
}

// ---------------------------------------------------------------- checks --

Check CheckConfig(const Options& o, std::optional<agent::AgentConfig>* config) {
  Check c{"config", Status::kOk, "", ""};
  std::ifstream in(o.config);
  if (!in) {
    c.status = Status::kFail;
    std::error_code ec;
    c.message = fs::exists(o.config, ec) ? o.config + " is not readable (run as root?)"
                                         : o.config + " does not exist";
    c.fix = "install the loyalty-agent package, or pass --config FILE";
    return c;
  }
  auto parsed = agent::ParseAgentConfig({"loyalty-agent", "--config", o.config});
  if (!parsed) {
    c.status = Status::kFail;
    c.message = o.config + ": " + parsed.error().message;
    c.fix = "edit " + o.config + " (`loyalty-agent --help` lists the options)";
    return c;
  }
  *config = std::move(*parsed);
  const agent::AgentConfig& a = **config;
  c.message = o.config + ": store " + a.store_id + ", terminal " + a.terminal_id + ", data in " +
              a.data_dir;
  return c;
}

Check CheckDataDir(const Options& o, const agent::AgentConfig& a) {
  Check c{"data-dir", Status::kOk, a.data_dir, ""};
  struct stat st;
  if (::stat(a.data_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    c.status = Status::kFail;
    c.message = a.data_dir + " does not exist or is not a directory";
    c.fix = "install -d -o loyalty-agent -g loyalty-agent -m 0750 " + a.data_dir +
            " (the package's postinst does this)";
    return c;
  }
  if (auto uid = AgentUid(o); uid && st.st_uid != *uid) {
    c.status = Status::kWarn;
    c.message = a.data_dir + " is not owned by " + kAgentUser + ": the service cannot write it";
    c.fix = "chown -R loyalty-agent:loyalty-agent " + a.data_dir;
  }
  return c;
}

// The schema version this loyaltyctl knows: the one a fresh store gets.
std::optional<int> LatestSchemaVersion() {
  auto fresh = storage::AgentStore::Open(":memory:", {});
  if (!fresh.ok()) return std::nullopt;
  auto v = (*fresh)->db().UserVersion();
  if (!v.ok()) return std::nullopt;
  return *v;
}

core::Result<std::unique_ptr<storage::AgentStore>> OpenReadOnly(const std::string& path) {
  storage::Database::Options options;
  options.read_only = true;
  options.create = false;
  options.durability = storage::Database::Durability::kNormal;
  return storage::AgentStore::Open(path, options);
}

Check CheckDatabase(const agent::AgentConfig& a) {
  const std::string path = (fs::path(a.data_dir) / "agent.db").string();
  Check c{"database", Status::kOk, "", ""};
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    c.status = Status::kWarn;
    c.message = path + " does not exist yet";
    c.fix = "start the agent once (systemctl enable --now loyalty-agent); it creates it";
    return c;
  }
  const std::string corrupt_fix =
      "stop the agent (systemctl stop loyalty-agent), keep a copy of " + a.data_dir +
      ", then recover the events with `sqlite3 " + path +
      " .recover` into a new agent.db before restarting; never delete it: it holds events "
      "that may not be uploaded yet";
  auto store = OpenReadOnly(path);
  if (!store.ok()) {
    c.status = Status::kFail;
    c.message = "cannot open " + path + ": " + store.error().message;
    c.fix = corrupt_fix;
    return c;
  }
  storage::Database& db = (*store)->db();
  auto stmt = db.Prepare("PRAGMA quick_check");
  if (!stmt.ok()) {
    c.status = Status::kFail;
    c.message = path + ": " + stmt.error().message;
    c.fix = corrupt_fix;
    return c;
  }
  std::string problems;
  int problem_count = 0;
  while (true) {
    auto row = (*stmt)->Step();
    if (!row.ok()) {
      c.status = Status::kFail;
      c.message = path + ": " + row.error().message;
      c.fix = corrupt_fix;
      return c;
    }
    if (!*row) break;
    const std::string line = (*stmt)->ColumnText(0);
    if (line == "ok") continue;
    if (++problem_count <= 3) problems += (problems.empty() ? "" : "; ") + line;
  }
  (*stmt)->Reset();
  if (problem_count > 0) {
    c.status = Status::kFail;
    c.message = path + " is corrupt (quick_check: " + problems + ")";
    c.fix = corrupt_fix;
    return c;
  }
  auto version = db.UserVersion();
  if (!version.ok()) {
    c.status = Status::kFail;
    c.message = path + ": " + version.error().message;
    c.fix = corrupt_fix;
    return c;
  }
  const std::optional<int> latest = LatestSchemaVersion();
  std::ostringstream msg;
  msg << path << ": integrity ok, schema " << *version;
  if (latest && *version > *latest) {
    c.status = Status::kFail;
    c.message = msg.str() + ", newer than this release knows (" + std::to_string(*latest) + ")";
    c.fix = "install the loyalty-agent and loyaltyctl release that wrote it (downgrades are "
            "not supported)";
    return c;
  }
  if (*version == 0) {
    c.status = Status::kWarn;
    c.message = msg.str() + " (empty: not initialised yet)";
    c.fix = "start the agent once; it creates the schema";
    return c;
  }
  auto pending = (*store)->CountUnackedEvents();
  if (!pending.ok()) {
    c.status = Status::kFail;
    c.message = msg.str() + ": cannot count the outbox: " + pending.error().message;
    c.fix = corrupt_fix;
    return c;
  }
  msg << ", " << *pending << " event(s) waiting for upload";
  if (latest && *version < *latest) {
    c.status = Status::kWarn;
    c.message = msg.str() + "; the agent migrates it to schema " + std::to_string(*latest) +
                " on its next start";
    c.fix = "systemctl restart loyalty-agent";
    return c;
  }
  auto dead = (*store)->CountDeadLetters();
  if (dead.ok() && *dead > 0) {
    c.status = Status::kWarn;
    c.message = msg.str() + ", " + std::to_string(*dead) + " refused by the server for good";
    c.fix = "loyaltyctl sync --status lists them; ask head office to resolve them";
    return c;
  }
  c.message = msg.str();
  return c;
}

Check CheckCertificates(const Options& o, const agent::AgentConfig& a) {
  Check c{"certificates", Status::kOk, "", ""};
  if (a.tls_dir.empty()) {
    c.message = "no tls-dir configured (offline terminal)";
    return c;
  }
  const fs::path dir = a.tls_dir;
  const std::string issue_fix = "on the CA host: loyaltyctl pki issue-store --dir CA --store " +
                                a.store_id + " --out BUNDLE; copy BUNDLE to " + a.tls_dir +
                                "; chown -R loyalty-agent:loyalty-agent " + a.tls_dir;
  for (const char* name : {"ca.pem", "cert.pem", "key.pem"}) {
    std::error_code ec;
    if (!fs::exists(dir / name, ec)) {
      c.status = Status::kFail;
      c.message = (dir / name).string() + " is missing";
      c.fix = issue_fix;
      return c;
    }
  }
  struct stat st;
  const std::string key = (dir / "key.pem").string();
  if (::stat(key.c_str(), &st) == 0) {
    if ((st.st_mode & 077) != 0) {
      std::ostringstream mode;
      mode << std::oct << (st.st_mode & 0777);
      c.status = Status::kFail;
      c.message = key + " has mode 0" + mode.str() + ": the private key must be 0600";
      c.fix = "chmod 0600 " + key;
      return c;
    }
    if (auto uid = AgentUid(o); uid && st.st_uid != *uid) {
      c.status = Status::kFail;
      c.message = key + " is not owned by " + kAgentUser + ": the service cannot read it";
      c.fix = "chown -R loyalty-agent:loyalty-agent " + a.tls_dir;
      return c;
    }
  }
  auto bundle = pki::LoadBundle(dir);
  if (!bundle.ok()) {
    c.status = Status::kFail;
    c.message = a.tls_dir + ": " + bundle.error().message;
    c.fix = issue_fix;
    return c;
  }
  auto identity = pki::BundleIdentity(*bundle);
  if (!identity.ok()) {
    c.status = Status::kFail;
    c.message = a.tls_dir + "/cert.pem: " + identity.error().message;
    c.fix = issue_fix;
    return c;
  }
  if (identity->kind != pki::IdentityKind::kStore || identity->id != a.store_id) {
    c.status = Status::kFail;
    c.message = a.tls_dir + "/cert.pem is for " + std::string(pki::KindName(identity->kind)) +
                " " + Quote(identity->id) + ", but store-id is " + Quote(a.store_id);
    c.fix = "use this store's bundle, or set store-id to the certificate's store";
    return c;
  }
  auto days = pki::BundleDaysUntilExpiry(*bundle);
  if (!days.ok()) {
    c.status = Status::kFail;
    c.message = a.tls_dir + "/cert.pem: " + days.error().message;
    c.fix = issue_fix;
    return c;
  }
  const std::string renew_fix = "on the CA host: loyaltyctl pki renew --dir CA --bundle BUNDLE; "
                                "copy BUNDLE to " +
                                a.tls_dir + "; systemctl restart loyalty-agent";
  const std::string who = "certificate of store " + Quote(a.store_id);
  if (*days < 0) {
    c.status = Status::kFail;
    c.message = who + " has expired";
    c.fix = renew_fix;
  } else if (*days < kExpiryWarningDays) {
    c.status = Status::kWarn;
    c.message = who + " expires in " + std::to_string(*days) + " day(s)";
    c.fix = renew_fix;
  } else {
    c.message = who + ", signed by the bundle's CA, valid for " + std::to_string(*days) + " days";
  }
  return c;
}

std::string AgentUrl(const Options& o, const agent::AgentConfig& a) {
  if (!o.url.empty()) return o.url;
  std::string host = a.listen_host;
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(a.listen_port);
}

Check CheckAgent(const Options& o, const agent::AgentConfig& a) {
  Check c{"agent", Status::kOk, "", ""};
  if (o.url.empty() && a.listen_port == 0) {
    c.status = Status::kWarn;
    c.message = "listen uses port 0 (ephemeral): cannot tell where the agent answers";
    c.fix = "pass --url http://127.0.0.1:PORT (the port is in the agent's log)";
    return c;
  }
  const std::string url = AgentUrl(o, a);
  auto parsed = ParseUrl(url);
  if (!parsed) {
    c.status = Status::kFail;
    c.message = parsed.error().message;
    c.fix = "pass --url http://HOST:PORT";
    return c;
  }
  HttpClient client(*parsed, std::chrono::milliseconds(o.timeout_ms));
  auto reply = client.Call(boost::beast::http::verb::get, "/v1/health");
  const std::string down_fix =
      "systemctl enable --now loyalty-agent; see journalctl -u loyalty-agent";
  if (!reply) {
    c.status = Status::kFail;
    c.message = "no answer from " + url + ": " + reply.error().message;
    c.fix = down_fix;
    return c;
  }
  loyalty::v1::HealthResponse health;
  if (reply->status != 200 || !proto::ParseJson(reply->body, &health).empty()) {
    c.status = Status::kFail;
    c.message = url + "/v1/health answered " + std::to_string(reply->status) +
                " and not the agent's health";
    c.fix = "check that " + url + " is the loyalty agent; " + down_fix;
    return c;
  }
  std::ostringstream msg;
  msg << url << " answers: " << health.status() << ", version " << health.version() << ", "
      << health.pending_events() << " event(s) pending";
  if (health.store_id() != a.store_id || health.terminal_id() != a.terminal_id) {
    c.status = Status::kWarn;
    c.message = msg.str() + "; it runs as store " + Quote(health.store_id()) + " terminal " +
                Quote(health.terminal_id()) + ", the configuration says " + Quote(a.store_id) +
                " " + Quote(a.terminal_id);
    c.fix = "systemctl restart loyalty-agent (to load the configuration)";
    return c;
  }
  c.message = msg.str();
  return c;
}

// Runs the io_context until `done` or the deadline; on timeout closes the
// socket (cancelling the operation) and returns false.
bool RunUntil(asio::io_context& ioc, const bool& done, std::chrono::steady_clock::time_point end,
              tcp::socket& socket) {
  ioc.restart();
  while (!done && std::chrono::steady_clock::now() < end) {
    ioc.run_one_until(end);
  }
  if (done) return true;
  boost::system::error_code ignored;
  socket.close(ignored);
  ioc.restart();
  ioc.run();
  return false;
}

Check CheckServer(const Options& o, const agent::AgentConfig& a) {
  Check c{"server", Status::kOk, "", ""};
  if (a.server.empty()) {
    c.status = Status::kWarn;
    c.message = "no server configured: the terminal runs offline and its events are never "
                "uploaded";
    c.fix = "set server = HOST:PORT and tls-dir in " + o.config +
            ", then systemctl restart loyalty-agent";
    return c;
  }
  const auto timeout = std::chrono::milliseconds(std::max(o.timeout_ms, 1000));
  const auto end = std::chrono::steady_clock::now() + timeout;
  const std::string net_fix = "check that loyalty-server runs and listens on " + a.server +
                              " (listen = 0.0.0.0:PORT in server.conf), and the network/firewall "
                              "between this terminal and the server";
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  tcp::socket socket(ioc);
  bool done = false;
  boost::system::error_code error;
  tcp::resolver::results_type endpoints;
  resolver.async_resolve(a.server_host, std::to_string(a.server_port),
                         [&](const boost::system::error_code& e, tcp::resolver::results_type r) {
                           error = e;
                           endpoints = std::move(r);
                           done = true;
                         });
  if (!RunUntil(ioc, done, end, socket) || error) {
    c.status = Status::kFail;
    c.message = "cannot resolve " + a.server_host + (error ? ": " + error.message() : "");
    c.fix = net_fix;
    return c;
  }
  done = false;
  asio::async_connect(socket, endpoints,
                      [&](const boost::system::error_code& e, const tcp::endpoint&) {
                        error = e;
                        done = true;
                      });
  if (!RunUntil(ioc, done, end, socket) || error) {
    c.status = Status::kFail;
    c.message = "cannot connect to " + a.server + ": " + (error ? error.message() : "timed out");
    c.fix = net_fix;
    return c;
  }
  auto bundle = pki::LoadBundle(a.tls_dir);
  if (!bundle.ok()) {
    c.status = Status::kFail;
    c.message = "TCP to " + a.server + " works, but no TLS without a valid bundle (see "
                "certificates)";
    c.fix = "fix the certificates first";
    return c;
  }
  auto ctx = sync::MakeClientContext(*bundle);
  if (!ctx.ok()) {
    c.status = Status::kFail;
    c.message = "cannot build the TLS context: " + ctx.error().message;
    c.fix = "fix the certificates first";
    return c;
  }
  const std::string name = a.server_name.empty() ? a.server_host : a.server_name;
  asio::ssl::stream<tcp::socket&> tls(socket, **ctx);
  if (auto s = sync::SetExpectedHost(tls.native_handle(), name); !s.ok()) {
    c.status = Status::kFail;
    c.message = "server name " + Quote(name) + ": " + s.error().message;
    c.fix = "set server-name in " + o.config;
    return c;
  }
  done = false;
  tls.async_handshake(asio::ssl::stream_base::client, [&](const boost::system::error_code& e) {
    error = e;
    done = true;
  });
  const std::string tls_fix =
      "the server's certificate must come from the same CA as " + a.tls_dir +
      "/ca.pem and name " + Quote(name) +
      " (server-name), and this store's certificate must not be revoked; renew or re-issue the "
      "bundles";
  if (!RunUntil(ioc, done, end, socket) || error) {
    c.status = Status::kFail;
    c.message = "TLS handshake with " + a.server + " failed: " +
                (error ? error.message() : std::string("timed out"));
    c.fix = tls_fix;
    return c;
  }
  // With TLS 1.3 the server checks the client certificate after the client
  // finished its side: a refusal (e.g. revoked) arrives as an alert on the
  // first read. Silence or data within a moment means accepted.
  char byte = 0;
  done = false;
  tls.async_read_some(asio::buffer(&byte, 1),
                      [&](const boost::system::error_code& e, std::size_t) {
                        error = e;
                        done = true;
                      });
  const auto read_end =
      std::min(end, std::chrono::steady_clock::now() + std::chrono::milliseconds(500));
  if (RunUntil(ioc, done, read_end, socket) && error &&
      error.category() == asio::error::get_ssl_category()) {
    c.status = Status::kFail;
    c.message = "the server refused this store's certificate: " + error.message();
    c.fix = tls_fix;
    return c;
  }
  c.message = a.server + " accepts TCP and mutual TLS (server name " + Quote(name) + ")";
  return c;
}

// ---------------------------------------------------------------- output --

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (ch < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", ch);
          out += buf;
        } else {
          out.push_back(static_cast<char>(ch));
        }
    }
  }
  return out + "\"";
}

void PrintJson(const std::vector<Check>& checks, bool ok, std::ostream& out) {
  out << "{\"ok\":" << (ok ? "true" : "false") << ",\"checks\":[";
  bool first = true;
  for (const Check& c : checks) {
    out << (first ? "" : ",") << "{\"name\":" << JsonString(c.name)
        << ",\"status\":" << JsonString(StatusName(c.status))
        << ",\"message\":" << JsonString(c.message) << ",\"fix\":" << JsonString(c.fix) << "}";
    first = false;
  }
  out << "]}\n";
}

void PrintHuman(const std::vector<Check>& checks, std::ostream& out) {
  int fails = 0, warns = 0;
  for (const Check& c : checks) {
    out << std::left << std::setw(6) << StatusName(c.status) << std::setw(14) << c.name
        << c.message << "\n";
    if (!c.fix.empty()) out << std::string(20, ' ') << "fix: " << c.fix << "\n";
    if (c.status == Status::kFail) ++fails;
    if (c.status == Status::kWarn) ++warns;
  }
  out << "\n"
      << (fails ? "FAIL" : "OK") << ": " << checks.size() << " checks, " << fails << " failed, "
      << warns << " warning(s)\n";
}

int PrintPending(const Options& o, std::ostream& out, std::ostream& err) {
  auto config = agent::ParseAgentConfig({"loyalty-agent", "--config", o.config});
  if (!config) {
    err << "loyaltyctl doctor: " << config.error().message << "\n";
    return kExitApiError;
  }
  const std::string path = (fs::path(config->data_dir) / "agent.db").string();
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    out << "0\n";
    return kExitOk;
  }
  auto store = OpenReadOnly(path);
  if (!store.ok()) {
    err << "loyaltyctl doctor: " << store.error().message << "\n";
    return kExitApiError;
  }
  auto version = (*store)->db().UserVersion();
  if (version.ok() && *version == 0) {
    out << "0\n";
    return kExitOk;
  }
  auto pending = (*store)->CountUnackedEvents();
  if (!pending.ok()) {
    err << "loyaltyctl doctor: " << pending.error().message << "\n";
    return kExitApiError;
  }
  out << *pending << "\n";
  return kExitOk;
}

}  // namespace

int RunDoctor(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Options o;
  po::options_description desc(
      "usage: loyaltyctl doctor [options]\n"
      "Checks this store terminal: configuration, data directory, database, certificates,\n"
      "the local agent and the server. Prints OK, WARN or FAIL per check with how to fix\n"
      "it; exit code 0 when nothing failed, 1 otherwise");
  desc.add_options()                                                              //
      ("help,h", "print this help and exit")                                      //
      ("config", po::value<std::string>(&o.config)->default_value(o.config),      //
       "the agent's configuration file")                                          //
      ("url", po::value<std::string>(&o.url),                                     //
       "the agent's local API (default: from the configuration's listen)")        //
      ("timeout-ms", po::value<int>(&o.timeout_ms)->default_value(o.timeout_ms),  //
       "network timeout per check")                                               //
      ("json", po::bool_switch(&o.json), "print the checks as JSON")              //
      ("pending", po::bool_switch(&o.pending),
       "only print how many events the terminal database has not uploaded yet");
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      out << desc << "\n";
      return kExitOk;
    }
  } catch (const po::error& e) {
    err << "loyaltyctl doctor: " << e.what() << "\n" << desc << "\n";
    return kExitUsage;
  }
  if (o.timeout_ms <= 0) {
    err << "loyaltyctl doctor: --timeout-ms must be positive\n";
    return kExitUsage;
  }
  if (o.pending) return PrintPending(o, out, err);

  std::vector<Check> checks;
  std::optional<agent::AgentConfig> config;
  checks.push_back(CheckConfig(o, &config));
  if (config) {
    checks.push_back(CheckDataDir(o, *config));
    checks.push_back(CheckDatabase(*config));
    checks.push_back(CheckCertificates(o, *config));
    checks.push_back(CheckAgent(o, *config));
    checks.push_back(CheckServer(o, *config));
  }
  bool ok = true;
  for (const Check& c : checks) ok = ok && c.status != Status::kFail;
  if (o.json) {
    PrintJson(checks, ok, out);
  } else {
    PrintHuman(checks, out);
  }
  return ok ? kExitOk : kExitApiError;
}

}  // namespace loyalty::ctl
