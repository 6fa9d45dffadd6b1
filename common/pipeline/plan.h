#pragma once
// The pure planning step between a parsed `.assay.yml` (common/pipeline_spec.h) and the
// server's run records: does an event start the pipeline (Triggers), and which concrete
// jobs does it run (PlanJobs). No I/O.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/pipeline/expr.h"
#include "common/pipeline/spec.h"

namespace assay {

struct TriggerEvent {
  std::string kind;  // "push" (branch push) or "tag".
  std::string branch, tag;
  std::vector<std::string> changed_paths;  // Empty = unknown: path filters do not exclude.
};

// Whether `spec.on` lets `ev` start a pipeline, with GitHub Actions semantics:
//  - `branches` filters branch pushes, `tags` tag pushes ('!' entries exclude; see
//    MatchesFilters in common/glob.h). With only `branches` given, tag pushes do not
//    trigger; with only `tags`, branch pushes do not; with neither, both do.
//  - The default trigger (a file without `on:`) runs on branch pushes only. The parsed
//    model cannot tell it from a file whose whole `on:` is `push:` with no filters
//    (both are TriggerSpec{}), so that file also runs on branch pushes only.
//  - `paths`: some changed path must match; `paths_ignore`: not every changed path may
//    be covered. Both apply to branch pushes only (as on GitHub, tag pushes skip path
//    filters), and neither excludes when `changed_paths` is empty (unknown).
// When false, `*why_not` (if non-null) is set to one of:
//   "the pipeline has no on.push trigger"
//   "on.push.branches does not match branch 'B'"      "on.push.tags does not match tag 'T'"
//   "on.push has tags but no branches, so branch pushes do not trigger"
//   "on.push has branches but no tags, so tag pushes do not trigger"
//   "the default trigger (no 'on:' key) runs on branch pushes only"
//   "on.push.paths matches none of the N changed paths"  ("the 1 changed path")
//   "on.push.paths_ignore covers all N changed paths"    ("the 1 changed path")
//   "unknown event kind 'K' (expected push or tag)"
bool Triggers(const PipelineSpec& spec, const TriggerEvent& ev, std::string* why_not);

// Whether `spec.on.pull_request` lets a pull request into `base_branch` start a pipeline.
// `type` is the normalized action: opened, synchronize, reopened or closed. When false,
// `*why_not` (if non-null) is set to one of:
//   "the pipeline has no on.pull_request trigger"
//   "on.pull_request.branches does not match base branch 'B'"
//   "on.pull_request.types does not include 'T'"
bool TriggersPullRequest(const PipelineSpec& spec, const std::string& base_branch,
                         const std::string& type, std::string* why_not);

// The values of a manual pipeline's inputs: every input of `manual` with the value given in
// `given` (as text), else its default, else "" (an optional input without a default).
// Errors (kInvalidArgument), checked in this order:
//   "input 'X' is not defined in on.manual.inputs"           (a given name the file lacks)
//   "input 'X' must be a number, got 'V'"
//   "input 'X' must be a boolean (true or false), got 'V'"
//   "input 'X' must be one of A, B, got 'V'"                  (choice)
//   "input 'X' is required"                                   (required, no value, no default)
absl::StatusOr<std::map<std::string, std::string>> ResolveManualInputs(
    const ManualTrigger& manual, const std::map<std::string, std::string>& given);

// The environment variable that carries input `name` to steps: ASSAY_INPUT_ followed by the
// name in upper case with every character other than A-Z, 0-9 and '_' replaced by '_'
// ("model-size" -> ASSAY_INPUT_MODEL_SIZE).
std::string InputEnvName(const std::string& name);

// Issue 10: what a sweep's trial job knows of its sweep (docs/train.md "Sweeps").
struct PlannedSweepTrial {
  int number = 0;  // 1-based
  int trials = 0;  // how many the sweep has
  std::vector<std::pair<std::string, SweepValue>> values;
  std::string method, metric, goal;
  std::optional<SweepEarlyStop> early_stop;

  bool operator==(const PlannedSweepTrial&) const = default;
};

struct PlannedJob {
  std::string name;                // Matrix jobs: MatrixJobName(...).
  std::vector<std::string> needs;  // Concrete names; a need on a matrix job = all expansions.
  std::vector<std::pair<std::string, std::string>> env;  // Placeholders substituted.
  std::vector<StepSpec> steps;                           // Placeholders substituted in run.
  int64_t timeout_s = kDefaultJobTimeoutSeconds;
  int priority = 0;
  bool skip = false;                          // Its `if` evaluated false.
  std::string skip_reason;                    // "if: <expr> is false".
  std::map<std::string, std::string> matrix;  // The combination; empty for plain jobs.
  RunsOnSpec runs_on;                         // Placeholders substituted in labels.
  RetrySpec retry;
  bool allow_failure = false;
  ConcurrencySpec concurrency;  // Placeholders substituted in group.
  std::string base_name;        // The spec job's name (the matrix job for expansions).
  int max_parallel = 0;         // strategy.max_parallel of a matrix job; 0: no limit.
  bool lfs = true;              // `lfs:` of the job.
  // Issue 9: the job's `artifacts:` as written, and its needs marked `artifacts: true` as
  // concrete names (a matrix job's: all its expansions), in the order of `needs`.
  std::optional<ArtifactsSpec> artifacts;
  std::vector<std::string> artifact_needs;
  std::vector<SecretUse> secrets;  // As in the spec job (issue 9).
  std::string environment;
  // Issue 9, container executor: as in the spec (no placeholders in these keys).
  std::optional<ImageSpec> image;
  std::vector<ServiceSpec> services;
  std::string network;  // Issue 9: JobSpec::network ("" or "none").
  // Issue 9, caches: placeholders substituted in key (outside its hashFiles calls, which the
  // agent evaluates), paths and restore_keys.
  std::optional<CacheSpec> cache;
  // Issue 10: set on each trial of a `sweep:` job; its values are also in `matrix` (as text)
  // and in its train step's params (as JSON, over the step's own params of the same name).
  std::optional<PlannedSweepTrial> sweep;

  bool operator==(const PlannedJob&) const = default;
};

// The concrete jobs, in file order (a matrix job's expansions in ExpandMatrix order).
// `if` is evaluated with `ctx` once per spec job; a false `if` sets skip on every
// expansion. Jobs that need a skipped job keep their needs (the server skips them when a
// need does not succeed). Errors (kInvalidArgument), prefixed with the key path:
//   "jobs.J.strategy.matrix: matrix expands to N jobs, more than the limit of 256"
//   "jobs.J.if: invalid expression: column N: ..."
//   "jobs.J.env.X: column N: unknown placeholder ..." (also steps[i].run)
//   "jobs.J.steps[i].run: unknown matrix key 'K'"
//   "jobs.J.needs: unknown job 'K'"
//   "jobs.J.runs_on.labels[i]: ..." / "jobs.J.concurrency.group: ..." (placeholders as for env)
absl::StatusOr<std::vector<PlannedJob>> PlanJobs(const PipelineSpec& spec, const ExprContext& ctx);

}  // namespace assay
