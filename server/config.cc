#include "server/config.h"

#include <boost/asio/ip/address.hpp>
#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace loyalty::server {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;

core::Error ConfigError(std::string message) {
  return core::MakeError(core::code::kInvalidRequest, std::move(message));
}

po::options_description Options() {
  po::options_description d("loyalty-server options");
  // No po default values: "given or not" must be visible so a flag wins over
  // the file; the defaults live in ServerConfig.
  d.add_options()                                                                     //
      ("help,h", "print this help and exit")                                          //
      ("config", po::value<std::string>(), "INI-style file of key = value lines")     //
      ("data-dir", po::value<std::string>(), "server database directory (required)")  //
      ("listen", po::value<std::string>(),
       "HOST:PORT for store agents (default 127.0.0.1:7443; port 0 = ephemeral)")  //
      ("admin-listen", po::value<std::string>(),
       "HOST:PORT of the admin API (default 127.0.0.1:7444; port 0 = ephemeral)")  //
      ("tls-dir", po::value<std::string>(),
       "server bundle from `loyaltyctl pki issue-server` (required); card-hash.key in it "
       "enables admin lookups by card number")  //
      ("crl", po::value<std::string>(),
       "CRL file (default <tls-dir>/crl.pem if present; without one, no revocation checks)")  //
      ("crl-reload-seconds", po::value<int>(),
       "how often to check the CRL for changes (default 10)")              //
      ("io-threads", po::value<int>(), "network I/O threads (default 2)")  //
      ("utc-offset-minutes", po::value<int>(),
       "store local time for weekday/hour features, minutes east of UTC (default 0)")  //
      ("segment-pass-minutes", po::value<int>(),
       "minutes between scheduled full segmentation passes (default 60)")  //
      ("referral-reward-points", po::value<int64_t>(),
       "points credited to a referrer after the referred member's first purchase (default "
       "500; 0: none)")  //
      ("log-level", po::value<std::string>(),
       "trace, debug, info, warn, error, critical or off (default info)");
  return d;
}

bool ParsePort(const std::string& s, uint16_t* port) {
  if (s.empty() || s.size() > 5) return false;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

}  // namespace

core::Status ParseListenAddress(const std::string& value, const std::string& option,
                                std::string* host, uint16_t* port) {
  const std::string what = option + ": '" + value + "' ";
  std::string h, p;
  if (!value.empty() && value[0] == '[') {
    const std::size_t close = value.find(']');
    if (close == std::string::npos || close + 1 >= value.size() || value[close + 1] != ':') {
      return ConfigError(what + "is not HOST:PORT");
    }
    h = value.substr(1, close - 1);
    p = value.substr(close + 2);
  } else {
    const std::size_t colon = value.rfind(':');
    if (colon == std::string::npos) return ConfigError(what + "is not HOST:PORT");
    h = value.substr(0, colon);
    p = value.substr(colon + 1);
    if (h.find(':') != std::string::npos) {
      return ConfigError(what + "needs brackets around an IPv6 address");
    }
  }
  if (h == "localhost") h = "127.0.0.1";
  boost::system::error_code ec;
  boost::asio::ip::make_address(h, ec);
  if (ec) return ConfigError(what + "needs an IP address as host");
  if (!ParsePort(p, port)) return ConfigError(what + "has a port outside 0..65535");
  *host = h;
  return {};
}

std::string ServerUsage() {
  std::ostringstream ss;
  ss << "usage: loyalty-server --data-dir DIR --tls-dir BUNDLE [options]\n\n"
     << Options()
     << "\nA --config file holds the same options as `key = value` lines (e.g.\n"
        "`listen = 0.0.0.0:7443`), `#` starts a comment; flags override the file.\n"
        "A --crl given explicitly must exist. The CRL is re-read when its modification\n"
        "time changes; connections accepted afterwards are checked against it.\n";
  return ss.str();
}

core::Result<ServerConfig> ParseServerConfig(const std::vector<std::string>& argv) {
  const po::options_description desc = Options();
  po::variables_map vm;
  try {
    std::vector<std::string> args(argv.begin() + (argv.empty() ? 0 : 1), argv.end());
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    if (vm.count("config")) {
      const std::string file = vm["config"].as<std::string>();
      std::ifstream in(file);
      if (!in) return ConfigError("--config: cannot open '" + file + "'");
      po::store(po::parse_config_file(in, desc, /*allow_unregistered=*/false), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return ConfigError(e.what());
  }
  ServerConfig c;
  if (vm.count("help")) {
    c.help = true;
    return c;
  }
  auto str = [&](const char* name, std::string* out) {
    if (vm.count(name)) *out = vm[name].as<std::string>();
  };
  str("data-dir", &c.data_dir);
  if (c.data_dir.empty()) {
    return ConfigError("--data-dir: required (the directory of the server database)");
  }
  str("tls-dir", &c.tls_dir);
  if (c.tls_dir.empty()) {
    return ConfigError(
        "--tls-dir: required (the server bundle from `loyaltyctl pki issue-server`)");
  }
  if (vm.count("listen")) {
    if (auto s = ParseListenAddress(vm["listen"].as<std::string>(), "--listen", &c.listen_host,
                                    &c.listen_port);
        !s) {
      return s.error();
    }
  }
  if (vm.count("admin-listen")) {
    if (auto s = ParseListenAddress(vm["admin-listen"].as<std::string>(), "--admin-listen",
                                    &c.admin_host, &c.admin_port);
        !s) {
      return s.error();
    }
  }
  if (vm.count("crl")) {
    str("crl", &c.crl_file);
    if (c.crl_file.empty()) return ConfigError("--crl: empty path");
    c.crl_explicit = true;
  } else {
    c.crl_file = (fs::path(c.tls_dir) / "crl.pem").string();
  }
  if (vm.count("crl-reload-seconds")) {
    c.crl_reload_seconds = vm["crl-reload-seconds"].as<int>();
    if (c.crl_reload_seconds < 1 || c.crl_reload_seconds > 3600) {
      return ConfigError("--crl-reload-seconds: must be within 1..3600");
    }
  }
  if (vm.count("io-threads")) {
    c.io_threads = vm["io-threads"].as<int>();
    if (c.io_threads < 1 || c.io_threads > 64) {
      return ConfigError("--io-threads: must be within 1..64");
    }
  }
  if (vm.count("utc-offset-minutes")) {
    c.utc_offset_minutes = vm["utc-offset-minutes"].as<int>();
    if (c.utc_offset_minutes < -14 * 60 || c.utc_offset_minutes > 14 * 60) {
      return ConfigError("--utc-offset-minutes: must be within -840..840");
    }
  }
  if (vm.count("segment-pass-minutes")) {
    c.segment_pass_minutes = vm["segment-pass-minutes"].as<int>();
    if (c.segment_pass_minutes < 1 || c.segment_pass_minutes > 7 * 24 * 60) {
      return ConfigError("--segment-pass-minutes: must be within 1..10080");
    }
  }
  if (vm.count("referral-reward-points")) {
    c.referral_reward_points = vm["referral-reward-points"].as<int64_t>();
    if (c.referral_reward_points < 0 || c.referral_reward_points > 1'000'000) {
      return ConfigError("--referral-reward-points: must be within 0..1000000");
    }
  }
  str("log-level", &c.log_level);
  static const std::set<std::string> kLevels = {"trace", "debug",    "info", "warn",
                                                "error", "critical", "off"};
  if (!kLevels.count(c.log_level)) {
    return ConfigError("--log-level: '" + c.log_level +
                       "' is not one of trace, debug, info, warn, error, critical, off");
  }
  return c;
}

}  // namespace loyalty::server
