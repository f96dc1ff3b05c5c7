// ServerConfig: the configuration of `loyalty-server`, from command-line
// flags and an optional INI-style file (`--config FILE`: `key = value`
// lines, `#` comments, keys named like the long flags without dashes). A
// flag on the command line overrides the same key in the file.
//
// ParseServerConfig checks syntax and ranges and resolves the CRL path; it
// reads nothing but the --config file. Errors are one line naming the
// offending option; the executable prints it and exits with status 2.
// Plain values and free functions: thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace loyalty::server {

inline constexpr int kConfigErrorExitCode = 2;

struct ServerConfig {
  std::string data_dir;  // required; the SQLite file is <data_dir>/server.db
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 7443;  // stores (sync); 0: ephemeral
  std::string admin_host = "127.0.0.1";
  uint16_t admin_port = 7444;  // admin API; 0: ephemeral
  std::string tls_dir;         // required: the server bundle (ca.pem, cert.pem, key.pem)
  // The CRL. Given explicitly (crl_explicit): it must exist and be valid, or
  // the server refuses to start. Default: <tls_dir>/crl.pem when present;
  // when absent the server runs without revocation checks and says so.
  std::string crl_file;
  bool crl_explicit = false;
  int crl_reload_seconds = 10;
  int io_threads = 2;
  int utc_offset_minutes = 0;       // store local time for segmentation features
  int segment_pass_minutes = 60;    // scheduled full segmentation pass
  int64_t referral_reward_points = 500;
  std::string log_level = "info";
  bool help = false;  // the caller prints ServerUsage() and exits 0
};

core::Result<ServerConfig> ParseServerConfig(const std::vector<std::string>& argv);

std::string ServerUsage();

// Splits "HOST:PORT" (IPv6 in brackets; "localhost" means 127.0.0.1) with
// an IP address as host; `option` names the flag in the error.
core::Status ParseListenAddress(const std::string& value, const std::string& option,
                                std::string* host, uint16_t* port);

}  // namespace loyalty::server
