#pragma once
// A child process for end-to-end tests: started with posix-style spawning (common/spawn.h), stdout
// and stderr appended to a log file, and never left behind (the destructor sends SIGTERM, then
// SIGKILL, and reaps it).
//
// Not thread-safe; use each Process from one thread. The children get PR_SET_PDEATHSIG(SIGKILL), so
// they die with the thread that started them: start them from the test's main thread.

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace assay::testing {

class Process {
 public:
  // Starts argv[0] (a path, not looked up in PATH) with `argv`, this process's environment
  // without the variables whose names start with one of `drop_env_prefixes`, plus `env` (kept
  // even when its names have such a prefix: that is how tests pass secrets), stdin from
  // /dev/null and stdout + stderr appended to `log_path` (created if missing).
  // kInvalidArgument for an empty argv; kInternal when the log cannot be opened or the program
  // cannot be started.
  static absl::StatusOr<std::unique_ptr<Process>> Start(
      const std::vector<std::string>& argv, const std::string& log_path,
      const std::vector<std::pair<std::string, std::string>>& env = {},
      const std::vector<std::string>& drop_env_prefixes = {});

  ~Process();  // Stop()
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  bool reaped() const { return exit_code_.has_value(); }

  // Sends `sig` unless the process has been reaped already (then it is a no-op, so a recycled pid
  // can never be hit).
  void Kill(int sig);

  // Polls (every 10 ms) up to `timeout` for the process to exit and reaps it. Returns its exit
  // status (128 + N when killed by signal N), or nullopt while it still runs.
  std::optional<int> Wait(absl::Duration timeout);

  // Whether the process has exited (reaping it if so), without waiting.
  bool Exited() { return Wait(absl::ZeroDuration()).has_value(); }

  // SIGTERM, up to `grace` to exit, then SIGKILL; reaps. Returns the exit status.
  int Stop(absl::Duration grace = absl::Seconds(5));

  // The last `max_bytes` of the log file (the whole file when shorter).
  std::string LogTail(size_t max_bytes = 4000) const;

 private:
  Process(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}

  pid_t pid_;
  std::string log_path_;
  std::optional<int> exit_code_;
};

// Reads a whole file; "" when it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

// The last `max_bytes` of `text`, prefixed with "..." when cut.
std::string Tail(const std::string& text, size_t max_bytes);

// Whether a process with this pid exists (kill(pid, 0) succeeds or fails with EPERM). A zombie
// still exists.
bool PidExists(pid_t pid);

// A 127.0.0.1 port that was free a moment ago (bind port 0, read it, close); 0 when none could
// be had. Why acceptable: the window before a server binds it is tiny, and each caller fails
// clearly (or retries with another port) when something took it in between.
int FreePort();

}  // namespace assay::testing
