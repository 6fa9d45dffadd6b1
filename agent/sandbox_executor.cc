#include "agent/sandbox_executor.h"

#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/step_runner.h"
#include "common/proc/subprocess.h"

namespace assay {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

}  // namespace

std::vector<std::string> SandboxExecutor::Argv(const std::string& workdir,
                                               const std::string& run) const {
  // Why --as-pid-1: with bwrap's own init as PID 1, bwrap returns the step's status as soon as
  // that init reports it, while the init is still exiting: the runner then finds (and kills) a
  // process "left running by the job" after every step. The step's shell as PID 1 is waited for
  // directly. A SIGTERM to the step's process group ends bwrap, and --die-with-parent then
  // SIGKILLs the sandbox (PID 1 ignores SIGTERM, which does not matter here).
  std::vector<std::string> argv = {options_.bwrap_path, "--die-with-parent", "--new-session",
                                   "--unshare-all", "--as-pid-1"};
  if (options_.network) argv.push_back("--share-net");
  // Why this order: later mounts land on top of earlier ones. The host read-only first, then
  // the private /proc, /dev and /tmp, then the hidden trees, then what comes back of them.
  for (const char* a :
       {"--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"}) {
    argv.push_back(a);
  }
  for (const std::string& h : options_.hidden) {
    if (!Exists(h)) continue;
    argv.insert(argv.end(), {"--tmpfs", h});
  }
  for (const std::string& r : options_.read_only) {
    if (!Exists(r)) continue;
    argv.insert(argv.end(), {"--ro-bind", r, r});
  }
  argv.insert(argv.end(),
              {"--bind", workdir, workdir, "--chdir", workdir, "--", "/bin/sh", "-e", "-c", run});
  return argv;
}

absl::Status SandboxExecutor::Prepare(const JobRunRequest& req, absl::Time, CancelFlag&,
                                      const JobLogFn&) {
  if (req.workdir.empty() || req.workdir[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("the workspace must be an absolute path, not \"", req.workdir, "\""));
  }
  if (!IsExecutableFile(options_.bwrap_path)) {
    return absl::FailedPreconditionError(
        absl::StrCat(options_.bwrap_path, " is not an executable file (install bubblewrap)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<StepProcess> SandboxExecutor::StepCommand(const JobRunRequest& req,
                                                         const StepSpecToRun& step,
                                                         const std::vector<std::string>& env) {
  StepProcess process;
  process.path = options_.bwrap_path;
  process.argv = Argv(req.workdir, step.run);
  process.env = env;
  // bwrap's own cwd: the workspace exists on the host too; --chdir sets it inside.
  process.cwd = req.workdir;
  process.as_job_user = true;
  return process;
}

absl::StatusOr<std::string> FindBwrap(const std::string& configured, const std::string& path_env) {
  if (!configured.empty()) {
    if (configured[0] != '/' || !IsExecutableFile(configured)) {
      return absl::NotFoundError(
          absl::StrCat("--bwrap ", configured, " is not an absolute path to an executable file"));
    }
    return configured;
  }
  for (absl::string_view dir : absl::StrSplit(path_env, ':', absl::SkipEmpty())) {
    if (dir[0] != '/') continue;  // a relative PATH entry would depend on the cwd
    std::string candidate = absl::StrCat(dir, "/bwrap");
    if (IsExecutableFile(candidate)) return candidate;
  }
  return absl::NotFoundError("bwrap (bubblewrap) is not installed: no bwrap on PATH");
}

absl::Status ProbeBwrap(const std::string& bwrap, absl::Duration timeout) {
  auto r = RunCommandInEnvironment(
      {bwrap, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "/bin/true"}, "/",
      {"PATH=/usr/bin:/bin"}, {}, timeout);
  if (!r.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(bwrap, " does not run: ", r.status().message()));
  }
  if (r->exit_code != 0) {
    std::string err = r->err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return absl::FailedPreconditionError(
        absl::StrCat(bwrap, " does not work here (exit ", r->exit_code, "): ", err));
  }
  return absl::OkStatus();
}

}  // namespace assay
