// The job spec's round trip: .assay.yml → PipelineSpec → JobsFromPlan (spec_json) →
// BuildAssignment. Steps, env and timeout must arrive at the agent exactly as written.

#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "common/crypto/crypto.h"
#include "common/crypto/sealed.h"
#include "common/git/clone_url.h"
#include "common/pipeline/spec.h"
#include "server/pipeline/planner.h"
#include "server/scheduler/dispatcher.h"

namespace assay {
namespace {

store::ClaimedJob Claimed(std::string spec_json) {
  store::ClaimedJob j;
  j.job_id = 41;
  j.pipeline_id = 7;
  j.attempt = 2;
  j.attempt_token = "0123456789abcdef0123456789abcdef";
  j.job_name = "build";
  j.spec_json = std::move(spec_json);
  j.clone_url = "https://github.com/acme/app.git";
  j.commit_sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
  j.ref = "refs/heads/main";
  return j;
}

TEST_CASE("JobsFromPlan → BuildAssignment keeps steps, env and timeout exactly",
          "[unit][planner]") {
  PipelineSpec spec;
  JobSpec build;
  build.name = "build";
  build.env = {{"Z_LAST", "1"}, {"A_FIRST", "two words"}, {"QUOTE", "say \"hi\"\\n\tend"}};
  build.timeout_s = 90;
  build.steps = {{"compile", "make -j2"}, {"step 2", "echo \"héllo\" && exit 0\nsecond line"}};
  JobSpec test;
  test.name = "test";
  test.needs = {"build"};
  test.steps = {{"step 1", "ctest"}};
  spec.jobs = {build, test};

  auto jobs = JobsFromPlan(*PlanJobs(spec, ExprContext{}));
  REQUIRE(jobs.size() == 2);
  CHECK(jobs[0].name == "build");
  CHECK(jobs[0].needs.empty());
  CHECK(jobs[0].labels.empty());
  CHECK(jobs[0].max_attempts == 2);
  CHECK(
      jobs[0].spec_json ==
      R"({"steps":[{"name":"compile","run":"make -j2"},{"name":"step 2","run":"echo \"héllo\" && exit 0\nsecond line"}],)"
      R"("env":{"Z_LAST":"1","A_FIRST":"two words","QUOTE":"say \"hi\"\\n\tend"},"timeout_s":90})");
  CHECK(jobs[1].name == "test");
  CHECK(jobs[1].needs == std::vector<std::string>{"build"});
  CHECK(jobs[1].spec_json ==
        R"({"steps":[{"name":"step 1","run":"ctest"}],"env":{},"timeout_s":3600})");

  auto a = BuildAssignment(Claimed(jobs[0].spec_json));
  REQUIRE(a.ok());
  CHECK(a->job_id() == 41);
  CHECK(a->pipeline_id() == 7);
  CHECK(a->attempt() == 2);
  CHECK(a->attempt_token() == "0123456789abcdef0123456789abcdef");
  CHECK(a->job_name() == "build");
  CHECK(a->clone_url() == "https://github.com/acme/app.git");
  CHECK(a->commit_sha() == "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
  CHECK(a->ref() == "refs/heads/main");
  REQUIRE(a->steps_size() == 2);
  CHECK(a->steps(0).name() == "compile");
  CHECK(a->steps(0).run() == "make -j2");
  CHECK(a->steps(1).name() == "step 2");
  CHECK(a->steps(1).run() == "echo \"héllo\" && exit 0\nsecond line");
  std::map<std::string, std::string> env(a->env().begin(), a->env().end());
  // A CPU-only placement hides every GPU from the job (see GpuEnvironment).
  CHECK(env == std::map<std::string, std::string>{{"Z_LAST", "1"},
                                                  {"A_FIRST", "two words"},
                                                  {"QUOTE", "say \"hi\"\\n\tend"},
                                                  {"CUDA_VISIBLE_DEVICES", ""},
                                                  {"NVIDIA_VISIBLE_DEVICES", "void"}});
  CHECK(a->timeout_s() == 90);

  auto t = BuildAssignment(Claimed(jobs[1].spec_json));
  REQUIRE(t.ok());
  REQUIRE(t->steps_size() == 1);
  CHECK(t->steps(0).run() == "ctest");
  CHECK(std::map<std::string, std::string>(t->env().begin(), t->env().end()) ==
        std::map<std::string, std::string>{{"CUDA_VISIBLE_DEVICES", ""},
                                           {"NVIDIA_VISIBLE_DEVICES", "void"}});
  CHECK(t->gpu_indices().empty());
  CHECK(t->timeout_s() == 3600);
}

TEST_CASE("a parsed .assay.yml reaches the agent unchanged", "[unit][planner]") {
  auto spec = ParsePipelineSpec(
      "jobs:\n"
      "  lint:\n"
      "    steps: [ruff check .]\n"
      "  test:\n"
      "    needs: lint\n"
      "    env: { PYTHONHASHSEED: 0, MODE: fast }\n"
      "    timeout: 10m\n"
      "    steps:\n"
      "      - name: unit\n"
      "        run: pytest -q\n"
      "      - echo done\n");
  REQUIRE(spec.ok());
  auto jobs = JobsFromPlan(*PlanJobs(*spec, ExprContext{}));
  REQUIRE(jobs.size() == 2);
  CHECK(jobs[1].name == "test");
  CHECK(jobs[1].needs == std::vector<std::string>{"lint"});
  auto a = BuildAssignment(Claimed(jobs[1].spec_json));
  REQUIRE(a.ok());
  REQUIRE(a->steps_size() == 2);
  CHECK(a->steps(0).name() == "unit");
  CHECK(a->steps(0).run() == "pytest -q");
  CHECK(a->steps(1).name() == "step 2");
  CHECK(a->steps(1).run() == "echo done");
  std::map<std::string, std::string> env(a->env().begin(), a->env().end());
  CHECK(env == std::map<std::string, std::string>{{"PYTHONHASHSEED", "0"},
                                                  {"MODE", "fast"},
                                                  {"CUDA_VISIBLE_DEVICES", ""},
                                                  {"NVIDIA_VISIBLE_DEVICES", "void"}});
  CHECK(a->timeout_s() == 600);
}

TEST_CASE("BuildAssignment refuses a malformed spec", "[unit][planner]") {
  for (const char* bad :
       {"not json", R"({"env":{},"timeout_s":1})", R"({"steps":[{"name":"x"}],"timeout_s":1})",
        R"({"steps":[],"env":{"A":1},"timeout_s":1})", R"({"steps":[]})", "[]"}) {
    auto a = BuildAssignment(Claimed(bad));
    INFO(bad);
    CHECK(a.status().code() == absl::StatusCode::kInternal);
    CHECK(a.status().message().rfind("job 41 has a malformed spec: ", 0) == 0);
  }
}

TEST_CASE("BuildAssignment opens the repository's sealed clone credential", "[assignment]") {
  const KeyRing key(std::string(32, 'k'));
  store::ClaimedJob j = Claimed(R"({"steps":[{"name":"s","run":"true"}],"timeout_s":60})");
  j.repo_id = 5;
  auto sealed =
      key.Seal(JoinCloneCredential("alice", "pa:ss\\w0rd"), RowAad("repos", 5, "clone_credential"));
  REQUIRE(sealed.ok());
  j.clone_credential_sealed = *sealed;
  auto a = BuildAssignment(j, key);
  REQUIRE(a.ok());
  CHECK(a->clone_url() == "https://github.com/acme/app.git");
  CHECK(a->clone_username() == "alice");
  CHECK(a->clone_password() == "pa:ss\\w0rd");
  auto wrong = BuildAssignment(j, KeyRing(std::string(32, 'x')));
  CHECK(wrong.status().code() == absl::StatusCode::kInternal);
  CHECK(wrong.status().message() == "cannot open the clone credential of job 41");
  store::ClaimedJob moved = j;  // the value copied to another repository's row does not open
  moved.repo_id = 6;
  CHECK(BuildAssignment(moved, key).status().code() == absl::StatusCode::kInternal);
  auto none =
      BuildAssignment(Claimed(R"({"steps":[{"name":"s","run":"true"}],"timeout_s":60})"), key);
  REQUIRE(none.ok());
  CHECK(none->clone_username().empty());
  CHECK(none->clone_password().empty());
}

}  // namespace
}  // namespace assay
