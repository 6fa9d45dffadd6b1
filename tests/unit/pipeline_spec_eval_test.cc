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
      Lines{"4:9: jobs.qa.steps[0].eval: a step has one of run:, build_image: and eval:, not two"});
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
