// A real child process for integration tests: started with fork/exec, its
// stderr captured to a file, stopped with SIGTERM or killed with SIGKILL.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace loyalty::testing {

class Process {
 public:
  // Starts `argv[0]` with `argv`; stdout and stderr go to `log_path`.
  Process(std::vector<std::string> argv, std::string log_path);
  ~Process();  // kills the process if it still runs
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void Kill();                 // SIGKILL and reap
  int Terminate();             // SIGTERM, wait, return the exit status (or -signal)
  int Wait();                  // wait for exit; status as above
  std::string Log() const;     // everything this process wrote so far

  // Waits until the log contains `needle`; returns the rest of that line
  // after the needle, or "" on timeout or exit.
  std::string WaitForLine(const std::string& needle,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  std::string log_path_;
  size_t log_start_ = 0;  // where this process's output begins in a reused log
};

// Path of a built binary, from the LOYALTY_BUILD_DIR CTest sets.
std::string BuiltBinary(const std::string& relative);

}  // namespace loyalty::testing
