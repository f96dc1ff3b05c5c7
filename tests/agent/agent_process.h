// Test helpers that run real processes: a loyalty-agent on an ephemeral port
// with its own temporary data directory, and one-shot commands (loyaltyctl,
// loyalty-agent with bad flags) with their exit code and output.
// Binaries come from $LOYALTY_BUILD_DIR (set by CTest). Not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace loyalty::agent_test {

// $LOYALTY_BUILD_DIR, or "." when unset.
std::string BuildDir();
std::string AgentBinary();  // <build>/agent/loyalty-agent
std::string CtlBinary();    // <build>/ctl/loyaltyctl

// A fresh directory under $TMPDIR, removed with everything in it on
// destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct ProcessResult {
  int exit_code = -1;  // -1: killed by a signal or timed out
  std::string out;
  std::string err;
};

// A valid card number for tests: "4", `n` zero-padded to 14 digits, and the
// Luhn check digit.
std::string TestCard(int n);

// Runs `argv` to completion (killed after `timeout_s`).
ProcessResult RunProcess(const std::vector<std::string>& argv, int timeout_s = 30);

class AgentProcess {
 public:
  // Starts loyalty-agent with --data-dir <tmp>/data (or `data_dir`) --listen
  // 127.0.0.1:0 plus `extra_args`, and waits for its "listening on" line. On
  // failure returns null and sets *error (with the agent's stderr).
  static std::unique_ptr<AgentProcess> Start(const std::vector<std::string>& extra_args,
                                             std::string* error,
                                             const std::string& data_dir = "");
  ~AgentProcess();  // SIGTERM, then SIGKILL if it does not exit

  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string data_dir() const { return data_dir_.empty() ? dir_.path() + "/data" : data_dir_; }
  std::string Stderr() const;
  bool running() const { return pid_ > 0; }

  // SIGTERM and wait; returns the exit code (-1 if killed or timed out).
  int Terminate(int timeout_s = 20);

 private:
  AgentProcess() = default;

  TempDir dir_;
  std::string data_dir_;  // when not under dir_
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

}  // namespace loyalty::agent_test
