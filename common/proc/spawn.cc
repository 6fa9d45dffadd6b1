#include "common/proc/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cmath>
#include <new>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace assay {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) Reset(other.Release());
  return *this;
}

int UniqueFd::Release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

namespace {

// Debian's Abseil has its own string_view type, distinct from std::string_view.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string ErrnoText(int err) { return strerror(err); }

// Moves `fd` (O_CLOEXEC) to a number >= 3 if it is 0, 1 or 2.
absl::StatusOr<UniqueFd> AboveStdio(int fd) {
  UniqueFd owned(fd);
  if (fd >= 3) return owned;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (moved < 0)
    return absl::InternalError(absl::StrCat("fcntl(F_DUPFD_CLOEXEC): ", ErrnoText(errno)));
  return UniqueFd(moved);
}

// Everything the cloned child reads, prepared by the parent (the child must not allocate: it
// shares the parent's memory and the parent thread's locks), plus where it reports a failure.
struct ChildArgs {
  const char* path;
  char* const* argv;
  char* const* envp;
  const char* cwd;  // nullptr: inherit
  int fds[3];
  bool new_process_group;
  int parent_death_signal;
  bool set_identity;
  uid_t uid;
  gid_t gid;
  const gid_t* groups;
  size_t group_count;
  int cgroup_procs_fd;
  pid_t parent_pid;
  // Written by the child before _exit; read by the parent after clone returns (CLONE_VFORK).
  int error;
  const char* stage;
};

// Why CLONE_VM | CLONE_VFORK: no page-table copy (the agent may be large and multi-threaded),
// and clone returns only once the child has exec'd or failed, with its error in ChildArgs.
// Under ThreadSanitizer the child gets its own copy of memory instead: TSan's clone interceptor
// treats every clone as a fork and resets its runtime state in the child, which under CLONE_VM
// is the parent's (the runtime aborts with "CHECK failed: tsan_rtl.cpp:234").
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ASSAY_SPAWN_COPIES_MEMORY 1
#endif
#endif
#ifdef ASSAY_SPAWN_COPIES_MEMORY
constexpr int kCloneFlags = CLONE_VFORK | SIGCHLD;
#else
constexpr int kCloneFlags = CLONE_VM | CLONE_VFORK | SIGCHLD;
#endif

[[noreturn]] void ChildFail(ChildArgs* args, const char* stage) {
  args->error = errno;
  args->stage = stage;
  _exit(127);
}

// Runs in the child, on its own small stack, sharing the parent's memory: only system calls.
int ChildMain(void* raw) {
  auto* args = static_cast<ChildArgs*>(raw);
  // All signals are blocked (the parent blocked them before clone). Reset every disposition
  // before unblocking: a parent handler must not run here, and ignored signals (SIGPIPE in a
  // server) must not be inherited by the program we exec.
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sigaction(sig, &dfl, nullptr);  // fails harmlessly for libc-internal signals
  }
  if (args->cgroup_procs_fd >= 0 && write(args->cgroup_procs_fd, "0", 1) != 1) {
    ChildFail(args, "join cgroup");
  }
  if (args->new_process_group && setpgid(0, 0) != 0) ChildFail(args, "setpgid");
  if (args->parent_death_signal != 0) {
    if (prctl(PR_SET_PDEATHSIG, args->parent_death_signal) != 0) ChildFail(args, "prctl");
    // The parent may have died before prctl took effect.
    if (getppid() != args->parent_pid) _exit(127);
  }
  for (int target = 0; target < 3; ++target) {
    // Sources are >= 3 (see AboveStdio), so no dup2 can clobber a later source.
    if (dup2(args->fds[target], target) < 0) ChildFail(args, "dup2");
  }
  if (close_range(3, ~0U, 0) != 0) {
    struct rlimit limit;
    int max_fd = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                     ? static_cast<int>(limit.rlim_cur)
                     : 65536;
    for (int fd = 3; fd < max_fd; ++fd) close(fd);
  }
  if (args->set_identity) {
    // Raw system calls, not glibc's setgroups/setgid/setuid: in a multi-threaded process those
    // change the credentials of every thread (glibc's "setxid" broadcast), and this child
    // shares the parent's memory and thread list (CLONE_VM), so they would reach the parent's
    // threads. The system calls change this task alone.
    if (syscall(SYS_setgroups, args->group_count, args->groups) != 0) {
      ChildFail(args, "setgroups");
    }
    if (syscall(SYS_setresgid, args->gid, args->gid, args->gid) != 0) ChildFail(args, "setgid");
    if (syscall(SYS_setresuid, args->uid, args->uid, args->uid) != 0) ChildFail(args, "setuid");
    // Why check: a setuid that "succeeds" while a saved id stays privileged would let the
    // job regain it; setuid as root sets all three, so anything else is a broken invariant.
    uid_t r, e, saved;
    if (args->uid != 0 && (getresuid(&r, &e, &saved) != 0 || r != args->uid || e != args->uid ||
                           saved != args->uid)) {
      errno = EPERM;
      ChildFail(args, "setuid");
    }
  }
  if (args->cwd != nullptr && chdir(args->cwd) != 0) ChildFail(args, "chdir");
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);
  execve(args->path, args->argv, args->envp);
  ChildFail(args, "exec");
}

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

ExitInfo ExitInfoFromSiginfo(const siginfo_t& info) {
  ExitInfo result;
  result.reaped = true;
  if (info.si_code == CLD_EXITED) {
    result.exit_code = info.si_status;
  } else {
    result.term_signal = info.si_status;
    result.exit_code = 128 + info.si_status;
  }
  return result;
}

absl::StatusOr<Pipe> MakePipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", ErrnoText(errno)));
  }
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  Pipe pipe;
  auto r = AboveStdio(read_end.Release());
  if (!r.ok()) return r.status();
  pipe.read = std::move(*r);
  auto w = AboveStdio(write_end.Release());
  if (!w.ok()) return w.status();
  pipe.write = std::move(*w);
  return pipe;
}

absl::StatusOr<pid_t> SpawnProcess(const SpawnOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("SpawnProcess: empty argv");
  // /dev/null for the standard descriptors not given.
  UniqueFd dev_null;
  int fds[3] = {options.stdin_fd, options.stdout_fd, options.stderr_fd};
  for (int& fd : fds) {
    if (fd >= 0 && fd < 3) {
      return absl::InvalidArgumentError("SpawnProcess: stdio sources must be descriptors >= 3");
    }
    if (fd >= 0) continue;
    if (!dev_null.valid()) {
      int raw = open("/dev/null", O_RDWR | O_CLOEXEC);
      if (raw < 0) return absl::InternalError(absl::StrCat("open /dev/null: ", ErrnoText(errno)));
      auto moved = AboveStdio(raw);
      if (!moved.ok()) return moved.status();
      dev_null = std::move(*moved);
    }
    fd = dev_null.get();
  }

  std::vector<char*> argv = CStrings(options.argv);
  std::vector<char*> envp = CStrings(options.env);
  // The child's stack, with ChildArgs at its far end. Shared, so that the child's error reaches
  // the parent also where the child has its own copy of memory (kCloneFlags under TSan).
  constexpr size_t kStackSize = 64 * 1024;
  void* stack = mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("mmap child stack: ", ErrnoText(errno)));
  }
  ChildArgs& args = *new (stack) ChildArgs{};
  args.path = options.path.c_str();
  args.argv = argv.data();
  args.envp = envp.data();
  args.cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  for (int i = 0; i < 3; ++i) args.fds[i] = fds[i];
  args.new_process_group = options.new_process_group;
  args.parent_death_signal = options.parent_death_signal;
  args.set_identity = options.set_identity;
  args.uid = options.uid;
  args.gid = options.gid;
  args.groups = options.groups.data();
  args.group_count = options.groups.size();
  args.cgroup_procs_fd = options.cgroup_procs_fd;
  args.parent_pid = getpid();

  sigset_t all, old_mask;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old_mask);
  pid_t pid = clone(ChildMain, static_cast<char*>(stack) + kStackSize, kCloneFlags, &args);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  const char* stage = args.stage;
  const int error = args.error;
  munmap(stack, kStackSize);

  if (pid < 0) return absl::InternalError(absl::StrCat("clone: ", ErrnoText(clone_errno)));
  if (stage != nullptr) {
    WaitForExit(pid);
    std::string what = stage;
    if (what == "chdir") absl::StrAppend(&what, " ", options.cwd);
    return absl::InternalError(
        absl::StrCat("cannot start ", options.path, ": ", what, ": ", ErrnoText(error)));
  }
  return pid;
}

absl::Status CheckEnvironmentOverrides(
    const std::vector<std::pair<std::string, std::string>>& overrides) {
  for (const auto& [name, value] : overrides) {
    if (name.empty() || name.find_first_of(std::string_view("=\0", 2)) != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid environment variable name \"", name, "\""));
    }
    if (value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable ", name, " contains a NUL byte"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> MergeEnvironment(
    const std::vector<std::pair<std::string, std::string>>& overrides) {
  if (absl::Status s = CheckEnvironmentOverrides(overrides); !s.ok()) return s;
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    env.emplace_back(*entry);
  }
  for (const auto& [name, value] : overrides) {
    std::string assignment = absl::StrCat(name, "=", value);
    bool replaced = false;
    for (std::string& existing : env) {
      if (existing.size() > name.size() && existing.compare(0, name.size(), name) == 0 &&
          existing[name.size()] == '=') {
        existing = assignment;
        replaced = true;
        break;
      }
    }
    if (!replaced) env.push_back(std::move(assignment));
  }
  return env;
}

std::optional<std::string_view> LookupEnv(const std::vector<std::string>& env,
                                          std::string_view name) {
  for (const std::string& entry : env) {
    std::string_view view(entry);
    if (view.size() > name.size() && view.substr(0, name.size()) == name &&
        view[name.size()] == '=') {
      return view.substr(name.size() + 1);
    }
  }
  return std::nullopt;
}

absl::StatusOr<std::string> FindExecutable(std::string_view name, std::string_view path_env) {
  if (name.empty()) return absl::InvalidArgumentError("empty program name");
  if (name.find('/') != std::string_view::npos) return std::string(name);
  size_t start = 0;
  while (start <= path_env.size()) {
    size_t end = path_env.find(':', start);
    if (end == std::string_view::npos) end = path_env.size();
    std::string_view dir = path_env.substr(start, end - start);
    std::string candidate =
        absl::StrCat(dir.empty() ? absl::string_view(".") : Av(dir), "/", Av(name));
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return absl::NotFoundError(absl::StrCat("program \"", Av(name), "\" not found in PATH"));
}

int OpenPidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

ssize_t WriteNoSigpipe(int fd, const void* data, size_t size) {
  sigset_t pipe_set, pending, old_mask;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigpending(&pending);
  bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
  ssize_t written = write(fd, data, size);
  int err = errno;
  if (written < 0 && err == EPIPE && !was_pending) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  errno = err;
  return written;
}

absl::Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = WriteNoSigpipe(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("write: ", ErrnoText(errno)));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

ExitInfo WaitForExit(pid_t pid) {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  while (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED) != 0) {
    if (errno != EINTR) return ExitInfo{};
  }
  return ExitInfoFromSiginfo(info);
}

ExitInfo KillAndReapGroup(pid_t pgid, pid_t leader) {
  kill(-pgid, SIGKILL);
  kill(leader, SIGKILL);  // in case it left its group; it is unreaped, so the pid is still its
  ExitInfo leader_exit;
  for (;;) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    if (waitid(P_PGID, static_cast<id_t>(pgid), &info, WEXITED) != 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: no child of ours is left in the group
    }
    if (info.si_pid == leader) leader_exit = ExitInfoFromSiginfo(info);
  }
  if (!leader_exit.reaped) leader_exit = WaitForExit(leader);
  return leader_exit;
}

int PollTimeoutMs(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  double ms = std::ceil(absl::ToDoubleMilliseconds(left));
  return ms >= INT_MAX ? INT_MAX : static_cast<int>(ms);
}

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  if (abbrev == nullptr) return absl::StrCat("signal ", sig);
  return absl::StrCat("SIG", abbrev);
}

}  // namespace assay
