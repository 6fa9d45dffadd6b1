// Scoring, summaries, gate verdicts and the log lines of an eval step (agent/eval_step.h),
// apart from any model.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "agent/eval_step.h"

namespace assay {
namespace {

using Scores = std::vector<std::pair<std::string, double>>;

evals::Example Ex(std::string id, std::string expected) {
  evals::Example e;
  e.id = std::move(id);
  e.input = "q";
  e.expected = std::move(expected);
  return e;
}

TEST_CASE("eval scoring: each metric of one output, and whether it passed", "[eval]") {
  evals::EvalSpec spec;
  spec.metrics = {"exact_match", "contains", "regex", "json_valid", "edit_similarity", "rouge_l"};
  spec.regex = "^[0-9]+$";
  spec.normalize.lowercase = true;
  bool passed = false;
  CHECK(ScoreOutput(spec, Ex("a", "42"), "42", &passed) == Scores{{"exact_match", 1},
                                                                  {"contains", 1},
                                                                  {"regex", 1},
                                                                  {"json_valid", 1},
                                                                  {"edit_similarity", 1},
                                                                  {"rouge_l", 1}});
  CHECK(passed);
  const Scores s = ScoreOutput(spec, Ex("a", "42"), "The answer is 42", &passed);
  REQUIRE(s.size() == 6);
  CHECK(s[0] == std::pair<std::string, double>{"exact_match", 0});
  CHECK(s[1] == std::pair<std::string, double>{"contains", 1});
  CHECK(s[2] == std::pair<std::string, double>{"regex", 0});
  CHECK(s[3] == std::pair<std::string, double>{"json_valid", 0});
  CHECK(s[4].second == Approx(1.0 - 14.0 / 16.0));  // 14 edits over 16 code points
  CHECK(s[5].second == Approx(0.4));                // P 1/4, R 1
  CHECK(!passed);
  // Normalisation: case and surrounding space.
  CHECK(ScoreOutput(spec, Ex("a", "Paris"), "  paris\n", &passed)[0].second == 1);
}

TEST_CASE("eval scoring: assertions are promptfoo's, their values rendered per example", "[eval]") {
  evals::EvalSpec spec;
  spec.metrics = {"assertions"};
  evals::Example e = Ex("a", "blue");
  e.asserts = {{"icontains", false, "{{ expected }}", std::nullopt, 1},
               {"contains", true, "error", std::nullopt, 1}};
  bool passed = false;
  CHECK(ScoreOutput(spec, e, "The sky is BLUE", &passed) == Scores{{"assertions", 1}});
  CHECK(passed);
  CHECK(ScoreOutput(spec, e, "error: blue", &passed) == Scores{{"assertions", 0}});
  CHECK(!passed);
}

EvalExampleOutcome Outcome(std::string id, double exact, double latency, int answered = 1) {
  EvalExampleOutcome o;
  o.example_id = std::move(id);
  o.scores = {{"exact_match", exact}};
  o.latency_ms = latency;
  o.answered = answered;
  o.input_tokens = 100;
  o.output_tokens = 50;
  o.passed = exact == 1;
  o.passes = o.passed ? 1 : 0;
  return o;
}

TEST_CASE("eval summary: means with intervals, percentiles, error rate and cost", "[eval]") {
  evals::EvalSpec spec;
  spec.metrics = {"exact_match", "latency_p50_ms", "error_rate", "cost_usd"};
  spec.price_input_per_mtok = 1;
  spec.price_output_per_mtok = 2;
  EvalReport r;
  r.name = "qa";
  r.examples = {Outcome("a", 1, 10), Outcome("b", 0, 30), Outcome("c", 1, 20),
                Outcome("d", 0, 0, 0)};
  Summarize(spec, r);
  REQUIRE(r.metrics.size() == 4);
  CHECK(r.metrics[0].name == "exact_match");
  CHECK(r.metrics[0].value == 0.5);
  CHECK(r.metrics[0].n == 4);
  CHECK(r.metrics[0].lo < 0.5);
  CHECK(r.metrics[0].hi > 0.5);
  CHECK(r.metrics[1].name == "latency_p50_ms");
  CHECK(r.metrics[1].value == 20);  // the three answered requests
  CHECK(r.metrics[1].n == 3);
  CHECK(r.metrics[2].name == "error_rate");
  CHECK(r.metrics[2].value == 0.25);
  CHECK(r.metrics[3].name == "cost_usd");
  CHECK(r.metrics[3].value == Approx(4 * (100 * 1 + 50 * 2) / 1e6));
}

TEST_CASE("eval gates: bounds, a missing baseline, a metric not computed, and the log", "[eval]") {
  evals::EvalSpec spec;
  spec.metrics = {"exact_match"};
  spec.gates = {{"exact_match", 0.5, std::nullopt, 0.1, "main", 0.95},
                {"bleu", 10, std::nullopt, std::nullopt, "", 0.95}};
  EvalReport r;
  r.name = "qa";
  r.examples = {Outcome("a", 1, 10), Outcome("b", 1, 10), Outcome("c", 1, 10), Outcome("d", 0, 10)};
  Summarize(spec, r);
  Judge(spec, {{"main", std::nullopt}}, r);
  REQUIRE(r.verdicts.size() == 2);
  CHECK(r.verdicts[0].passed);
  CHECK(r.verdicts[0].explanation ==
        "exact_match 0.7500 >= 0.5000; no baseline: no successful run of eval 'qa' on main yet, "
        "so max_drop is not judged");
  CHECK(!r.verdicts[1].passed);
  CHECK(r.verdicts[1].explanation == "gate on bleu: the metric was not computed");
  CHECK(!r.passed);
  const std::string log = FormatEvalReport(r);
  const std::string first = "assay: eval qa: 4 examples, 0 without answers\n";
  CHECK(log.substr(0, first.size()) == first);
  CHECK(log.find("assay: eval qa: gate bleu FAILED: gate on bleu: the metric was not computed\n") !=
        std::string::npos);
  const std::string last = "assay: eval qa: FAILED (1 of 2 gates)\n";
  CHECK(log.substr(log.size() - last.size()) == last);
}

TEST_CASE("eval gates: a real drop against a baseline fails, noise and a gain do not", "[eval]") {
  evals::EvalSpec spec;
  spec.metrics = {"exact_match"};
  spec.gates = {{"exact_match", std::nullopt, std::nullopt, 0.1, "main", 0.95}};
  EvalBaseline base;
  base.run_id = 7;
  base.commit_sha = "0123456789abcdef0123";
  for (int i = 0; i < 40; ++i) {
    base.examples.push_back({"e" + std::to_string(i), {{"exact_match", 1}}});
  }
  auto judge = [&](int wrong) {
    EvalReport r;
    r.name = "qa";
    for (int i = 0; i < 40; ++i) {
      r.examples.push_back(Outcome("e" + std::to_string(i), i < wrong ? 0 : 1, 5));
    }
    Summarize(spec, r);
    Judge(spec, {{"main", base}}, r);
    REQUIRE(r.verdicts.size() == 1);
    CHECK(r.baseline_run_id == 7);
    INFO(r.verdicts[0].explanation);
    CHECK(r.verdicts[0].explanation.rfind("exact_match against main (run 7, commit 0123456789ab): ",
                                          0) == 0);
    return r.passed;
  };
  CHECK(!judge(20));  // half wrong: a drop of 0.5
  CHECK(judge(2));    // a drop of 0.05, within max_drop
  CHECK(judge(0));
}

}  // namespace
}  // namespace assay
