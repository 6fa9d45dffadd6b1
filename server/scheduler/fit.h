#pragma once
// Pure placement logic for the scheduler: does a job fit an agent, which agent and which GPUs
// it gets (best fit), why a job is still waiting (a sentence for the UI and API), the order in
// which queued jobs are offered (priority, then fair share between repositories, then age), and
// the GPU environment of a placement. No I/O, no clock, no locks: the caller snapshots agent
// capacity (from agents' Hello and the jobs it has placed) and owns all state.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace assay {

// One GPU of an agent as the scheduler sees it.
struct GpuSlot {
  uint32_t index = 0;  // the agent's nvidia-smi index (what CUDA_VISIBLE_DEVICES gets)
  std::string uuid;
  std::string model;       // nvidia-smi name, e.g. "NVIDIA H100 80GB HBM3"
  uint64_t memory_mb = 0;  // total memory in MiB
  int exclusive_jobs = 0;  // jobs holding it alone (gpus: N)
  int shared_jobs = 0;     // jobs sharing it (gpu_shared: true)
};

struct AgentCapacity {
  int64_t agent_id = 0;
  std::string name;
  std::vector<std::string> labels;
  int cpus_total = 1, cpus_used = 0;
  double memory_gb_total = 0, memory_gb_used = 0;
  std::vector<GpuSlot> gpus;
  bool accepts_untrusted = false;  // its Hello's accept_untrusted (--accept-untrusted)
  // Issue 9, lifecycle: "" while the agent takes jobs; else why not, a phrase that follows
  // "agent NAME is": "draining (SIGTERM)", "draining (drained by an admin: upgrade)",
  // "not taking jobs: free disk 0.4 GB below the floor of 1 GB". No job fits such an agent.
  std::string not_accepting;
  // Its Hello's executors (--executors): "container", "sandbox", "host".
  std::vector<std::string> executors = {"host"};
};

// A job's `runs_on`.
struct JobRequirements {
  std::vector<std::string> labels;  // all must be on the agent
  int cpus = 1;
  double memory_gb = 0;      // 0: not asked
  int gpus = 0;              // 0: a CPU-only job (gpu_* fields are then ignored)
  bool gpu_shared = false;   // may share its GPUs with other shared jobs
  double gpu_memory_gb = 0;  // per GPU, decimal GB (see GpuHasMemory); 0: any
  std::string gpu_model;     // fnmatch(3) glob on GpuSlot::model, e.g. "*H100*"; empty: any
  bool untrusted = false;    // of an untrusted pipeline: only agents that accept untrusted jobs
  // "container" (a job with image:): only agents offering the container executor. "" (any
  // other job): agents offering sandbox or host; untrusted: sandbox only (never host).
  std::string executor;
};

struct Placement {
  int64_t agent_id = 0;
  std::vector<uint32_t> gpu_indices;  // ascending; empty for a CPU-only job
};

// Whether a GPU has at least `gb` decimal gigabytes (10^9 bytes): memory_mb * 2^20 >= gb * 10^9.
// Decimal because that is how GPUs are sold and how users write it: an "H100 80GB" (81559 MiB,
// 85.5 GB) satisfies gpu_memory_gb: 80, which it would not in GiB (79.6 GiB).
bool GpuHasMemory(uint64_t memory_mb, double gb);

// The GPUs of `agent` a job may take now: no exclusive job on it, and for a job that is not
// gpu_shared no shared job either; memory and model as asked. In agent order.
std::vector<const GpuSlot*> UsableGpus(const JobRequirements& job, const AgentCapacity& agent);

// Whether `job` fits `agent` now: the agent takes jobs (not_accepting is empty), it accepts
// untrusted jobs (when the job is untrusted), offers the job's executor (container; else sandbox
// or host; untrusted: never host),
// labels ⊆ agent labels, cpus free, memory free (when asked), and at least `gpus` usable GPUs.
bool Fits(const JobRequirements& job, const AgentCapacity& agent);

// The agent (and GPUs) a job should run on now, or nullopt when none fits.
// Best fit, so big holes stay open for big jobs:
//   GPU jobs: the fitting agent with the fewest usable GPUs (that still suffice), then the
//     fewest free CPUs, then the lowest agent id. Within it, the usable GPUs with the least
//     memory, lower index first on ties.
//   CPU-only jobs: agents without GPUs first, then the fewest idle GPUs (no job on them), then
//     the fewest free CPUs, then the lowest agent id.
std::optional<Placement> ChooseAgent(const JobRequirements& job,
                                     const std::vector<AgentCapacity>& agents);

// Why `job` does not fit any agent now, as one sentence. The first failing check wins, in
// this order (X = "3 agents carry label gpu" / "3 agents carry labels gpu, a100" /
// "3 agents are connected" when the job asks no label; "1 agent carries/is"):
//   "no agent is connected"
//   "needs the container executor (the job has image:): no connected agent offers it (start
//    one with --executors container)"      (requirements "executor": "container")
//   "needs the sandbox or host executor (the job has no image:): no connected agent offers
//    either"                               (only container agents are connected)
//   "untrusted (fork pull request): no connected agent accepts untrusted jobs (start one with
//    --accept-untrusted)"                  (an untrusted job; the checks below then consider
//                                           only the agents that accept untrusted jobs)
//   "untrusted (fork pull request): no connected agent accepts untrusted jobs in a sandbox, and
//    the host executor never runs them (start one with --accept-untrusted --executors sandbox)"
//    ("in a container (start one with --accept-untrusted --executors container)" for a
//    container job)
//   "no connected agent carries label gpu" / "... carries labels gpu, a100"
// Never enough, whatever else runs (waits for another agent to connect):
//   "no agent has a GPU of model \"*A100*\": X, their GPU models are NVIDIA H100 80GB HBM3,
//    NVIDIA H200"                                     (", none has a GPU" when none has one)
//   "no agent has a GPU with >= 100 GB: X, the largest has 85.5 GB"   (model named if asked:
//    "a GPU of model \"*H100*\" with >= 100 GB")
//   "no agent has 4 GPUs with >= 40 GB: X, most on one agent is 2"
//   "no agent has 64 CPUs: X, most on one agent is 16"
//   "no agent has 512 GB of memory: X, most on one agent is 256 GB"
// Busy now (waits for running jobs to end):
//   "no agent has 2 free GPUs with >= 40 GB: X, most free GPUs on one agent is 1"
//     (model as above; gpu_shared jobs: "2 free GPUs with >= 40 GB for shared use")
//   "no agent has 4 free CPUs: X, most free CPUs on one agent is 2"
//   "no agent has 16 GB of free memory: X, most free memory on one agent is 8 GB"
//   "no agent has 2 free GPUs, 4 free CPUs and 16 GB of free memory at once: X" (each part alone
//     is available somewhere; the list names what the job asks: GPUs, CPUs, memory)
// When the job fits: "agent gpu-1 (id 7) can take it now".
// Before all of these (issue 9, lifecycle): when only agents that take no jobs now
// (not_accepting) could run the job, were they idle, and no other agent could:
//   "agent gpu-1 is draining (SIGTERM)"               (one such agent: "agent NAME is REASON")
//   "the agents that could run it take no jobs now: agent a is draining (SIGTERM); agent b is
//    not taking jobs: free disk 0.4 GB below the floor of 1 GB"
// Otherwise the sentence is made over the agents that take jobs only.
// Numbers of GB print with at most one decimal ("85.5", "40"); GPU sizes are decimal GB.
std::string ExplainWait(const JobRequirements& job, const std::vector<AgentCapacity>& agents);

struct QueuedJob {
  int64_t job_id = 0;
  int64_t repo_id = 0;
  int priority = 0;  // higher runs first
  absl::Time queued_at;
};

// The order in which to offer `jobs` to agents, as indices into `jobs`.
// Higher priority always first. Within one priority, jobs are taken one at a time from the
// repository with the fewest running jobs, where every job already put earlier in this order
// counts as running for its repository (so repositories take turns instead of the one with
// the most queued jobs filling every slot); ties go to the repository whose next job is oldest,
// then the lower job id. Within a repository, oldest first (then lower job id).
// `running_per_repo`: jobs running now per repository (missing: 0).
// Consequence: with R repositories at one priority and equal running counts, a repository's
// oldest job is among the first R offered, however many jobs the others have queued.
std::vector<size_t> OrderQueue(const std::vector<QueuedJob>& jobs,
                               const std::map<int64_t, int>& running_per_repo);

// The environment a job gets for its placement:
//   {{"CUDA_VISIBLE_DEVICES", "0,2"}, {"NVIDIA_VISIBLE_DEVICES", "0,2"}} for GPUs 0 and 2;
//   for a CPU-only job (no GPUs): CUDA_VISIBLE_DEVICES="" (CUDA then sees no device) and
//   NVIDIA_VISIBLE_DEVICES="void" (the NVIDIA container runtime then injects no GPU or driver,
//   like plain runc; "none" would still mount the driver libraries).
// The agent sets these on every job, so a CPU-only job on a GPU machine cannot use its GPUs.
std::vector<std::pair<std::string, std::string>> GpuEnvironment(const Placement& placement);

}  // namespace assay
