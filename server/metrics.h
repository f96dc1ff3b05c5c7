// ServerMetrics: the counters and gauges loyalty-server exposes at GET
// /metrics in the Prometheus text format (version 0.0.4). Plain atomics:
// every method is thread-safe and lock-free, so I/O threads and the database
// thread update them without coordination.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace loyalty::server {

class ServerMetrics {
 public:
  void ConnectionOpened() { connected_.fetch_add(1, std::memory_order_relaxed); }
  void ConnectionClosed() { connected_.fetch_sub(1, std::memory_order_relaxed); }
  void ConnectionRefused() { refused_.fetch_add(1, std::memory_order_relaxed); }
  void FrameReceived() { frames_in_.fetch_add(1, std::memory_order_relaxed); }
  void FrameSent() { frames_out_.fetch_add(1, std::memory_order_relaxed); }
  void PushSent() { pushes_.fetch_add(1, std::memory_order_relaxed); }
  void MemberLookup(bool found) {
    (found ? lookups_found_ : lookups_missed_).fetch_add(1, std::memory_order_relaxed);
  }
  // One upload recorded in the inbox: events acknowledged (now or before), events
  // rejected, and how long the database call took.
  void BatchIngested(int64_t acknowledged, int64_t rejected, double seconds);
  void FeedVersion(uint64_t version);  // keeps the maximum seen
  // A fold step took `events` from the inbox, leaving `unfolded`.
  void Folded(int64_t events, int64_t unfolded) {
    events_folded_.fetch_add(static_cast<uint64_t>(events), std::memory_order_relaxed);
    Unfolded(unfolded);
  }
  void Unfolded(int64_t unfolded) { unfolded_.store(unfolded, std::memory_order_relaxed); }
  void AdminRequest(unsigned status);

  uint64_t feed_version() const { return feed_version_.load(std::memory_order_relaxed); }
  int64_t connected() const { return connected_.load(std::memory_order_relaxed); }

  // The whole exposition, e.g. "loyalty_connected_agents 3\n...".
  std::string Render() const;

 private:
  static constexpr std::array<double, 10> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,  0.1,    0.25,  0.5,  1.0};
  std::atomic<int64_t> connected_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> frames_in_{0};
  std::atomic<uint64_t> frames_out_{0};
  std::atomic<uint64_t> pushes_{0};
  std::atomic<uint64_t> lookups_found_{0};
  std::atomic<uint64_t> lookups_missed_{0};
  std::atomic<uint64_t> events_acked_{0};
  std::atomic<uint64_t> events_rejected_{0};
  std::atomic<uint64_t> batches_{0};
  std::array<std::atomic<uint64_t>, kBuckets.size()> batch_buckets_{};
  std::atomic<uint64_t> batch_micros_sum_{0};
  std::atomic<uint64_t> feed_version_{0};
  std::atomic<uint64_t> events_folded_{0};
  std::atomic<int64_t> unfolded_{0};
  std::atomic<uint64_t> admin_ok_{0};
  std::atomic<uint64_t> admin_client_errors_{0};
  std::atomic<uint64_t> admin_server_errors_{0};
};

}  // namespace loyalty::server
