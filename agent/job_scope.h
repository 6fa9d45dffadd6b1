#pragma once
// Everything one job started, so that nothing outlives it: a step that runs
// `setsid sleep 1000 &` (or double-forks) leaves its process group, which the step runner's
// per-step group kill does not reach.
//
// Two mechanisms, chosen once per job:
// - cgroup v2 (when this process may create a child of its own cgroup: a root agent, or one
//   with a delegated subtree): every step joins the job's cgroup before exec, so every
//   descendant is in it whatever it does (setsid, double fork, re-exec). At the end of the job
//   it is emptied with cgroup.kill (or SIGKILL to each member on kernels before 5.14) and
//   removed. Exact, and concurrent jobs cannot be confused: each has its own cgroup.
// - otherwise, tracked descendants: the agent is a child subreaper (PR_SET_CHILD_SUBREAPER), so
//   an orphaned process of any job is re-parented to it rather than to init; every step carries
//   ASSAY_JOB_INSTANCE=<unique id> in its environment. At the end of the job, every process
//   whose environment holds this job's id, and every descendant of one, is SIGKILLed (through
//   a pidfd, so a recycled pid is never hit). Best effort: a process that re-execs itself with
//   a cleared environment, and whose parent has exited, is not found. Operators running
//   untrusted code run the agent as root (cgroups) or in containers.

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/time/time.h"

namespace assay {

class JobScope {
 public:
  // Never fails: without a usable cgroup (or with allow_cgroup false) it tracks descendants.
  static std::unique_ptr<JobScope> Create(bool allow_cgroup = true);
  ~JobScope();  // KillRemaining (bounded), then removes the cgroup
  JobScope(const JobScope&) = delete;
  JobScope& operator=(const JobScope&) = delete;

  // An agent killed with SIGKILL leaves its jobs' cgroups behind, with whatever escaped its
  // steps' process groups still running in them. Called when an agent starts: kills what is
  // left in every job cgroup (beside this process's) whose agent is no longer alive, and removes
  // those cgroups. Returns how many it removed; 0 without cgroup v2.
  static int CleanStale();

  // cgroup.procs of the job's cgroup, for SpawnOptions::cgroup_procs_fd; -1 when tracking.
  int cgroup_procs_fd() const { return procs_fd_; }
  bool uses_cgroup() const { return procs_fd_ >= 0; }
  // The environment entry every step of the job carries ("ASSAY_JOB_INSTANCE", "<id>").
  static constexpr char kMarkerName[] = "ASSAY_JOB_INSTANCE";
  const std::string& id() const { return id_; }

  // SIGKILLs every process of the job that is still alive and reaps those that are children
  // of this process (re-parented orphans), for at most `bound`. Returns how many distinct
  // processes it found alive. Call when the job's steps have all ended. Thread-safe with
  // respect to other JobScopes.
  int KillRemaining(absl::Duration bound = absl::Seconds(5));
  // Waits at most `bound` for every process of the job to exit by itself, reaping those that
  // are children of this process (re-parented orphans). True when none is left. For what a
  // container runtime leaves behind for a moment (podman's cleanup of a --rm container), which
  // is not the job's to be killed.
  bool WaitForExit(absl::Duration bound);

 private:
  JobScope() = default;
  int KillCgroup(absl::Time deadline);
  int KillTracked(absl::Time deadline);

  std::string id_;
  std::string cgroup_dir_;  // empty when tracking
  int procs_fd_ = -1;
};

}  // namespace assay
