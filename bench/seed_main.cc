// loyalty-bench-seed DATA_DIR [MEMBERS] [OFFERS]: fills an agent database
// with synthetic members and offers for load tests, then exits.
#include <cstdlib>
#include <iostream>

#include "bench/bench_data.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: loyalty-bench-seed DATA_DIR [MEMBERS] [OFFERS]\n";
    return 2;
  }
  loyalty::bench::SeedOptions options;
  options.data_dir = argv[1];
  if (argc > 2) options.members = std::atoll(argv[2]);
  if (argc > 3) options.offers = std::atoi(argv[3]);
  if (auto s = loyalty::bench::Seed(options); !s.ok()) {
    std::cerr << "seed failed: " << s.error().message << "\n";
    return 1;
  }
  std::cout << "seeded " << options.members << " members and " << options.offers
            << " offers into " << options.data_dir << "\n";
  return 0;
}
