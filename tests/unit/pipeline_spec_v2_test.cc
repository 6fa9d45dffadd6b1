#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/pipeline/spec.h"

namespace assay {
namespace {

std::vector<std::string> Lint(const std::string& yaml) {
  std::vector<std::string> lines;
  for (const SpecError& error : LintPipelineSpec(yaml, "f.yml")) {
    lines.push_back(error.ToString().substr(6));
  }
  return lines;
}

using Lines = std::vector<std::string>;

TEST_CASE("spec v2: no on: means push to any branch") {
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec("jobs: {a: {steps: [x]}}\n");
  REQUIRE(spec.ok());
  CHECK(spec->on == TriggerSpec{});
  CHECK(spec->on.push.has_value());
}

TEST_CASE("spec v2: triggers and job keys parse to the exact model") {
  const std::string yaml = R"(on:
  push: { branches: [main, dev, staging, "release/**"], paths: ["src/**"] }
  pull_request: { types: [opened] }
  schedule: [{ cron: "0 3 1 * *", branch: main }]
  manual:
    inputs:
      model: { type: choice, options: [a, b], default: a, required: true }
jobs:
  test:
    if: "branch == 'main'"
    retry: 2
    allow_failure: true
    priority: 5
    concurrency: { group: "ci-${{ branch }}-${{ matrix.py }}", cancel_in_progress: true }
    strategy: { matrix: { py: ["3.10", "3.11"] }, max_parallel: 2 }
    runs_on: { labels: [gpu], cpus: 4, memory_gb: 16, gpus: shared, gpu_memory_gb: 20, gpu_model: "*H100*" }
    steps: ["pytest --py ${{ matrix.py }}"]
)";
  REQUIRE(Lint(yaml).empty());
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  REQUIRE(spec->on.push.has_value());
  CHECK(spec->on.push->branches ==
        std::vector<std::string>{"main", "dev", "staging", "release/**"});
  CHECK(spec->on.pull_request->types == std::vector<std::string>{"opened"});
  CHECK(spec->on.schedule == std::vector<ScheduleTrigger>{{"0 3 1 * *", "main"}});
  REQUIRE(spec->on.manual->inputs.size() == 1);
  CHECK(spec->on.manual->inputs[0].default_value == "a");
  const JobSpec& job = spec->jobs[0];
  CHECK(job.if_expr == "branch == 'main'");
  CHECK(job.retry.max == 2);
  CHECK(job.allow_failure);
  CHECK(job.priority == 5);
  CHECK(job.concurrency.cancel_in_progress);
  REQUIRE(job.matrix.has_value());
  CHECK(job.matrix->max_parallel == 2);
  CHECK(job.runs_on.gpu_shared);
  CHECK(job.runs_on.gpus == 1);
  CHECK(job.runs_on.cpus == 4);
  CHECK(job.runs_on.gpu_model == "*H100*");
}

TEST_CASE("spec v2: lint errors") {
  CHECK(Lint("jobs:\n  a:\n    if: \"startsWith(branch, 'x'\"\n    steps: [x]\n") ==
        Lines{"3:5: jobs.a.if: invalid expression: column 23: expected ')' after arguments to "
              "startsWith"});
  CHECK(Lint("jobs:\n  a:\n    retry: 11\n    steps: [x]\n") ==
        Lines{"3:12: jobs.a.retry: retry must be an integer from 0 to 10 or a mapping, got 11"});
  CHECK(Lint("jobs:\n  a:\n    priority: 101\n    steps: [x]\n") ==
        Lines{"3:15: jobs.a.priority: priority must be an integer from -100 to 100, got 101"});
  CHECK(Lint("on:\n  schedule: [{cron: \"0 24 * * *\"}]\njobs: {a: {steps: [x]}}\n") ==
        Lines{"2:21: on.schedule[0].cron: cron field 2 (hour): 24 is out of range 0-23"});
  CHECK(Lint("jobs:\n  a:\n    steps: [\"echo ${{ matrix.x }}\"]\n") ==
        Lines{"3:13: jobs.a.steps[0]: column 6: unknown placeholder 'matrix.x' (expected branch, "
              "tag, event, inputs.NAME, env.NAME)"});
}

// Found by tests/fuzz/pipeline_spec_fuzz: yaml-cpp 0.7's LoadAll looped forever (and grew
// without bound) on a ',' after a document's top-level node; a pushed file did that to the
// planner.
TEST_CASE("spec v2: a stray ',' is an error, not an endless loop") {
  CHECK(Lint(",") == Lines{"1:1: invalid YAML: unexpected ','"});
  CHECK(Lint(",]") == Lines{"1:1: invalid YAML: unexpected ','"});
  CHECK(Lint("- a\n,") == Lines{"2:1: invalid YAML: unexpected ','"});
  CHECK(Lint("jobs: {a: {steps: [x]}}\n---\n,\n") == Lines{"3:1: invalid YAML: unexpected ','"});
  CHECK(Lint(", nEeds: x }\njobs:\n  one: *a\n") == Lines{"1:1: invalid YAML: unexpected ','"});
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(",");
  CHECK(spec.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(spec.status().message() == ".assay.yml:1:1: invalid YAML: unexpected ','");
  // Still one document and several are told apart as before.
  CHECK(Lint("jobs: {a: {steps: [x]}}\n---\njobs: {}\n") ==
        Lines{"3:1: expected one YAML document, found 2"});
}

}  // namespace
}  // namespace assay

TEST_CASE("lfs: a boolean, true unless said", "[lfs]") {
  absl::StatusOr<assay::PipelineSpec> spec = assay::ParsePipelineSpec(
      "jobs:\n  a:\n    lfs: false\n    steps: [x]\n  b:\n    steps: [x]\n");
  REQUIRE(spec.ok());
  CHECK(!spec->jobs[0].lfs);
  CHECK(spec->jobs[1].lfs);
  CHECK(std::string(assay::ParsePipelineSpec("jobs:\n  a:\n    lfs: maybe\n    steps: [x]\n")
                        .status()
                        .message()) ==
        ".assay.yml:3:10: jobs.a.lfs: lfs must be a boolean, got a string");
}
