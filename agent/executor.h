#pragma once
// Where a job's steps run (issue 9): on the host (the agent's own machine, as it always did),
// in a bubblewrap sandbox, or in a container. The step runner (step_runner.h) keeps what is the
// same for all of them — one process group per step, output pumping, timeouts, cancels, the
// job's JobScope — and asks the executor only how to start each step's process, and what to do
// before the first step and after the last.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace assay {

class CancelFlag;
struct JobRunRequest;
struct StepSpecToRun;

// The job's log, as RunJob's on_output: raw bytes, on the job's thread.
using JobLogFn = std::function<void(std::string_view)>;

// How to start one step's process. The runner spawns it in a new process group, with stdout and
// stderr into the job's log, stdin from /dev/null and the job's cgroup (when there is one).
struct StepProcess {
  std::string path;               // the executable, used as is (no PATH lookup)
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // the complete environment of that process
  std::string cwd;                // empty: the agent's current directory
  // true: the process drops to JobRunRequest::user before exec (host, sandbox). false: it keeps
  // the agent's identity because it is a runtime that sets the user itself (podman exec --user).
  bool as_job_user = true;
};

class Executor {
 public:
  virtual ~Executor() = default;

  // "host", "sandbox" or "container": what the job log and the agent's --executors call it.
  virtual std::string_view kind() const = 0;

  // Before the first step (pull an image, create the job's network, start services and the
  // job's container). Output for the user goes to `log`. Must return by `deadline` or soon after
  // `cancel` is raised. An error ends the job with JobRunOutcome::kError and
  // "cannot prepare the <kind> executor: <message>"; Cleanup still runs.
  virtual absl::Status Prepare(const JobRunRequest& req, absl::Time deadline, CancelFlag& cancel,
                               const JobLogFn& log) = 0;

  // The process for `step`. `env` is the step's environment as StepEnvironment made it for the
  // host (the allowlist, the job user's HOME/USER, the job's variables); an executor passes on
  // what fits inside its isolation. Never puts a variable's value on a command line (argv is
  // readable by every local user through /proc).
  virtual absl::StatusOr<StepProcess> StepCommand(const JobRunRequest& req,
                                                  const StepSpecToRun& step,
                                                  const std::vector<std::string>& env) = 0;

  // After each step's process has ended (before the next step, or Cleanup): `by_itself` is
  // false when the runner stopped it (cancel, timeout) or a signal ended it; `exit_code` is its
  // exit status otherwise. Default: nothing. (The container executor skips a removal it knows
  // the runtime has done.)
  virtual void StepEnded(const StepSpecToRun& /*step*/, bool /*by_itself*/, int /*exit_code*/) {}

  // After the last step, however the job ended (also after Prepare failed or a cancel): stop
  // and remove what Prepare made. Bounded in time; problems go to `log` and the agent's log,
  // never change the job's outcome.
  virtual void Cleanup(const JobRunRequest& req, const JobLogFn& log) = 0;
};

// Today's behaviour: `/bin/sh -e -c <run>` in the workspace, as the job user when there is one.
class HostExecutor final : public Executor {
 public:
  std::string_view kind() const override { return "host"; }
  absl::Status Prepare(const JobRunRequest&, absl::Time, CancelFlag&, const JobLogFn&) override {
    return absl::OkStatus();
  }
  absl::StatusOr<StepProcess> StepCommand(const JobRunRequest& req, const StepSpecToRun& step,
                                          const std::vector<std::string>& env) override;
  void Cleanup(const JobRunRequest&, const JobLogFn&) override {}
};

}  // namespace assay
