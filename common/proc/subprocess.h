#pragma once
// Running a short-lived command to completion and capturing its output (git, tar, podman...).
// For long-running job steps see agent/step_runner.h; for the building blocks, common/spawn.h.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace assay {

struct CommandResult {
  int exit_code = -1;   // the exit status, or 128 + signal when killed by a signal
  int term_signal = 0;  // the signal that killed it, 0 if it exited
  std::string out;      // everything written to stdout
  std::string err;      // everything written to stderr
};

// Runs `argv` (argv[0] is looked up in PATH, the PATH of the child's environment) to completion.
// - cwd: the child's working directory; empty inherits this process's.
// - env: additions/overrides on top of this process's environment.
// - stdin_data: written to the child's stdin, which is then closed; empty gives /dev/null.
// stdout and stderr are captured separately (both pipes are polled, so large output cannot
// deadlock). The child runs in its own process group; when it exits, whatever is left of that
// group (background processes it started) is SIGKILLed and reaped, and output they write after
// that point is not captured. The child gets PR_SET_PDEATHSIG(SIGKILL) (the calling thread blocks
// until it is reaped). No descriptor other than 0/1/2 reaches the child.
// Errors: kInvalidArgument for an empty argv or a bad env name; kInternal when it cannot be
// started (program not found, bad cwd, exec failure: the message says which); kDeadlineExceeded
// after `timeout` (the whole process group is then SIGKILLed). A non-zero exit is NOT an error
// status: check exit_code.
absl::StatusOr<CommandResult> RunCommand(
    const std::vector<std::string>& argv, const std::string& cwd = {},
    const std::vector<std::pair<std::string, std::string>>& env = {},
    std::string_view stdin_data = {}, absl::Duration timeout = absl::Minutes(10));

// RunCommand with the child's complete environment (one "NAME=value" per entry) instead of
// additions to this process's; nothing of this process's environment reaches the child unless
// `envp` has it (git runs this way, without the operator's GIT_* variables).
absl::StatusOr<CommandResult> RunCommandInEnvironment(const std::vector<std::string>& argv,
                                                      const std::string& cwd,
                                                      std::vector<std::string> envp,
                                                      std::string_view stdin_data = {},
                                                      absl::Duration timeout = absl::Minutes(10));

// `argv` joined by spaces and cut to a readable length, for error messages.
std::string DescribeCommand(const std::vector<std::string>& argv);

}  // namespace assay
