#pragma once
// Fires due schedules (on.schedule of each repository's default branch, see ScheduleStore).
// One thread per server; every `interval` it lists the schedules whose next_run_at has come
// (by the injected Clock), claims each one by moving next_run_at to the cron's first slot after
// now with a conditional UPDATE, and, when the claim wins, plans a pipeline for the claimed slot
// (Planner::PlanSchedule). So with several replicas on one database exactly one fires a slot,
// and slots missed while no server ran fire once on catch-up (next_run_at jumps past them all).

#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "server/pipeline/planner.h"
#include "server/store/schedules.h"

namespace assay {

struct ScheduleLoopDeps {
  store::ScheduleStore* schedules;
  Planner* planner;
  const Clock* clock;
  absl::Duration interval = absl::Seconds(15);  // how often to look for due schedules
};

class ScheduleLoop {
 public:
  explicit ScheduleLoop(ScheduleLoopDeps deps);  // everything in deps must outlive the loop
  ~ScheduleLoop();
  void Start();
  void Stop();  // finishes the tick in hand, then stops; idempotent

  // One pass: claims and plans every schedule due now. Returns the ids of the pipelines this
  // caller planned (a slot another caller claimed is not among them). kUnavailable when the
  // database cannot be read; a slot whose pipeline cannot be planned is logged and skipped.
  absl::StatusOr<std::vector<int64_t>> Tick();

 private:
  void Loop();

  ScheduleLoopDeps deps_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace assay
