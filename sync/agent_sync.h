// AgentSync: the store agent's sync client. It keeps one long-lived mutual
// TLS connection to loyalty-server while the server is reachable and runs
// sync rounds over it:
//   1. upload: the outbox (events with acked = 0) in seq order, in bounded
//      UploadBatch frames, a few in flight at once (the server ingests one
//      connection's batches in order); each UploadAck is applied locally,
//      in order, in one write
//      (acknowledged events leave the outbox, rejected ones go to the
//      dead-letter table, sequence_reused starts a new epoch and re-keys the
//      rest of the outbox, see sync/outbox.h);
//   2. download: ChangesRequest after the local cursor until has_more is
//      false, each page applied together with its cursor in one write.
// A round runs every `interval`, soon after a checkout commit (Trigger()),
// at once when the server pushes a PushNotification, and on demand
// (SyncNow). While the server is unreachable, attempts back off
// exponentially with jitter up to `backoff_max`; each attempt reloads the
// certificate bundle from disk, so a renewed bundle copied into the
// --tls-dir is picked up without a restart.
//
// Threads: one I/O thread runs the connection (sync/connection.h); one sync
// thread runs the rounds in plain blocking steps (request, wait for the
// answer with a timeout). SQLite work never runs on the I/O thread. Reads
// (outbox, cursor, status) use the client's own read-only connection; every
// write goes through AgentSyncHost::write.
//
// Ownership: AgentSync owns its threads and connection; Stop() (or the
// destructor) closes the connection and joins both threads, and must run
// before whatever `host` refers to is destroyed. Thread-safe: Trigger,
// SyncNow, Status and Stop may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "pki/bundle.h"
#include "storage/agent_store.h"
#include "sync/connection.h"

namespace loyalty::sync {

// Error codes the client reports in SyncStatus::last_error, beside the
// transport's (sync/protocol.h) and the server's SyncError codes.
namespace code {
inline constexpr const char* kCertificateExpired = "certificate_expired";
inline constexpr const char* kBadBundle = "bad_bundle";
inline constexpr const char* kProtocolError = "protocol_error";
inline constexpr const char* kStopped = "stopped";
inline constexpr const char* kOffline = "offline";
}  // namespace code

struct AgentSyncOptions {
  std::string host;  // of loyalty-server
  std::uint16_t port = 0;
  std::string server_name;  // the name its certificate must carry; empty: host
  std::string terminal_id;
  std::string db_path;            // the terminal database (read here, written via host)
  std::filesystem::path tls_dir;  // the store's certificate bundle
  std::chrono::milliseconds interval{5000};
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{std::chrono::seconds(30)};
  // Each UploadBatch is one server transaction, whose commit writes every
  // index page it touched: larger batches write a hot page once for more
  // events, but hold the server's database thread longer.
  int batch_events = 5000;            // events per UploadBatch, at most
  std::size_t batch_bytes = 2 << 20;  // and about this many bytes (frames: 4 MiB)
  // UploadBatches sent before the first one's UploadAck arrives, so the
  // server ingests one while the agent reads the next and records the last
  // ack. Acks are still applied in order; 1 is stop-and-wait.
  int batches_in_flight = 3;
  std::uint32_t page_changes = 500;  // changes per ChangesPage asked for
  // Which member snapshots this terminal replicates. Widening the scope back
  // to ALL restarts the download from a full snapshot.
  loyalty::v1::MemberScope member_scope = loyalty::v1::MEMBER_SCOPE_ALL;
  ConnectionOptions connection;
};

// What the client needs from the rest of the agent.
struct AgentSyncHost {
  // Runs `write` atomically and durably, serialised with the terminal's other
  // writes; returns once it is on disk (or failed and left nothing).
  std::function<core::Status(std::function<core::Status(storage::AgentStore&)> write)> write;
  // The programme or offers changed in the database (may be empty).
  std::function<void()> catalogue_changed;
};

struct SyncStatus {
  int64_t pending_events = 0;  // outbox size
  int64_t dead_letters = 0;
  // End of the last successful round, also one before a restart; 0: never.
  int64_t last_success_ms = 0;
  std::optional<core::Error> last_error;  // of the last round, cleared by a success
  uint64_t cursor = 0;
  bool connected = false;
  uint64_t epoch = 0;
  std::string server;                                       // host:port
  std::vector<storage::DeadLetterRow> recent_dead_letters;  // the first 20
  // This terminal's clock minus the server's (ms) at the last connection.
  std::optional<int64_t> clock_skew_ms;
};

class AgentSync {
 public:
  // Opens the read connection, checks the bundle (a bundle that cannot be
  // loaded is a start-up error; an expired certificate is not: the agent
  // keeps working offline and reports it) and starts both threads.
  static core::Result<std::unique_ptr<AgentSync>> Start(AgentSyncOptions options,
                                                        AgentSyncHost host);
  ~AgentSync();
  AgentSync(const AgentSync&) = delete;
  AgentSync& operator=(const AgentSync&) = delete;

  // Asks for a round soon (e.g. after a commit). Ignored while backing off.
  void Trigger();

  // Runs a round now (even while backing off) and waits for a round that
  // started after this call to end, at most `timeout`. The status afterwards,
  // or the round's error (timeout if it did not end in time).
  core::Result<SyncStatus> SyncNow(std::chrono::milliseconds timeout);

  SyncStatus Status();

  // Asks the server, over the open connection, for the member holding
  // `card_hash` (a card this terminal does not replicate) and installs the
  // snapshot locally through AgentSyncHost::write before returning it.
  // nullopt: the server knows no such card. Fails at once with
  // code::kOffline when no connection is open, and with kTimeout after
  // `timeout`. Does not wait for a sync round; any thread.
  core::Result<std::optional<loyalty::v1::MemberSnapshot>> LookupMember(
      const std::string& card_hash, std::chrono::milliseconds timeout);

  // Closes the connection and joins the threads; a round in progress stops
  // at its next step. Idempotent.
  void Stop();

 private:
  struct State;
  explicit AgentSync(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace loyalty::sync
