#pragma once
// Sweeps (issue 10, docs/train.md "Sweeps", migration 0023). A trial is a job whose jobs.spec
// has 'sweep' {name, trial, trials, params, method, metric, goal, early_stop}; the planner puts
// it there. The server judges each trial's metric against the others (the median rule, from
// the ReportTrainMetrics handler) and, once every trial of a sweep ended, marks the best and
// registers its model (from AdvancePipeline, under the pipeline's lock).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/db.h"

namespace assay::store {

struct SweepTrialView {
  int64_t job_id = 0;
  std::string name;  // "JOB (trial N)"
  int trial = 0;
  std::string state, message;
  std::string params_json = "{}";  // the trial's values
  std::optional<int64_t> step;     // of the metric's last point
  std::optional<double> value;     // the metric's last value
  bool best = false;
  bool stopped_early = false;
};

struct SweepView {
  std::string name, method, metric, goal;
  int trials = 0;
  std::vector<SweepTrialView> trial_views;  // by trial number
  bool concluded = false;                   // every trial ended, the best chosen
  std::optional<int64_t> best_job_id;
  std::optional<double> best_value;
  std::string model;                 // of the registered version, "" when none
  std::optional<int> model_version;  // registered from the best trial
  std::string message;               // why there is no best, or why it was not registered
};

// Inside a transaction holding the pipeline's lock (AdvancePipeline calls it first): concludes
// every sweep of the pipeline whose trials have all ended and that has no conclusion yet. The
// best trial is the succeeded one, not stopped early, whose metric's last point (greatest step,
// then attempt) is lowest (goal minimize) or highest (maximize), the lower trial number on a
// tie. Its train step's model is registered (RegisterTrainedModels, tagged sweep and
// sweep_trial); when that fails the best trial is failed with the reason. Returns whether a job
// was failed (its dependents may then be blocked).
bool ConcludeSweeps(pqxx::work& tx, Connection& c, int64_t pipeline_id, absl::Time now);

// The median rule for the trial job `job_id` running under `attempt_token`, after new points:
// when its sweep has early_stop, its metric's newest point (step s >= warmup_steps) is worse
// than the median of the other trials' values at s (each trial's point at the greatest step
// <= s of its current attempt, among trials whose current attempt reached s) and at least
// min_trials others count, the trial ends 'succeeded' with the message "stopped early: ...",
// its agent is told to stop it (NOTIFY assay_cancel) and the pipeline advances. Returns the
// message when it stopped the trial, "" otherwise (no sweep, no early stop, not worse, too few
// others, or the attempt is no longer live).
absl::StatusOr<std::string> JudgeTrial(Db& db, int64_t job_id, const std::string& attempt_token,
                                       absl::Time now);

// The sweeps of pipeline `pipeline_id`, in the order of their first trial. kNotFound for an
// unknown pipeline.
absl::StatusOr<std::vector<SweepView>> SweepsOf(Db& db, int64_t pipeline_id);

}  // namespace assay::store
