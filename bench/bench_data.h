// Synthetic but realistic terminal data for benchmarks: card numbers,
// member snapshots and a catalogue of targeted offers, written straight into
// an agent database so a million members load in seconds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace loyalty::bench {

// Card number of synthetic member `i` (16 digits, valid Luhn).
std::string CardNumber(int64_t i);

struct SeedOptions {
  std::string data_dir;
  int64_t members = 1'000'000;
  int offers = 1'000;
  int segments = 100;  // each member is in two of them
};

// Creates <data_dir>/card-hash.key when missing (32 random bytes, 0600) and
// returns its contents.
core::Result<std::string> EnsureCardHashKey(const std::string& data_dir);

// Writes members (as server snapshots) and offers into <data_dir>/agent.db.
// Offers: 90% aimed at one segment, 8% at one tier, 2% at everybody, with
// mixed rewards. Idempotent for members already present.
core::Status Seed(const SeedOptions& options);

}  // namespace loyalty::bench
