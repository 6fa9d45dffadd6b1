// `secrets:` and `environment:` (issue 9): the model they parse to, the plan that carries them,
// and every lint error with its file:line:column and key.

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
  for (const SpecError& error : LintPipelineSpec(yaml, "f.yml")) lines.push_back(error.ToString());
  return lines;
}

TEST_CASE("spec secrets: names and {name, as} parse in file order", "[unit][secrets]") {
  const std::string yaml = R"(jobs:
  deploy:
    environment: staging
    secrets: [HF_TOKEN, {name: SSH_KEY, as: file}, {name: API_KEY, as: env}]
    steps: [x]
  plain: {steps: [y]}
)";
  REQUIRE(Lint(yaml).empty());
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  const JobSpec& job = spec->jobs[0];
  CHECK(job.environment == "staging");
  CHECK(job.secrets ==
        std::vector<SecretUse>{{"HF_TOKEN", false}, {"SSH_KEY", true}, {"API_KEY", false}});
  CHECK(spec->jobs[1].secrets.empty());
  CHECK(spec->jobs[1].environment.empty());

  absl::StatusOr<std::vector<PlannedJob>> plan = PlanJobs(*spec, ExprContext{});
  REQUIRE(plan.ok());
  CHECK((*plan)[0].secrets == job.secrets);
  CHECK((*plan)[0].environment == "staging");
}

TEST_CASE("spec secrets: lint errors name file, line, column and key", "[unit][secrets]") {
  CHECK(Lint("jobs:\n  a:\n    secrets: HF_TOKEN\n    steps: [x]\n") ==
        Lines{"f.yml:3:14: jobs.a.secrets: secrets must be a list of secret names or {name, as} "
              "mappings, got a string"});
  CHECK(Lint("jobs:\n  a:\n    secrets: [hf_token]\n    steps: [x]\n") ==
        Lines{"f.yml:3:15: jobs.a.secrets[0]: secret name 'hf_token' must be upper-case "
              "letters, digits and '_', not starting with a digit"});
  CHECK(Lint("jobs:\n  a:\n    secrets: [A, PATH]\n    steps: [x]\n") ==
        Lines{"f.yml:3:18: jobs.a.secrets[1]: secret name 'PATH' is reserved (a variable steps "
              "rely on)"});
  CHECK(Lint("jobs:\n  a:\n    secrets: [\"A=B\"]\n    steps: [x]\n") ==
        Lines{"f.yml:3:15: jobs.a.secrets[0]: secret name 'A=B' must be upper-case letters, "
              "digits and '_', not starting with a digit"});
  CHECK(Lint("jobs:\n  a:\n    secrets: [\"A\\0B\"]\n    steps: [x]\n") ==
        Lines{"f.yml:3:15: jobs.a.secrets[0]: secret name (with unprintable characters) must be "
              "upper-case letters, digits and '_', not starting with a digit"});
  CHECK(Lint("jobs:\n  a:\n    secrets: [A, A]\n    steps: [x]\n") ==
        Lines{"f.yml:3:18: jobs.a.secrets[1]: secret 'A' is listed more than once"});
  CHECK(Lint("jobs:\n  a:\n    secrets: [{name: A, as: dir}]\n    steps: [x]\n") ==
        Lines{"f.yml:3:29: jobs.a.secrets[0].as: as must be env or file, got 'dir'"});
  CHECK(Lint("jobs:\n  a:\n    secrets: [{as: file}]\n    steps: [x]\n") ==
        Lines{"f.yml:3:15: jobs.a.secrets[0].name: missing required key 'name'"});
  CHECK(Lint("jobs:\n  a:\n    secrets: [{name: A, mode: 1}]\n    steps: [x]\n") ==
        Lines{"f.yml:3:25: jobs.a.secrets[0].mode: unknown key 'mode' (allowed keys: name, as)"});
  CHECK(Lint("jobs:\n  a:\n    secrets: [[A]]\n    steps: [x]\n") ==
        Lines{"f.yml:3:15: jobs.a.secrets[0]: secrets entries must be a secret name or a mapping "
              "{name: NAME, as: env|file}, got a list"});
  CHECK(Lint("jobs:\n  a:\n    environment: Prod\n    steps: [x]\n") ==
        Lines{"f.yml:3:18: jobs.a.environment: environment 'Prod' must be 1 to 64 characters of "
              "a-z, 0-9, '_', '.', '-', starting with a letter or digit"});
  CHECK(Lint("jobs:\n  a:\n    environment: \"\"\n    steps: [x]\n") ==
        Lines{"f.yml:3:18: jobs.a.environment: environment must not be empty"});
  CHECK(Lint("jobs:\n  a:\n    environment: [a]\n    steps: [x]\n") ==
        Lines{"f.yml:3:18: jobs.a.environment: environment must be an environment name, got a "
              "list"});
}

TEST_CASE("spec secrets: too many entries", "[unit][secrets]") {
  std::string list;
  for (int i = 0; i < 101; ++i) list += (i ? ", S" : "S") + std::to_string(i);
  CHECK(Lint("jobs:\n  a:\n    secrets: [" + list + "]\n    steps: [x]\n") ==
        Lines{"f.yml:3:14: jobs.a.secrets: secrets lists 101 entries, more than the limit of "
              "100"});
}

}  // namespace
}  // namespace assay
