#pragma once
// Issue 9, agent lifecycle: the pieces of draining and of the disk floor that need no
// stream — free disk space, the sentence an agent sends when it takes no job, and the removal
// of job workspaces (also of those a crashed agent left behind).

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace assay {

// The bytes free for an unprivileged user on the file system holding `path` (statvfs:
// f_bavail * f_frsize), in decimal GB. kUnavailable with errno's text when statvfs fails.
absl::StatusOr<double> FreeDiskGb(const std::string& path);

// "" while `free_gb` >= `floor_gb` (a floor of 0 is off); else the phrase the agent sends in
// AgentState and that follows "agent NAME is": "not taking jobs: free disk 0.4 GB below the
// floor of 1 GB". GB with at most one decimal (two below 0.1).
std::string DiskFloorReason(double free_gb, double floor_gb);

// The phrase of an agent draining after a stop signal: "draining (SIGTERM)".
std::string DrainingReason(const std::string& why);

// The message of a job canceled because the agent's own drain timed out:
// "stopped by the agent: it is stopping (SIGTERM) and its --drain-timeout of 10m passed".
std::string DrainTimeoutMessage(const std::string& why, absl::Duration timeout);

// Removes the tree at `path` (not following symlinks), first making every directory in it
// writable by its owner, so that a job's `chmod -w dir` cannot keep its files on disk.
// OK when `path` does not exist.
absl::Status RemoveTree(const std::string& path);

// Removes everything under WORK_DIR/jobs (workspaces) and WORK_DIR/spool (log spill files):
// at start an agent holds no job, so all of it is what an agent that crashed or was killed
// left behind. Returns how many entries it removed; an entry it cannot remove is logged and
// left. `work_dir` must exist.
int RemoveLeftovers(const std::string& work_dir);

}  // namespace assay
