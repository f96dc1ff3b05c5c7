// Internal to pki/: small POSIX file helpers with explicit permissions.
// Writes are atomic (temporary file, fsync, rename), so a crash never leaves
// a half-written key or index. Not safe for concurrent writers of one path;
// CaLock serialises writers of one CA directory across processes.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "core/result.h"

namespace loyalty::pki {

core::Result<std::string> ReadFile(const std::filesystem::path& path);
// Replaces `path` atomically with `data`; the file gets exactly `mode`.
core::Status WriteFileAtomic(const std::filesystem::path& path, std::string_view data, mode_t mode);
// Creates `dir` (and parents) if missing and sets it to exactly `mode`.
core::Status EnsureDirectory(const std::filesystem::path& dir, mode_t mode);
// The permission bits of `path`, or an io_error.
core::Result<mode_t> FileMode(const std::filesystem::path& path);

// An exclusive advisory lock (flock) on `<dir>/.lock`, held while alive.
class CaLock {
 public:
  static core::Result<CaLock> Acquire(const std::filesystem::path& dir);
  CaLock(CaLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  CaLock& operator=(CaLock&&) = delete;
  ~CaLock();

 private:
  explicit CaLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace loyalty::pki
