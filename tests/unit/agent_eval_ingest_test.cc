// An eval with `ingest` (issue 10, agent/eval_ingest.cc): JUnit XML and lm-evaluation-harness
// results read from a real workspace, turned into examples and metrics, judged by the same
// gates as any eval.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "agent/eval_step.h"
#include "common/crypto/crypto.h"
#include "tests/unit/fixture.h"

namespace assay {
namespace {

struct Workspace {
  std::string dir;
  Workspace() {
    char tmpl[] = "/tmp/assay-ingest-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
  }
  ~Workspace() { std::filesystem::remove_all(dir); }
  void Write(const std::string& rel, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(dir + "/" + rel).parent_path());
    std::ofstream(dir + "/" + rel, std::ios::binary) << text;
  }
};

constexpr char kJunitA[] = R"(<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
  <testcase classname="tests.test_api" name="test_ok" time="0.5"/>
  <testcase classname="tests.test_api" name="test_bad" time="0.25">
    <failure message="assert 1 == 2">Traceback: line 3</failure></testcase>
  <testcase classname="tests.test_api" name="test_skip"><skipped message="no gpu"/></testcase>
  <testcase classname="tests.test_api" name="test_ok" time="0.25"/>
</testsuite></testsuites>
)";
constexpr char kJunitB[] = R"(<testsuite name="unit"><testcase name="t1"/>
<testcase name="t2"><error message="boom"/></testcase></testsuite>
)";

const EvalMetricSummary* Metric(const EvalReport& r, const std::string& name) {
  for (const EvalMetricSummary& m : r.metrics) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

TEST_CASE("ingest: JUnit reports of a glob become cases and the suite's metrics") {
  Workspace ws;
  ws.Write("reports/a.xml", kJunitA);
  ws.Write("reports/b.xml", kJunitB);
  ws.Write("reports/notes.txt", "not xml");
  evals::EvalSpec spec;
  spec.name = "unit";
  spec.ingest_format = "junit";
  spec.ingest_path = "reports/*.xml";
  absl::StatusOr<EvalReport> r = IngestReport(spec, ws.dir, std::nullopt);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->dataset_path == "reports/*.xml");
  CHECK(r->dataset_sha256 == HexEncode(Sha256(std::string(kJunitA) + kJunitB)));
  REQUIRE(r->examples.size() == 6);
  CHECK(r->examples[0].example_id == "pytest::tests.test_api::test_ok");
  CHECK(r->examples[0].input == "tests.test_api.test_ok");
  CHECK(r->examples[0].output == "passed");
  CHECK(r->examples[1].example_id == "pytest::tests.test_api::test_bad");
  CHECK(r->examples[1].output == "failed: assert 1 == 2\nTraceback: line 3");
  CHECK_FALSE(r->examples[1].passed);
  CHECK(r->examples[1].scores == std::vector<std::pair<std::string, double>>{{"pass_rate", 0}});
  CHECK(r->examples[2].passed);  // skipped: not a failure, and not in pass_rate
  CHECK(r->examples[2].scores.empty());
  CHECK(r->examples[3].example_id == "pytest::tests.test_api::test_ok #2");
  CHECK(r->examples[4].example_id == "unit::::t1");
  CHECK(r->examples[5].output == "error: boom");
  CHECK(Metric(*r, "tests")->value == 6);
  CHECK(Metric(*r, "passed")->value == 3);
  CHECK(Metric(*r, "failures")->value == 1);
  CHECK(Metric(*r, "errors")->value == 1);
  CHECK(Metric(*r, "skipped")->value == 1);
  CHECK(Metric(*r, "pass_rate")->value == 0.6);
  CHECK(Metric(*r, "pass_rate")->n == 5);
  CHECK(Metric(*r, "time_s")->value == 1.0);

  // Gates judge them as any eval's metrics.
  spec.gates = {{"failures", std::nullopt, 0.0}, {"pass_rate", 0.5}};
  Judge(spec, {}, *r);
  REQUIRE(r->verdicts.size() == 2);
  CHECK_FALSE(r->verdicts[0].passed);
  CHECK(r->verdicts[0].explanation == "failures 1.0000 > max 0.0000");
  CHECK(r->verdicts[1].passed);
  CHECK_FALSE(r->passed);
}

TEST_CASE("ingest: lm-evaluation-harness results give TASK/METRIC metrics with stderr intervals") {
  Workspace ws;
  ws.Write("out/results_2025-01-21T00-40-03.json",
           assay::testing::ReadFixture("tests/fixtures/metrics/lm_eval_results_example.json"));
  evals::EvalSpec spec;
  spec.name = "harness";
  spec.ingest_format = "lm_eval";
  spec.ingest_path = "out/results_*.json";
  absl::StatusOr<EvalReport> r = IngestReport(spec, ws.dir, std::nullopt);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(r->metrics.size() == 9);
  CHECK(r->metrics[4].name == "arc_easy/acc");
  CHECK(r->metrics[4].value == 0.3);
  CHECK(r->metrics[4].lo == 0.3);  // "N/A" stderr: no interval
  const EvalMetricSummary* mmlu = Metric(*r, "mmlu_abstract_algebra/acc");
  REQUIRE(mmlu != nullptr);
  CHECK(mmlu->lo == 0.34 - 1.96 * 0.047609522856952344);
  CHECK(mmlu->hi == 0.34 + 1.96 * 0.047609522856952344);
  CHECK(r->examples[8].example_id == "mmlu_abstract_algebra/acc");
  CHECK(r->examples[8].input == "abstract_algebra");
  CHECK(evals::HigherIsBetter("arc_easy/acc"));
  CHECK_FALSE(evals::HigherIsBetter("lambada_openai/perplexity"));

  // A relative gate: lambada's perplexity rose 605.5 -> 700 against the baseline.
  EvalBaseline base;
  base.run_id = 7;
  base.commit_sha = std::string(40, 'a');
  base.examples = {{"lambada_openai/perplexity", {{"lambada_openai/perplexity", 500.0}}}};
  spec.gates = {{"lambada_openai/perplexity", std::nullopt, std::nullopt, 50.0, "main"}};
  Judge(spec, {{"main", base}}, *r);
  REQUIRE(r->verdicts.size() == 1);
  CHECK_FALSE(r->verdicts[0].passed);
}

TEST_CASE("ingest: what it refuses, naming the file") {
  Workspace ws;
  evals::EvalSpec spec;
  spec.name = "x";
  spec.ingest_format = "junit";
  spec.ingest_path = "reports/*.xml";
  absl::StatusOr<EvalReport> r = IngestReport(spec, ws.dir, std::nullopt);
  CHECK(r.status().message() ==
        "ingest: no file matches 'reports/*.xml' (did the step that runs the suite write it?)");
  ws.Write("reports/a.xml", "<testsuite><testcase name='a'>");
  r = IngestReport(spec, ws.dir, std::nullopt);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("reports/a.xml") != std::string::npos);
  // A symlink out of the workspace is not followed.
  std::filesystem::remove(ws.dir + "/reports/a.xml");
  std::filesystem::create_symlink("/etc/passwd", ws.dir + "/reports/a.xml");
  r = IngestReport(spec, ws.dir, std::nullopt);
  REQUIRE_FALSE(r.ok());

  spec.ingest_format = "lm_eval";
  spec.ingest_path = "out/*.json";
  ws.Write("out/1.json", R"({"results": {"t": {"acc,none": 0.5}}})");
  ws.Write("out/2.json", R"({"results": {"t": {"acc,none": 0.6}}})");
  r = IngestReport(spec, ws.dir, std::nullopt);
  CHECK(r.status().message() == "ingest: metric t/acc is in both out/1.json and out/2.json");
}

}  // namespace
}  // namespace assay
