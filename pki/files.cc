#include "pki/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "pki/errors.h"

namespace loyalty::pki {
namespace {

core::Error IoError(std::string_view what, const std::filesystem::path& path, int err) {
  return core::MakeError(code::kIoError,
                         std::string(what) + " " + path.string() + ": " + std::strerror(err));
}

}  // namespace

core::Result<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return IoError("cannot open", path, errno);
  std::ostringstream data;
  data << in.rdbuf();
  if (in.bad()) return IoError("cannot read", path, errno);
  return data.str();
}

core::Status WriteFileAtomic(const std::filesystem::path& path, std::string_view data,
                             mode_t mode) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  // O_EXCL after unlink: never follow a planted symlink to a key file.
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return IoError("cannot create", tmp, errno);
  bool ok = ::fchmod(fd, mode) == 0;  // the umask may have cleared bits we want
  for (std::size_t done = 0; ok && done < data.size();) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    err = ok ? errno : err;
    ::unlink(tmp.c_str());
    return IoError("cannot write", path, err);
  }
  return {};
}

core::Status EnsureDirectory(const std::filesystem::path& dir, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return IoError("cannot create directory", dir, ec.value());
  if (::chmod(dir.c_str(), mode) != 0) return IoError("cannot chmod", dir, errno);
  return {};
}

core::Result<mode_t> FileMode(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return IoError("cannot stat", path, errno);
  return static_cast<mode_t>(st.st_mode & 07777);
}

core::Result<CaLock> CaLock::Acquire(const std::filesystem::path& dir) {
  std::filesystem::path path = dir / ".lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return IoError("cannot open lock", path, errno);
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      int err = errno;
      ::close(fd);
      return IoError("cannot lock", path, err);
    }
  }
  return CaLock(fd);
}

CaLock::~CaLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace loyalty::pki
