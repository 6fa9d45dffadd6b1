// Evals (issue 10), server side: the store records a report in pieces (retried pieces change
// nothing, a summary completes the run only when every example arrived), finds the baseline of
// a relative gate (complete, passed, trusted, on the branch), and refuses hostile reports.

#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/store/evals.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

store::LiveAttempt AttemptOn(DbFixture& f, const std::string& ref, bool trusted = true) {
  store::NewPipeline p = f.Pipeline({Job("qa")});
  p.ref = ref;
  p.trusted = trusted;
  if (!trusted) p.pr_number = 7;
  REQUIRE(f.pipelines.Create(p).ok());
  static int agents = 0;
  store::ClaimedJob c = f.ClaimOne(f.Agent(absl::StrCat("agent-", ++agents)));
  store::LiveAttempt a;
  a.job_id = c.job_id;
  a.pipeline_id = c.pipeline_id;
  a.repo_id = c.repo_id;
  a.agent_id = c.agent_id;
  a.attempt = c.attempt;
  a.job_name = c.job_name;
  return a;
}

store::EvalExampleRow Example(int index, const std::string& id, bool passed, double score) {
  store::EvalExampleRow e;
  e.index = index;
  e.example_id = id;
  e.input = "q " + id;
  e.expected = "a " + id;
  e.output = passed ? "a " + id : "wrong";
  e.passed = passed;
  e.scores = {{"exact_match", score}};
  e.latency_ms = 12.5;
  e.input_tokens = 3;
  e.output_tokens = 2;
  e.answered = 1;
  e.passes = passed ? 1 : 0;
  return e;
}

store::EvalSummaryRow Summary(int examples, bool passed) {
  store::EvalSummaryRow s;
  s.dataset_path = "evals/qa.jsonl";
  s.dataset_sha256 = std::string(64, 'a');
  s.examples = examples;
  s.passed = passed;
  s.report_json = R"({"metrics":[{"name":"exact_match","value":0.5}]})";
  return s;
}

TEST_CASE("eval store: pieces, a retried piece, and the summary that completes the run",
          "[db][evals]") {
  DbFixture f;
  store::EvalStore evals(&f.db);
  store::LiveAttempt a = AttemptOn(f, "refs/heads/main");
  auto id = evals.Report(a, 0, "qa", {Example(0, "x", true, 1), Example(1, "y", false, 0)}, {});
  REQUIRE(id.ok());
  // The same piece again (a retry after a cut) with other contents changes nothing.
  auto again = evals.Report(a, 0, "qa", {Example(0, "x", false, 0)}, {});
  REQUIRE(again.ok());
  CHECK(*again == *id);
  // A summary claiming three examples while two arrived is refused; the run stays open.
  auto early = evals.Report(a, 0, "qa", {}, Summary(3, true));
  CHECK(early.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(early.status().message() == "2 of 3 examples were reported");
  auto done = evals.Report(a, 0, "qa", {Example(2, "z", true, 1)}, Summary(3, true));
  REQUIRE(done.ok());
  CHECK(*done == *id);
  auto run = evals.Get(*id);
  REQUIRE(run.ok());
  REQUIRE(run->has_value());
  CHECK((*run)->complete);
  CHECK((*run)->passed == std::optional<bool>(true));
  CHECK((*run)->examples == 3);
  CHECK((*run)->ref == "refs/heads/main");
  CHECK((*run)->job_name == "qa");
  CHECK((*run)->dataset_path == "evals/qa.jsonl");
  auto examples = evals.Examples(*id);
  REQUIRE(examples.ok());
  REQUIRE(examples->size() == 3);
  CHECK((*examples)[0].passed);  // the first report stands
  CHECK((*examples)[0].output == "a x");
  CHECK((*examples)[1].scores == store::EvalScores{{"exact_match", 0}});
  CHECK((*examples)[2].example_id == "z");
  // A piece after completion changes nothing.
  auto late = evals.Report(a, 0, "qa", {Example(3, "w", true, 1)}, Summary(4, false));
  REQUIRE(late.ok());
  CHECK(f.Query("SELECT count(*), bool_and(e.passed) FROM eval_examples e JOIN eval_runs r ON "
                "r.id = e.run_id") == Rows{{"3", "f"}});
  CHECK(f.Query("SELECT examples, passed FROM eval_runs") == Rows{{"3", "t"}});
  // Another name for the same step is refused.
  auto renamed = evals.Report(a, 0, "other", {}, {});
  CHECK(renamed.status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("eval store: the baseline is the last complete, passed, trusted run on the branch",
          "[db][evals]") {
  DbFixture f;
  store::EvalStore evals(&f.db);
  auto report = [&](const std::string& ref, bool trusted, bool passed, double score) {
    store::LiveAttempt a = AttemptOn(f, ref, trusted);
    auto id = evals.Report(a, 0, "qa", {Example(0, "x", passed, score)}, Summary(1, passed));
    REQUIRE(id.ok());
    return *id;
  };
  CHECK(!evals.Baseline(1, "qa", "main", 0)->has_value());
  const int64_t first = report("refs/heads/main", true, true, 0.9);
  report("refs/heads/main", true, false, 0.1);    // failed: not a baseline
  report("refs/heads/feature", true, true, 0.5);  // another branch
  report("refs/pull/7/head", false, true, 1.0);   // a fork's pull request
  auto b = evals.Baseline(1, "qa", "main", 0);
  REQUIRE(b.ok());
  REQUIRE(b->has_value());
  CHECK((*b)->run_id == first);
  REQUIRE((*b)->examples.size() == 1);
  CHECK((*b)->examples[0].first == "x");
  CHECK((*b)->examples[0].second == store::EvalScores{{"exact_match", 0.9}});
  CHECK(!evals.Baseline(1, "other", "main", 0)->has_value());
  // A summary naming a baseline that is not a run of this eval is refused.
  store::LiveAttempt a = AttemptOn(f, "refs/heads/main");
  store::EvalSummaryRow s = Summary(0, true);
  s.baseline_run_id = first + 1000;
  auto bad = evals.Report(a, 0, "qa", {}, s);
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  s.baseline_run_id = first;
  CHECK(evals.Report(a, 0, "qa", {}, s).ok());
}

TEST_CASE("eval store: hostile reports are refused naming the field, nothing stored",
          "[db][evals]") {
  DbFixture f;
  store::EvalStore evals(&f.db);
  store::LiveAttempt a = AttemptOn(f, "refs/heads/main");
  auto refused = [&](std::vector<store::EvalExampleRow> rows,
                     std::optional<store::EvalSummaryRow> summary = {}, int step = 0,
                     std::string name = "qa") {
    auto r = evals.Report(a, step, name, rows, summary);
    INFO(r.status().ToString());
    return r.status().code() == absl::StatusCode::kInvalidArgument;
  };
  store::EvalExampleRow big = Example(0, "x", true, 1);
  big.output = std::string(store::kMaxEvalText + 1, 'o');
  CHECK(refused({big}));
  store::EvalExampleRow nul = Example(0, "x", true, 1);
  nul.input = std::string("a\0b", 3);
  CHECK(refused({nul}));
  store::EvalExampleRow utf = Example(0, "x", true, 1);
  utf.expected = "\xff\xfe";
  CHECK(refused({utf}));
  store::EvalExampleRow metric = Example(0, "x", true, 1);
  metric.scores = {{"made_up", 1}};
  CHECK(refused({metric}));
  store::EvalExampleRow nan = Example(0, "x", true, 1);
  nan.scores = {{"bleu", std::nan("")}};
  CHECK(refused({nan}));
  store::EvalExampleRow negative = Example(-1, "x", true, 1);
  CHECK(refused({negative}));
  std::vector<store::EvalExampleRow> many;
  for (int i = 0; i <= static_cast<int>(store::kMaxEvalPieceExamples); ++i) {
    many.push_back(Example(i, absl::StrCat("e", i), true, 1));
  }
  CHECK(refused(many));
  CHECK(refused({}, {}, 1000));
  CHECK(refused({}, {}, 0, std::string(129, 'n')));
  store::EvalSummaryRow not_json = Summary(0, true);
  not_json.report_json = "[1,2]";
  CHECK(refused({}, not_json));
  CHECK(f.Query("SELECT count(*) FROM eval_runs") == Rows{{"0"}});
}

}  // namespace
}  // namespace assay::dbtest
