// Shared by the sync benchmarks (sync_bench, sync_loadgen): a head-office CA
// with a server bundle and store bundles in a directory (real certificates
// from loyalty::pki), and a real `loyalty-server` process on loopback with
// ephemeral ports, whose resident memory and CPU time are read from /proc.
//
// Not thread-safe; one owner per object.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

namespace loyalty::bench {

// A built binary next to this one: `relative` to the build directory (the
// parent of the directory holding the running executable), e.g.
// "server/loyalty-server".
std::string SiblingBinary(const std::string& relative);

// Creates <dir>/ca, the server bundle <dir>/server (for 127.0.0.1) and one
// bundle <dir>/store-<id> per store id.
core::Status MakePki(const std::filesystem::path& dir, const std::vector<std::string>& store_ids);

// The bundle folder MakePki wrote for `store_id`.
std::filesystem::path StoreBundle(const std::filesystem::path& dir, const std::string& store_id);

// Raises RLIMIT_NOFILE's soft limit to `wanted` (capped by the hard limit,
// which is raised too when we may). Returns the soft limit now in force.
uint64_t RaiseFileLimit(uint64_t wanted);

class ServerProcess {
 public:
  // Starts `binary` with --data-dir <dir>/server-data, --tls-dir <dir>/server
  // and the CA's CRL, ephemeral ports on 127.0.0.1, plus `extra_args`;
  // stderr goes to <dir>/server.log. Waits until it listens.
  static core::Result<std::unique_ptr<ServerProcess>> Start(
      const std::string& binary, const std::filesystem::path& dir,
      const std::vector<std::string>& extra_args = {});
  ~ServerProcess();  // Stop()
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  uint16_t sync_port() const { return sync_port_; }
  pid_t pid() const { return pid_; }
  std::filesystem::path db_path() const { return dir_ / "server-data" / "server.db"; }
  std::filesystem::path log_path() const { return dir_ / "server.log"; }

  // VmRSS / VmHWM of the process, in KiB (-1 if unreadable).
  int64_t RssKib() const;
  int64_t PeakRssKib() const;
  // User + system CPU time the process used so far.
  double CpuSeconds() const;

  // SIGTERM, then waits; the exit status (or -signal). Idempotent.
  int Stop();

 private:
  ServerProcess(pid_t pid, std::filesystem::path dir) : pid_(pid), dir_(std::move(dir)) {}
  int64_t StatusKib(const char* field) const;

  pid_t pid_ = -1;
  std::filesystem::path dir_;
  uint16_t sync_port_ = 0;
  int status_ = 0;
};

}  // namespace loyalty::bench
