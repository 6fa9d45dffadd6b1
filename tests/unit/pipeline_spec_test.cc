#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/pipeline/graph.h"
#include "common/pipeline/spec.h"

namespace assay {
namespace {

// Every error of `yaml` as "LINE:COL: KEY: MESSAGE" (file name left out for brevity).
std::vector<std::string> Lint(const std::string& yaml) {
  std::vector<std::string> lines;
  for (const SpecError& error : LintPipelineSpec(yaml, "f.yml")) {
    std::string text = error.ToString();
    REQUIRE(text.rfind("f.yml:", 0) == 0);
    lines.push_back(text.substr(6));
  }
  return lines;
}

using Lines = std::vector<std::string>;

TEST_CASE("a valid file produces the exact model") {
  const std::string yaml = R"(# comment
jobs:
  lint:
    steps:
      - make lint
  build:
    needs: [lint]
    env: { A: "1", B: 2, C: true, D: "" }
    timeout: 1h30m
    steps:
      - name: compile
        run: make -j2
      - run: |
          echo one
          echo two
      - 'quoted: command'
  test.unit-1_x:
    needs: build
    steps: [{ run: ctest }]
)";
  REQUIRE(Lint(yaml).empty());
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());

  JobSpec lint;
  lint.name = "lint";
  lint.line = 3;
  lint.steps = {{"step 1", "make lint"}};
  JobSpec build;
  build.name = "build";
  build.line = 6;
  build.needs = {"lint"};
  build.env = {{"A", "1"}, {"B", "2"}, {"C", "true"}, {"D", ""}};
  build.timeout_s = 5400;
  build.steps = {
      {"compile", "make -j2"}, {"step 2", "echo one\necho two\n"}, {"step 3", "quoted: command"}};
  JobSpec test;
  test.name = "test.unit-1_x";
  test.line = 17;
  test.needs = {"build"};
  test.steps = {{"step 1", "ctest"}};
  REQUIRE(spec->jobs.size() == 3);
  CHECK(spec->jobs[0] == lint);
  CHECK(spec->jobs[1] == build);
  CHECK(spec->jobs[2] == test);
  CHECK(spec->jobs[0].timeout_s == 3600);
}

TEST_CASE("a 64-character job name is accepted") {
  const std::string name(64, 'a');
  CHECK(Lint("jobs:\n  " + name + ": {steps: [x]}\n").empty());
}

TEST_CASE("SpecError::ToString") {
  SpecError error{"p.yml", 3, 7, "jobs.a.timeout", "bad"};
  CHECK(error.ToString() == "p.yml:3:7: jobs.a.timeout: bad");
  error.key = "";
  CHECK(error.ToString() == "p.yml:3:7: bad");
}

TEST_CASE("YAML syntax errors carry the parser's position") {
  CHECK(Lint("jobs:\n  a:\n    steps: [x\n") ==
        Lines{"4:1: invalid YAML: end of sequence flow not found"});
  CHECK(Lint("jobs:\n  a: b: c\n") == Lines{"2:7: invalid YAML: illegal map value"});
}

TEST_CASE("empty files") {
  const Lines expected{"1:1: file is empty; expected a mapping with a 'jobs' key"};
  CHECK(Lint("") == expected);
  CHECK(Lint("\n# only a comment\n\n") == expected);
  CHECK(Lint("---\n") == expected);
}

TEST_CASE("the top level must be a mapping") {
  CHECK(Lint("- a\n- b\n") ==
        Lines{"1:1: top level must be a mapping with a 'jobs' key, got a list"});
  CHECK(Lint("hello\n") ==
        Lines{"1:1: top level must be a mapping with a 'jobs' key, got a string"});
}

TEST_CASE("only one YAML document") {
  CHECK(Lint("jobs: {a: {steps: [x]}}\n---\nfoo: 1\n") ==
        Lines{"3:1: expected one YAML document, found 2"});
}

TEST_CASE("unknown keys: a suggestion within edit distance 2, else the allowed keys") {
  CHECK(Lint("jobs:\n  a:\n    timout: 10m\n    steps: [x]\n") ==
        Lines{"3:5: jobs.a.timout: unknown key 'timout' (did you mean 'timeout'?)"});
  CHECK(Lint("jobs:\n  a:\n    container: x\n    steps: [x]\n") ==
        Lines{"3:5: jobs.a.container: unknown key 'container' (allowed keys: needs, env, timeout, "
              "steps, if, retry, allow_failure, concurrency, priority, strategy, runs_on, lfs, "
              "artifacts, secrets, environment, image, services, network, cache, sweep)"});
  CHECK(Lint("job:\n  a: {steps: [x]}\n") ==
        Lines{"1:1: job: unknown key 'job' (did you mean 'jobs'?)",
              "1:1: jobs: missing required key 'jobs'"});
  CHECK(Lint("jobs: {a: {steps: [x]}}\non: push\n") ==
        Lines{"2:5: on: on must be a mapping of events (push, pull_request, schedule, manual), got "
              "a string"});
  CHECK(Lint("jobs:\n  a:\n    steps:\n      - nme: x\n        run: y\n") ==
        Lines{"4:9: jobs.a.steps[0].nme: unknown key 'nme' (did you mean 'name'?)"});
}

TEST_CASE("an unknown key that is a near miss of a missing required key leads the errors") {
  // Without the lead, "missing required key 'steps'" (at the job's name, 2:3) came first and
  // the cause, two lines below, was one of "(and 2 more errors)".
  const std::string typo = "jobs:\n  build:\n    timeout: 10x\n    stepz:\n      - run: make\n";
  CHECK(Lint(typo) ==
        Lines{"4:5: jobs.build.stepz: unknown key 'stepz' (did you mean 'steps'?)",
              "2:3: jobs.build.steps: missing required key 'steps'",
              "3:14: jobs.build.timeout: invalid duration \"10x\": expected a number followed by "
              "s, m or h (e.g. 30s, 10m, 1h30m)"});
  absl::StatusOr<PipelineSpec> parsed = ParsePipelineSpec(typo);
  CHECK(parsed.status().message() ==
        ".assay.yml:4:5: jobs.build.stepz: unknown key 'stepz' (did you mean 'steps'?)\n"
        ".assay.yml:2:3: jobs.build.steps: missing required key 'steps'\n"
        ".assay.yml:3:14: jobs.build.timeout: invalid duration \"10x\": expected a number "
        "followed by s, m or h (e.g. 30s, 10m, 1h30m)");
  // A near miss of a key that is present, or of an optional key, keeps its place.
  CHECK(Lint("jobs:\n  a:\n    steps: []\n    timout: 1m\n") ==
        Lines{"3:12: jobs.a.steps: steps must not be empty",
              "4:5: jobs.a.timout: unknown key 'timout' (did you mean 'timeout'?)"});
  // Two jobs with the same typo: both lead, in file order.
  CHECK(Lint("jobs:\n  a:\n    step: [x]\n  b:\n    stepz: [y]\n") ==
        Lines{"3:5: jobs.a.step: unknown key 'step' (did you mean 'steps'?)",
              "5:5: jobs.b.stepz: unknown key 'stepz' (did you mean 'steps'?)",
              "2:3: jobs.a.steps: missing required key 'steps'",
              "4:3: jobs.b.steps: missing required key 'steps'"});
}

TEST_CASE("wrong types") {
  CHECK(Lint("jobs: [a]\n") ==
        Lines{"1:7: jobs: jobs must be a mapping of job names to jobs, got a list"});
  CHECK(Lint("jobs:\n") ==
        Lines{"1:1: jobs: jobs must be a mapping of job names to jobs, got null"});
  CHECK(Lint("jobs:\n  a: make\n") ==
        Lines{"2:6: jobs.a: job 'a' must be a mapping, got a string"});
  CHECK(Lint("jobs:\n  a:\n") == Lines{"2:3: jobs.a: job 'a' must be a mapping, got null"});
  CHECK(Lint("jobs:\n  a:\n    steps: make\n") ==
        Lines{"3:12: jobs.a.steps: steps must be a list, got a string"});
  CHECK(Lint("jobs:\n  a:\n    steps: 5\n") ==
        Lines{"3:12: jobs.a.steps: steps must be a list, got a number"});
  CHECK(Lint("jobs:\n  a:\n    steps: {run: x}\n") ==
        Lines{"3:12: jobs.a.steps: steps must be a list, got a mapping"});
  CHECK(Lint("jobs:\n  a:\n    steps:\n      - [make]\n") ==
        Lines{"4:9: jobs.a.steps[0]: a step must be a command string or a mapping with 'run', "
              "got a list"});
  CHECK(Lint("jobs:\n  a:\n    steps:\n      - run: [make]\n") ==
        Lines{"4:14: jobs.a.steps[0].run: run must be a string, got a list"});
  CHECK(Lint("jobs:\n  a:\n    steps:\n      - run: make\n        name: {x: 1}\n") ==
        Lines{"5:15: jobs.a.steps[0].name: name must be a string, got a mapping"});
  CHECK(Lint("jobs:\n  a:\n    needs: {b: 1}\n    steps: [x]\n") ==
        Lines{"3:12: jobs.a.needs: needs must be a list of job names or {job, artifacts} "
              "mappings, got a mapping"});
  CHECK(Lint("jobs:\n  a:\n    needs: [[b]]\n    steps: [x]\n") ==
        Lines{"3:13: jobs.a.needs[0]: needs entries must be job names or {job, artifacts} "
              "mappings, got a list"});
  CHECK(Lint("jobs:\n  a:\n    env: [A]\n    steps: [x]\n") ==
        Lines{"3:10: jobs.a.env: env must be a mapping of names to values, got a list"});
  CHECK(
      Lint("jobs:\n  a:\n    env: {A: {B: 1}}\n    steps: [x]\n") ==
      Lines{"3:14: jobs.a.env.A: env values must be strings, numbers or booleans, got a mapping"});
  CHECK(Lint("jobs:\n  a:\n    env:\n      A:\n    steps: [x]\n") ==
        Lines{"4:7: jobs.a.env.A: env values must be strings, numbers or booleans, got null"});
  CHECK(Lint("jobs:\n  a:\n    timeout: [1]\n    steps: [x]\n") ==
        Lines{"3:14: jobs.a.timeout: timeout must be a duration such as 30s, 10m or 1h30m, got "
              "a list"});
  CHECK(Lint("jobs:\n  ? [a]\n  : {steps: [x]}\n") ==
        Lines{"2:5: jobs: keys must be strings, got a list"});
}

TEST_CASE("missing and empty required values") {
  CHECK(Lint("jobs:\n  a:\n    steps:\n      - name: compile\n") ==
        Lines{"4:9: jobs.a.steps[0].run: missing required key 'run'"});
  CHECK(Lint("jobs:\n  build:\n    needs: []\n") ==
        Lines{"2:3: jobs.build.steps: missing required key 'steps'"});
  CHECK(Lint("jobs:\n  a:\n    steps: []\n") ==
        Lines{"3:12: jobs.a.steps: steps must not be empty"});
  CHECK(Lint("jobs: {}\n") == Lines{"1:7: jobs: jobs must not be empty"});
  CHECK(Lint("{}\n") == Lines{"1:1: jobs: missing required key 'jobs'"});
  CHECK(Lint("jobs:\n  a:\n    steps:\n      - run: ''\n") ==
        Lines{"4:14: jobs.a.steps[0].run: run must not be empty"});
  CHECK(Lint("jobs:\n  a:\n    steps:\n      - ''\n") ==
        Lines{"4:9: jobs.a.steps[0]: step must not be empty"});
  CHECK(Lint("jobs:\n  a:\n    steps:\n      - {run: x, name: ''}\n") ==
        Lines{"4:24: jobs.a.steps[0].name: name must not be empty"});
}

TEST_CASE("invalid job and environment variable names") {
  CHECK(
      Lint("jobs:\n  'a b': {steps: [x]}\n") ==
      Lines{"2:3: jobs.a b: invalid job name 'a b': use 1 to 64 letters, digits, '_', '.' or '-'"});
  const std::string long_name(65, 'x');
  CHECK(Lint("jobs:\n  " + long_name + ": {steps: [x]}\n") ==
        Lines{"2:3: jobs." + long_name + ": invalid job name '" + long_name +
              "': use 1 to 64 letters, digits, '_', '.' or '-'"});
  CHECK(Lint("jobs:\n  '': {steps: [x]}\n") ==
        Lines{"2:3: jobs.: invalid job name '': use 1 to 64 letters, digits, '_', '.' or '-'"});
  CHECK(Lint("jobs:\n  a:\n    env: {1A: x, B-C: y, _ok: z}\n    steps: [x]\n") ==
        Lines{"3:11: jobs.a.env.1A: invalid environment variable name '1A': use letters, digits "
              "and '_', not starting with a digit",
              "3:18: jobs.a.env.B-C: invalid environment variable name 'B-C': use letters, "
              "digits and '_', not starting with a digit"});
}

TEST_CASE("needs: unknown jobs, self, repeats") {
  CHECK(Lint("jobs:\n  test: {steps: [x]}\n  b:\n    needs: [tset]\n    steps: [x]\n") ==
        Lines{"4:13: jobs.b.needs[0]: needs unknown job 'tset' (did you mean 'test'?)"});
  CHECK(Lint("jobs:\n  a:\n    needs: deploy\n    steps: [x]\n") ==
        Lines{"3:12: jobs.a.needs: needs unknown job 'deploy'"});
  CHECK(Lint("jobs:\n  a:\n    needs: [a]\n    steps: [x]\n") ==
        Lines{"3:13: jobs.a.needs[0]: a job cannot need itself"});
  CHECK(Lint("jobs:\n  a: {steps: [x]}\n  b:\n    needs: [a, a]\n    steps: [x]\n") ==
        Lines{"4:16: jobs.b.needs[1]: job 'a' is listed more than once"});
}

TEST_CASE("dependency cycles are reported at the first job of the cycle") {
  const std::string yaml = R"(jobs:
  setup: {steps: [x]}
  a:
    needs: [setup, b]
    steps: [x]
  b:
    needs: [c]
    steps: [x]
  c:
    needs: [a]
    steps: [x]
)";
  CHECK(Lint(yaml) == Lines{"3:3: jobs.a: dependency cycle: a -> b -> c -> a"});
  // The cycle starts at the job earliest in the file, wherever the search began.
  CHECK(Lint("jobs:\n  x: {needs: [y], steps: [s]}\n  y: {needs: [x], steps: [s]}\n") ==
        Lines{"2:3: jobs.x: dependency cycle: x -> y -> x"});
  CHECK(Lint("jobs:\n  y: {needs: [x], steps: [s]}\n  x: {needs: [y], steps: [s]}\n") ==
        Lines{"2:3: jobs.y: dependency cycle: y -> x -> y"});
  // Two separate cycles give two errors.
  CHECK(Lint("jobs:\n  a: {needs: [b], steps: [s]}\n  b: {needs: [a], steps: [s]}\n"
             "  c: {needs: [d], steps: [s]}\n  d: {needs: [c], steps: [s]}\n") ==
        Lines{"2:3: jobs.a: dependency cycle: a -> b -> a",
              "4:3: jobs.c: dependency cycle: c -> d -> c"});
}

TEST_CASE("bad durations") {
  CHECK(Lint("jobs:\n  a:\n    timeout: 10x\n    steps: [x]\n") ==
        Lines{"3:14: jobs.a.timeout: invalid duration \"10x\": expected a number followed by s, "
              "m or h (e.g. 30s, 10m, 1h30m)"});
  CHECK(Lint("jobs:\n  a:\n    timeout: 0s\n    steps: [x]\n") ==
        Lines{"3:14: jobs.a.timeout: invalid duration \"0s\": must be greater than zero"});
  CHECK(Lint("jobs:\n  a:\n    timeout: 90\n    steps: [x]\n").empty());
}

TEST_CASE("duplicate keys are reported at the second occurrence") {
  CHECK(Lint("jobs:\n  a:\n    timeout: 1m\n    steps: [x]\n    timeout: 2m\n") ==
        Lines{"5:5: jobs.a.timeout: duplicate key 'timeout' (first defined at line 3)"});
  CHECK(Lint("jobs:\n  a: {steps: [x]}\n  a: {steps: [y]}\n") ==
        Lines{"3:3: jobs.a: duplicate key 'a' (first defined at line 2)"});
  CHECK(Lint("jobs:\n  a:\n    env: {A: 1, A: 2}\n    steps: [x]\n") ==
        Lines{"3:17: jobs.a.env.A: duplicate key 'A' (first defined at line 3)"});
  CHECK(Lint("jobs: {a: {steps: [x]}}\njobs: {b: {steps: [y]}}\n") ==
        Lines{"2:1: jobs: duplicate key 'jobs' (first defined at line 1)"});
}

TEST_CASE("all errors are reported, sorted by position") {
  const std::string yaml = R"(jobs:
  build:
    needs: [lint, tset]
    timout: 10m
    steps:
      - name: compile
  lint:
    steps: []
)";
  CHECK(Lint(yaml) ==
        Lines{"3:19: jobs.build.needs[1]: needs unknown job 'tset'",
              "4:5: jobs.build.timout: unknown key 'timout' (did you mean 'timeout'?)",
              "6:9: jobs.build.steps[0].run: missing required key 'run'",
              "8:12: jobs.lint.steps: steps must not be empty"});
  std::vector<SpecError> errors = LintPipelineSpec(yaml, "dir/p.yml");
  REQUIRE(errors.size() == 4);
  CHECK(errors[1] == SpecError{"dir/p.yml", 4, 5, "jobs.build.timout",
                               "unknown key 'timout' (did you mean 'timeout'?)"});
}

TEST_CASE("ParsePipelineSpec reports every error, one per line") {
  absl::StatusOr<PipelineSpec> one = ParsePipelineSpec("jobs:\n  a:\n    steps: []\n");
  REQUIRE(one.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(one.status().message() == ".assay.yml:3:12: jobs.a.steps: steps must not be empty");

  absl::StatusOr<PipelineSpec> three =
      ParsePipelineSpec("jobs:\n  a:\n    steps: []\n    x: 1\n    y: 2\n", "p.yml");
  REQUIRE(three.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(three.status().message() ==
        "p.yml:3:12: jobs.a.steps: steps must not be empty\n"
        "p.yml:4:5: jobs.a.x: unknown key 'x' (did you mean 'if'?)\n"
        "p.yml:5:5: jobs.a.y: unknown key 'y' (did you mean 'if'?)");

  absl::StatusOr<PipelineSpec> syntax = ParsePipelineSpec("jobs: [\n");
  CHECK(syntax.status().message() ==
        ".assay.yml:2:1: invalid YAML: end of sequence flow not found");
}

TEST_CASE("TopologicalOrder puts needs first and keeps file order otherwise") {
  const std::string yaml = R"(jobs:
  deploy: {needs: [test, package], steps: [x]}
  test: {needs: [build], steps: [x]}
  docs: {steps: [x]}
  package: {needs: [build], steps: [x]}
  build: {steps: [x]}
  lint: {steps: [x]}
)";
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  CHECK(TopologicalOrder(*spec) ==
        std::vector<std::string>{"docs", "build", "test", "package", "deploy", "lint"});

  PipelineSpec independent;
  for (const char* name : {"c", "a", "b"}) independent.jobs.push_back(JobSpec{.name = name});
  CHECK(TopologicalOrder(independent) == std::vector<std::string>{"c", "a", "b"});
  CHECK(TopologicalOrder(PipelineSpec{}).empty());
}

TEST_CASE("TopologicalOrder tolerates specs that were not validated") {
  PipelineSpec spec;
  spec.jobs.push_back(JobSpec{.name = "a", .needs = {"b"}});
  spec.jobs.push_back(JobSpec{.name = "b", .needs = {"a"}});
  spec.jobs.push_back(JobSpec{.name = "c", .needs = {"missing"}});
  spec.jobs.push_back(JobSpec{.name = "d", .needs = {"a"}});
  CHECK(TopologicalOrder(spec) == std::vector<std::string>{"c", "a", "b", "d"});
}

TEST_CASE("FindCycles returns the shortest cycle through the lowest node") {
  // 0 -> 1 -> 2 -> 0 and 0 -> 3 -> 0; the shortest through 0 is 0 -> 3 -> 0.
  CHECK(FindCycles({{1, 3}, {2}, {0}, {0}}) == std::vector<std::vector<int>>{{0, 3}});
  CHECK(FindCycles({{1}, {2}, {}}).empty());
  CHECK(FindCycles({{0}}).empty());  // Self-edges are ignored.
}

}  // namespace
}  // namespace assay
