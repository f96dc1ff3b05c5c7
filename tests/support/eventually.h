// Polling for a condition that real processes make true in their own time.
#pragma once

#include <chrono>
#include <thread>

namespace loyalty::testing {

// True as soon as `pred()` is; false if it still is not after `limit`.
template <typename Pred>
bool Eventually(Pred pred, std::chrono::seconds limit = std::chrono::seconds(120)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

}  // namespace loyalty::testing
