#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/pipeline/plan.h"
#include "common/pipeline/spec.h"

namespace assay {
namespace {

using Strings = std::vector<std::string>;

PipelineSpec Spec(const std::string& yaml) {
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  return *spec;
}

PipelineSpec WithOn(const std::string& on) {
  return Spec("on:\n" + on + "jobs: {a: {steps: [x]}}\n");
}

TriggerEvent Branch(std::string branch, Strings changed = {}) {
  return {"push", std::move(branch), "", std::move(changed)};
}

TriggerEvent Tag(std::string tag) { return {"tag", "", std::move(tag), {}}; }

// "" when `ev` triggers, else the reason.
std::string Why(const PipelineSpec& spec, const TriggerEvent& ev) {
  std::string why = "unset";
  bool ok = Triggers(spec, ev, &why);
  if (ok) {
    CHECK(why == "unset");  // Left alone when it triggers.
    return "";
  }
  return why;
}

TEST_CASE("plan: branch filters with globs and negation") {
  PipelineSpec spec = WithOn(
      "  push: { branches: [main, dev, staging, \"feature/*\", \"release/**\", "
      "\"!release/old/**\"] }\n");
  CHECK(Why(spec, Branch("main")) == "");
  CHECK(Why(spec, Branch("dev")) == "");
  CHECK(Why(spec, Branch("staging")) == "");
  CHECK(Why(spec, Branch("feature/x")) == "");
  CHECK(Why(spec, Branch("feature/x/y")) == "on.push.branches does not match branch 'feature/x/y'");
  CHECK(Why(spec, Branch("release/1.0/rc")) == "");
  CHECK(Why(spec, Branch("release/old/1")) ==
        "on.push.branches does not match branch 'release/old/1'");
  CHECK(Why(spec, Branch("mainline")) == "on.push.branches does not match branch 'mainline'");
  CHECK(Why(spec, Tag("v1")) == "on.push has branches but no tags, so tag pushes do not trigger");
  CHECK_FALSE(Triggers(spec, Branch("x"), nullptr));  // why_not may be null.

  PipelineSpec only_negations = WithOn("  push: { branches: [\"!dev\"] }\n");
  CHECK(Why(only_negations, Branch("main")) == "");
  CHECK(Why(only_negations, Branch("dev")) == "on.push.branches does not match branch 'dev'");
}

TEST_CASE("plan: tag filters") {
  PipelineSpec spec = WithOn("  push: { tags: [\"v*\", \"!v0.*\"] }\n");
  CHECK(Why(spec, Tag("v1")) == "");
  CHECK(Why(spec, Tag("v0.9")) == "on.push.tags does not match tag 'v0.9'");
  CHECK(Why(spec, Tag("release-1")) == "on.push.tags does not match tag 'release-1'");
  CHECK(Why(spec, Branch("main")) ==
        "on.push has tags but no branches, so branch pushes do not trigger");

  PipelineSpec both = WithOn("  push: { branches: [main], tags: [\"v*\"] }\n");
  CHECK(Why(both, Tag("v1")) == "");
  CHECK(Why(both, Tag("x")) == "on.push.tags does not match tag 'x'");
  CHECK(Why(both, Branch("main")) == "");
  CHECK(Why(both, Branch("dev")) == "on.push.branches does not match branch 'dev'");

  // Neither filter (with another trigger present, so not the default): both kinds run.
  PipelineSpec neither = WithOn("  push: { paths: [\"**\"] }\n");
  CHECK(Why(neither, Tag("anything")) == "");
  CHECK(Why(neither, Branch("anything")) == "");
}

TEST_CASE("plan: paths and paths_ignore") {
  PipelineSpec paths = WithOn("  push: { paths: [\"src/**\", \"!src/docs/**\"] }\n");
  CHECK(Why(paths, Branch("main", {"README.md", "src/a/b.cc"})) == "");
  CHECK(Why(paths, Branch("main", {"README.md", "src/docs/x.md", "docs/y.md"})) ==
        "on.push.paths matches none of the 3 changed paths");
  CHECK(Why(paths, Branch("main", {"README.md"})) ==
        "on.push.paths matches none of the 1 changed path");
  CHECK(Why(paths, Branch("main")) == "");  // Unknown changed paths do not exclude.
  CHECK(Why(paths, Tag("v1")) == "");       // Path filters are not evaluated for tags.

  PipelineSpec ignore = WithOn("  push: { paths_ignore: [\"docs/**\", \"**.md\"] }\n");
  CHECK(Why(ignore, Branch("main", {"docs/a/b.txt", "src/README.md"})) ==
        "on.push.paths_ignore covers all 2 changed paths");
  CHECK(Why(ignore, Branch("main", {"docs/x"})) ==
        "on.push.paths_ignore covers the 1 changed path");
  CHECK(Why(ignore, Branch("main", {"docs/a/b.txt", "src/main.cc"})) == "");
  CHECK(Why(ignore, Branch("main")) == "");

  PipelineSpec both =
      WithOn("  push: { branches: [main], paths: [\"src/**\"], paths_ignore: [\"**.md\"] }\n");
  CHECK(Why(both, Branch("dev", {"src/a.cc"})) == "on.push.branches does not match branch 'dev'");
  CHECK(Why(both, Branch("main", {"src/a.md"})) ==
        "on.push.paths_ignore covers the 1 changed path");
  CHECK(Why(both, Branch("main", {"src/a.md", "src/a.cc"})) == "");
}

TEST_CASE("plan: the default trigger and a pipeline without push") {
  PipelineSpec def = Spec("jobs: {a: {steps: [x]}}\n");
  CHECK(Why(def, Branch("main")) == "");
  CHECK(Why(def, Branch("any/thing", {"x"})) == "");
  CHECK(Why(def, Tag("v1")) == "the default trigger (no 'on:' key) runs on branch pushes only");

  PipelineSpec manual = WithOn("  manual:\n");
  CHECK(Why(manual, Branch("main")) == "the pipeline has no on.push trigger");
  CHECK(Why(manual, Tag("v1")) == "the pipeline has no on.push trigger");

  CHECK(Why(def, TriggerEvent{"pull_request", "main", "", {}}) ==
        "unknown event kind 'pull_request' (expected push or tag)");
}

constexpr char kMatrixYaml[] = R"(jobs:
  test:
    if: "branch == 'main'"
    priority: 7
    timeout: 5m
    env: { PY: "${{ matrix.py }}", WHERE: "${{ branch }}", PLAIN: "1" }
    strategy:
      matrix:
        py: ["3.10", "3.11"]
        os: [linux, mac]
        exclude: [{ py: "3.10", os: mac }]
        include: [{ py: "3.12", os: linux }]
    steps:
      - name: run
        run: "pytest --py ${{ matrix.py }} on ${{matrix.os}}"
  report:
    needs: test
    priority: -3
    steps: ["echo ${{ branch }} ${{ inputs.model }}"]
)";

TEST_CASE("plan: matrix expansion, substitution, needs and if") {
  PipelineSpec spec = Spec(kMatrixYaml);
  ExprContext ctx;
  ctx.branch = "main";
  ctx.event = "push";
  ctx.inputs["model"] = "m1";
  absl::StatusOr<std::vector<PlannedJob>> plan = PlanJobs(spec, ctx);
  REQUIRE(plan.ok());
  REQUIRE(plan->size() == 5);
  Strings names;
  for (const PlannedJob& j : *plan) names.push_back(j.name);
  CHECK(names == Strings{"test (3.10, linux)", "test (3.11, linux)", "test (3.11, mac)",
                         "test (3.12, linux)", "report"});

  const PlannedJob& t = (*plan)[2];
  CHECK(t.matrix == std::map<std::string, std::string>{{"os", "mac"}, {"py", "3.11"}});
  CHECK(t.env == std::vector<std::pair<std::string, std::string>>{
                     {"PY", "3.11"}, {"WHERE", "main"}, {"PLAIN", "1"}});
  CHECK(t.steps == std::vector<StepSpec>{{"run", "pytest --py 3.11 on mac"}});
  CHECK(t.needs.empty());
  CHECK(t.timeout_s == 300);
  CHECK(t.priority == 7);
  CHECK_FALSE(t.skip);
  CHECK(t.skip_reason == "");
  CHECK((*plan)[3].steps[0].run == "pytest --py 3.12 on linux");

  const PlannedJob& r = (*plan)[4];
  CHECK(r.needs == Strings{"test (3.10, linux)", "test (3.11, linux)", "test (3.11, mac)",
                           "test (3.12, linux)"});
  CHECK(r.steps == std::vector<StepSpec>{{"step 1", "echo main m1"}});
  CHECK(r.matrix.empty());
  CHECK(r.priority == -3);
  CHECK(r.timeout_s == kDefaultJobTimeoutSeconds);
  CHECK_FALSE(r.skip);
}

TEST_CASE("plan: a false if skips every expansion, dependents keep their needs") {
  PipelineSpec spec = Spec(kMatrixYaml);
  ExprContext ctx;
  ctx.branch = "dev";
  absl::StatusOr<std::vector<PlannedJob>> plan = PlanJobs(spec, ctx);
  REQUIRE(plan.ok());
  REQUIRE(plan->size() == 5);
  for (size_t i = 0; i < 4; ++i) {
    CHECK((*plan)[i].skip);
    CHECK((*plan)[i].skip_reason == "if: branch == 'main' is false");
  }
  CHECK((*plan)[0].env[1].second == "dev");
  CHECK_FALSE((*plan)[4].skip);
  CHECK((*plan)[4].needs.size() == 4);
  CHECK((*plan)[4].steps[0].run == "echo dev ");  // Missing input reads "".
}

TEST_CASE("plan: errors") {
  PipelineSpec spec = Spec("jobs: {a: {steps: [x]}}\n");
  spec.jobs[0].matrix = MatrixSpec{};
  spec.jobs[0].matrix->axes = {{"a", Strings(20, "x")}, {"b", Strings(20, "y")}};
  absl::StatusOr<std::vector<PlannedJob>> plan = PlanJobs(spec, {});
  CHECK(plan.status() ==
        absl::InvalidArgumentError(
            "jobs.a.strategy.matrix: matrix expands to 400 jobs, more than the limit of 256"));

  spec = Spec("jobs: {a: {steps: [x]}}\n");
  spec.jobs[0].steps[0].run = "echo ${{ matrix.py }}";
  CHECK(PlanJobs(spec, {}).status() ==
        absl::InvalidArgumentError(
            "jobs.a.steps[0].run: column 6: unknown placeholder 'matrix.py' (expected branch, "
            "tag, event, inputs.NAME, env.NAME)"));

  spec = Spec("jobs: {a: {strategy: {matrix: {py: ['3']}}, steps: [x]}}\n");
  spec.jobs[0].env = {{"X", "${{ matrix.os }}"}};
  CHECK(PlanJobs(spec, {}).status() ==
        absl::InvalidArgumentError("jobs.a.env.X: unknown matrix key 'os'"));

  spec = Spec("jobs: {a: {steps: [x]}}\n");
  spec.jobs[0].if_expr = "branch ==";
  CHECK(PlanJobs(spec, {}).status() ==
        absl::InvalidArgumentError(
            "jobs.a.if: invalid expression: column 10: expected a value, got end of expression"));

  spec = Spec("jobs: {a: {steps: [x]}}\n");
  spec.jobs[0].needs = {"zz"};
  CHECK(PlanJobs(spec, {}).status() ==
        absl::InvalidArgumentError("jobs.a.needs: unknown job 'zz'"));
}

}  // namespace
}  // namespace assay

namespace assay {
namespace {

std::string PrWhy(const PipelineSpec& spec, const std::string& base, const std::string& type) {
  std::string why = "unset";
  if (TriggersPullRequest(spec, base, type, &why)) {
    CHECK(why == "unset");
    return "";
  }
  return why;
}

TEST_CASE("pull_request triggers: base-branch filters and types", "[triggers]") {
  const PipelineSpec none = Spec("jobs: {a: {steps: [x]}}\n");
  CHECK(PrWhy(none, "main", "opened") == "the pipeline has no on.pull_request trigger");

  const PipelineSpec any = Spec("on:\n  pull_request:\njobs: {a: {steps: [x]}}\n");
  CHECK(PrWhy(any, "main", "opened") == "");
  CHECK(PrWhy(any, "anything", "synchronize") == "");
  CHECK(PrWhy(any, "main", "reopened") == "");
  CHECK(PrWhy(any, "main", "closed") == "on.pull_request.types does not include 'closed'");

  const PipelineSpec filtered = Spec(
      "on:\n  pull_request: {branches: [main, 'release/**', '!release/old'], types: [opened]}\n"
      "jobs: {a: {steps: [x]}}\n");
  CHECK(PrWhy(filtered, "main", "opened") == "");
  CHECK(PrWhy(filtered, "release/1.2", "opened") == "");
  CHECK(PrWhy(filtered, "dev", "opened") ==
        "on.pull_request.branches does not match base branch 'dev'");
  CHECK(PrWhy(filtered, "release/old", "opened") ==
        "on.pull_request.branches does not match base branch 'release/old'");
  CHECK(PrWhy(filtered, "main", "synchronize") ==
        "on.pull_request.types does not include 'synchronize'");
  CHECK(TriggersPullRequest(filtered, "dev", "opened", nullptr) == false);
}

constexpr char kManual[] = R"(on:
  manual:
    inputs:
      model: {type: choice, options: [small, large], default: small}
      steps: {type: number, required: true}
      dry: {type: boolean, default: false}
      note:
      tag: {required: true, default: v0}
jobs: {a: {steps: [x]}}
)";

TEST_CASE("manual inputs: defaults, types and exact errors", "[triggers]") {
  const ManualTrigger manual = *Spec(kManual).on.manual;
  using Map = std::map<std::string, std::string>;
  auto ok = ResolveManualInputs(manual, {{"steps", "12"}});
  REQUIRE(ok.ok());
  CHECK(*ok ==
        Map{{"model", "small"}, {"steps", "12"}, {"dry", "false"}, {"note", ""}, {"tag", "v0"}});
  ok = ResolveManualInputs(manual, {{"steps", "-1.5"},
                                    {"model", "large"},
                                    {"dry", "true"},
                                    {"note", "hi there"},
                                    {"tag", "v2"}});
  REQUIRE(ok.ok());
  CHECK(*ok == Map{{"model", "large"},
                   {"steps", "-1.5"},
                   {"dry", "true"},
                   {"note", "hi there"},
                   {"tag", "v2"}});

  auto Error = [&](const Map& given) {
    auto r = ResolveManualInputs(manual, given);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(r.status().message());
  };
  CHECK(Error({{"steps", "1"}, {"colour", "red"}}) ==
        "input 'colour' is not defined in on.manual.inputs");
  CHECK(Error({}) == "input 'steps' is required");
  CHECK(Error({{"steps", "ten"}}) == "input 'steps' must be a number, got 'ten'");
  CHECK(Error({{"steps", "1"}, {"dry", "yes"}}) ==
        "input 'dry' must be a boolean (true or false), got 'yes'");
  CHECK(Error({{"steps", "1"}, {"model", "huge"}}) ==
        "input 'model' must be one of small, large, got 'huge'");
}

TEST_CASE("manual inputs: environment variable names", "[triggers]") {
  CHECK(InputEnvName("model") == "ASSAY_INPUT_MODEL");
  CHECK(InputEnvName("model-size") == "ASSAY_INPUT_MODEL_SIZE");
  CHECK(InputEnvName("a.b_C9") == "ASSAY_INPUT_A_B_C9");
}

}  // namespace
}  // namespace assay
