// The `deploy:` step of `.assay.yml` (issue 12, docs/deployments.md "From a pipeline").
#include <catch2/catch.hpp>
#include <string>
#include <vector>

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

std::string Job(const std::string& deploy_body) {
  return "jobs:\n  ship:\n    steps:\n      - deploy:\n" + deploy_body;
}

TEST_CASE("spec deploy: a deploy step parses exactly, its strategy as the API's JSON") {
  const std::string yaml = Job(R"(          environment: production
          model: bot@candidate
          endpoints: [10.0.0.8:8081, "10.0.0.9:8081"]
          strategy:
            canary:
              steps: [{ weight: 10 }, { pause: 60s }, { weight: 50 }, { pause: {} }]
              scale_down_delay: "0"
          supersede: true
)");
  CHECK(Lint(yaml).empty());
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  const StepSpec& step = spec->jobs.at(0).steps.at(0);
  REQUIRE(step.deploy.has_value());
  CHECK(step.run.empty());
  CHECK(step.deploy->environment == "production");
  CHECK(step.deploy->model == "bot@candidate");
  CHECK(step.deploy->image.empty());
  CHECK(step.deploy->endpoints == std::vector<std::string>{"10.0.0.8:8081", "10.0.0.9:8081"});
  // Plain scalars that are numbers are numbers; quoted ones stay strings.
  CHECK(step.deploy->strategy_json ==
        R"({"canary":{"steps":[{"weight":10},{"pause":"60s"},{"weight":50},{"pause":{}}],)"
        R"("scale_down_delay":"0"}})");
  CHECK(step.deploy->supersede);
  auto back = DeployStepSpecFromJson(DeployStepSpecToJson(*step.deploy));
  REQUIRE(back.ok());
  CHECK(*back == *step.deploy);
}

TEST_CASE("spec deploy: bad input is named by line, key and cause") {
  CHECK(Lint(Job("          model: bot@2\n          endpoints: [a:1]\n          strategy: { "
                 "blue_green: {} }\n")) ==
        Lines{"4:9: jobs.ship.steps[0].deploy.environment: missing required key 'environment'"});
  CHECK(
      Lint(Job("          environment: Prod\n          image: app@sha256:" + std::string(64, 'a') +
               "\n          endpoints: [a:1]\n          strategy: { blue_green: {} }\n")) ==
      Lines{"5:24: jobs.ship.steps[0].deploy.environment: environment must be 1 to 63 of a-z "
            "0-9 _ - starting with a letter or digit"});
  CHECK(Lint(Job("          environment: prod\n          model: bot\n          endpoints: "
                 "[a:1]\n          strategy: { blue_green: {} }\n")) ==
        Lines{"6:18: jobs.ship.steps[0].deploy.model: model must be NAME@VERSION or NAME@ALIAS"});
  CHECK(Lint(Job("          environment: prod\n          image: app:latest\n          "
                 "endpoints: [a:1]\n          strategy: { blue_green: {} }\n")) ==
        Lines{"6:18: jobs.ship.steps[0].deploy.image: image must be an image by digest: "
              "NAME@sha256:<64 hex>"});
  CHECK(Lint(Job("          environment: prod\n          model: bot@2\n          endpoints: "
                 "[a:1, 'b c:2', x]\n          strategy: { blue_green: {} }\n")) ==
        Lines{"7:28: jobs.ship.steps[0].deploy.endpoints[1]: endpoint must be HOST:PORT, got "
              "'b c:2'",
              "7:37: jobs.ship.steps[0].deploy.endpoints[2]: endpoint must be HOST:PORT, got 'x'"});
  CHECK(Lint(Job("          environment: prod\n          model: bot@2\n          endpoints: "
                 "[a:1]\n          strategy: { canary: { steps: [{ weight: 50 }, { weight: 10 "
                 "}] } }\n")) ==
        Lines{"8:21: jobs.ship.steps[0].deploy.strategy: strategy.canary.steps[1].weight: must "
              "not go down (10 after 50); abort to roll back"});
  CHECK(Lint(Job("          environment: prod\n          endpoints: [a:1]\n          strategy: "
                 "{ blue_green: {} }\n")) ==
        Lines{"5:11: jobs.ship.steps[0].deploy: deploy needs exactly one of model: and image:"});
  CHECK(Lint(Job("          environment: prod\n          model: bot@2\n          endpoints: "
                 "[a:1]\n          strategy: { blue_green: {} }\n          supersede: yes\n")) ==
        Lines{"9:22: jobs.ship.steps[0].deploy.supersede: supersede must be a boolean, got a "
              "string"});
  CHECK(Lint("jobs:\n  ship:\n    steps:\n      - deploy: production\n") ==
        Lines{"4:17: jobs.ship.steps[0].deploy: deploy must be a mapping with environment, model "
              "or image, endpoints and strategy, got a string"});
  CHECK(Lint("jobs:\n  ship:\n    steps:\n      - run: x\n        deploy: { environment: p, "
             "model: m@1, endpoints: [a:1], strategy: { blue_green: {} } }\n") ==
        Lines{"4:9: jobs.ship.steps[0].deploy: a step has one of run:, build_image:, eval:, "
              "train:, promote: and deploy:, not two"});
}

}  // namespace
}  // namespace assay
