#pragma once
// Training (issue 10, migration 0021, docs/train.md): a `train:` step's live metric series,
// its checkpoints (manifests over the artifacts' chunk store, for an attempt on another agent
// to resume from), what the agent reported at the step's end, and the registration of its
// model when the job succeeds. *db must outlive the store.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/registry/model_input.h"
#include "server/store/artifacts.h"
#include "server/store/db.h"
#include "server/store/models.h"
#include "server/store/sweep.h"

namespace assay::store {

inline constexpr size_t kMaxTrainPointsPerCall = 5'000;
inline constexpr int64_t kMaxTrainPointsPerAttempt = 200'000;  // per train step
inline constexpr size_t kMaxTrainSeriesNameBytes = 128;
inline constexpr int kCheckpointsKept = 2;  // per job and train step: the newest by step

struct TrainPoint {
  std::string name;
  int64_t step = 0;
  double value = 0;
  absl::Time at;
  int attempt = 0;  // filled when read
};

struct TrainCheckpoint {
  int64_t id = 0;
  int step_index = 0;
  int64_t step = 0;
  int attempt = 0;
  std::vector<ArtifactFileRow> files;
};

// One train step of a job, for the API.
struct TrainRunView {
  int step_index = 0;
  std::string name, model;
  std::map<std::string, std::vector<TrainPoint>> series;         // by name; points by step, attempt
  std::vector<std::pair<int, std::optional<int64_t>>> attempts;  // attempt, resumed_from step
  std::optional<int64_t> latest_checkpoint_step;
  std::optional<int> model_version;  // registered
  std::string datasets_json = "[]";
};

// The workspace-relative directory of a train step's checkpoints: `.assay/train/<index>/
// checkpoints` (the agent's ASSAY_CHECKPOINT_DIR); every checkpoint file is under it.
std::string CheckpointDirOf(int step_index);

// Registers the model of each `train:` step of job `job_id` that registers (jobs.spec), inside
// the transaction that marked the job succeeded (JobStore::Finish): model dir from its
// artifacts, params from the spec, the last value of each metric series, the dataset digests
// the agent reported, the parent when given. Each in a savepoint: an error (no model files,
// an unknown parent) leaves nothing of that registration and is returned, naming the step, so
// that Finish fails the job with it. A sweep's trial (jobs.spec 'sweep') registers nothing
// unless `sweep_best` (ConcludeSweeps, server/store/sweep.h): then its version is also tagged
// `sweep` (the sweep's name) and `sweep_trial` (its number).
absl::Status RegisterTrainedModels(pqxx::work& tx, Connection& c, int64_t job_id, absl::Time now,
                                   bool sweep_best = false);

// What a `promote:` step did.
struct PromoteOutcome {
  bool promoted = false;  // false: its `if` did not hold; nothing changed
  int version = 0;
  std::optional<int> previous;
  bool changed = false;
  std::string message;  // one sentence for the job's log
};

class TrainStore {
 public:
  explicit TrainStore(Db* db) : db_(db) {}

  // The spec of step `step_index` of the job if it is a `train:` step (its JSON), else
  // kInvalidArgument "step N of job J is not a train step".
  absl::StatusOr<std::string> TrainStepOf(int64_t job_id, int step_index);

  // Stores points of attempt `attempt` (validated: name 1 to 128 bytes of printable ASCII or
  // UTF-8 without control characters, step >= 0, finite value; at most kMaxTrainPointsPerCall).
  // A point already stored is skipped. kResourceExhausted past kMaxTrainPointsPerAttempt.
  // Returns how many were new.
  absl::StatusOr<int> AddPoints(int64_t job_id, int attempt, int step_index,
                                const std::vector<TrainPoint>& points);

  // Records a checkpoint once every chunk it names is stored (kFailedPrecondition naming the
  // first missing one). Every path must lie under CheckpointDirOf(step_index)
  // (kInvalidArgument). The same (job, step index, step) again changes nothing (replayed).
  // Keeps the newest kCheckpointsKept by step.
  absl::StatusOr<bool> CommitCheckpoint(int64_t job_id, int attempt, int step_index, int64_t step,
                                        const std::vector<ArtifactFileRow>& files, absl::Time now);

  // The newest checkpoint of the job's train step (whichever attempt saved it), recorded as read
  // by the job (ChunksReadBy); nullopt when none.
  absl::StatusOr<std::optional<TrainCheckpoint>> RestoreCheckpoint(int64_t job_id, int step_index);
  // Of `chunks`, those in the checkpoints job `job_id` restored.
  absl::StatusOr<std::vector<std::string>> ChunksReadBy(int64_t job_id,
                                                        const std::vector<std::string>& chunks);

  // The step's end: the dataset digests and the checkpoint step it resumed from.
  absl::Status ReportRun(int64_t job_id, int attempt, int step_index,
                         const std::vector<registry::DatasetDigest>& datasets,
                         std::optional<int64_t> resumed_from, absl::Time now);

  // The train steps of job `job_id` with their series (at most max_points per series, the
  // newest when cut). kNotFound for an unknown job.
  absl::StatusOr<std::vector<TrainRunView>> RunsOf(int64_t job_id, int max_points = 10'000);

  // Runs step `step_index` of job `job_id` (attempt `attempt`), a `promote:` step: evaluates its
  // `if` (branch, tag, event of the pipeline; evals.NAME.passed: every complete eval run of
  // that name in the pipeline passed), then points the alias at its version (the newest one
  // this pipeline registered of the model when it names none) through `models`, audited as
  // "pipeline P job J" with the reason "promote step 'NAME'[: if CONDITION]". Errors:
  // kInvalidArgument (not a promote step), kPermissionDenied (an untrusted pipeline),
  // kFailedPrecondition (no version registered by this pipeline), the registry's.
  absl::StatusOr<PromoteOutcome> Promote(int64_t job_id, int step_index, ModelStore& models,
                                         absl::Time now);

  // Deletes the checkpoints of jobs that ended (not queued, assigned or running) before
  // `before`; at most `batch`. Their chunks go with the next chunk sweep.
  absl::StatusOr<int> DeleteFinishedCheckpoints(absl::Time before, int batch);

  // Sweeps (server/store/sweep.h): the median rule after new points, and the API's view.
  absl::StatusOr<std::string> JudgeTrial(int64_t job_id, const std::string& attempt_token,
                                         absl::Time now) {
    return store::JudgeTrial(*db_, job_id, attempt_token, now);
  }
  absl::StatusOr<std::vector<SweepView>> SweepsOf(int64_t pipeline_id) {
    return store::SweepsOf(*db_, pipeline_id);
  }

 private:
  Db* db_;
};

}  // namespace assay::store
