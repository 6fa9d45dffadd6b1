// The eval: step (issue 10, docs/evals.md) through a real server and agent: a model command
// (Python, speaking JSONL over the step's FIFOs) answers a dataset from the repository, the
// agent scores it and judges the gates, the log explains the verdict. Bad input: a gate that
// fails, a model that prints garbage or exits early, a dataset line that is not JSON.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto/crypto.h"
#include "common/proc/subprocess.h"
#include "tests/e2e/e2e.h"
#include "tests/support/process.h"

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

// Pushes `files`, waits for the pipeline, and returns it with job `job` and its log.
Run PushAndWait(Cluster& c, GitRepo& repo,
                const std::vector<std::pair<std::string, std::string>>& files,
                const std::string& job, const std::string& delivery) {
  const int64_t id = PushFiles(c, repo, files, delivery);
  Run r;
  r.pipeline = MUST(c.WaitForPipelineDone(id));
  r.job = Job(r.pipeline, job);
  r.log = MUST(c.JobLog(r.job.at("id").as_int64()));
  return r;
}

Run RunEval(Cluster& c, GitRepo& repo, const std::string& pipeline_file,
            const std::string& dataset = kDataset, const std::string& delivery = "d-1") {
  return PushAndWait(
      c, repo, {{".assay.yml", pipeline_file}, {"model.py", kModel}, {"evals/qa.jsonl", dataset}},
      "qa", delivery);
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

TEST_CASE(
    "eval: garbage from the model, an early exit and a bad dataset line end the step "
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
  {
    // A dataset that an earlier step turned into a symlink out of the workspace is not read.
    std::string yaml = Pipeline("{ exact_match: { min: 0 } }");
    yaml.replace(yaml.find("    steps:\n"), 11,
                 "    steps:\n      - rm evals/qa.jsonl && ln -s /etc/passwd evals/qa.jsonl\n");
    Run r = RunEval(c, repo, yaml, kDataset, "d-4");
    INFO(r.log);
    CHECK(JsonString(r.job, "state") == "failed");
    const std::string message = JsonString(r.job, "message");
    CHECK(absl::StartsWith(message, "step \"gate\" failed: dataset 'evals/qa.jsonl': "));
    CHECK(r.log.find("root:") == std::string::npos);
  }
}

// A model that reads "good" or "bad" from quality.txt: bad answers every even question wrong.
constexpr char kTunableModel[] = R"(import json, sys
bad = open("quality.txt").read().strip() == "bad"
for line in sys.stdin:
    req = json.loads(line)
    n = int(req["prompt"].split("+")[0])
    out = "wrong" if bad and n % 2 == 0 else str(n + 1)
    print(json.dumps({"id": req["id"], "output": out}), flush=True)
)";

std::string TwentyQuestions() {
  std::string out;
  for (int n = 0; n < 20; ++n) {
    out += absl::StrCat(R"({"id": "q)", n, R"(", "input": ")", n, R"(+1", "expected": ")", n + 1,
                        "\"}\n");
  }
  return out;
}

constexpr char kRelativePipeline[] = R"(jobs:
  qa:
    steps:
      - name: gate
        eval:
          name: qa
          dataset: evals/qa.jsonl
          model: python3 model.py
          metrics: [exact_match]
          gate: { exact_match: { max_drop: 0.1, vs: main } }
)";

TEST_CASE(
    "eval: a drop against main's last passing run fails the gate, the diff lists the "
    "regressed examples",
    "[e2e][eval]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  auto push = [&](const std::string& quality, const std::string& delivery) {
    return PushAndWait(c, repo,
                       {{".assay.yml", kRelativePipeline},
                        {"model.py", kTunableModel},
                        {"quality.txt", quality},
                        {"evals/qa.jsonl", TwentyQuestions()}},
                       "qa", delivery);
  };
  Run first = push("good", "d-1");
  INFO(first.log << "\n" << c.LogTails());
  REQUIRE(JsonString(first.job, "state") == "succeeded");
  CHECK(absl::StrContains(first.log,
                          "assay: eval qa: gate exact_match passed: no baseline: no successful "
                          "run of eval 'qa' on main yet, so max_drop is not judged\n"));
  const std::string first_sha = JsonString(first.pipeline, "commit_sha");

  Run second = push("bad", "d-2");
  INFO(second.log);
  CHECK(JsonString(second.job, "state") == "failed");
  const std::string message = JsonString(second.job, "message");
  CHECK(absl::StartsWith(message,
                         "step \"gate\" failed: eval qa: 1 of 1 gates failed: exact_match against "
                         "main (run 1, commit " +
                             first_sha.substr(0, 12) +
                             "): dropped by 0.5, more than max_drop 0.1, and the 95 % interval of "
                             "candidate-baseline ["));
  CHECK(absl::EndsWith(message,
                       "] over 20 examples excludes 0; baseline 1, candidate 0.5 (higher "
                       "is better)"));

  // The API: the run, its baseline, and the diff against it.
  const std::string job = std::to_string(second.job.at("id").as_int64());
  json::object evals = MUST(c.ApiObject("GET", "/api/v1/jobs/" + job + "/evals"));
  REQUIRE(evals.at("evals").as_array().size() == 1);
  const json::object& run = evals.at("evals").as_array()[0].as_object();
  CHECK(run.at("id").as_int64() == 2);
  CHECK(run.at("baseline_run_id").as_int64() == 1);
  CHECK(run.at("passed").as_bool() == false);
  CHECK(run.at("complete").as_bool());
  CHECK(run.at("examples").as_int64() == 20);
  json::object diff = MUST(c.ApiObject("GET", "/api/v1/evals/2/diff"));
  const json::array& regressed = diff.at("regressed").as_array();
  REQUIRE(regressed.size() == 10);
  CHECK(JsonString(regressed[0].as_object(), "id") == "q0");
  CHECK(JsonString(regressed[0].as_object(), "input") == "0+1");
  CHECK(JsonString(regressed[0].as_object(), "expected") == "1");
  CHECK(JsonString(regressed[0].as_object(), "baseline_output") == "1");
  CHECK(JsonString(regressed[0].as_object(), "candidate_output") == "wrong");
  CHECK(diff.at("fixed").as_array().empty());
  CHECK(diff.at("still_wrong").as_array().empty());
  CHECK(diff.at("still_passing").as_int64() == 10);
  json::object failed = MUST(c.ApiObject("GET", "/api/v1/evals/2?examples=failed"));
  CHECK(failed.at("example_results").as_array().size() == 10);

  // The CLI says the same.
  CommandResult cli = MUST(c.RunCli({"evals", "diff", "2", "--against", "main"}));
  INFO(cli.err);
  CHECK(cli.exit_code == 0);
  CHECK(absl::StartsWith(cli.out, "eval 2 (" +
                                      JsonString(second.pipeline, "commit_sha").substr(0, 12) +
                                      ") against eval 1 (" + first_sha.substr(0, 12) +
                                      "), 10 still passing\nregressed (10)\n  q0\n"
                                      "    input:     0+1\n    expected:  1\n"
                                      "    baseline:  1\n    candidate: wrong\n"));
  CHECK(absl::EndsWith(cli.out, "fixed (0)\nstill_wrong (0)\n"));
  CommandResult bad = MUST(c.RunCli({"evals", "show", "x"}));
  CHECK(bad.exit_code == 2);
  CHECK(absl::StrContains(bad.err, "eval ID must be a positive integer, got 'x'"));

  // Back to the good model: main's last passing run (1) is still the baseline.
  Run third = push("good", "d-3");
  INFO(third.log);
  CHECK(JsonString(third.job, "state") == "succeeded");
  CHECK(absl::StrContains(third.log,
                          "assay: eval qa: gate exact_match passed: exact_match against "
                          "main (run 1, commit " +
                              first_sha.substr(0, 12) +
                              "): drop 0 is within max_drop 0.1; baseline 1, candidate "
                              "1 (higher is better)\n"));
}

// examples/llm-app as a user would push it: the model is an OpenAI-shaped endpoint the step
// serves (model.serve), the prompt a template over each example's vars.
std::vector<std::pair<std::string, std::string>> LlmAppFiles(int port,
                                                             const std::string& prompt = "") {
  std::vector<std::pair<std::string, std::string>> files;
  const std::string dir = std::string(ASSAY_SOURCE_DIR) + "/examples/llm-app/";
  for (const char* name :
       {".assay.yml", "server.py", "capitals.json", "evals/capitals.jsonl", "prompts/qa.txt"}) {
    std::string text = testing::ReadFileOrEmpty(dir + name);
    REQUIRE(!text.empty());
    if (std::string(name) == ".assay.yml") {
      for (size_t at; (at = text.find("18080")) != std::string::npos;) {
        text.replace(at, 5, std::to_string(port));
      }
    }
    if (std::string(name) == "prompts/qa.txt" && !prompt.empty()) text = prompt;
    files.emplace_back(name, std::move(text));
  }
  return files;
}

TEST_CASE(
    "eval: the llm-app example gates on its prompt: a worse prompt fails with the diff, "
    "the revert passes",
    "[e2e][eval]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const int port = testing::FreePort();
  auto push = [&](const std::string& prompt, const std::string& delivery) {
    return PushAndWait(c, repo, LlmAppFiles(port, prompt), "eval", delivery);
  };
  Run good = push("", "d-1");
  INFO(good.log << "\n" << c.LogTails());
  REQUIRE(JsonString(good.job, "state") == "succeeded");
  std::vector<std::string> lines = EvalLines(good.log);
  REQUIRE(lines.size() == 7);
  CHECK(absl::StartsWith(lines[0], "assay: eval capitals: 20 examples from evals/capitals.jsonl"));
  CHECK(lines[1] == "assay: eval capitals: exact_match 1.0000, n=20");
  CHECK(lines[2] == "assay: eval capitals: contains 1.0000, n=20");
  CHECK(absl::StartsWith(lines[3], "assay: eval capitals: latency_p95_ms "));
  CHECK(lines[4] == "assay: eval capitals: output_tokens 1.0000, n=20");
  CHECK(lines[6] == "assay: eval capitals: passed");

  // A prompt without "in one word": full sentences, so exact match falls to 0.
  Run worse = push("Country: {{ country }}\nWhat is its capital city?\n", "d-2");
  INFO(worse.log);
  CHECK(JsonString(worse.job, "state") == "failed");
  CHECK(absl::StartsWith(JsonString(worse.job, "message"),
                         "step \"capitals\" failed: eval capitals: 1 of 1 gates failed: "
                         "exact_match 0.0000 < min 0.9000; exact_match against main (run 1, "
                         "commit "));
  lines = EvalLines(worse.log);
  REQUIRE(lines.size() == 7);
  CHECK(lines[1] == "assay: eval capitals: exact_match 0.0000, n=20");
  CHECK(lines[2] == "assay: eval capitals: contains 1.0000, n=20");
  json::object diff = MUST(c.ApiObject("GET", "/api/v1/evals/2/diff"));
  REQUIRE(diff.at("regressed").as_array().size() == 20);
  const json::object& first = diff.at("regressed").as_array()[0].as_object();
  CHECK(JsonString(first, "id") == "france");
  CHECK(JsonString(first, "input") == "Country: France\nWhat is its capital city?\n");
  CHECK(JsonString(first, "baseline_output") == "Paris");
  CHECK(JsonString(first, "candidate_output") == "The capital of France is Paris.");

  Run revert = push("", "d-3");
  INFO(revert.log);
  CHECK(JsonString(revert.job, "state") == "succeeded");
}

}  // namespace
}  // namespace assay::e2e
