#include "common/proc/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status.h"
#include "common/proc/spawn.h"

namespace assay {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr std::string_view kDefaultPath = "/usr/local/bin:/usr/bin:/bin";

void SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// Reads what is available from `fd` into `sink`; closes `fd` at EOF or on an error.
// With `until_would_block`, keeps reading until the pipe is empty.
void ReadAvailable(UniqueFd& fd, std::string& sink, bool until_would_block) {
  char buf[kReadChunk];
  while (fd.valid()) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n > 0) {
      sink.append(buf, static_cast<size_t>(n));
      if (!until_would_block) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    fd.Reset();  // EOF or error
  }
}

}  // namespace

std::string DescribeCommand(const std::vector<std::string>& argv) {
  constexpr size_t kMax = 200;
  std::string text = absl::StrJoin(argv, " ");
  if (text.size() > kMax) text = absl::StrCat(text.substr(0, kMax), "...");
  return text;
}

absl::StatusOr<CommandResult> RunCommand(
    const std::vector<std::string>& argv, const std::string& cwd,
    const std::vector<std::pair<std::string, std::string>>& env, std::string_view stdin_data,
    absl::Duration timeout) {
  ASSAY_ASSIGN_OR_RETURN(std::vector<std::string> envp, MergeEnvironment(env));
  return RunCommandInEnvironment(argv, cwd, std::move(envp), stdin_data, timeout);
}

absl::StatusOr<CommandResult> RunCommandInEnvironment(const std::vector<std::string>& argv,
                                                      const std::string& cwd,
                                                      std::vector<std::string> envp,
                                                      std::string_view stdin_data,
                                                      absl::Duration timeout) {
  if (argv.empty()) return absl::InvalidArgumentError("RunCommand: empty argv");
  const absl::Time deadline = absl::Now() + timeout;
  std::string_view path_env = LookupEnv(envp, "PATH").value_or(kDefaultPath);
  absl::StatusOr<std::string> program = FindExecutable(argv[0], path_env);
  if (!program.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot run \"", argv[0], "\": ", program.status().message()));
  }

  ASSAY_ASSIGN_OR_RETURN(Pipe out_pipe, MakePipe());
  ASSAY_ASSIGN_OR_RETURN(Pipe err_pipe, MakePipe());
  Pipe in_pipe;
  if (!stdin_data.empty()) {
    ASSAY_ASSIGN_OR_RETURN(in_pipe, MakePipe());
  }

  SpawnOptions options;
  options.path = *program;
  options.argv = argv;
  options.env = std::move(envp);
  options.cwd = cwd;
  options.stdin_fd = in_pipe.read.valid() ? in_pipe.read.get() : -1;
  options.stdout_fd = out_pipe.write.get();
  options.stderr_fd = err_pipe.write.get();
  options.new_process_group = true;
  options.parent_death_signal = SIGKILL;
  absl::StatusOr<pid_t> spawned = SpawnProcess(options);
  if (!spawned.ok()) {
    return absl::Status(
        spawned.status().code(),
        absl::StrCat("cannot run \"", DescribeCommand(argv), "\": ", spawned.status().message()));
  }
  const pid_t pid = *spawned;
  // Our copies of the child's ends must go, or we would never see EOF.
  out_pipe.write.Reset();
  err_pipe.write.Reset();
  in_pipe.read.Reset();

  UniqueFd out = std::move(out_pipe.read);
  UniqueFd err = std::move(err_pipe.read);
  UniqueFd in = std::move(in_pipe.write);
  SetNonBlocking(out.get());
  SetNonBlocking(err.get());
  if (in.valid()) SetNonBlocking(in.get());
  // Why a pidfd: the child's exit, not pipe EOF, ends the wait, so a background process that
  // inherited the pipes cannot hold us until the timeout. Without pidfd (old kernels) we fall
  // back to waiting for EOF on both pipes.
  UniqueFd pidfd(OpenPidfd(pid));

  CommandResult result;
  size_t stdin_offset = 0;
  bool timed_out = false;
  for (;;) {
    if (!pidfd.valid() && !out.valid() && !err.valid()) break;
    pollfd fds[4];
    int nfds = 0;
    int out_index = -1, err_index = -1, in_index = -1, pid_index = -1;
    if (out.valid()) {
      out_index = nfds;
      fds[nfds++] = {out.get(), POLLIN, 0};
    }
    if (err.valid()) {
      err_index = nfds;
      fds[nfds++] = {err.get(), POLLIN, 0};
    }
    if (in.valid()) {
      in_index = nfds;
      fds[nfds++] = {in.get(), POLLOUT, 0};
    }
    if (pidfd.valid()) {
      pid_index = nfds;
      fds[nfds++] = {pidfd.get(), POLLIN, 0};
    }
    int ready = poll(fds, static_cast<nfds_t>(nfds), PollTimeoutMs(deadline));
    if (ready < 0) {
      if (errno == EINTR) continue;
      KillAndReapGroup(pid, pid);
      return absl::InternalError(absl::StrCat("poll: ", strerror(errno)));
    }
    if (ready == 0) {
      if (absl::Now() < deadline) continue;
      timed_out = true;
      break;
    }
    if (out_index >= 0 && fds[out_index].revents != 0) ReadAvailable(out, result.out, false);
    if (err_index >= 0 && fds[err_index].revents != 0) ReadAvailable(err, result.err, false);
    if (in_index >= 0 && fds[in_index].revents != 0) {
      if ((fds[in_index].revents & POLLOUT) != 0) {
        std::string_view rest = stdin_data.substr(stdin_offset);
        ssize_t n = WriteNoSigpipe(in.get(), rest.data(), rest.size());
        if (n > 0) stdin_offset += static_cast<size_t>(n);
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || stdin_offset == stdin_data.size()) {
          in.Reset();  // done, or the child closed its stdin: either way it gets EOF
        }
      } else {
        in.Reset();  // POLLERR: the read end is gone
      }
    }
    if (pid_index >= 0 && fds[pid_index].revents != 0) break;  // the child has exited
  }

  // The child is exited (or to be killed) but not reaped, so its pid still names its group.
  ExitInfo exit = KillAndReapGroup(pid, pid);
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(
        "command \"", DescribeCommand(argv), "\" timed out after ", absl::FormatDuration(timeout)));
  }
  // Everything the group wrote is in the pipes now; take it without waiting for writers that
  // escaped the group.
  ReadAvailable(out, result.out, true);
  ReadAvailable(err, result.err, true);
  result.exit_code = exit.exit_code;
  result.term_signal = exit.term_signal;
  return result;
}

}  // namespace assay
