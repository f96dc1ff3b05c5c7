#include "tests/agent/agent_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/card.h"

namespace loyalty::agent_test {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// fork/exec with stdout and stderr sent to files; returns the pid.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path,
            const std::string& err_path) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  // Child: only async-signal-safe calls from here.
  const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  const int in = ::open("/dev/null", O_RDONLY);
  if (out < 0 || err < 0 || in < 0) _exit(127);
  ::dup2(in, 0);
  ::dup2(out, 1);
  ::dup2(err, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  _exit(127);
}

// Waits up to `timeout_s` for `pid`; returns its exit code, or -1 when it was
// killed by a signal or had to be killed.
int WaitFor(pid_t pid, int timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

std::string BuildDir() {
  const char* dir = std::getenv("LOYALTY_BUILD_DIR");
  return dir && *dir ? dir : ".";
}
std::string AgentBinary() { return BuildDir() + "/agent/loyalty-agent"; }
std::string CtlBinary() { return BuildDir() + "/ctl/loyaltyctl"; }

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "loyalty-test-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) std::abort();
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string TestCard(int n) {
  std::string payload = std::to_string(n);
  payload.insert(0, 15 - payload.size(), '0');
  payload[0] = '4';
  payload.push_back(core::LuhnCheckDigit(payload));
  return payload;
}

ProcessResult RunProcess(const std::vector<std::string>& argv, int timeout_s) {
  TempDir dir;
  const std::string out = dir.path() + "/out", err = dir.path() + "/err";
  const pid_t pid = Spawn(argv, out, err);
  ProcessResult r;
  r.exit_code = pid > 0 ? WaitFor(pid, timeout_s) : -1;
  r.out = ReadFile(out);
  r.err = ReadFile(err);
  return r;
}

std::unique_ptr<AgentProcess> AgentProcess::Start(const std::vector<std::string>& extra_args,
                                                  std::string* error,
                                                  const std::string& data_dir) {
  std::unique_ptr<AgentProcess> p(new AgentProcess());
  p->data_dir_ = data_dir;
  std::vector<std::string> argv = {AgentBinary(), "--data-dir", p->data_dir(), "--listen",
                                   "127.0.0.1:0"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  p->pid_ = Spawn(argv, p->dir_.path() + "/stdout", p->dir_.path() + "/stderr");
  if (p->pid_ < 0) {
    *error = "fork failed";
    return nullptr;
  }
  // Plain string search: std::regex trips GCC 12's -Wmaybe-uninitialized
  // under the sanitizers.
  const std::string needle = "listening on 127.0.0.1:";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string log = p->Stderr();
    if (const auto at = log.find(needle); at != std::string::npos) {
      const std::size_t digits = at + needle.size();
      const std::size_t end = log.find_first_not_of("0123456789", digits);
      if (end != std::string::npos && end > digits) {
        p->port_ = static_cast<uint16_t>(std::stoi(log.substr(digits, end - digits)));
        return p;
      }
    }
    int status = 0;
    if (::waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
      p->pid_ = -1;
      *error = "loyalty-agent exited before listening:\n" + log;
      return nullptr;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  *error = "loyalty-agent did not log 'listening on' within 30 s:\n" + p->Stderr();
  return nullptr;  // the destructor kills it
}

std::string AgentProcess::Stderr() const { return ReadFile(dir_.path() + "/stderr"); }

int AgentProcess::Terminate(int timeout_s) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const int code = WaitFor(pid_, timeout_s);
  pid_ = -1;
  return code;
}

AgentProcess::~AgentProcess() {
  if (pid_ > 0) Terminate();
}

}  // namespace loyalty::agent_test
