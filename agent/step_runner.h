#pragma once
// Runs the shell steps of one job as local processes, streaming their output.

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/executor.h"

namespace assay {

// A one-way "stop now" signal that another thread can raise while RunJob blocks.
// Thread-safe. fd() is an eventfd that becomes (and stays) readable once Cancel() was called, so
// a poll() on it wakes at once.
class CancelFlag {
 public:
  CancelFlag();
  ~CancelFlag();
  CancelFlag(const CancelFlag&) = delete;
  CancelFlag& operator=(const CancelFlag&) = delete;

  void Cancel();
  bool canceled() const { return canceled_.load(std::memory_order_acquire); }
  int fd() const { return fd_; }  // -1 only if eventfd could not be created

 private:
  std::atomic<bool> canceled_{false};
  int fd_ = -1;
};

// A step whose outcome a function of the agent decides while the step's process runs (an
// `eval:` step, agent/eval_step.h: the process is the model under test, the driver feeds it
// and scores it). See RunJob for the sequence.
struct StepDriver {
  // Called when the step starts, on the job's thread: the shell text the executor runs in
  // place of the step's `run`. An error is "cannot start step" (kError).
  std::function<absl::StatusOr<std::string>()> start;
  // Runs on a thread of its own once the process is spawned; its status is the step's (OK:
  // the step succeeded; else it failed with the message). It must return soon (well within a
  // second) after `process_exited` becomes true or `cancel` is raised.
  std::function<absl::Status(const std::atomic<bool>& process_exited, CancelFlag& cancel)> drive;
  // true: the process never ends by itself (a server, a sleep): once the driver is done it is
  // stopped at once instead of after kill_grace.
  bool stop_when_done = false;
  // true (a `train:` step): the process's exit status counts as a plain step's (killed by a
  // signal or a non-zero exit fails the step, with the same message), and the driver's status
  // counts too; then, when both succeeded, `after_success` runs on the job's thread and its
  // error fails the step ("step "<name>" failed: <message>").
  bool process_must_succeed = false;
  std::function<absl::Status()> after_success;
};

struct StepSpecToRun {
  std::string name;
  std::string run;  // shell text, run as /bin/sh -e -c "<run>"
  // Set (a build_image step, agent/image_build.h): the step is this process on the agent's
  // machine instead of the executor's StepCommand; called when the step starts.
  std::function<absl::StatusOr<StepProcess>()> command;
  // Set: a driven step (StepDriver). Shared so that a request can be copied.
  std::shared_ptr<StepDriver> driver;
};

// The unprivileged account steps run as (the agent's --job-user).
struct JobIdentity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
  std::string name;           // for USER and LOGNAME; "" for a bare uid:gid
  std::string home;           // for HOME; "" (a bare uid:gid, or no such directory): the workspace
};

// The names a step inherits from the agent's environment; nothing else reaches it (no token,
// no GIT_* or SSH_* variable, no cloud credentials, no proxy with a password in it). LC_* is a
// prefix. With a JobIdentity, HOME, USER, LOGNAME and SHELL come from it instead.
inline constexpr const char* kInheritedEnvironment[] = {
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "TMPDIR"};

// A step's environment: the allowlisted part of this process's environment (PATH defaults to
// /usr/local/bin:/usr/bin:/bin when unset), then `user`'s HOME/USER/LOGNAME/SHELL when given,
// then `overrides` in order (a later value replaces an earlier one). kInvalidArgument for an
// override name that is empty or holds '=' or NUL, or a value holding NUL.
absl::StatusOr<std::vector<std::string>> StepEnvironment(
    const std::vector<std::pair<std::string, std::string>>& overrides, const JobIdentity* user,
    const std::string& workdir);

struct JobRunRequest {
  std::vector<StepSpecToRun> steps;
  std::string workdir;  // the job's workspace; empty: the agent's current directory
  // The job's variables (its own `env` and the ASSAY_* context the agent sets), on top of the
  // allowlist of StepEnvironment: never the agent's whole environment.
  std::vector<std::pair<std::string, std::string>> env;
  // Set: every step runs as this user (the agent must be root). Unset: as the agent's user.
  std::optional<JobIdentity> user;
  // false: track the job's processes even where a cgroup could be made (tests of the fallback).
  bool allow_cgroup = true;
  absl::Duration timeout = absl::InfiniteDuration();  // all steps together; <= 0 means no limit
  absl::Duration kill_grace = absl::Seconds(5);       // SIGTERM to the process group, then SIGKILL
  // Where the steps run (executor.h); null: on the host (HostExecutor). Not owned; outlives
  // RunJob.
  Executor* executor = nullptr;
  // Issue 11: called with a step's index just before it starts (after the cancel and timeout
  // checks), on RunJob's thread. Null: nothing is called.
  std::function<void(size_t step_index)> on_step_start;
};

enum class JobRunOutcome { kSucceeded, kFailed, kTimedOut, kCanceled, kError };

struct JobRunResult {
  JobRunOutcome outcome = JobRunOutcome::kError;
  // kFailed: the failing step's exit code, 128 + N when killed by signal N. kTimedOut/kCanceled:
  // how the interrupted step's shell ended (e.g. 143 after SIGTERM; 0 if between steps).
  // kError: -1.
  int exit_code = 0;
  // Empty on success; otherwise, exactly one of:
  //   step "<name>" exited with code N
  //   step "<name>" was killed by signal N (SIGxxx)
  //   job timed out after <T>s in step "<name>"   (or: before step "<name>")
  //   job canceled in step "<name>"               (or: before step "<name>")
  //   cannot start step "<name>": <reason>        (kError)
  //   invalid job environment: <reason>           (kError: a bad name in req.env)
  //   cannot prepare the <kind> executor: <reason> (kError: Executor::Prepare failed)
  // <name> is the step's name, or its run text when the name is empty.
  std::string message;
  // kFailed by a step's exit code: that step's index in req.steps; -1 otherwise.
  int failed_step = -1;
};

// Runs req.steps in order, stopping at the first that fails. Each step is `/bin/sh -e -c <run>`
// in req.workdir, in a new process group, with stdin from /dev/null, stdout and stderr merged
// into one pipe (so the log interleaves in the order written), and PR_SET_PDEATHSIG(SIGKILL) so a
// killed agent does not leave the shell behind. When a step's shell exits, whatever is left of its
// process group (background processes) is SIGKILLed: nothing a step starts outlives it, unless it
// leaves the group (setsid).
//
// `on_output` receives the raw output bytes as they arrive, in chunks of at most 256 KiB, on the
// calling thread. The runner adds nothing of its own except, when the job's timeout expires or
// `cancel` is raised while a step runs:
//   assay: job timed out after <T>s; sent SIGTERM to the process group\n
//   assay: process group still alive after <G>s; sent SIGKILL\n      (only if it was)
// ("job canceled" in place of "job timed out after <T>s" for a cancel). <T> and <G> are seconds,
// without trailing zeros ("1", "0.3"). After SIGTERM the runner waits until every process of the
// group has exited, or until kill_grace has passed and it has sent SIGKILL; either way no process
// of the group is left, reaped or not, when RunJob returns.
//
// Nothing a job starts outlives it: every step runs in the job's JobScope (agent/job_scope.h:
// a cgroup, or tracked descendants), and when the job ends, however it ends, whatever is left
// (e.g. started with setsid) is SIGKILLed and the runner writes
//   assay: killed N process(es) left running by the job\n
// Every step's environment holds ASSAY_JOB_INSTANCE=<id> (the scope's id).
//
// A driven step (StepSpecToRun::driver): driver->start gives the shell text, the process is
// spawned as any step's, and driver->drive runs on its own thread meanwhile. When the driver
// returns first, the runner waits up to kill_grace (none with stop_when_done) for the process
// to end by itself (a model
// command ends at the EOF of its input), then stops its group as on a timeout but writes
//   assay: the step's driver is done; sent SIGTERM to the process group\n
// When the process ends first, the runner tells the driver (process_exited) and waits for it.
// A cancel or timeout stops the group as for any step, then waits for the driver. The step
// succeeds when the driver returned OK (whatever the process's exit status); otherwise it
// fails (kFailed, exit_code 1, failed_step set) with
//   step "<name>" failed: <the driver's message>
//
// Blocks until done. Must be called on a thread that lives until it returns (PR_SET_PDEATHSIG
// fires when the spawning thread exits). Why a subreaper: RunJob makes this process a child
// subreaper (PR_SET_CHILD_SUBREAPER) so that a step's orphaned background processes are
// re-parented here and can be reaped by process group; a process that escapes its group with
// setsid and exits later stays a zombie of this process.
//
// `pgids`, when not null, receives the process group id of every step started, in order (tests
// use it to check that no process of a group survives).
JobRunResult RunJob(const JobRunRequest& req, CancelFlag& cancel,
                    const std::function<void(std::string_view)>& on_output,
                    std::vector<pid_t>* pgids = nullptr);

// "1", "0.3", "2.25": seconds without trailing zeros, as used in the runner's messages.
std::string FormatSeconds(absl::Duration d);

}  // namespace assay
