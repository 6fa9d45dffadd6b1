#include "tests/support/process.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "common/proc/spawn.h"

namespace assay::testing {

absl::StatusOr<std::unique_ptr<Process>> Process::Start(
    const std::vector<std::string>& argv, const std::string& log_path,
    const std::vector<std::pair<std::string, std::string>>& env,
    const std::vector<std::string>& drop_env_prefixes) {
  if (argv.empty()) return absl::InvalidArgumentError("Process::Start: empty argv");
  auto envp = MergeEnvironment(env);
  if (!envp.ok()) return envp.status();
  std::erase_if(*envp, [&](const std::string& entry) {
    for (const auto& [name, value] : env) {  // what the caller sets is kept
      if (entry.size() > name.size() && entry.compare(0, name.size(), name) == 0 &&
          entry[name.size()] == '=') {
        return false;
      }
    }
    for (const std::string& prefix : drop_env_prefixes) {
      if (entry.compare(0, prefix.size(), prefix) == 0) return true;
    }
    return false;
  });
  UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!log.valid()) {
    return absl::InternalError(absl::StrCat("cannot open ", log_path, ": ", strerror(errno)));
  }
  SpawnOptions o;
  o.path = argv[0];
  o.argv = argv;
  o.env = std::move(*envp);
  o.stdout_fd = log.get();
  o.stderr_fd = log.get();
  // Why: if the test binary dies (crash, Ctrl-C), its servers and agents go with it.
  o.parent_death_signal = SIGKILL;
  auto pid = SpawnProcess(o);
  if (!pid.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot start ", argv[0], ": ", std::string(pid.status().message())));
  }
  return std::unique_ptr<Process>(new Process(*pid, log_path));
}

Process::~Process() { Stop(); }

void Process::Kill(int sig) {
  if (!exit_code_) ::kill(pid_, sig);
}

std::optional<int> Process::Wait(absl::Duration timeout) {
  if (exit_code_) return exit_code_;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (r < 0 && errno != EINTR) {
      // Not our child any more (should not happen): nothing is left to reap.
      exit_code_ = -1;
      return exit_code_;
    }
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

int Process::Stop(absl::Duration grace) {
  if (exit_code_) return *exit_code_;
  Kill(SIGTERM);
  if (auto code = Wait(grace)) return *code;
  Kill(SIGKILL);
  // SIGKILL cannot be caught: the process exits promptly; this bound only guards against a process
  // stuck in uninterruptible sleep.
  if (auto code = Wait(absl::Seconds(30))) return *code;
  return -1;
}

std::string Process::LogTail(size_t max_bytes) const {
  return Tail(ReadFileOrEmpty(log_path_), max_bytes);
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string Tail(const std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  return "..." + text.substr(text.size() - max_bytes);
}

bool PidExists(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace assay::testing
