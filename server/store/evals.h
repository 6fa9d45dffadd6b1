#pragma once
// Eval runs and their examples (issue 10, migration 0020, docs/evals.md). An agent reports an
// eval step's results in pieces (examples, then the summary that completes the run); the API
// reads them back, lists the runs of a repository and diffs two runs example by example; the
// agent asks for the baseline of a relative gate. *db must outlive the store.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/artifacts.h"
#include "server/store/db.h"

namespace assay::store {

// Limits of a report (each an kInvalidArgument naming the field).
inline constexpr size_t kMaxEvalPieceExamples = 1000;
inline constexpr int kMaxEvalExamples = 1'000'000;
inline constexpr size_t kMaxEvalText = 64 << 10;  // input, expected, output, error
inline constexpr size_t kMaxEvalExampleId = 1024;
inline constexpr size_t kMaxEvalScores = 64;
inline constexpr size_t kMaxEvalReportJson = 1 << 20;
inline constexpr int kMaxEvalStepIndex = 999;

using EvalScores = std::vector<std::pair<std::string, double>>;

struct EvalExampleRow {
  int index = 0;
  std::string example_id, input, expected, output, error;
  bool passed = false;
  EvalScores scores;
  double latency_ms = 0;
  int64_t input_tokens = 0, output_tokens = 0;
  int answered = 0, passes = 0;
};

struct EvalSummaryRow {
  std::string dataset_path, dataset_sha256;
  int repeat = 1;
  int examples = 0;
  bool passed = false;
  std::string error;
  std::string report_json = "{}";
  int64_t baseline_run_id = 0;  // 0: none
};

struct EvalRun {
  int64_t id = 0, job_id = 0;
  int attempt = 0, step_index = 0;
  int64_t repo_id = 0, pipeline_id = 0;
  std::string job_name, name, ref, commit_sha;
  bool trusted = false, complete = false;
  std::optional<bool> passed;
  std::string dataset_path, dataset_sha256;
  int repeat = 1, examples = 0;
  std::string error, report_json;
  int64_t baseline_run_id = 0;
  absl::Time created_at;
  std::optional<absl::Time> finished_at;
  // Issue 10: the model version the run is attached to (its pipeline registered it); "" / 0.
  std::string model;
  int model_version = 0;
};

struct EvalBaselineRows {
  int64_t run_id = 0;
  std::string commit_sha;
  std::vector<std::pair<std::string, EvalScores>> examples;  // example_id -> scores
};

struct EvalFilter {
  int64_t repo_id = 0;           // 0: any
  int64_t job_id = 0;            // 0: any
  std::string name;              // "": any
  std::string branch;            // "": any; else ref refs/heads/<branch>
  int64_t before_id = 0;         // 0: from the newest
  int64_t model_version_id = 0;  // 0: any; else runs attached to that version (model_versions.id)
  int limit = 50;
};

class EvalStore {
 public:
  explicit EvalStore(Db* db) : db_(db) {}

  // Records one piece of attempt `a`'s report of step `step_index`, in one transaction.
  // Examples already recorded (a retried piece) are kept as they were. With `summary`: every
  // index below summary.examples must be recorded (kFailedPrecondition "N of M examples were
  // reported" otherwise), then the run is complete. A piece for a complete run changes
  // nothing. Returns the run's id.
  absl::StatusOr<int64_t> Report(const LiveAttempt& a, int step_index, const std::string& name,
                                 const std::vector<EvalExampleRow>& examples,
                                 const std::optional<EvalSummaryRow>& summary);

  // The last complete, passed run of eval `name` in `repo_id` on branch `branch` of a trusted
  // pipeline, with its examples' scores; nullopt when there is none.
  // `vs` a branch, or "@ALIAS": the last passed run on the version ALIAS points at, of the
  // model whose version pipeline `pipeline_id` registered (none registered: no baseline).
  absl::StatusOr<std::optional<EvalBaselineRows>> Baseline(int64_t repo_id, const std::string& name,
                                                           const std::string& vs,
                                                           int64_t pipeline_id);

  absl::StatusOr<std::optional<EvalRun>> Get(int64_t id);
  absl::StatusOr<std::vector<EvalRun>> List(const EvalFilter& filter);
  // Every example of run `id`, by index.
  absl::StatusOr<std::vector<EvalExampleRow>> Examples(int64_t run_id);

 private:
  Db* db_;
};

}  // namespace assay::store
