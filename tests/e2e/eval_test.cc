// The eval: step (issue 10, docs/evals.md) through a real server and agent: a model command
// (Python, speaking JSONL over the step's FIFOs) answers a dataset from the repository, the
// agent scores it and judges the gates, the log explains the verdict. Bad input: a gate that
// fails, a model that prints garbage or exits early, a dataset line that is not JSON.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/crypto/crypto.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

// Answers three of the four questions right; a question it does not know gets "".
constexpr char kModel[] = R"(import json, sys
answers = {"2+2": "4", "capital of France": "Paris", "color of the sky": "blue", "3*3": "10"}
for line in sys.stdin:
    req = json.loads(line)
    out = answers.get(req["prompt"], "")
    print(json.dumps({"id": req["id"], "output": out,
                      "usage": {"input_tokens": 5, "output_tokens": 1}}), flush=True)
)";

constexpr char kDataset[] =
    R"({"id": "add", "input": "2+2", "expected": "4"}
{"id": "capital", "input": "capital of France", "expected": "paris"}
{"id": "sky", "input": "color of the sky", "expected": "blue"}
{"id": "mul", "input": "3*3", "expected": "9"}
)";

std::vector<std::string> EvalLines(const std::string& log) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (absl::StartsWith(line, "assay: eval ")) out.emplace_back(line);
  }
  return out;
}

std::string Pipeline(const std::string& gate, const std::string& model = "python3 model.py") {
  return R"(jobs:
  qa:
    steps:
      - name: gate
        eval:
          name: qa
          dataset: evals/qa.jsonl
          model: ")" +
         model + R"("
          concurrency: 2
          timeout: 20s
          metrics: [exact_match, contains]
          normalize: { lowercase: true }
          gate: )" +
         gate + "\n";
}

struct Run {
  json::object pipeline;
  json::object job;
  std::string log;
};

Run RunEval(Cluster& c, GitRepo& repo, const std::string& pipeline_file,
            const std::string& dataset = kDataset, const std::string& delivery = "d-1") {
  const int64_t id =
      PushFiles(c, repo,
                {{".assay.yml", pipeline_file}, {"model.py", kModel}, {"evals/qa.jsonl", dataset}},
                delivery);
  Run r;
  r.pipeline = MUST(c.WaitForPipelineDone(id));
  r.job = Job(r.pipeline, "qa");
  r.log = MUST(c.JobLog(r.job.at("id").as_int64()));
  return r;
}

TEST_CASE("eval: a model command answers the dataset, the gate passes and the log says why",
          "[e2e][eval]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  Run r = RunEval(c, repo, Pipeline("{ exact_match: { min: 0.7 } }"));
  INFO(json::serialize(r.pipeline) << "\n" << r.log << "\n" << c.LogTails());
  CHECK(JsonString(r.job, "state") == "succeeded");
  const std::vector<std::string> lines = EvalLines(r.log);
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == "assay: eval qa: 4 examples from evals/qa.jsonl (sha256 " +
                        HexEncode(Sha256(kDataset)).substr(0, 12) + "), 0 without answers");
  CHECK(absl::StartsWith(lines[1], "assay: eval qa: exact_match 0.7500 (95 % interval "));
  CHECK(absl::StartsWith(lines[2], "assay: eval qa: contains 0.7500 (95 % interval "));
  CHECK(lines[3] == "assay: eval qa: gate exact_match passed: exact_match 0.7500 >= 0.7000");
  CHECK(lines[4] == "assay: eval qa: passed");
}

TEST_CASE("eval: a gate that fails fails the step with its explanation", "[e2e][eval]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  Run r = RunEval(c, repo, Pipeline("{ exact_match: { min: 0.8 } }"));
  INFO(json::serialize(r.pipeline) << "\n" << r.log << "\n" << c.LogTails());
  CHECK(JsonString(r.job, "state") == "failed");
  CHECK(JsonString(r.job, "message") ==
        "step \"gate\" failed: eval qa: 1 of 1 gates failed: exact_match 0.7500 < min 0.8000");
  const std::vector<std::string> lines = EvalLines(r.log);
  REQUIRE(lines.size() == 5);
  CHECK(lines[3] == "assay: eval qa: gate exact_match FAILED: exact_match 0.7500 < min 0.8000");
  CHECK(lines[4] == "assay: eval qa: FAILED (1 of 1 gates)");
}

TEST_CASE("eval: garbage from the model, an early exit and a bad dataset line end the step "
          "naming the line",
          "[e2e][eval]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  {
    Run r = RunEval(c, repo, Pipeline("{ exact_match: { min: 0 } }", "echo not json; cat"));
    INFO(r.log);
    CHECK(JsonString(r.job, "state") == "failed");
    CHECK(JsonString(r.job, "message") ==
          "step \"gate\" failed: line 1 of the model command's output is not a JSON reply with "
          "an \"id\": not json");
  }
  {
    Run r = RunEval(c, repo, Pipeline("{ exact_match: { min: 0 } }", "head -c 1 >/dev/null"),
                    kDataset, "d-2");
    INFO(r.log);
    CHECK(JsonString(r.job, "state") == "failed");
    const std::string message = JsonString(r.job, "message");
    CHECK((message ==
               "step \"gate\" failed: the model command exited after answering 0 of 4 requests" ||
           message == "step \"gate\" failed: the model command closed its output after "
                      "answering 0 of 4 requests"));
    // The partial results are still scored and shown.
    const std::vector<std::string> lines = EvalLines(r.log);
    REQUIRE(!lines.empty());
    CHECK(lines[0] == "assay: eval qa: 4 examples from evals/qa.jsonl (sha256 " +
                          HexEncode(Sha256(kDataset)).substr(0, 12) + "), 4 without answers");
  }
  {
    Run r = RunEval(c, repo, Pipeline("{ exact_match: { min: 0 } }"),
                    std::string(kDataset) + "{\"input\": \"x\", \"expected\": \n", "d-3");
    INFO(r.log);
    CHECK(JsonString(r.job, "state") == "failed");
    const std::string message = JsonString(r.job, "message");
    CHECK(absl::StartsWith(message, "step \"gate\" failed: evals/qa.jsonl:5: "));
  }
}

}  // namespace
}  // namespace assay::e2e
