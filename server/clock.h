// The wall clock in milliseconds since the epoch, as events and the ledger
// count time (core/ takes the time as an argument and never reads a clock).
#pragma once

#include <chrono>
#include <cstdint>

namespace loyalty::server {

inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace loyalty::server
