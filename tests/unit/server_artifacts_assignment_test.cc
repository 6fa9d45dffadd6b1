// Issue 9: `artifacts:` and `needs: [{job, artifacts: true}]` go from .assay.yml through the
// job row's spec JSON (the exact keys the artifact store reads) into the Assignment.

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/pipeline/spec.h"
#include "server/pipeline/planner.h"
#include "server/scheduler/dispatcher.h"

namespace assay {
namespace {

store::ClaimedJob Claimed(std::string spec_json) {
  store::ClaimedJob j;
  j.job_id = 41;
  j.attempt_token = "0123456789abcdef0123456789abcdef";
  j.spec_json = std::move(spec_json);
  return j;
}

TEST_CASE("artifacts and artifact needs reach the job row and the Assignment exactly",
          "[unit][planner]") {
  auto spec = ParsePipelineSpec(
      "jobs:\n"
      "  build:\n"
      "    artifacts: {paths: [\"out/**\", \"!out/*.tmp\"], expire_in: 1h, if_no_files: error}\n"
      "    steps: [make]\n"
      "  lint:\n"
      "    steps: [make lint]\n"
      "  test:\n"
      "    needs: [lint, {job: build, artifacts: true}]\n"
      "    artifacts: {paths: report.xml, when: always}\n"
      "    steps: [make test]\n");
  REQUIRE(spec.ok());
  auto jobs = JobsFromPlan(*PlanJobs(*spec, ExprContext{}));
  REQUIRE(jobs.size() == 3);
  CHECK(jobs[0].spec_json ==
        R"({"steps":[{"name":"step 1","run":"make"}],"env":{},"timeout_s":3600,)"
        R"("artifacts":{"paths":["out/**","!out/*.tmp"],"expire_in_s":3600,"when":"on_success",)"
        R"("if_no_files":"error"}})");
  CHECK(jobs[1].spec_json == R"({"steps":[{"name":"step 1","run":"make lint"}],"env":{},)"
                             R"("timeout_s":3600})");
  CHECK(jobs[2].needs == std::vector<std::string>{"lint", "build"});
  CHECK(jobs[2].spec_json ==
        R"({"steps":[{"name":"step 1","run":"make test"}],"env":{},"timeout_s":3600,)"
        R"("artifacts":{"paths":["report.xml"],"expire_in_s":2592000,"when":"always",)"
        R"("if_no_files":"warn"},"artifact_needs":["build"]})");

  auto build = BuildAssignment(Claimed(jobs[0].spec_json));
  REQUIRE(build.ok());
  REQUIRE(build->has_artifacts());
  CHECK(std::vector<std::string>(build->artifacts().paths().begin(),
                                 build->artifacts().paths().end()) ==
        std::vector<std::string>{"out/**", "!out/*.tmp"});
  CHECK(build->artifacts().when() == "on_success");
  CHECK(build->artifacts().fail_if_no_files());
  CHECK(build->artifact_needs().empty());

  auto lint = BuildAssignment(Claimed(jobs[1].spec_json));
  REQUIRE(lint.ok());
  CHECK_FALSE(lint->has_artifacts());
  CHECK(lint->artifact_needs().empty());

  auto test = BuildAssignment(Claimed(jobs[2].spec_json));
  REQUIRE(test.ok());
  REQUIRE(test->has_artifacts());
  CHECK(test->artifacts().when() == "always");
  CHECK_FALSE(test->artifacts().fail_if_no_files());
  CHECK(std::vector<std::string>(test->artifact_needs().begin(), test->artifact_needs().end()) ==
        std::vector<std::string>{"build"});
}

TEST_CASE("a spec whose artifacts are malformed is an error naming the job", "[unit][planner]") {
  auto a = BuildAssignment(Claimed(
      R"({"steps":[],"env":{},"timeout_s":1,"artifacts":{"paths":"out","when":"always"}})"));
  REQUIRE_FALSE(a.ok());
  CHECK(a.status().code() == absl::StatusCode::kInternal);
  CHECK(a.status().message().substr(0, 29) == "job 41 has a malformed spec: ");
}

}  // namespace
}  // namespace assay
