// `sweep:` (issue 10, docs/train.md "Sweeps"): parsing, expansion and planning.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "common/pipeline/plan.h"
#include "common/pipeline/spec.h"
#include "common/pipeline/sweep.h"

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

// A job `tune` with one train step and the given sweep body (indented under `sweep:`).
std::string Tune(const std::string& sweep_body) {
  return "jobs:\n  tune:\n    sweep:\n" + sweep_body +
         "    steps:\n      - name: fit\n        train:\n          command: python3 t.py\n"
         "          model: m\n          params: {lr: 0.1, epochs: 3}\n";
}

std::vector<std::string> Texts(const SweepTrial& t) {
  std::vector<std::string> out;
  for (const auto& [name, value] : t.values) out.push_back(name + "=" + value.text);
  return out;
}

TEST_CASE("sweep: a grid is the product of lists and ranges, first parameter slowest") {
  const std::string yaml = Tune(R"(      parameters:
        layers: [2, 4]
        dropout: {min: 0.0, max: 0.2, step: 0.1}
        batch: {min: 8, max: 24, step: 8}
      metric: {name: val_loss}
)");
  REQUIRE(Lint(yaml) == Lines{});
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  const SweepSpec& s = *spec->jobs[0].sweep;
  CHECK(s.method == "grid");
  CHECK(s.metric == "val_loss");
  CHECK(s.goal == "minimize");
  CHECK(!s.early_stop.has_value());
  absl::StatusOr<std::vector<SweepTrial>> trials = ExpandSweep(s);
  REQUIRE(trials.ok());
  REQUIRE(trials->size() == 18);
  CHECK(Texts((*trials)[0]) == Lines{"layers=2", "dropout=0", "batch=8"});
  CHECK(Texts((*trials)[1]) == Lines{"layers=2", "dropout=0", "batch=16"});
  CHECK(Texts((*trials)[3]) == Lines{"layers=2", "dropout=0.1", "batch=8"});
  CHECK(Texts((*trials)[17]) == Lines{"layers=4", "dropout=0.2", "batch=24"});
  CHECK((*trials)[17].number == 18);
  // Integers stay integers in JSON; 0.1 * 2 is rounded to 0.2, not 0.20000000000000001.
  CHECK((*trials)[17].values[2].second.json == "24");
  CHECK((*trials)[17].values[1].second.json == "0.2");

  SweepSpec first4 = s;
  first4.trials = 4;
  CHECK(ExpandSweep(first4)->size() == 4);
  first4.trials = 100;  // more than the grid has: all of it
  CHECK(ExpandSweep(first4)->size() == 18);
}

TEST_CASE("sweep: random draws are the documented function of the seed") {
  SweepSpec s;
  s.method = "random";
  s.trials = 50;
  s.seed = 42;
  SweepParameter opt{.name = "opt", .kind = SweepParameter::Kind::kValues};
  opt.values = {SweepValueOf("adam"), SweepValueOf("sgd"), SweepValueOf("lion")};
  SweepParameter lr{
      .name = "lr", .kind = SweepParameter::Kind::kLogUniform, .min = 1e-4, .max = 1e-1};
  SweepParameter warm{
      .name = "warm", .kind = SweepParameter::Kind::kIntUniform, .min = -3, .max = 3};
  SweepParameter mom{.name = "mom", .kind = SweepParameter::Kind::kUniform, .min = 0.5, .max = 1};
  s.parameters = {opt, lr, warm, mom};
  absl::StatusOr<std::vector<SweepTrial>> trials = ExpandSweep(s);
  REQUIRE(trials.ok());
  REQUIRE(trials->size() == 50);
  CHECK(*ExpandSweep(s) == *trials);  // the same spec, the same trials

  std::mt19937_64 rng(42);
  auto unit = [](uint64_t d) { return static_cast<double>(d >> 11) * 0x1.0p-53; };
  auto six = [](double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return std::strtod(buf, nullptr);
  };
  std::vector<std::string> opts = {"adam", "sgd", "lion"};
  bool all_warm[7] = {};
  for (const SweepTrial& t : *trials) {
    INFO("trial " << t.number);
    REQUIRE(t.values.size() == 4);
    const uint64_t d_opt = rng(), d_lr = rng(), d_warm = rng(), d_mom = rng();
    CHECK(t.values[0].second.text == opts[d_opt % 3]);
    CHECK(t.values[0].second.json == "\"" + opts[d_opt % 3] + "\"");
    const double want_lr =
        six(std::exp(std::log(1e-4) + unit(d_lr) * (std::log(1e-1) - std::log(1e-4))));
    CHECK(std::strtod(t.values[1].second.text.c_str(), nullptr) == want_lr);
    CHECK(want_lr >= 1e-4);
    CHECK(want_lr <= 1e-1);
    const int64_t want_warm = -3 + static_cast<int64_t>(d_warm % 7);
    CHECK(t.values[2].second.json == std::to_string(want_warm));
    all_warm[want_warm + 3] = true;
    const double want_mom = six(0.5 + unit(d_mom) * 0.5);
    CHECK(std::strtod(t.values[3].second.json.c_str(), nullptr) == want_mom);
  }
  for (bool seen : all_warm) CHECK(seen);  // both ends of int_uniform are drawn

  SweepSpec other = s;
  other.seed = 43;
  CHECK(*ExpandSweep(other) != *trials);
}

TEST_CASE("sweep: a distribution gives a grid count points, log-spaced for log_uniform") {
  SweepSpec s;
  s.parameters = {
      {.name = "lr",
       .kind = SweepParameter::Kind::kLogUniform,
       .min = 1e-4,
       .max = 1e-1,
       .count = 4},
      {.name = "w", .kind = SweepParameter::Kind::kUniform, .min = 0, .max = 1, .count = 3}};
  absl::StatusOr<std::vector<SweepTrial>> trials = ExpandSweep(s);
  REQUIRE(trials.ok());
  REQUIRE(trials->size() == 12);
  std::vector<std::string> lrs, ws;
  for (size_t i = 0; i < 12; i += 3) lrs.push_back((*trials)[i].values[0].second.text);
  for (size_t i = 0; i < 3; ++i) ws.push_back((*trials)[i].values[1].second.text);
  CHECK(lrs == Lines{"1e-04", "0.001", "0.01", "0.1"});  // shortest exact forms
  CHECK(ws == Lines{"0", "0.5", "1"});

  s.parameters[0].count = 0;
  CHECK(ExpandSweep(s).status().message() ==
        "parameter 'lr' is a distribution without points: give it `count` or use method: random");
}

TEST_CASE("sweep: values keep their YAML types, a quoted number stays a string") {
  const std::string yaml = Tune(R"(      parameters:
        v: [1, 2.50, 1e-3, true, adam, "7", 'x"y', 1_000]
      metric: {name: loss}
)");
  REQUIRE(Lint(yaml) == Lines{});
  absl::StatusOr<std::vector<SweepTrial>> trials =
      ExpandSweep(*ParsePipelineSpec(yaml)->jobs[0].sweep);
  REQUIRE(trials.ok());
  std::vector<std::string> json;
  for (const SweepTrial& t : *trials) json.push_back(t.values[0].second.json);
  CHECK(json == Lines{"1", "2.5", "0.001", "true", "\"adam\"", "\"7\"", R"("x\"y")", "\"1_000\""});
}

TEST_CASE("sweep: every mistake names its line and key") {
  CHECK(Lint(Tune("      parameters: {lr: [0.1]}\n")) ==
        Lines{"3:5: jobs.tune.sweep.metric: missing required key 'metric'"});
  CHECK(Lint(Tune("      parameters: {lr: {distribution: normal, min: 0, max: 1}}\n"
                  "      metric: {name: l}\n")) ==
        Lines{"4:39: jobs.tune.sweep.parameters.lr.distribution: distribution must be uniform, "
              "log_uniform or int_uniform, got 'normal'"});
  CHECK(Lint(Tune("      parameters:\n        lr: {min: 1, max: 1}\n      metric: {name: l}\n")) ==
        Lines{"5:13: jobs.tune.sweep.parameters.lr: min must be less than max"});
  CHECK(Lint(Tune("      parameters:\n        lr: {distribution: log_uniform, min: 0, max: 1}\n"
                  "      metric: {name: l}\n      method: random\n      trials: 3\n")) ==
        Lines{"5:13: jobs.tune.sweep.parameters.lr.min: log_uniform needs min greater than 0"});
  CHECK(Lint(Tune("      parameters:\n        lr: {min: 0, max: 1}\n      metric: {name: l}\n")) ==
        Lines{"4:7: jobs.tune.sweep: parameter 'lr' is a distribution without points: give it "
              "`count` or use method: random"});
  CHECK(Lint(Tune("      parameters: {lr: {min: 0, max: 1}}\n      metric: {name: l}\n"
                  "      method: random\n")) ==
        Lines{"4:7: jobs.tune.sweep.trials: method random needs trials"});
  CHECK(Lint(Tune("      parameters:\n        a: {min: 1, max: 17, step: 1}\n"
                  "        b: {min: 1, max: 17, step: 1}\n      metric: {name: l}\n")) ==
        Lines{"4:7: jobs.tune.sweep: sweep expands to 289 trials, more than the limit of 256"});
  CHECK(Lint(Tune("      parameters:\n        a: {min: 0, max: 1000, step: 1}\n"
                  "      metric: {name: l}\n")) ==
        Lines{"5:12: jobs.tune.sweep.parameters.a.step: the range has 1001 points; at most 256"});
  CHECK(Lint(Tune("      parameters: {9lr: [1]}\n      metric: {name: l}\n")) ==
        Lines{"4:20: jobs.tune.sweep.parameters.9lr: invalid parameter name '9lr': use a letter "
              "or '_' then up to 63 letters, digits or '_'"});
  CHECK(Lint(Tune("      parameters: {lr: []}\n      metric: {name: l, goal: lowest}\n"
                  "      early_stop: mean\n")) ==
        Lines{"4:24: jobs.tune.sweep.parameters.lr: a parameter list must have 1 to 256 values, "
              "got 0",
              "5:31: jobs.tune.sweep.metric.goal: goal must be minimize or maximize, got 'lowest'",
              "6:19: jobs.tune.sweep.early_stop: early_stop must be median or a mapping with "
              "rule, got 'mean'"});
  CHECK(Lint(Tune("      parameters: {lr: [1]}\n      metric: {name: l}\n      trials: 0\n"
                  "      max_parallel: 1.5\n      stop_early: median\n")) ==
        Lines{"6:15: jobs.tune.sweep.trials: trials must be an integer from 1 to 256, got 0",
              "7:21: jobs.tune.sweep.max_parallel: max_parallel must be an integer, got 1.5",
              "8:7: jobs.tune.sweep.stop_early: unknown key 'stop_early' (allowed keys: "
              "parameters, method, trials, seed, max_parallel, metric, early_stop)"});
  // One error each, also for numbers past int64 and past a double.
  CHECK(Lint(Tune("      parameters: {lr: [1]}\n      metric: {name: l}\n"
                  "      seed: 99999999999999999999\n      trials: 1e999\n")) ==
        Lines{"6:13: jobs.tune.sweep.seed: seed must be an integer from 0 to 9007199254740992, "
              "got 99999999999999999999",
              "7:15: jobs.tune.sweep.trials: trials must be an integer from 1 to 256, got 1e999"});
}

TEST_CASE("sweep: the job needs exactly one train step and no matrix") {
  CHECK(Lint("jobs:\n  tune:\n    sweep: {parameters: {lr: [1]}, metric: {name: l}}\n"
             "    steps: [{run: echo}]\n") ==
        Lines{"3:5: jobs.tune.sweep: a sweep needs exactly one train step in its job (the "
              "sweep's metric is one of that step's series), found 0"});
  CHECK(Lint(Tune("      parameters: {lr: [1]}\n      metric: {name: l}\n") +
             "    strategy: {matrix: {os: [a]}}\n") ==
        Lines{"3:5: jobs.tune.sweep: a job has strategy.matrix or sweep, not both (a sweep's "
              "trials are its matrix)"});
  CHECK(Lint(Tune("      parameters: {lr: [1]}\n      metric: {name: l}\n") +
             "    env: {A: '${{ matrix.lr }}', B: '${{ matrix.wd }}'}\n") ==
        Lines{"12:37: jobs.tune.env.B: unknown sweep parameter 'wd'"});
}

TEST_CASE("sweep: planning makes one job per trial with its values in the train params") {
  const std::string yaml = Tune(R"(      parameters:
        lr: [0.01, 0.001]
        layers: [2, 4]
      metric: {name: val_loss, goal: maximize}
      max_parallel: 2
      early_stop: {rule: median, min_trials: 2, warmup_steps: 10}
)") + "    env: {LR: 'lr=${{ matrix.lr }}'}\n  after:\n    needs: [tune]\n    steps: [{run: "
      "echo}]\n";
  REQUIRE(Lint(yaml) == Lines{});
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  absl::StatusOr<std::vector<PlannedJob>> plan = PlanJobs(*spec, ExprContext{});
  REQUIRE(plan.ok());
  REQUIRE(plan->size() == 5);
  const PlannedJob& t3 = (*plan)[2];
  CHECK(t3.name == "tune (trial 3)");
  CHECK(t3.base_name == "tune");
  CHECK(t3.max_parallel == 2);
  CHECK(t3.matrix == std::map<std::string, std::string>{{"layers", "2"}, {"lr", "0.001"}});
  CHECK(t3.env == std::vector<std::pair<std::string, std::string>>{{"LR", "lr=0.001"}});
  REQUIRE(t3.sweep.has_value());
  CHECK(t3.sweep->number == 3);
  CHECK(t3.sweep->trials == 4);
  CHECK(t3.sweep->metric == "val_loss");
  CHECK(t3.sweep->goal == "maximize");
  CHECK(t3.sweep->method == "grid");
  CHECK(t3.sweep->early_stop == SweepEarlyStop{"median", 2, 10});
  // The trial's values over the step's own params of the same name.
  CHECK(t3.steps[0].train->params_json == R"({"lr":1E-3,"epochs":3,"layers":2})");
  CHECK((*plan)[4].needs ==
        Lines{"tune (trial 1)", "tune (trial 2)", "tune (trial 3)", "tune (trial 4)"});
  CHECK(!(*plan)[4].sweep.has_value());
}

TEST_CASE("sweep: a trial whose params would pass 64 KiB is refused when planned, naming it") {
  const std::string big(70'000, 'x');
  const std::string yaml =
      Tune("      parameters:\n        tag: [a, " + big + "]\n" + "      metric: {name: l}\n");
  REQUIRE(Lint(yaml) == Lines{});
  absl::StatusOr<std::vector<PlannedJob>> plan = PlanJobs(*ParsePipelineSpec(yaml), ExprContext{});
  REQUIRE_FALSE(plan.ok());
  CHECK(plan.status().message() ==
        "jobs.tune.sweep: trial 2: field 'params' is 70031 bytes as JSON; at most 65536");
}

TEST_CASE("sweep: Median of odd and even counts") {
  CHECK(Median({3, 1, 2}) == 2);
  CHECK(Median({4, 1, 3, 2}) == 2.5);
  CHECK(Median({7}) == 7);
}

}  // namespace
}  // namespace assay
