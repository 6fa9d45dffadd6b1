#pragma once
// A `train:` step as the pipeline linter validated it (issue 10, docs/train.md), and its JSON
// form: the planner stores it in jobs.spec, the dispatcher hands it to the agent in
// Step.train_json, the agent runs it, and the server registers its model from it when the job
// succeeds. The agent parses it strictly, as it does an eval's.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace assay::evals {

inline constexpr size_t kMaxTrainParamsBytes = 64 << 10;  // ASSAY_PARAMS, serialized
inline constexpr size_t kMaxTrainDatasets = 64;
inline constexpr int64_t kMinCheckpointIntervalMs = 1'000;
inline constexpr int64_t kDefaultCheckpointIntervalMs = 30'000;

struct TrainSpec {
  std::string name;                   // the run's name (the step's by default)
  std::string command;                // the user's training command, run by the job's executor
  std::string model;                  // the registered model's name; required when `register`
  std::string params_json = "{}";     // a JSON object, canonical (keys sorted): ASSAY_PARAMS
  std::string model_dir = "model";    // workspace-relative: ASSAY_MODEL_DIR, uploaded as artifacts
  std::vector<std::string> datasets;  // workspace-relative files; a `.dvc` file is read
  bool register_model = true;
  std::string parent;  // a version number or alias of `model`; "" none
  int64_t checkpoint_interval_ms = kDefaultCheckpointIntervalMs;

  bool operator==(const TrainSpec&) const = default;
};

std::string TrainSpecToJson(const TrainSpec& spec);
// kInvalidArgument for anything that is not what TrainSpecToJson writes (a field of the wrong
// type, a missing command, an interval out of range, params that are not an object).
absl::StatusOr<TrainSpec> TrainSpecFromJson(std::string_view json);

// A `promote:` step (docs/train.md, "Promote"): points `alias` of `model` at `version` (a
// number or an alias; "" = the newest version this pipeline registered) when `condition` (an
// `if:` expression that may use evals.NAME.passed) holds. The server does it, audited.
struct PromoteSpec {
  std::string model;
  std::string alias;
  std::string version;
  std::string condition;  // "" = always

  bool operator==(const PromoteSpec&) const = default;
};

std::string PromoteSpecToJson(const PromoteSpec& spec);
absl::StatusOr<PromoteSpec> PromoteSpecFromJson(std::string_view json);

// The checkpoint naming rule (docs/train.md): an entry directly inside ASSAY_CHECKPOINT_DIR
// named `step-N`, `checkpoint-N` or `ckpt-N` (also with '_' for '-'), optionally followed by
// one extension of 1 to 16 letters and digits ("step-120.pt"); N decimal, at most 15 digits.
// Returns N, or nullopt for any other name.
std::optional<int64_t> CheckpointStep(std::string_view name);

}  // namespace assay::evals
