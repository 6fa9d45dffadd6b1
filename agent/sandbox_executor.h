#pragma once
// The sandboxed process executor (issue 9): each step runs as `/bin/sh -e -c <run>` inside a
// bubblewrap (bwrap) sandbox. What the step sees:
//   - the host's filesystem read-only (`--ro-bind / /`), so the host's tools are there but
//     nothing outside the job's own tree can be changed;
//   - its workspace read-write, at the same path as on the host (ASSAY_WORKSPACE holds);
//   - a private, empty /tmp (tmpfs), its own /proc (a new PID namespace) and a minimal /dev;
//   - the agent's work dir (credential file, spool, other jobs' workspaces, the git cache)
//     hidden under an empty tmpfs; only the git cache's objects/ directory of the job's
//     repository comes back, read-only, because the workspace's .git borrows it through
//     objects/info/alternates (so git works in the sandbox, and cannot change the cache);
//   - new user, IPC, PID, UTS, cgroup and network namespaces (`--unshare-all`); the host's
//     network only when the job's network setting allows it (`--share-net`);
//   - no capabilities (bwrap drops them, also for root), its own session (`--new-session`:
//     no TIOCSTI into the agent's terminal), and it dies with the step runner
//     (`--die-with-parent`).
// The step runner still starts the process: as the job user when there is one, in its process
// group and JobScope, bounded by the job's timeout; a killed bwrap takes the whole sandbox with
// it (its PID namespace ends).

#include <string>
#include <string_view>
#include <vector>

#include "agent/executor.h"

namespace assay {

struct SandboxOptions {
  std::string bwrap_path = "/usr/bin/bwrap";  // absolute
  // Trees hidden under an empty tmpfs, e.g. the agent's work dir. A path that does not exist
  // is left out (bwrap cannot mount over it, and there is nothing to hide).
  std::vector<std::string> hidden;
  // Trees bound back read-only after the hiding, e.g. the cache's objects dir of the job's
  // repository (it lies inside a hidden tree). Missing paths are left out.
  std::vector<std::string> read_only;
  // true: the step uses the host's network (`--share-net`); false (a job's `network: none`):
  // only a loopback interface of its own.
  bool network = true;
};

class SandboxExecutor final : public Executor {
 public:
  explicit SandboxExecutor(SandboxOptions options) : options_(std::move(options)) {}
  std::string_view kind() const override { return "sandbox"; }
  absl::Status Prepare(const JobRunRequest& req, absl::Time deadline, CancelFlag& cancel,
                       const JobLogFn& log) override;
  absl::StatusOr<StepProcess> StepCommand(const JobRunRequest& req, const StepSpecToRun& step,
                                          const std::vector<std::string>& env) override;
  void Cleanup(const JobRunRequest&, const JobLogFn&) override {}

  // The bwrap command line for `run` in `workdir`, exactly as executed (unit-tested). The
  // workspace must be absolute.
  std::vector<std::string> Argv(const std::string& workdir, const std::string& run) const;

 private:
  SandboxOptions options_;
};

// The bwrap to use: `configured` when not empty (must be an executable file), else the first
// executable `bwrap` on `path_env` (a PATH value). kNotFound when there is none.
absl::StatusOr<std::string> FindBwrap(const std::string& configured, const std::string& path_env);

// Whether bwrap actually works here (user namespaces may be disabled): runs
// `bwrap --ro-bind / / --unshare-all --die-with-parent /bin/true`, bounded by `timeout`.
// kFailedPrecondition with bwrap's own message when it does not.
absl::Status ProbeBwrap(const std::string& bwrap, absl::Duration timeout);

}  // namespace assay
