#pragma once
// Which executors an agent offers (its --executors) and which one runs a given job (issue 9).
// The container executor is another file's; this one only knows its name.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/executor.h"

namespace assay {

// In the order an agent prefers them for a job without an image, most isolating first.
inline constexpr const char* kExecutorNames[] = {"container", "sandbox", "host"};

// What this machine has, as main() detects it.
struct ExecutorsAvailable {
  // The working bwrap's path; or why there is none ("bwrap ... is not installed", the probe's
  // message).
  absl::StatusOr<std::string> bwrap = std::string();
  std::string container_cli;  // podman or docker found on PATH; empty: none
};

// The agent's executors from its --executors list (`asked`, possibly empty), in the canonical
// order container, sandbox, host.
//   empty: every isolating executor available (container when a CLI is found, sandbox when
//     bwrap works); never host. kFailedPrecondition when there is none:
//     "no isolating executor is available (bwrap: <why>; no podman or docker on PATH): install
//      bubblewrap or podman, or pass --executors host to run jobs unisolated on this machine"
//   listed: each must be a known name (kInvalidArgument "--executors: unknown executor \"x\"
//     (known: container, sandbox, host)"), at most once, and available
//     (kFailedPrecondition "--executors sandbox: <bwrap's reason>",
//      "--executors container: no podman or docker on PATH").
absl::StatusOr<std::vector<std::string>> ResolveExecutors(const std::vector<std::string>& asked,
                                                          const ExecutorsAvailable& available);

// The first of "podman", "docker" that is an executable file on `path_env`; empty: none.
std::string FindContainerCli(const std::string& path_env);

// What an agent needs to pick and build the executor of one job.
struct JobExecutorContext {
  std::vector<std::string> offered;  // the agent's executors (ResolveExecutors)
  std::string bwrap_path;            // when "sandbox" is offered
  std::string work_dir;              // hidden from the sandbox
  std::string cache_objects_dir;     // the job's git cache objects, bound back read-only
  // The job's secret files (agent/job_secrets.h: <workspace>.secrets, beside the workspace in
  // the hidden work dir), bound back read-only so `as: file` secrets reach the steps.
  std::string secrets_dir;
  bool untrusted = false;  // Assignment.untrusted
  std::string network;     // Assignment.network: "" or "none"
};

// Why a job must not be taken at all (the agent answers JobRejected with it), or "" to take
// it: an untrusted job on an agent with neither sandbox nor container:
//   "untrusted job: this agent runs jobs only on the host (--executors host), never untrusted
//    ones"
std::string RefuseReason(const std::vector<std::string>& offered, bool untrusted);

// The executor for a job without an image: the sandbox when offered, else the host (never for
// an untrusted job, nor for `network: none`, which the host cannot enforce). Errors
// (kFailedPrecondition) end the job with their message:
//   "untrusted job: this agent has no sandbox executor (--executors sandbox)"
//   "network: none needs the sandbox executor; this agent runs jobs on the host"
//   "this agent offers no executor for a job without image: (--executors sandbox or host)"
//   "unknown network setting \"x\" (expected none or nothing)"
absl::StatusOr<std::unique_ptr<Executor>> MakeJobExecutor(const JobExecutorContext& ctx);

}  // namespace assay
