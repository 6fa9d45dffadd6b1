// The `train:` step of `.assay.yml` (issue 10, docs/train.md).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/evals/train_spec.h"
#include "common/pipeline/expr.h"
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

std::string Job(const std::string& train_body) {
  return "jobs:\n  ft:\n    steps:\n      - name: fit\n        train:\n" + train_body;
}

TEST_CASE(
    "spec train: a full train step parses exactly, adds its model dir to the artifacts, "
    "and its JSON round-trips") {
  const std::string yaml = R"(jobs:
  ft:
    artifacts: { paths: [logs/] }
    steps:
      - name: fit
        train:
          command: python3 train.py --fast
          model: charlm
          params: { lr: 0.003, steps: 300, layers: [2, 4], opt: { name: adam, nesterov: false }, tag: "7", none: null }
          model_dir: out/model/
          datasets: [data/corpus.txt, data/big.csv.dvc]
          parent: production
          checkpoint_interval: 5s
)";
  REQUIRE(Lint(yaml) == Lines{});
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  const StepSpec& step = spec->jobs[0].steps[0];
  CHECK(step.run.empty());
  REQUIRE(step.train.has_value());
  const evals::TrainSpec& t = *step.train;
  CHECK(t.name == "fit");
  CHECK(t.command == "python3 train.py --fast");
  CHECK(t.model == "charlm");
  CHECK(t.params_json ==
        R"({"lr":3E-3,"steps":300,"layers":[2,4],"opt":{"name":"adam","nesterov":false},)"
        R"("tag":"7","none":null})");
  CHECK(t.model_dir == "out/model");
  CHECK(t.datasets == std::vector<std::string>{"data/corpus.txt", "data/big.csv.dvc"});
  CHECK(t.register_model);
  CHECK(t.parent == "production");
  CHECK(t.checkpoint_interval_ms == 5000);
  REQUIRE(spec->jobs[0].artifacts.has_value());
  CHECK(spec->jobs[0].artifacts->paths == std::vector<std::string>{"logs/", "out/model/**"});

  absl::StatusOr<evals::TrainSpec> back = evals::TrainSpecFromJson(evals::TrainSpecToJson(t));
  REQUIRE(back.ok());
  CHECK(*back == t);
}

TEST_CASE("spec train: defaults, and register false adds no artifacts") {
  absl::StatusOr<PipelineSpec> spec =
      ParsePipelineSpec(Job("          command: ./train.sh\n          register: false\n"));
  REQUIRE(spec.ok());
  const evals::TrainSpec& t = *spec->jobs[0].steps[0].train;
  CHECK(t.model.empty());
  CHECK(t.model_dir == "model");
  CHECK(t.params_json == "{}");
  CHECK(t.checkpoint_interval_ms == evals::kDefaultCheckpointIntervalMs);
  CHECK_FALSE(spec->jobs[0].artifacts.has_value());

  spec = ParsePipelineSpec(Job("          command: ./train.sh\n          model: m\n"));
  REQUIRE(spec.ok());
  REQUIRE(spec->jobs[0].artifacts.has_value());
  CHECK(spec->jobs[0].artifacts->paths == std::vector<std::string>{"model/**"});
  CHECK(spec->jobs[0].artifacts->when == "on_success");
}

TEST_CASE("spec train: every bad key is an error naming its line and key") {
  CHECK(Lint(Job("          model: m\n")) ==
        Lines{"5:9: jobs.ft.steps[0].train.command: missing required key 'command'"});
  CHECK(Lint(Job("          command: x\n")) ==
        Lines{"5:9: jobs.ft.steps[0].train.model: train needs model: the registered model's "
              "name (or register: false)"});
  CHECK(Lint(Job("          command: x\n          model: 'bad name'\n")) ==
        Lines{"7:18: jobs.ft.steps[0].train.model: model name 'bad name' must be 1 to 128 "
              "characters of A-Z a-z 0-9 _ . -"});
  CHECK(Lint(Job("          command: x\n          model: m\n          params: [1]\n")) ==
        Lines{"8:19: jobs.ft.steps[0].train.params: params must be a mapping, got a list"});
  CHECK(Lint(Job("          command: x\n          model: m\n          model_dir: ../up\n")) ==
        Lines{"8:22: jobs.ft.steps[0].train.model_dir: model_dir '../up' escapes the workspace "
              "('..' is not allowed)"});
  CHECK(Lint(Job("          command: x\n          model: m\n          model_dir: .git/x\n")) ==
        Lines{"8:22: jobs.ft.steps[0].train.model_dir: model_dir '.git/x' must be a directory "
              "of its own (not the workspace, .git or .assay)"});
  CHECK(
      Lint(Job("          command: x\n          model: m\n          datasets: [/etc/passwd]\n")) ==
      Lines{"8:22: jobs.ft.steps[0].train.datasets[0]: datasets[0] '/etc/passwd' must be "
            "relative to the workspace, not absolute"});
  CHECK(
      Lint(Job("          command: x\n          model: m\n          checkpoint_interval: 0s\n")) ==
      Lines{"8:32: jobs.ft.steps[0].train.checkpoint_interval: invalid duration \"0s\": must "
            "be greater than zero"});
  CHECK(
      Lint(Job("          command: x\n          model: m\n          checkpoint_interval: 25h\n")) ==
      Lines{"8:32: jobs.ft.steps[0].train.checkpoint_interval: checkpoint_interval must be "
            "from 1s to 24h"});
  CHECK(Lint(Job("          command: x\n          model: m\n          parent: '07'\n")) ==
        Lines{"8:19: jobs.ft.steps[0].train.parent: version '07' must be a number from 1 to "
              "2147483647"});
  CHECK(Lint(Job("          command: x\n          register: false\n          parent: prod\n")) ==
        Lines{"5:9: jobs.ft.steps[0].train.parent: parent needs register: true"});
  CHECK(Lint(Job("          command: x\n          model: m\n          lr: 3\n")) ==
        Lines{"8:11: jobs.ft.steps[0].train.lr: unknown key 'lr' (allowed keys: name, command, "
              "model, params, model_dir, datasets, register, parent, checkpoint_interval)"});
  CHECK(
      Lint("jobs:\n  ft:\n    steps:\n      - run: x\n        train: { command: y, model: m }\n") ==
      Lines{"4:9: jobs.ft.steps[0].train: a step has one of run:, build_image:, eval:, train:, "
            "promote: and deploy:, not two"});
  CHECK(
      Lint(Job("          command: x\n          model: m\n          params: { a: { b: { c: { "
               "d: { e: { f: { g: { h: { i: 1 } } } } } } } } }\n")) ==
      Lines{
          "8:19: jobs.ft.steps[0].train.params: field 'params' is nested more than 8 levels deep"});
}

TEST_CASE("spec promote: keys, defaults, and the if expression with evals.NAME.passed") {
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(
      "jobs:\n  p:\n    steps:\n      - promote: { model: charlm, alias: staging, if: "
      "\"evals.qa.passed && branch == 'main'\" }\n      - promote: { model: charlm, alias: "
      "prod, version: staging }\n");
  REQUIRE(spec.ok());
  const evals::PromoteSpec& a = *spec->jobs[0].steps[0].promote;
  CHECK(a == evals::PromoteSpec{"charlm", "staging", "", "evals.qa.passed && branch == 'main'"});
  CHECK(*spec->jobs[0].steps[1].promote == evals::PromoteSpec{"charlm", "prod", "staging", ""});
  CHECK(evals::PromoteSpecFromJson(evals::PromoteSpecToJson(a)).value() == a);
  CHECK_FALSE(evals::PromoteSpecFromJson(R"({"model":"m"})").ok());

  auto lint = [](const std::string& body) {
    return Lint("jobs:\n  p:\n    steps:\n      - promote: " + body + "\n");
  };
  CHECK(lint("{ alias: staging }") ==
        Lines{"4:9: jobs.p.steps[0].promote.model: missing required key 'model'"});
  CHECK(lint("{ model: m, alias: Staging }").size() == 1);
  CHECK(lint("{ model: m, alias: '12' }").size() == 1);
  CHECK(lint("{ model: m, alias: s, version: '0' }").size() == 1);
  CHECK(lint("{ model: m, alias: s, if: 'evals.qa' }") ==
        Lines{"4:44: jobs.p.steps[0].promote.if: column 1: expected evals.NAME.passed"});
  CHECK(lint("{ model: m, alias: s, if: 'evals.qa.score' }") ==
        Lines{"4:44: jobs.p.steps[0].promote.if: column 1: expected evals.NAME.passed"});
  CHECK(lint("[m]") ==
        Lines{"4:18: jobs.p.steps[0].promote: promote must be a mapping with model and alias, "
              "got a list"});
  // A job's own `if:` knows nothing of evals (they do not exist when jobs are planned).
  CHECK(Lint("jobs:\n  p:\n    if: evals.qa.passed\n    steps: [true]\n").size() == 1);
}

TEST_CASE("spec eval: vs takes a branch or @ALIAS of the registry") {
  const std::string head =
      "jobs:\n  qa:\n    steps:\n      - eval:\n          dataset: d.jsonl\n          model: "
      "x\n          metrics: [exact_match]\n          gate: { exact_match: { max_drop: 0.1, vs: ";
  CHECK(Lint(head + "'@production' } }\n") == Lines{});
  CHECK(Lint(head + "main } }\n") == Lines{});
  CHECK(Lint(head + "'@Prod' } }\n").size() == 1);
  CHECK(Lint(head + "'@' } }\n").size() == 1);
}

TEST_CASE("spec train: checkpoint names") {
  CHECK(evals::CheckpointStep("step-120") == 120);
  CHECK(evals::CheckpointStep("checkpoint-500") == 500);
  CHECK(evals::CheckpointStep("ckpt_7.pt") == 7);
  CHECK(evals::CheckpointStep("step-0") == 0);
  CHECK(evals::CheckpointStep("step-120.safetensors") == 120);
  CHECK_FALSE(evals::CheckpointStep("step-").has_value());
  CHECK_FALSE(evals::CheckpointStep("step120").has_value());
  CHECK_FALSE(evals::CheckpointStep(".tmp-step-120").has_value());
  CHECK_FALSE(evals::CheckpointStep("step-12a").has_value());
  CHECK_FALSE(evals::CheckpointStep("step-1.pt.tmp").has_value());
  CHECK_FALSE(evals::CheckpointStep("step-1.").has_value());
  CHECK_FALSE(evals::CheckpointStep("step-1234567890123456").has_value());
  CHECK(evals::CheckpointStep("step-123456789012345") == 123456789012345);
  CHECK_FALSE(evals::CheckpointStep("step-1.abcdefghijklmnopq").has_value());
  CHECK_FALSE(evals::CheckpointStep("latest").has_value());
}

TEST_CASE("spec train: TrainSpecFromJson refuses what TrainSpecToJson never writes") {
  CHECK_FALSE(evals::TrainSpecFromJson("[]").ok());
  CHECK_FALSE(evals::TrainSpecFromJson(R"({"command":"x","model":"m","params":[1]})").ok());
  CHECK_FALSE(evals::TrainSpecFromJson(R"({"model":"m"})").ok());
  CHECK_FALSE(evals::TrainSpecFromJson(R"({"command":"x"})").ok());
  CHECK_FALSE(
      evals::TrainSpecFromJson(R"({"command":"x","model":"m","checkpoint_interval_ms":5})").ok());
  CHECK(evals::TrainSpecFromJson(R"({"command":"x","register":false})").ok());
}

}  // namespace
}  // namespace assay
