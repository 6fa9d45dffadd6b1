#pragma once
// Low-level process plumbing shared by RunCommand (common/subprocess.h), the git mirror's
// long-lived `git cat-file --batch` child (common/git.h) and the agent's step runner.
// Linux only: uses clone(CLONE_VM|CLONE_VFORK), pidfd_open, close_range and waitid(P_PGID).

#include <signal.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace assay {

// Owns one file descriptor and closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release();
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A pipe whose both ends are O_CLOEXEC and numbered >= 3 (so that mapping them onto a child's
// 0/1/2 can never clobber one another).
struct Pipe {
  UniqueFd read;
  UniqueFd write;
};
absl::StatusOr<Pipe> MakePipe();

// What a child process starts with. Every descriptor other than 0/1/2 is closed in the child.
struct SpawnOptions {
  std::string path;               // the executable; used as is (no PATH lookup)
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // the complete environment, one "NAME=value" per entry
  std::string cwd;                // empty: inherit
  // Descriptors to become the child's 0, 1 and 2; -1 means /dev/null. The same fd may be given
  // twice (e.g. stdout and stderr merged into one pipe).
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  bool new_process_group = false;  // setpgid(0, 0): the child's pid is its group id
  // PR_SET_PDEATHSIG in the child. The kernel sends it when the *thread* that spawned the child
  // exits, so only use it when the spawning thread outlives the child (e.g. blocks until reaped).
  int parent_death_signal = 0;
  // When set, the child drops to this identity before exec: setgroups(groups), setgid(gid),
  // setuid(uid), in that order (needs CAP_SETUID/CAP_SETGID, i.e. a root agent). A failure
  // to drop is a start error ("setgroups", "setgid", "setuid"), never a child left running
  // with more privilege. cwd is entered after the drop, so it is checked as that user.
  bool set_identity = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups; empty: none
  // An open, writable `cgroup.procs` of a cgroup v2 directory: the child moves itself there
  // (writes "0") before anything else that can fail, so every descendant is in it. -1: none.
  int cgroup_procs_fd = -1;
};

// Starts a child with clone(CLONE_VM | CLONE_VFORK) (as cheap as vfork). The child starts with an
// empty signal mask and every signal at its default action (so an ignored SIGPIPE in this process
// does not leak into children). kInternal, naming the failing stage ("chdir", "exec"), when the
// child cannot be started; in that case nothing is left to reap.
absl::StatusOr<pid_t> SpawnProcess(const SpawnOptions& options);

// kInvalidArgument for an override name that is empty or contains '=' or NUL, or a value
// that contains NUL (naming the variable); OK otherwise.
absl::Status CheckEnvironmentOverrides(
    const std::vector<std::pair<std::string, std::string>>& overrides);

// This process's environment with `overrides` applied (replaced in place, or appended).
// kInvalidArgument for an override name that is empty or contains '=' or NUL.
absl::StatusOr<std::vector<std::string>> MergeEnvironment(
    const std::vector<std::pair<std::string, std::string>>& overrides);

// The value of `name` in an environment built by MergeEnvironment; nullopt when unset.
std::optional<std::string_view> LookupEnv(const std::vector<std::string>& env,
                                          std::string_view name);

// Resolves a program name like execvp does: a name containing '/' is used as is; otherwise the
// first executable regular file named `name` in the ':'-separated `path_env` (an empty entry
// means the current directory). kNotFound when there is none.
absl::StatusOr<std::string> FindExecutable(std::string_view name, std::string_view path_env);

// pidfd_open(pid): readable once the process has exited. -1 with errno set when unsupported.
int OpenPidfd(pid_t pid);

// write(2) that never raises SIGPIPE (a child that closed its stdin yields EPIPE instead):
// SIGPIPE is blocked on this thread around the write and a SIGPIPE it generated is consumed.
ssize_t WriteNoSigpipe(int fd, const void* data, size_t size);
// Writes all of `data` to a blocking fd, retrying on EINTR. kUnavailable (with strerror) on error.
absl::Status WriteAll(int fd, std::string_view data);

// How a reaped process ended.
struct ExitInfo {
  bool reaped = false;  // false: the process was not found among this process's children
  int exit_code = -1;   // the exit status, or 128 + signal
  int term_signal = 0;  // the signal that killed it, 0 if it exited
};

// SIGKILLs every process still in process group `pgid` (whose leader `leader` must be a child of
// this process that has not been reaped yet, so the group id cannot have been reused), then reaps
// every child of this process in that group, blocking until none is left. Returns how `leader`
// ended. Why reap by group: when this process is a child subreaper (see the step runner), orphaned
// members of the group are re-parented to it and would otherwise stay zombies.
ExitInfo KillAndReapGroup(pid_t pgid, pid_t leader);

// How the process that `info` (from waitid) describes ended.
ExitInfo ExitInfoFromSiginfo(const siginfo_t& info);

// waitpid(pid) retrying on EINTR.
ExitInfo WaitForExit(pid_t pid);

// Milliseconds for poll(2) until `deadline`: -1 for an infinite deadline, 0 once it has passed,
// rounded up so that poll does not wake up just before the deadline.
int PollTimeoutMs(absl::Time deadline);

// "name" for the signal, e.g. "SIGTERM"; "signal N" when unknown.
std::string SignalName(int sig);

}  // namespace assay
