#pragma once
// Injects the faults of one run into a live Cluster: one at a time, each begun and later healed
// (a killed agent or server started again, PostgreSQL restarted, a stopped agent continued, the
// filled disk freed). The plan — kinds, start times, how long each lasts, which agent — comes
// from the seed alone; what a fault hits (which jobs were running) depends on timing.
//
// Not thread-safe: use from the test's main thread, which must be the one that started the
// cluster's processes (they die with it, see tests/support/process.h).

#include <array>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/faults/faults.h"
#include "tests/support/cluster.h"
#include "tests/support/pg_server.h"

namespace assay::faults {

// A small tmpfs mounted at a fresh temp dir: the server's data dir (through a symlink, see
// faults_test.cc), so that filling it up is a real ENOSPC for the server. Needs root.
class TmpfsDisk {
 public:
  // Mounts a tmpfs of `size_mb` MiB. kPermissionDenied when not root; kInternal when mount fails.
  static absl::StatusOr<std::unique_ptr<TmpfsDisk>> Mount(int size_mb);
  // Unmounts (lazily: a process may still have files open there) and removes the mount point.
  ~TmpfsDisk();
  TmpfsDisk(const TmpfsDisk&) = delete;
  TmpfsDisk& operator=(const TmpfsDisk&) = delete;

  const std::string& path() const { return path_; }
  // Writes a file until the filesystem has no space left; returns the bytes written.
  absl::StatusOr<int64_t> Fill();
  // Deletes what Fill wrote.
  absl::Status Free();

 private:
  explicit TmpfsDisk(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// One fault of the plan.
struct PlannedFault {
  FaultKind kind;
  absl::Duration at;    // from the start of the run (a fault still healing delays the next)
  absl::Duration hold;  // how long it lasts before it is healed
  int agent = 0;        // the agent it hits (agent_kill, conn_cut by stopping)
  int variant = 0;      // pg_restart: 0 stop -m immediate, 1 SIGKILL; conn_cut: 0 ss -K, 1 SIGSTOP
};

// `config.faults` faults for `config.window`: each allowed kind at least once when the count
// allows, the rest drawn at random; start times uniform in [2 s, window], sorted.
std::vector<PlannedFault> PlanFaults(const Config& config, std::mt19937_64& rng);

class FaultDriver {
 public:
  // `cluster`, `pg` and `disk` (null: no disk faults) must outlive the driver.
  FaultDriver(testing::Cluster& cluster, testing::PgServer& pg, TmpfsDisk* disk);

  // Starts the kAgents agents (a1..a4, kSlotsPerAgent slots each) and waits until all connect.
  absl::Status StartAgents();

  // Begins `f`; `now` is the time since the run started (for the description). An error means
  // the fault could not be injected (e.g. the process to kill had already died): the run fails.
  // Not root: a cut by ss -K becomes a SIGSTOP past the lease.
  absl::Status Begin(const PlannedFault& f, absl::Duration now);
  bool active() const { return active_.has_value(); }
  // When the active fault is due to be healed.
  absl::Time heal_at() const { return heal_at_; }
  // Heals the active fault. An error (the server or PostgreSQL does not come back) fails the run.
  absl::Status Heal();

  // Whether the server and PostgreSQL have both been up without a break for at least `d`.
  bool UpFor(absl::Duration d) const;
  // Faults injected, by kind.
  const std::array<int, kFaultKinds>& injected() const { return injected_; }
  // One line per fault: when, what, on what, for how long.
  const std::string& description() const { return description_; }

 private:
  absl::Status StartAgent(int i);
  std::string AgentName(int i) const;

  testing::Cluster& cluster_;
  testing::PgServer& pg_;
  TmpfsDisk* disk_;
  std::vector<testing::Process*> agents_;
  std::optional<PlannedFault> active_;
  absl::Time heal_at_ = absl::InfiniteFuture();
  absl::Time server_up_since_;
  absl::Time pg_up_since_;
  std::array<int, kFaultKinds> injected_{};
  std::string description_;
};

}  // namespace assay::faults
