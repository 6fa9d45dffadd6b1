// `artifacts:` and `needs: [{job, artifacts: true}]` (issue 9): the parsed model, the plan,
// and every lint error with its exact line, column and key.

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/pipeline/plan.h"
#include "common/pipeline/spec.h"

namespace assay {
namespace {

using Lines = std::vector<std::string>;

Lines Lint(const std::string& yaml) {
  Lines lines;
  for (const SpecError& error : LintPipelineSpec(yaml, "f.yml")) {
    lines.push_back(error.ToString().substr(6));
  }
  return lines;
}

TEST_CASE("artifacts: every key parses to the exact model") {
  const std::string yaml = R"(jobs:
  build:
    artifacts:
      paths: ["out/**", "!out/**/*.tmp", dist/app]
      expire_in: 2h30m
      when: always
      if_no_files: error
    steps: [make]
  lint:
    steps: [make lint]
  test:
    needs: [lint, {job: build, artifacts: true}]
    steps: [make test]
  docs:
    needs: [{job: build}, {job: test, artifacts: false}]
    steps: [make docs]
)";
  REQUIRE(Lint(yaml).empty());
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  const JobSpec& build = spec->jobs[0];
  REQUIRE(build.artifacts.has_value());
  CHECK(*build.artifacts ==
        ArtifactsSpec{{"out/**", "!out/**/*.tmp", "dist/app"}, 9000, "always", "error"});
  CHECK(build.artifact_needs.empty());
  const JobSpec& test = spec->jobs[2];
  CHECK(test.needs == std::vector<std::string>{"lint", "build"});
  CHECK(test.artifact_needs == std::vector<std::string>{"build"});
  CHECK_FALSE(test.artifacts.has_value());
  const JobSpec& docs = spec->jobs[3];
  CHECK(docs.needs == std::vector<std::string>{"build", "test"});
  CHECK(docs.artifact_needs.empty());
}

TEST_CASE("artifacts: defaults are 30 days, on_success and warn, and one glob may be a string") {
  absl::StatusOr<PipelineSpec> spec =
      ParsePipelineSpec("jobs:\n  a:\n    artifacts: {paths: out/model.bin}\n    steps: [x]\n");
  REQUIRE(spec.ok());
  REQUIRE(spec->jobs[0].artifacts.has_value());
  CHECK(*spec->jobs[0].artifacts ==
        ArtifactsSpec{{"out/model.bin"}, 30 * 24 * 3600, "on_success", "warn"});
}

TEST_CASE("artifacts: each bad value is an error naming file, line, column and key") {
  auto job = [](const std::string& artifacts) {
    return "jobs:\n  a:\n    steps: [x]\n    artifacts: " + artifacts + "\n";
  };
  CHECK(Lint(job("[out]")) ==
        Lines{"4:16: jobs.a.artifacts: artifacts must be a mapping with 'paths', got a list"});
  CHECK(Lint(job("{when: always}")) ==
        Lines{"4:5: jobs.a.artifacts.paths: missing required key 'paths'"});
  CHECK(Lint(job("{paths: []}")) == Lines{"4:24: jobs.a.artifacts.paths: paths must not be empty"});
  CHECK(Lint(job("{paths: {a: 1}}")) ==
        Lines{"4:24: jobs.a.artifacts.paths: paths must be a list of globs, got a mapping"});
  CHECK(Lint(job("{paths: [[a]]}")) ==
        Lines{"4:25: jobs.a.artifacts.paths[0]: paths entries must be glob strings, got a list"});
  CHECK(Lint(job("{paths: [\"/etc/passwd\"]}")) ==
        Lines{"4:25: jobs.a.artifacts.paths[0]: pattern '/etc/passwd' must be relative to the "
              "workspace"});
  CHECK(Lint(job("{paths: [\"../x\", \"a/../../b\", \"a/..x\"]}")) ==
        Lines{"4:25: jobs.a.artifacts.paths[0]: pattern '../x' must not leave the workspace ('..')",
              "4:33: jobs.a.artifacts.paths[1]: pattern 'a/../../b' must not leave the workspace "
              "('..')"});
  CHECK(Lint(job("{paths: [\"out/[a\"]}")) ==
        Lines{"4:25: jobs.a.artifacts.paths[0]: unterminated '[' at column 5 in pattern 'out/[a'"});
  CHECK(Lint(job("{paths: [\"\"]}")) ==
        Lines{"4:25: jobs.a.artifacts.paths[0]: pattern must not be empty"});
  CHECK(Lint(job("{paths: [\"!out/x\"]}")) ==
        Lines{"4:24: jobs.a.artifacts.paths: paths must have a pattern that is not an exclusion "
              "('!'): it would match nothing"});
  CHECK(Lint(job("{paths: [x], when: never}")) ==
        Lines{"4:35: jobs.a.artifacts.when: when must be one of on_success, always, got 'never'"});
  CHECK(Lint(job("{paths: [x], if_no_files: ignore}")) ==
        Lines{"4:42: jobs.a.artifacts.if_no_files: if_no_files must be one of warn, error, got "
              "'ignore'"});
  CHECK(Lint(job("{paths: [x], expire_in: 7d}")) ==
        Lines{"4:40: jobs.a.artifacts.expire_in: invalid duration \"7d\": expected a number "
              "followed by s, m or h (e.g. 30s, 10m, 1h30m)"});
  CHECK(Lint(job("{paths: [x], expire: 1h}")) ==
        Lines{"4:29: jobs.a.artifacts.expire: unknown key 'expire' (allowed keys: paths, "
              "expire_in, when, if_no_files)"});
}

TEST_CASE("artifacts: more than 100 paths are refused") {
  std::string paths;
  for (int i = 0; i < 101; ++i) paths += (i ? ", " : "") + std::string("p") + std::to_string(i);
  CHECK(Lint("jobs:\n  a:\n    artifacts: {paths: [" + paths + "]}\n    steps: [x]\n") ==
        Lines{"3:24: jobs.a.artifacts.paths: paths has 101 entries, more than the limit of 100"});
}

TEST_CASE("needs mappings: each bad entry is an error naming its key") {
  const std::string head =
      "jobs:\n  b:\n    artifacts: {paths: [x]}\n    steps: [x]\n  c:\n"
      "    steps: [x]\n  a:\n    steps: [x]\n    needs: ";
  CHECK(Lint(head + "[{artifacts: true}]\n") ==
        Lines{"9:13: jobs.a.needs[0].job: missing required key 'job'"});
  CHECK(Lint(head + "[{job: b, artifacts: yes}]\n") ==
        Lines{"9:33: jobs.a.needs[0].artifacts: artifacts must be a boolean, got a string"});
  CHECK(Lint(head + "[{job: b, artefacts: true}]\n") ==
        Lines{"9:22: jobs.a.needs[0].artefacts: unknown key 'artefacts' (did you mean "
              "'artifacts'?)"});
  CHECK(Lint(head + "[{job: [b]}]\n") ==
        Lines{"9:19: jobs.a.needs[0].job: job must be a job name, got a list"});
  CHECK(Lint(head + "[b, {job: b, artifacts: true}]\n") ==
        Lines{"9:16: jobs.a.needs[1]: job 'b' is listed more than once"});
  CHECK(Lint(head + "[{job: x, artifacts: true}]\n") ==
        Lines{"9:13: jobs.a.needs[0]: needs unknown job 'x' (did you mean 'b'?)"});
  CHECK(Lint(head + "[{job: a, artifacts: true}]\n") ==
        Lines{"9:13: jobs.a.needs[0]: a job cannot need itself"});
  CHECK(Lint(head + "[{job: c, artifacts: true}]\n") ==
        Lines{"9:13: jobs.a.needs[0].artifacts: job 'c' has no 'artifacts:' key, so there is "
              "nothing to download"});
}

TEST_CASE("plan: artifact needs on a matrix job name every expansion, in needs order") {
  const std::string yaml = R"(jobs:
  build:
    strategy: {matrix: {py: ["3.10", "3.11"]}}
    artifacts: {paths: ["out/${{ matrix.py }}"], when: always}
    steps: [make]
  lint:
    artifacts: {paths: [lint.txt]}
    steps: [make lint]
  test:
    needs: [{job: lint, artifacts: true}, {job: build, artifacts: true}]
    steps: [make test]
)";
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  absl::StatusOr<std::vector<PlannedJob>> plan = PlanJobs(*spec, ExprContext{});
  REQUIRE(plan.ok());
  REQUIRE(plan->size() == 4);
  const PlannedJob& test = (*plan)[3];
  CHECK(test.name == "test");
  CHECK(test.artifact_needs == std::vector<std::string>{"lint", "build (3.10)", "build (3.11)"});
  CHECK_FALSE(test.artifacts.has_value());
  REQUIRE((*plan)[0].artifacts.has_value());
  // Placeholders in paths are substituted per expansion.
  CHECK((*plan)[0].artifacts->paths == std::vector<std::string>{"out/3.10"});
  CHECK((*plan)[1].artifacts->paths == std::vector<std::string>{"out/3.11"});
  CHECK((*plan)[0].artifacts->when == "always");
  CHECK((*plan)[0].artifact_needs.empty());
}

}  // namespace
}  // namespace assay
