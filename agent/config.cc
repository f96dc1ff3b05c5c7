#include "agent/config.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/program_options.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "agent/display_assets.h"
#include "core/offers.h"
#include "core/programme.h"
#include "loyalty/v1/domain.pb.h"
#include "proto/json.h"

namespace loyalty::agent {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;

constexpr std::size_t kMaxConfigFileBytes = 4 << 20;  // programmes and offer lists are small
constexpr std::size_t kCardHashKeyBytes = 32;
constexpr std::size_t kMinCardHashKeyBytes = 16;

core::Error ConfigError(std::string message) {
  return core::MakeError(core::code::kInvalidRequest, std::move(message));
}

po::options_description Options() {
  po::options_description d("loyalty-agent options");
  // No po default values: "given or not" must be visible so that a flag on
  // the command line wins over the file; the defaults live in AgentConfig.
  d.add_options()                                                                       //
      ("help,h", "print this help and exit")                                            //
      ("config", po::value<std::string>(), "INI-style file of key = value lines")       //
      ("data-dir", po::value<std::string>(), "terminal database directory (required)")  //
      ("listen", po::value<std::string>(),
       "HOST:PORT of the local API (default 127.0.0.1:8080; port 0 = ephemeral)")       //
      ("store-id", po::value<std::string>(), "this store's id (default store-1)")       //
      ("terminal-id", po::value<std::string>(), "this terminal's id (default till-1)")  //
      ("programme", po::value<std::string>(),
       "JSON file of a loyalty.v1.Programme (default: built-in programme)")        //
      ("offers", po::value<std::string>(), "JSON file of a loyalty.v1.OfferList")  //
      ("card-hash-key-file", po::value<std::string>(),
       "card hash key (default <data-dir>/card-hash.key, created on first start)")  //
      ("offline-reserve-points", po::value<int64_t>(),
       "points kept back from offline redemptions (default: the programme's)")                   //
      ("utc-offset-minutes", po::value<int>(), "store local time offset from UTC")               //
      ("max-body-bytes", po::value<int64_t>(), "largest accepted request body (default 65536)")  //
      ("io-threads", po::value<int>(), "HTTP I/O threads (default 2)")                           //
      ("log-level", po::value<std::string>(),
       "trace, debug, info, warn, error, critical or off (default info)")  //
      ("demo", po::value<bool>()->implicit_value(true),
       "enrol demo members if the database has none")  //
      ("display-language", po::value<std::string>(),
       "customer display language when the member has none: en, es or pl (default en)")  //
      ("display-idle-seconds", po::value<int>(),
       "customer display: seconds of thank-you screen before idle (default 20)")  //
      ("server", po::value<std::string>(),
       "HOST:PORT of loyalty-server; without it the agent runs offline")  //
      ("tls-dir", po::value<std::string>(),
       "the store's certificate bundle (loyaltyctl pki issue-store); required with --server; "
       "its card-hash.key, when present, is the card-hash key")  //
      ("server-name", po::value<std::string>(),
       "name the server certificate must carry (default: the HOST of --server)")  //
      ("sync-interval-ms", po::value<int64_t>(),
       "sync round interval while online, in ms (default 5000)")  //
      ("member-scope", po::value<std::string>(),
       "members this terminal replicates: all (default) or store (only members seen at this "
       "store; others are looked up on the server while online)")  //
      ("lookup-timeout-ms", po::value<int64_t>(),
       "with --member-scope store: how long to wait for the server's answer, in ms (default "
       "1500)");
  return d;
}

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// Splits "host:port" or "[v6]:port". Returns false when malformed.
bool SplitHostPort(const std::string& s, std::string* host, std::string* port) {
  std::size_t colon;
  if (!s.empty() && s[0] == '[') {
    const std::size_t close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return false;
    *host = s.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = s.rfind(':');
    if (colon == std::string::npos) return false;
    *host = s.substr(0, colon);
    if (host->find(':') != std::string::npos) return false;  // bare IPv6 needs brackets
  }
  *port = s.substr(colon + 1);
  return !host->empty() && !port->empty();
}

bool ParsePort(const std::string& s, bool allow_zero, uint16_t* port) {
  if (s.empty() || s.size() > 5) return false;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535 || (v == 0 && !allow_zero)) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

core::Status ApplyListen(const std::string& value, AgentConfig* config) {
  std::string host, port;
  const std::string what = "--listen: '" + value + "' ";
  if (!SplitHostPort(value, &host, &port)) {
    return ConfigError(what + "is not HOST:PORT (e.g. 127.0.0.1:8080)");
  }
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  if (ec) return ConfigError(what + "needs an IP address as host");
  if (!ParsePort(port, /*allow_zero=*/true, &config->listen_port)) {
    return ConfigError(what + "has a port outside 0..65535");
  }
  config->listen_host = host;
  return {};
}

core::Result<std::string> ReadSmallFile(const std::string& path, const std::string& option) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return ConfigError(option + ": cannot read '" + path + "': " + ec.message());
  if (size > kMaxConfigFileBytes) {
    return ConfigError(option + ": '" + path + "' is larger than " +
                       std::to_string(kMaxConfigFileBytes) + " bytes");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return ConfigError(option + ": cannot open '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return ConfigError(option + ": error reading '" + path + "'");
  return ss.str();
}

// Writes a fresh random key next to `path` and renames it into place, so a
// crash never leaves a half-written key that later starts would trust.
core::Status CreateKeyFile(const std::string& path) {
  unsigned char key[kCardHashKeyBytes];
  std::size_t got = 0;
  while (got < sizeof key) {
    const ssize_t n = getrandom(key + got, sizeof key - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ConfigError(std::string("--card-hash-key-file: no random bytes: ") +
                         std::strerror(errno));
    }
    got += static_cast<std::size_t>(n);
  }
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return ConfigError("--card-hash-key-file: cannot create '" + tmp +
                       "': " + std::strerror(errno));
  }
  const bool written =
      ::write(fd, key, sizeof key) == static_cast<ssize_t>(sizeof key) && ::fsync(fd) == 0;
  const int saved_errno = errno;
  ::close(fd);
  if (!written || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = written ? errno : saved_errno;
    ::unlink(tmp.c_str());
    return ConfigError("--card-hash-key-file: cannot write '" + path + "': " + std::strerror(err));
  }
  // Make the rename itself durable.
  const std::string dir = fs::path(path).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

core::Result<std::string> LoadCardHashKey(const AgentConfig& config) {
  // The programme-wide key travels in the store's bundle, so every terminal
  // and the server hash cards alike; an explicit --card-hash-key-file wins.
  if (config.card_hash_key_file.empty() && !config.tls_dir.empty()) {
    const std::string bundled = (fs::path(config.tls_dir) / "card-hash.key").string();
    std::error_code ec;
    if (fs::exists(bundled, ec)) {
      AgentConfig explicit_key = config;
      explicit_key.card_hash_key_file = bundled;
      return LoadCardHashKey(explicit_key);
    }
  }
  const bool is_default = config.card_hash_key_file.empty();
  const std::string path = is_default ? (fs::path(config.data_dir) / "card-hash.key").string()
                                      : config.card_hash_key_file;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    if (!is_default) {
      return ConfigError("--card-hash-key-file: '" + path +
                         "' does not exist (copy the programme's key there)");
    }
    if (auto st = CreateKeyFile(path); !st) return st.error();
  }
  auto key = ReadSmallFile(path, "--card-hash-key-file");
  if (!key) return key.error();
  if (key->size() < kMinCardHashKeyBytes) {
    return ConfigError("--card-hash-key-file: '" + path + "' holds fewer than " +
                       std::to_string(kMinCardHashKeyBytes) + " bytes");
  }
  return std::move(*key);
}

}  // namespace

std::string AgentUsage() {
  std::ostringstream ss;
  ss << "usage: loyalty-agent --data-dir DIR [options]\n\n"
     << Options()
     << "\nA --config file holds the same options as `key = value` lines (e.g.\n"
        "`listen = 127.0.0.1:8080`), `#` starts a comment; flags override the file.\n";
  return ss.str();
}

core::Result<AgentConfig> ParseAgentConfig(const std::vector<std::string>& argv) {
  const po::options_description desc = Options();
  po::variables_map vm;
  try {
    std::vector<std::string> args(argv.begin() + (argv.empty() ? 0 : 1), argv.end());
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    if (vm.count("config")) {
      const std::string file = vm["config"].as<std::string>();
      std::ifstream in(file);
      if (!in) return ConfigError("--config: cannot open '" + file + "'");
      // Values already stored from the command line are kept: flags win.
      po::store(po::parse_config_file(in, desc, /*allow_unregistered=*/false), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return ConfigError(e.what());
  }

  AgentConfig c;
  if (vm.count("help")) {
    c.help = true;
    return c;
  }
  auto str = [&](const char* name, std::string* out) {
    if (vm.count(name)) *out = vm[name].as<std::string>();
  };
  if (!vm.count("data-dir") || vm["data-dir"].as<std::string>().empty()) {
    return ConfigError("--data-dir: required (the directory of the terminal database)");
  }
  str("data-dir", &c.data_dir);
  if (vm.count("listen")) {
    if (auto st = ApplyListen(vm["listen"].as<std::string>(), &c); !st) return st.error();
  }
  str("store-id", &c.store_id);
  if (!ValidId(c.store_id)) {
    return ConfigError("--store-id: '" + c.store_id +
                       "' must be 1 to 64 letters, digits, '.', '_' or '-'");
  }
  str("terminal-id", &c.terminal_id);
  if (!ValidId(c.terminal_id)) {
    return ConfigError("--terminal-id: '" + c.terminal_id +
                       "' must be 1 to 64 letters, digits, '.', '_' or '-'");
  }
  str("programme", &c.programme_file);
  str("offers", &c.offers_file);
  str("card-hash-key-file", &c.card_hash_key_file);
  if (vm.count("offline-reserve-points")) {
    c.offline_reserve_points = vm["offline-reserve-points"].as<int64_t>();
    if (c.offline_reserve_points < 0) {
      return ConfigError("--offline-reserve-points: must be 0 or more");
    }
  }
  if (vm.count("utc-offset-minutes")) {
    c.utc_offset_minutes = vm["utc-offset-minutes"].as<int>();
    if (c.utc_offset_minutes < -14 * 60 || c.utc_offset_minutes > 14 * 60) {
      return ConfigError("--utc-offset-minutes: must be within -840..840");
    }
  }
  if (vm.count("max-body-bytes")) {
    const int64_t v = vm["max-body-bytes"].as<int64_t>();
    if (v < 1024 || v > (64 << 20)) {
      return ConfigError("--max-body-bytes: must be within 1024..67108864");
    }
    c.max_body_bytes = static_cast<std::size_t>(v);
  }
  if (vm.count("io-threads")) {
    c.io_threads = vm["io-threads"].as<int>();
    if (c.io_threads < 1 || c.io_threads > 64) {
      return ConfigError("--io-threads: must be within 1..64");
    }
  }
  str("log-level", &c.log_level);
  static const std::set<std::string> kLevels = {"trace", "debug",    "info", "warn",
                                                "error", "critical", "off"};
  if (!kLevels.count(c.log_level)) {
    return ConfigError("--log-level: '" + c.log_level +
                       "' is not one of trace, debug, info, warn, error, critical, off");
  }
  if (vm.count("demo")) c.demo = vm["demo"].as<bool>();
  str("display-language", &c.display_language);
  if (const auto langs = DisplayLanguages();
      std::find(langs.begin(), langs.end(), c.display_language) == langs.end()) {
    std::string list;
    for (const auto& l : langs) list += (list.empty() ? "" : ", ") + l;
    return ConfigError("--display-language: '" + c.display_language + "' is not one of " + list);
  }
  if (vm.count("display-idle-seconds")) {
    c.display_idle_seconds = vm["display-idle-seconds"].as<int>();
    if (c.display_idle_seconds < 1 || c.display_idle_seconds > 3600) {
      return ConfigError("--display-idle-seconds: must be within 1..3600");
    }
  }
  str("server", &c.server);
  if (!c.server.empty()) {
    std::string host, port;
    uint16_t p = 0;
    if (!SplitHostPort(c.server, &host, &port) || !ParsePort(port, false, &p)) {
      return ConfigError("--server: '" + c.server + "' is not HOST:PORT");
    }
    c.server_host = host;
    c.server_port = p;
  }
  str("tls-dir", &c.tls_dir);
  if (!c.server.empty() && c.tls_dir.empty()) {
    return ConfigError("--tls-dir: required with --server (the store's certificate bundle)");
  }
  str("server-name", &c.server_name);
  if (vm.count("sync-interval-ms")) {
    const int64_t ms = vm["sync-interval-ms"].as<int64_t>();
    if (ms < 100 || ms > 3600 * 1000) {
      return ConfigError("--sync-interval-ms: must be within 100..3600000");
    }
    c.sync_interval_ms = ms;
  }
  if (vm.count("member-scope")) {
    const std::string scope = vm["member-scope"].as<std::string>();
    if (scope == "all") {
      c.member_scope_store = false;
    } else if (scope == "store") {
      c.member_scope_store = true;
    } else {
      return ConfigError("--member-scope: '" + scope + "' is neither all nor store");
    }
  }
  if (vm.count("lookup-timeout-ms")) {
    const int64_t ms = vm["lookup-timeout-ms"].as<int64_t>();
    if (ms < 10 || ms > 60 * 1000) return ConfigError("--lookup-timeout-ms: must be within 10..60000");
    c.lookup_timeout_ms = ms;
  }
  return c;
}

core::Result<ServiceOptions> BuildServiceOptions(const AgentConfig& config) {
  ServiceOptions o;
  std::error_code ec;
  fs::create_directories(config.data_dir, ec);
  if (ec || !fs::is_directory(config.data_dir, ec)) {
    return ConfigError("--data-dir: cannot create directory '" + config.data_dir + "'" +
                       (ec ? ": " + ec.message() : std::string()));
  }
  o.data_dir = config.data_dir;
  o.store_id = config.store_id;
  o.terminal_id = config.terminal_id;
  o.offline_reserve_points = config.offline_reserve_points;
  o.utc_offset_minutes = config.utc_offset_minutes;

  auto key = LoadCardHashKey(config);
  if (!key) return key.error();
  o.card_hash_key = std::move(*key);

  if (!config.programme_file.empty()) {
    const std::string what = "--programme: '" + config.programme_file + "': ";
    auto text = ReadSmallFile(config.programme_file, "--programme");
    if (!text) return text.error();
    loyalty::v1::Programme programme;
    if (std::string err = proto::ParseJson(*text, &programme); !err.empty()) {
      return ConfigError(what + err);
    }
    if (auto st = core::ValidateProgramme(programme); !st) {
      return ConfigError(what + st.error().message);
    }
    o.programme = std::move(programme);
  }

  if (!config.offers_file.empty()) {
    const std::string what = "--offers: '" + config.offers_file + "': ";
    auto text = ReadSmallFile(config.offers_file, "--offers");
    if (!text) return text.error();
    loyalty::v1::OfferList list;
    if (std::string err = proto::ParseJson(*text, &list); !err.empty()) {
      return ConfigError(what + err);
    }
    std::set<std::string> ids;
    std::vector<loyalty::v1::Offer> offers;
    for (int i = 0; i < list.offers_size(); ++i) {
      const auto& offer = list.offers(i);
      if (auto st = core::ValidateOffer(offer); !st) {
        return ConfigError(what + "offers[" + std::to_string(i) + "]: " + st.error().message);
      }
      if (!ids.insert(offer.id()).second) {
        return ConfigError(what + "offers[" + std::to_string(i) + "]: duplicate id '" + offer.id() +
                           "'");
      }
      offers.push_back(offer);
    }
    o.offers = std::move(offers);
  }
  return o;
}

}  // namespace loyalty::agent
