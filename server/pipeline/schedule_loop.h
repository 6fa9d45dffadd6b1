#pragma once
// Fires due schedules (on.schedule of each repository's default branch, see ScheduleStore).
// One thread per server; every `interval` it lists the schedules whose next_run_at has come
// (by the injected Clock) and hands each to the planner (Planner::SubmitSchedule: in parallel
// across repositories), which fetches the branch and writes the pipeline for the due slot in
// the same transaction that claims the slot (moves next_run_at to the cron's first slot after
// now, with a conditional UPDATE). So with several replicas on one database exactly one fires a
// slot, and slots missed while no server ran fire once on catch-up (next_run_at jumps past them
// all).
//
// At least once: a slot whose planning fails (the fetch, the database, a server that dies
// meanwhile) is not claimed and stays due. The loop tries it again on later passes, waiting
// `interval`, then twice as long after each failure, up to `longest_retry`, until it plans;
// slots that come due meanwhile are skipped as on catch-up.

#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "server/pipeline/planner.h"
#include "server/store/schedules.h"

namespace assay {

struct ScheduleLoopDeps {
  store::ScheduleStore* schedules;
  Planner* planner;  // must be started before Tick() or Start()
  const Clock* clock;
  absl::Duration interval = absl::Seconds(15);       // how often to look for due schedules
  absl::Duration longest_retry = absl::Minutes(10);  // longest pause before retrying a slot
};

class ScheduleLoop {
 public:
  explicit ScheduleLoop(ScheduleLoopDeps deps);  // everything in deps must outlive the loop
  ~ScheduleLoop();
  void Start();
  void Stop();  // finishes the tick in hand, then stops; idempotent

  // One pass: plans every schedule due now (except those waiting out a retry pause) and waits
  // for them. Returns the ids of the pipelines this caller planned (a slot another caller
  // claimed is not among them). kUnavailable when the database cannot be read; a slot whose
  // pipeline cannot be planned is logged and stays due.
  absl::StatusOr<std::vector<int64_t>> Tick();

 private:
  struct Retry {
    absl::Time slot;  // the slot that failed
    absl::Time not_before;
    absl::Duration pause;
  };

  void Loop();

  ScheduleLoopDeps deps_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex tick_mu_;                                                    // one Tick at a time
  absl::flat_hash_map<int64_t, Retry> retries_ ABSL_GUARDED_BY(tick_mu_);  // by schedule id
  std::thread thread_;
};

}  // namespace assay
