// AgentConfig: the configuration of `loyalty-agent`, from command-line flags
// and an optional INI-style file (`--config FILE`: `key = value` lines, `#`
// comments, keys named like the long flags without dashes). A flag given on
// the command line overrides the same key in the file.
//
// Parsing is two steps so that each is testable on its own:
//   ParseAgentConfig     argv -> AgentConfig; syntax and ranges only, no I/O
//                        except reading the --config file.
//   BuildServiceOptions  AgentConfig -> ServiceOptions; reads the programme,
//                        offers and card-hash key files (creating the default
//                        key file on first start) and validates their content.
// Both return an Error whose message is one line that names the offending
// option; the executable prints it and exits with status 2.
//
// Plain values and free functions: thread-compatible, no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "agent/checkout_service.h"
#include "core/result.h"

namespace loyalty::agent {

// The `loyalty-agent` exit status for a configuration or usage error.
inline constexpr int kConfigErrorExitCode = 2;

struct AgentConfig {
  std::string data_dir;  // required
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;  // 0: an ephemeral port chosen by the kernel
  std::string store_id = "store-1";
  std::string terminal_id = "till-1";
  std::string programme_file;           // empty: the built-in default programme
  std::string offers_file;              // empty: keep the stored offers
  std::string card_hash_key_file;       // empty: <data_dir>/card-hash.key
  int64_t offline_reserve_points = -1;  // -1: the programme's
  int utc_offset_minutes = 0;
  std::size_t max_body_bytes = 65536;
  int io_threads = 2;
  std::string log_level = "info";
  bool demo = false;
  // The customer display (agent/customer_display.h).
  std::string display_language = "en";  // when the member has no preference
  int display_idle_seconds = 20;        // the thank-you screen, then idle
  // Sync (sync/agent_sync.h). Without a server the agent runs offline.
  std::string server;       // HOST:PORT
  std::string server_host;  // parsed from `server`
  uint16_t server_port = 0;
  std::string tls_dir;      // certificate bundle directory; required with server
  std::string server_name;  // empty: the HOST of `server`
  int64_t sync_interval_ms = 5000;
  // Replicate only this store's members and look the others up online.
  bool member_scope_store = false;
  int64_t lookup_timeout_ms = 1500;

  // Set when --help was asked for; the caller prints Usage() and exits 0.
  bool help = false;
};

// Parses `argv` (argv[0] is the program name) and the --config file.
core::Result<AgentConfig> ParseAgentConfig(const std::vector<std::string>& argv);

// The --help text.
std::string AgentUsage();

// Reads and validates the files the configuration names and returns the
// options to open the checkout service with. Creates the default card-hash
// key file (32 random bytes, mode 0600) when it does not exist yet; an
// explicitly named key file must exist, because a key invented on one
// terminal would not match the hashes of the other terminals.
core::Result<ServiceOptions> BuildServiceOptions(const AgentConfig& config);

}  // namespace loyalty::agent
