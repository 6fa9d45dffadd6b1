// The `eval:` step of `.assay.yml` (issue 10, docs/evals.md).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/evals/eval_spec.h"
#include "common/pipeline/spec.h"

namespace assay {
namespace {

using Lines = std::vector<std::string>;

// Each problem as "LINE:COL: KEY: MESSAGE" (the file name cut off).
Lines Lint(const std::string& yaml) {
  Lines lines;
  for (const SpecError& error : LintPipelineSpec(yaml, "f.yml")) {
    lines.push_back(error.ToString().substr(6));
  }
  return lines;
}

std::string Job(const std::string& eval_body) {
  return "jobs:\n  qa:\n    steps:\n      - name: gate\n        eval:\n" + eval_body;
}

TEST_CASE("spec eval: a full eval step parses to the exact model, and its JSON round-trips") {
  const std::string yaml = R"(jobs:
  qa:
    steps:
      - name: gate
        eval:
          dataset: evals/qa.jsonl
          prompt: prompts/qa.txt
          model: { url: "http://127.0.0.1:8000/v1/chat/completions", name: tiny }
          concurrency: 8
          timeout: 30s
          retries: 2
          repeat: 3
          metrics: [exact_match, rouge_l, latency_p95_ms, regex]
          regex: "^[A-Z]"
          normalize: { lowercase: true, collapse_whitespace: true }
          price: { input_per_mtok: 0.5, output_per_mtok: 1.5 }
          gate:
            rouge_l: { min: 0.4, max_drop: 0.02, vs: main }
            latency_p95_ms: { max: 800 }
      - eval:
          model: "python3 serve.py"
          tests:
            - vars: { input: "2+2?" }
              assert:
                - { type: equals, value: "4" }
                - { type: not-contains, value: error, weight: 2 }
)";
  REQUIRE(Lint(yaml) == Lines{});
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  const StepSpec& step = spec->jobs[0].steps[0];
  CHECK(step.run.empty());
  REQUIRE(step.eval.has_value());
  const evals::EvalSpec& e = *step.eval;
  CHECK(e.name == "gate");  // the step's name
  CHECK(e.dataset == "evals/qa.jsonl");
  CHECK(e.prompt == "prompts/qa.txt");
  CHECK(e.model == evals::EvalModelSpec{"", "http://127.0.0.1:8000/v1/chat/completions", "chat",
                                        "tiny", "", ""});
  CHECK(e.concurrency == 8);
  CHECK(e.timeout_ms == 30'000);
  CHECK(e.retries == 2);
  CHECK(e.repeat == 3);
  CHECK(e.metrics == std::vector<std::string>{"exact_match", "rouge_l", "latency_p95_ms", "regex"});
  CHECK(e.regex == "^[A-Z]");
  CHECK(e.normalize == evals::EvalNormalize{true, true, true, false});
  CHECK(e.price_input_per_mtok == 0.5);
  CHECK(e.price_output_per_mtok == 1.5);
  REQUIRE(e.gates.size() == 2);
  CHECK(e.gates[0] == evals::EvalGate{"rouge_l", 0.4, std::nullopt, 0.02, "main", 0.95});
  CHECK(e.gates[1] == evals::EvalGate{"latency_p95_ms", std::nullopt, 800, std::nullopt, "", 0.95});

  const evals::EvalSpec& t = *spec->jobs[0].steps[1].eval;
  CHECK(t.name == "step 2");
  CHECK(t.model.command == "python3 serve.py");
  REQUIRE(t.tests.size() == 1);
  CHECK(t.tests[0].id == "test-1");
  CHECK(t.tests[0].input == "2+2?");
  CHECK(t.tests[0].vars == std::vector<std::pair<std::string, std::string>>{{"input", "2+2?"}});
  REQUIRE(t.tests[0].asserts.size() == 2);
  CHECK(t.tests[0].asserts[0] == evals::Assertion{"equals", false, "4", std::nullopt, 1});
  CHECK(t.tests[0].asserts[1] == evals::Assertion{"contains", true, "error", std::nullopt, 2});
  CHECK(t.metrics == std::vector<std::string>{"assertions"});  // implied by the asserts

  for (const evals::EvalSpec* s : {&e, &t}) {
    absl::StatusOr<evals::EvalSpec> back = evals::EvalSpecFromJson(evals::EvalSpecToJson(*s));
    REQUIRE(back.ok());
    CHECK(*back == *s);
  }
}

TEST_CASE("spec eval: each mistake is named with its line and key") {
  CHECK(Lint(Job("          dataset: d.jsonl\n")) ==
        Lines{"5:9: jobs.qa.steps[0].eval.model: missing required key 'model'"});
  CHECK(Lint(Job("          dataset: d.jsonl\n          model: m\n"
                 "          metrics: [rouge]\n")) ==
        Lines{"8:21: jobs.qa.steps[0].eval.metrics[0]: unknown metric 'rouge' (did you mean "
              "'rouge_l'?)"});
  CHECK(Lint(Job("          dataset: d.jsonl\n          model: m\n          metrics: [bleu]\n"
                 "          gate: { chrf: { min: 50 } }\n")) ==
        Lines{"5:9: jobs.qa.steps[0].eval.gate.chrf: gate on metric 'chrf', which this eval does "
              "not compute: list it in metrics:"});
  CHECK(Lint(Job("          model: m\n")) ==
        Lines{"5:9: jobs.qa.steps[0].eval: eval needs exactly one of dataset (a JSONL file) and "
              "tests"});
  CHECK(Lint(Job("          dataset: ../secret.jsonl\n          model: m\n")) ==
        Lines{"6:20: jobs.qa.steps[0].eval.dataset: dataset '../secret.jsonl' escapes the "
              "workspace ('..' is not allowed)"});
  CHECK(Lint(Job("          dataset: d.jsonl\n          model: { url: \"http://h/v1/x\" }\n")) ==
        Lines{"7:18: jobs.qa.steps[0].eval.model.api: url 'http://h/v1/x' ends in neither "
              "/chat/completions nor /completions: say which with api: chat or api: completions"});
  CHECK(Lint(Job(
            "          dataset: d.jsonl\n          model: { command: a, url: \"http://h\" }\n")) ==
        Lines{"7:18: jobs.qa.steps[0].eval.model: model needs exactly one of command and url"});
  CHECK(Lint(Job("          dataset: d.jsonl\n          model: m\n          concurrency: 0\n")) ==
        Lines{"8:24: jobs.qa.steps[0].eval.concurrency: concurrency must be an integer from 1 to "
              "256, got 0"});
  CHECK(Lint(Job("          dataset: d.jsonl\n          model: m\n          metrics: [bleu]\n"
                 "          gate: { bleu: { max_drop: 1 } }\n")) ==
        Lines{"9:25: jobs.qa.steps[0].eval.gate.bleu: max_drop and vs go together: vs names the "
              "baseline (a branch) that max_drop compares with"});
  CHECK(Lint(Job("          model: m\n          tests:\n            - assert: [{ type: similar, "
                 "value: x }]\n")) ==
        Lines{"8:32: jobs.qa.steps[0].eval.tests[0].assert[0].type: unknown assertion type "
              "'similar' (known: equals, contains, icontains, regex, starts-with, is-json, each "
              "also as not-TYPE)"});
  CHECK(Lint(Job("          model: m\n          tests:\n            - assert: [{ type: regex, "
                 "value: \"(a\" }]\n")) ==
        Lines{"8:24: jobs.qa.steps[0].eval.tests[0].assert[0]: regex: key \"value\": regex "
              "\"(a\": missing ): (a"});
  CHECK(
      Lint("jobs:\n  qa:\n    steps:\n      - run: x\n        eval: { dataset: d, model: m }\n") ==
      Lines{"4:9: jobs.qa.steps[0].eval: a step has one of run:, build_image:, eval:, train:, "
            "promote: and deploy:, not two"});
}

TEST_CASE("spec eval: too many inline tests and a deep or wrong-typed value are refused") {
  std::string many = "          model: m\n          tests:\n";
  for (size_t i = 0; i <= evals::kMaxInlineTests; ++i) many += "            - vars: { a: b }\n";
  const Lines lines = Lint(Job(many));
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] ==
        "8:13: jobs.qa.steps[0].eval.tests: tests must be a list of 1 to 1000 tests, "
        "got a list of 1001");
  CHECK(Lint(Job("          dataset: d.jsonl\n          model: [a]\n")) ==
        Lines{"7:18: jobs.qa.steps[0].eval.model: model must be a command string or a mapping "
              "with command or url, got a list"});
  CHECK(Lint(Job("          dataset: d.jsonl\n          model: m\n"
                 "          normalize: { lowercase: { x: 1 } }\n")) ==
        Lines{"8:35: jobs.qa.steps[0].eval.normalize.lowercase: lowercase must be a boolean, got "
              "a mapping"});
}

TEST_CASE("spec eval: a malformed or out-of-range JSON spec is refused by the agent's reader") {
  CHECK(!evals::EvalSpecFromJson("{").ok());
  CHECK(!evals::EvalSpecFromJson(R"({"model":{"command":"x"},"concurrency":"8"})").ok());
  CHECK(!evals::EvalSpecFromJson(R"({"model":{"command":"x"},"concurrency":0})").ok());
  CHECK(!evals::EvalSpecFromJson(R"({"model":{}})").ok());
  absl::StatusOr<evals::EvalSpec> ok = evals::EvalSpecFromJson(R"({"model":{"command":"x"}})");
  REQUIRE(ok.ok());
  CHECK(ok->model.command == "x");
  CHECK(ok->concurrency == 4);
}

}  // namespace
}  // namespace assay

namespace assay {
namespace {

TEST_CASE("spec eval: ingest takes junit or lm_eval results, gates on their metrics only") {
  const std::string head = "jobs:\n  qa:\n    steps:\n      - eval:\n          name: unit\n";
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(
      head +
      "          ingest: { junit: 'reports/*.xml' }\n"
      "          gate: { failures: { max: 0 }, pass_rate: { max_drop: 0.05, vs: main } }\n");
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  const evals::EvalSpec& e = *spec->jobs[0].steps[0].eval;
  CHECK(e.ingest_format == "junit");
  CHECK(e.ingest_path == "reports/*.xml");
  CHECK(e.gates.size() == 2);
  CHECK(evals::EvalSpecFromJson(evals::EvalSpecToJson(e)).value() == e);

  spec = ParsePipelineSpec(head +
                           "          ingest: { lm_eval: 'out/results_*.json' }\n"
                           "          gate: { 'arc_easy/acc': { min: 0.6 }, "
                           "'gsm8k/exact_match,strict-match': { min: 0.2 } }\n");
  REQUIRE(spec.ok());
  CHECK(spec->jobs[0].steps[0].eval->ingest_format == "lm_eval");

  CHECK(Lint(head + "          ingest: { junit: r.xml }\n          gate: { acc: { min: 1 } }\n") ==
        Lines{"7:19: jobs.qa.steps[0].eval.gate.acc: unknown metric 'acc' (known: exact_match, "
              "contains, regex, json_valid, bleu, chrf, rouge_l, edit_similarity, assertions, "
              "judge, error_rate, latency_mean_ms, latency_p50_ms, latency_p95_ms, "
              "latency_p99_ms, input_tokens, output_tokens, cost_usd)"});
  CHECK(Lint(head +
             "          ingest: { junit: r.xml }\n          gate: { 'x/acc': { min: 1 } }\n") ==
        Lines{"4:9: jobs.qa.steps[0].eval.gate.x/acc: gate on metric 'x/acc': a JUnit ingest has "
              "tests, passed, failures, errors, skipped, pass_rate and time_s"});
  CHECK(Lint(head +
             "          ingest: { lm_eval: r.json }\n          gate: { failures: { max: 0 } }\n") ==
        Lines{"4:9: jobs.qa.steps[0].eval.gate.failures: gate on metric 'failures': an lm_eval "
              "ingest's metrics are TASK/METRIC (e.g. arc_easy/acc, or "
              "gsm8k/exact_match,strict-match)"});
  CHECK(Lint(head + "          ingest: { junit: r.xml }\n          model: x\n") ==
        Lines{"4:9: jobs.qa.steps[0].eval.model: an eval with ingest takes no model: it reads the "
              "results a test suite wrote"});
  CHECK(Lint(head + "          ingest: { xunit: r.xml }\n") ==
        Lines{"6:21: jobs.qa.steps[0].eval.ingest.xunit: unknown ingest format 'xunit' (junit or "
              "lm_eval)"});
  CHECK(Lint(head + "          ingest: { junit: ../r.xml }\n") ==
        Lines{"6:28: jobs.qa.steps[0].eval.ingest.junit: junit '../r.xml' escapes the workspace "
              "('..' is not allowed)"});
  CHECK(Lint(head + "          ingest: r.xml\n").size() == 1);
  // Without ingest, a model is still required; a TASK/METRIC gate is a metric it cannot compute.
  CHECK(Lint(head + "          dataset: d.jsonl\n          metrics: [exact_match]\n          "
                    "gate: { 'x/acc': { min: 1 } }\n") ==
        Lines{"4:9: jobs.qa.steps[0].eval.model: missing required key 'model'"});
}

TEST_CASE("judge: the judge key of an eval, checked by the linter") {
  auto lint = [](const std::string& body) {
    std::vector<std::string> lines;
    for (const SpecError& e :
         LintPipelineSpec("jobs:\n  qa:\n    steps:\n      - eval:\n          dataset: d.jsonl\n"
                          "          model: m\n" +
                              body,
                          "f.yml")) {
      lines.push_back(e.ToString().substr(6));
    }
    return lines;
  };
  CHECK(lint("          metrics: [judge]\n          judge: { url: 'http://j/v1/chat/completions', "
             "rubric: 'Is it right?', threshold: 0.7 }\n")
            .empty());
  CHECK(lint("          metrics: [judge]\n") ==
        std::vector<std::string>{"4:9: jobs.qa.steps[0].eval.judge: the judge metric needs its "
                                 "endpoint and rubric in judge:"});
  CHECK(
      lint("          metrics: [exact_match]\n          judge: { url: 'http://j', rubric: r }\n") ==
      std::vector<std::string>{"4:9: jobs.qa.steps[0].eval.judge: judge: is the judge "
                               "metric's endpoint: list judge in metrics: too"});
  CHECK(lint("          metrics: [judge]\n          judge: { url: 'ftp://j', rubric: r }\n") ==
        std::vector<std::string>{"8:25: jobs.qa.steps[0].eval.judge.url: url 'ftp://j' must "
                                 "start with http:// or https://"});
  CHECK(lint("          metrics: [judge]\n          judge: { url: 'http://j', rubric: r, "
             "rubric_file: f.txt }\n") ==
        std::vector<std::string>{"8:11: jobs.qa.steps[0].eval.judge: judge needs exactly one of "
                                 "rubric and rubric_file"});
  CHECK(lint("          metrics: [judge]\n          judge: { url: 'http://j', rubric: r, "
             "threshold: 2 }\n")
            .size() == 1);
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(
      "jobs:\n  qa:\n    steps:\n      - eval:\n          dataset: d.jsonl\n          model: m\n"
      "          metrics: [judge]\n          judge: { url: 'http://j', model: g, rubric_file: "
      "r.txt, api_key_secret: KEY }\n");
  REQUIRE(spec.ok());
  const evals::EvalSpec& e = *spec->jobs[0].steps[0].eval;
  CHECK(*e.judge == evals::EvalJudgeSpec{"http://j", "g", "", "r.txt", "KEY", 0.5});
  CHECK(evals::EvalSpecFromJson(evals::EvalSpecToJson(e)).value() == e);
}

}  // namespace
}  // namespace assay
