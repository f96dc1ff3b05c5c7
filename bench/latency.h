// Latency samples and their percentiles, for benchmarks that report tails.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace loyalty::bench {

class Latencies {
 public:
  void Reserve(size_t n) { samples_.reserve(n); }
  void Add(int64_t nanos) { samples_.push_back(nanos); }
  size_t size() const { return samples_.size(); }

  // The q-quantile (0..1) in microseconds; 0 when empty.
  double PercentileMicros(double q) {
    if (samples_.empty()) return 0;
    const size_t k = std::min(samples_.size() - 1, static_cast<size_t>(q * samples_.size()));
    std::nth_element(samples_.begin(), samples_.begin() + static_cast<std::ptrdiff_t>(k),
                     samples_.end());
    return static_cast<double>(samples_[k]) / 1000.0;
  }

 private:
  std::vector<int64_t> samples_;
};

}  // namespace loyalty::bench
