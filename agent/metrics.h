// Metrics: a small Prometheus registry for the agent's HTTP API.
//
// Series exposed (text format 0.0.4):
//   loyalty_http_requests_total{route,status}            counter
//   loyalty_http_request_duration_seconds{route,status}  histogram
//   plus gauges registered with AddGauge (e.g. loyalty_pending_events).
//
// Routes are fixed at construction so the hot path (Observe) is a few relaxed
// atomic increments into a preallocated table: no lock, no allocation.
// Statuses have one slot each for the codes the API answers with; any other
// status is counted under its class ("2xx", "4xx", "5xx"). Only series that
// were observed at least once are printed.
//
// Thread-safe: Observe and Render may run concurrently from any thread.
// AddGauge must be called before the registry is shared between threads.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace loyalty::agent {

class Metrics {
 public:
  // `routes` are the label values the API uses, e.g. "POST /v1/checkout/commit".
  explicit Metrics(std::vector<std::string> routes);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Index of `route` for Observe, or -1 if it was not registered.
  int RouteIndex(std::string_view route) const;

  // Counts one request. Out-of-range route indexes are ignored.
  void Observe(int route, unsigned status, double seconds);

  // A gauge read at render time. `read` must be thread-safe.
  void AddGauge(std::string name, std::string help, std::function<double()> read);

  // The Prometheus text exposition of every series.
  std::string Render() const;

  // Histogram bucket upper bounds, in seconds.
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1.0,  2.5};

 private:
  // Status slots: the statuses the API uses, then the three class buckets.
  static constexpr std::array<unsigned, 13> kStatuses = {200, 201, 204, 400, 404, 405, 408,
                                                         409, 413, 422, 431, 500, 503};
  static constexpr std::size_t kSlots = kStatuses.size() + 4;  // + 2xx, 4xx, 5xx, other

  struct Series {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_ns{0};
    std::array<std::atomic<uint64_t>, kBuckets.size()> buckets{};  // non-cumulative
  };
  struct Gauge {
    std::string name;
    std::string help;
    std::function<double()> read;
  };

  static std::size_t SlotFor(unsigned status);
  static std::string SlotLabel(std::size_t slot);

  std::vector<std::string> routes_;
  std::unique_ptr<Series[]> series_;  // routes_.size() * kSlots
  std::vector<Gauge> gauges_;
};

}  // namespace loyalty::agent
