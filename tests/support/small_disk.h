// A small file system that tests can fill: a tmpfs of a given size mounted
// on a fresh temporary directory, unmounted (and the directory removed)
// when the object dies. Mounting needs root; mounted() says whether it
// worked and why() why not, so a test can skip elsewhere.
#pragma once

#include <sys/mount.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "tests/support/temp_dir.h"

namespace loyalty::testing {

class SmallDisk {
 public:
  explicit SmallDisk(size_t bytes) {
    const std::string options = "size=" + std::to_string(bytes);
    if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) != 0) {
      why_ = std::strerror(errno);
    }
  }
  ~SmallDisk() {
    if (why_.empty()) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;

  bool mounted() const { return why_.empty(); }
  const std::string& why() const { return why_; }
  std::string file(const std::string& name) const { return dir_.file(name); }

  // Writes `name` until the file system has no room left; returns the bytes
  // written.
  size_t FillUp(const std::string& name) const {
    FILE* f = std::fopen(file(name).c_str(), "wb");
    if (!f) return 0;
    const std::string chunk(4096, 'x');
    size_t written = 0;
    for (;;) {
      const size_t n = std::fwrite(chunk.data(), 1, chunk.size(), f);
      written += n;
      if (n < chunk.size() || std::fflush(f) != 0) break;
    }
    std::fclose(f);
    return written;
  }

 private:
  TempDir dir_;
  std::string why_;
};

}  // namespace loyalty::testing
