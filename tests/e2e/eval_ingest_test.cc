// An eval that ingests a suite's own results (issue 10, docs/evals.md "Ingest") through a real
// server and agent: a step writes JUnit XML and lm-evaluation-harness results, the next gates
// on them; the run is stored and listed like any eval's.
#include <string>

#include "absl/strings/match.h"
#include "tests/e2e/e2e.h"
#include "tests/support/process.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

constexpr char kPipeline[] = R"(jobs:
  unit:
    steps:
      - run: mkdir -p reports && cp junit.xml reports/unit.xml
      - eval:
          name: unit
          ingest: { junit: "reports/*.xml" }
          gate: { failures: { max: 0 }, pass_rate: { min: 0.5 } }
  harness:
    steps:
      - run: mkdir -p out/model && cp lm_eval.json out/model/results_2025-01-21T00-40-03.json
      - eval:
          name: harness
          ingest: { lm_eval: "out/**/results_*.json" }
          gate:
            "arc_easy/acc": { min: 0.25 }
            "lambada_openai/perplexity": { max: 1000 }
)";

constexpr char kJunit[] = R"(<testsuites><testsuite name="pytest">
<testcase classname="tests.test_api" name="test_ok" time="0.5"/>
<testcase classname="tests.test_api" name="test_bad"><failure message="assert 1 == 2">tb</failure></testcase>
</testsuite></testsuites>
)";

TEST_CASE("eval ingest: JUnit failures fail the gate with the test named, lm-eval results pass",
          "[e2e][eval]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string lm_eval = testing::ReadFileOrEmpty(
      std::string(ASSAY_SOURCE_DIR) + "/tests/fixtures/metrics/lm_eval_results_example.json");
  REQUIRE(!lm_eval.empty());
  const int64_t id = PushFiles(
      c, repo, {{".assay.yml", kPipeline}, {"junit.xml", kJunit}, {"lm_eval.json", lm_eval}});
  json::object p = MUST(c.WaitForPipelineDone(id));
  const json::object unit = Job(p, "unit");
  const json::object harness = Job(p, "harness");
  const std::string unit_log = MUST(c.JobLog(unit.at("id").as_int64()));
  const std::string harness_log = MUST(c.JobLog(harness.at("id").as_int64()));
  INFO(json::serialize(p) << "\n" << unit_log << "\n" << harness_log << "\n" << c.LogTails());
  CHECK(JsonString(unit, "state") == "failed");
  CHECK(JsonString(unit, "message") ==
        "step \"step 2\" failed: eval unit: 1 of 2 gates failed: failures 1.0000 > max 0.0000");
  CHECK(absl::StrContains(unit_log, "assay: eval unit: 2 examples from reports/*.xml (sha256 "));
  CHECK(absl::StrContains(unit_log,
                          "assay: eval unit: gate pass_rate passed: pass_rate 0.5000 "
                          ">= 0.5000\n"));
  CHECK(JsonString(harness, "state") == "succeeded");
  CHECK(absl::StrContains(harness_log,
                          "assay: eval harness: gate arc_easy/acc passed: "
                          "arc_easy/acc 0.3000 >= 0.2500\n"));
  CHECK(absl::StrContains(harness_log, "assay: eval harness: passed\n"));

  // Stored like any eval: the failing test is an example with its message.
  json::object run = MUST(
      c.ApiObject("GET", "/api/v1/jobs/" + std::to_string(unit.at("id").as_int64()) + "/evals"));
  const json::object& r = run.at("evals").as_array()[0].as_object();
  json::object failed = MUST(c.ApiObject(
      "GET", "/api/v1/evals/" + std::to_string(r.at("id").as_int64()) + "?examples=failed"));
  const json::array& ex = failed.at("example_results").as_array();
  REQUIRE(ex.size() == 1);
  CHECK(JsonString(ex[0].as_object(), "id") == "pytest::tests.test_api::test_bad");
  CHECK(JsonString(ex[0].as_object(), "output") == "failed: assert 1 == 2\ntb");
}

}  // namespace
}  // namespace assay::e2e
