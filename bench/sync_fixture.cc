#include "bench/sync_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "pki/ca.h"

namespace loyalty::bench {

namespace fs = std::filesystem;

std::string SiblingBinary(const std::string& relative) {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return (self.parent_path().parent_path() / relative).string();
}

core::Status MakePki(const fs::path& dir, const std::vector<std::string>& store_ids) {
  const fs::path ca = dir / "ca";
  if (auto s = pki::InitCa(ca); !s.ok()) return s;
  if (auto s = pki::IssueServer(ca, "127.0.0.1", dir / "server"); !s.ok()) return s.error();
  for (const auto& id : store_ids) {
    if (auto s = pki::IssueStore(ca, id, StoreBundle(dir, id)); !s.ok()) return s.error();
  }
  return {};
}

fs::path StoreBundle(const fs::path& dir, const std::string& store_id) {
  return dir / ("store-" + store_id);
}

uint64_t RaiseFileLimit(uint64_t wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < wanted) {
    rlimit raised = limit;
    raised.rlim_max = wanted;
    raised.rlim_cur = wanted;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) return wanted;  // allowed as root
  }
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? wanted : std::min<rlim_t>(wanted, limit.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  ::getrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

core::Result<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& binary, const fs::path& dir, const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv = {binary,
                                   "--data-dir",
                                   (dir / "server-data").string(),
                                   "--tls-dir",
                                   (dir / "server").string(),
                                   "--crl",
                                   (dir / "ca" / "crl.pem").string(),
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--admin-listen",
                                   "127.0.0.1:0"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  const std::string log = (dir / "server.log").string();
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return core::MakeError(core::code::kInternal, "fork failed");
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  std::unique_ptr<ServerProcess> server(new ServerProcess(pid, dir));
  const std::string needle = "sync listening on 127.0.0.1:";
  for (int i = 0; i < 600; ++i) {  // up to 60 s (a first start migrates the database)
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    if (auto at = text.find(needle); at != std::string::npos) {
      server->sync_port_ = static_cast<uint16_t>(std::stoi(text.substr(at + needle.size())));
      return server;
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      server->pid_ = -1;
      return core::MakeError(core::code::kInternal,
                             "loyalty-server exited at start; see " + log + ":\n" + text);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return core::MakeError(core::code::kUnavailable, "loyalty-server did not listen; see " + log);
}

ServerProcess::~ServerProcess() { Stop(); }

int ServerProcess::Stop() {
  if (pid_ <= 0) return status_;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  pid_ = -1;
  return status_;
}

int64_t ServerProcess::StatusKib(const char* field) const {
  if (pid_ <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size()));
  }
  return -1;
}

int64_t ServerProcess::RssKib() const { return StatusKib("VmRSS"); }
int64_t ServerProcess::PeakRssKib() const { return StatusKib("VmHWM"); }

double ServerProcess::CpuSeconds() const {
  if (pid_ <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start after ") ".
  const auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; fields >> field; ++i) {  // field 3 is the state
    if (i == 14) utime = std::stoull(field);
    if (i == 15) {
      stime = std::stoull(field);
      break;
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace loyalty::bench
