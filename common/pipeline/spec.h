#pragma once
// The `.assay.yml` pipeline file: its model, validation and parsing.
//
// The format as it stands (see docs/pipeline.md):
//
//   jobs:                       # required, non-empty mapping of job name -> job
//     build:                    # name: [A-Za-z0-9_.-]{1,64}
//       needs: [lint]           # optional: list of job names or {job, artifacts}, or one
//       env: { A: "1" }         # optional: mapping name -> scalar (kept as text)
//       timeout: 10m            # optional, default 60m (see common/duration.h)
//       steps:                  # required, non-empty list
//         - name: compile       # optional, default "step N" (1-based)
//           run: make           # required, non-empty string
//         - make test           # a plain string means { run: "make test" }
//
// Why a hand-written validator over yaml-cpp nodes rather than yaml-cpp's `as<T>`:
// the user gets every problem at once, each with its line, column and key path, and
// duplicate keys (which yaml-cpp silently accepts) are reported.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/evals/eval_spec.h"
#include "common/evals/train_spec.h"
#include "common/pipeline/matrix.h"
#include "common/pipeline/sweep.h"

namespace assay {

inline constexpr int64_t kDefaultJobTimeoutSeconds = 3600;
// Limits of the container keys (docs/executors.md).
inline constexpr size_t kMaxServices = 8;
inline constexpr size_t kMaxImageNameBytes = 255;
inline constexpr size_t kMaxServiceEnv = 64;
inline constexpr size_t kMaxServiceCommandArgs = 64;
inline constexpr size_t kMaxServiceTextBytes = 4096;

// Limits on a hostile file (each is a lint error naming the file, line and key):
//   "file is N bytes, more than the limit of 1048576"        (checked before parsing)
//   "YAML nested deeper than 64 levels"                       (mappings and lists)
//   "aliases expand to more than 100000 nodes"                (nodes read through `*alias`,
//                                                              counted before any is built)
// plus those of `if:` (expr.h), globs (glob.h) and the matrix (matrix.h).
inline constexpr size_t kMaxSpecBytes = 1 << 20;
inline constexpr size_t kMaxYamlDepth = 64;
inline constexpr uint64_t kMaxAliasNodes = 100'000;

// `build_image:` of a step (issue 9, docs/images.md): build a container image from the
// workspace and optionally push it.
inline constexpr size_t kMaxBuildImageTags = 16;
inline constexpr size_t kMaxBuildImagePathBytes = 1024;
struct BuildImageSpec {
  std::string context = ".";  // Relative to the workspace; no '..' component, not absolute.
  std::string file;           // Relative to the workspace; empty: <context>/Containerfile.
  // 1 to kMaxBuildImageTags references `[registry/]path[:tag]` (no digest). Each reference's
  // repository is also tagged with the commit SHA; tags[0]'s repository is "the image" of
  // the step (what `${{ jobs.NAME.image }}` names).
  std::vector<std::string> tags;
  bool push = false;
  // Needed with push: a secret the job lists in `secrets:` whose value is `user:password`.
  std::string registry_secret;

  bool operator==(const BuildImageSpec&) const = default;
};

// Whether `text` is `${{ jobs.NAME.image }}` (spaces inside the braces optional; NAME a job
// name); sets *job to NAME when `job` is not null.
bool JobImageRef(std::string_view text, std::string* job);

// Issue 12: a `deploy:` step (docs/deployments.md, "From a pipeline"): the server makes a
// deployment of the pipeline's commit and the job follows it to its end.
struct DeployStepSpec {
  std::string environment;
  std::string model;  // NAME@VERSION or NAME@ALIAS; "" with image
  std::string image;  // NAME@sha256:HEX; "" with model
  std::vector<std::string> endpoints;
  std::string strategy_json;  // as common/deploy/spec.h ParseStrategy takes it (checked)
  bool supersede = false;

  bool operator==(const DeployStepSpec&) const = default;
};

std::string DeployStepSpecToJson(const DeployStepSpec& spec);
absl::StatusOr<DeployStepSpec> DeployStepSpecFromJson(std::string_view json);

struct StepSpec {
  std::string name;  // "step N" (1-based) when the file gives none.
  std::string run;   // Shell command; empty only when build_image, eval or train is set.
  std::optional<BuildImageSpec> build_image;  // Issue 9: set for a `build_image:` step.
  // Issue 10: set for an `eval:` step (common/evals/eval_spec.h, docs/evals.md). Its name
  // defaults to the step's.
  std::optional<evals::EvalSpec> eval;
  // Issue 10: set for a `train:` step (common/evals/train_spec.h, docs/train.md). Its name
  // defaults to the step's.
  std::optional<evals::TrainSpec> train;
  // Issue 10: set for a `promote:` step (docs/train.md): the server moves a model alias.
  std::optional<evals::PromoteSpec> promote;
  // Issue 12: set for a `deploy:` step.
  std::optional<DeployStepSpec> deploy;

  bool operator==(const StepSpec&) const = default;
};

// `retry:`. An integer N is shorthand for { max: N }.
struct RetrySpec {
  int max = 0;                                                         // 0-10 further attempts.
  std::vector<std::string> on = {"agent_lost", "timeout", "failure"};  // Subset, file order.

  bool operator==(const RetrySpec&) const = default;
};

// `concurrency:`. `group` may hold `${{ }}` placeholders; empty means no group.
struct ConcurrencySpec {
  std::string group;
  bool cancel_in_progress = false;

  bool operator==(const ConcurrencySpec&) const = default;
};

// `runs_on:`. Labels may hold `${{ matrix.X }}`; gpu_model is a glob (common/glob.h).
struct RunsOnSpec {
  std::vector<std::string> labels;
  int cpus = 1;
  double memory_gb = 0;  // 0: no requirement.
  int gpus = 0;
  bool gpu_shared = false;   // `gpus: shared`: one GPU, shareable with other such jobs.
  double gpu_memory_gb = 0;  // Per GPU; 0: no requirement.
  std::string gpu_model;     // Empty: any.

  bool operator==(const RunsOnSpec&) const = default;
};

// `artifacts:` (issue 9): files the agent uploads after the steps (docs/artifacts.md).
inline constexpr int64_t kDefaultArtifactExpireSeconds = 30 * 24 * 3600;  // 30 days
inline constexpr size_t kMaxArtifactPaths = 100;
struct ArtifactsSpec {
  std::vector<std::string> paths;  // Globs relative to the workspace; '!' excludes. Non-empty.
  int64_t expire_in_s = kDefaultArtifactExpireSeconds;
  std::string when = "on_success";   // "on_success" or "always".
  std::string if_no_files = "warn";  // "warn" or "error".

  bool operator==(const ArtifactsSpec&) const = default;
};

// `cache:` (issue 9, docs/caches.md): restored before the steps, saved after success. Limits
// and the key's syntax (hashFiles) are in common/pipeline/cache_key.h.
struct CacheSpec {
  std::string key;                        // May hold placeholders and hashFiles calls.
  std::vector<std::string> paths;         // Workspace-relative globs or directories; non-empty.
  std::vector<std::string> restore_keys;  // Prefixes tried in order when the key misses.

  bool operator==(const CacheSpec&) const = default;
};

// One entry of a job's `secrets:` (issue 9, docs/secrets.md).
struct SecretUse {
  std::string name;      // ValidateSecretName (common/base/secret_rules.h)
  bool as_file = false;  // `as: file`: a 0400 file whose path is in NAME_FILE; else NAME

  bool operator==(const SecretUse&) const = default;
};

// `image:` (docs/executors.md): the job's steps run in a container of this image.
struct ImageSpec {
  std::string name;                 // A reference such as localhost/busybox:1 or debian@sha256:...
  std::string pull = "if_missing";  // never, if_missing or always.
  std::string user;                 // `user` or `user:group` inside the image; empty: the image's.
  std::string entrypoint;           // A shell in the image (absolute path); empty: /bin/sh.

  bool operator==(const ImageSpec&) const = default;
};

// `services[i].health`: a command run in the service until it exits 0.
struct HealthSpec {
  std::string cmd;  // Shell text run with `/bin/sh -c` inside the service; empty: none.
  int64_t interval_s = 1;
  int retries = 30;       // Attempts before the job fails.
  int64_t timeout_s = 5;  // Per attempt.

  bool operator==(const HealthSpec&) const = default;
};

// `services:` entry: a side container on the job's network, reachable by `name`.
struct ServiceSpec {
  std::string name;  // A DNS label: [a-z0-9-]{1,63}, not starting or ending with '-'.
  ImageSpec image;
  std::vector<std::pair<std::string, std::string>> env;  // In file order, unique names.
  std::vector<std::string> command;  // argv after the image; empty: the image's default.
  HealthSpec health;

  bool operator==(const ServiceSpec&) const = default;
};

struct JobSpec {
  std::string name;
  std::vector<std::string> needs;  // In file order, no duplicates, all defined jobs.
  std::vector<std::pair<std::string, std::string>> env;  // In file order, unique names.
  int64_t timeout_s = kDefaultJobTimeoutSeconds;
  std::vector<StepSpec> steps;  // Never empty.
  int line = 0;                 // 1-based line of the job's name in the file.
  std::string if_expr;          // `if:` text (valid for Expr::Parse); empty: always runs.
  RetrySpec retry;
  bool allow_failure = false;
  ConcurrencySpec concurrency;
  int priority = 0;                  // -100..100; higher runs first.
  std::optional<MatrixSpec> matrix;  // `strategy:`; absent: one job.
  // Issue 10: `sweep:` (common/pipeline/sweep.h): one job per trial. Never with `matrix`.
  std::optional<SweepSpec> sweep;
  RunsOnSpec runs_on;
  // Issue 9, lfs: `lfs: false` leaves Git LFS pointer files as they are (no fetch).
  bool lfs = true;
  // Issue 9, artifacts: what the job uploads (absent: nothing), and the needs written as
  // `{job: NAME, artifacts: true}` (a subset of `needs`, in its order) whose artifacts the
  // agent downloads before the first step.
  std::optional<ArtifactsSpec> artifacts;
  std::vector<std::string> artifact_needs;
  // Issue 9, secrets: the repository secrets the job is given, file order, unique names; and
  // the environment whose values override the repository-wide ones ("": none).
  std::vector<SecretUse> secrets;
  std::string environment;
  // Issue 9, container executor (docs/executors.md).
  std::optional<ImageSpec> image;     // Absent: not in a container.
  std::vector<ServiceSpec> services;  // Only with `image`; at most kMaxServices.
  // Issue 9, sandbox: `network: none` (no network: a loopback of its own; needs the sandbox or
  // container executor) or `network: default` (the executor's usual network). "" or "none".
  std::string network;
  // Issue 9, caches (docs/caches.md): absent: the job restores and saves nothing.
  std::optional<CacheSpec> cache;

  bool operator==(const JobSpec&) const = default;
};

struct PushTrigger {
  std::vector<std::string> branches, tags, paths, paths_ignore;  // Globs; '!' excludes.

  bool operator==(const PushTrigger&) const = default;
};

struct PullRequestTrigger {
  std::vector<std::string> branches;  // Globs over the base branch.
  std::vector<std::string> types = {"opened", "synchronize", "reopened"};

  bool operator==(const PullRequestTrigger&) const = default;
};

struct ScheduleTrigger {
  std::string cron;    // Valid for CronSchedule::Parse, normalised.
  std::string branch;  // Empty: the repository's default branch.

  bool operator==(const ScheduleTrigger&) const = default;
};

struct ManualInput {
  std::string name;
  std::string type = "string";  // string, number, boolean, choice.
  std::string default_value;
  bool has_default = false;
  std::vector<std::string> options;  // choice only; non-empty then.
  bool required = false;
  std::string description;

  bool operator==(const ManualInput&) const = default;
};

struct ManualTrigger {
  std::vector<ManualInput> inputs;  // File order.

  bool operator==(const ManualTrigger&) const = default;
};

// `on:`. Without the key: push to any branch (push engaged with no filters).
struct TriggerSpec {
  std::optional<PushTrigger> push = PushTrigger{};
  std::optional<PullRequestTrigger> pull_request;
  std::vector<ScheduleTrigger> schedule;
  std::optional<ManualTrigger> manual;

  bool operator==(const TriggerSpec&) const = default;
};

struct PipelineSpec {
  TriggerSpec on;
  std::vector<JobSpec> jobs;  // In file order.

  bool operator==(const PipelineSpec&) const = default;
};

// One problem in a pipeline file. `line` and `column` are 1-based.
struct SpecError {
  std::string file;
  int line = 0;
  int column = 0;
  std::string key;  // Dotted path, e.g. "jobs.build.steps[0].run"; empty for file-level errors.
  std::string message;

  // "FILE:LINE:COL: KEY: MESSAGE", or "FILE:LINE:COL: MESSAGE" when `key` is empty.
  std::string ToString() const;
  bool operator==(const SpecError&) const = default;
};

// Validates `yaml_text` and returns every problem found: first each unknown key that is
// a near miss of a required key missing beside it ("unknown key 'stepz' (did you mean
// 'steps'?)", the likely cause of "missing required key 'steps'"), then the rest by
// position (line, then column; ties keep discovery order). Empty when the file is valid.
// `file` is only used to label the errors.
std::vector<SpecError> LintPipelineSpec(std::string_view yaml_text,
                                        std::string_view file = ".assay.yml");

// Parses and validates. On any problem returns kInvalidArgument whose message is every
// SpecError's ToString(), in LintPipelineSpec's order, one per line ('\n' between, none
// at the end): the lines `assay lint` prints.
absl::StatusOr<PipelineSpec> ParsePipelineSpec(std::string_view yaml_text,
                                               std::string_view file = ".assay.yml");

// Job names in dependency order: every job comes after all of its needs, and among
// jobs that are ready at the same time the one earlier in the file comes first.
// Meant for a spec from ParsePipelineSpec; for any other, needs naming undefined jobs
// are ignored and jobs on a cycle (and those behind it) are appended in file order.
std::vector<std::string> TopologicalOrder(const PipelineSpec& spec);

}  // namespace assay
