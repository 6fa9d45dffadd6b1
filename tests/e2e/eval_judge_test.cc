// LLM-as-judge (issue 10, docs/evals.md "LLM-as-judge") through a real server and agent: an
// OpenAI-shaped judge (a small Python server started by the test, which records every request
// it gets) grades each answer against the rubric; the judge metric gates. A judge that answers
// garbage scores 0 with the reason on the example.
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/net/http_client.h"
#include "tests/e2e/e2e.h"
#include "tests/support/process.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

// Grades 1 when the answer contains the reference answer, else 0.2; writes each request body
// to REQUESTS (one JSON per line). "garbage" in the answer gets a reply that is not JSON.
constexpr char kJudge[] = R"(import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port, log = int(sys.argv[1]), sys.argv[2]
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(log, "ab") as f: f.write(body + b"\n")
        req = json.loads(body)
        user = req["messages"][1]["content"]
        ref = user.split("Reference answer:\n")[1].split("\n\nAnswer to grade:\n")[0]
        ans = user.split("Answer to grade:\n")[1]
        if "garbage" in ans:
            content = "I cannot grade this."
        else:
            content = "```json\n" + json.dumps({"score": 1 if ref in ans else 0.2, "reason": "r"}) + "\n```"
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
HTTPServer(("127.0.0.1", port), H).serve_forever()
)";

constexpr char kModel[] = R"(import json, sys
answers = {"2+2": "it is 4", "capital of France": "Paris, of course", "3*3": "garbage"}
for line in sys.stdin:
    req = json.loads(line)
    print(json.dumps({"id": req["id"], "output": answers.get(req["prompt"], "no idea")}), flush=True)
)";

constexpr char kDataset[] = R"({"id": "add", "input": "2+2", "expected": "4"}
{"id": "capital", "input": "capital of France", "expected": "Paris"}
{"id": "sky", "input": "color of the sky", "expected": "blue"}
{"id": "mul", "input": "3*3", "expected": "9"}
)";

TEST_CASE("eval judge: a judge endpoint grades each answer against the rubric, and gates",
          "[e2e][eval]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const int port = testing::FreePort();
  const std::string requests = c.dir() + "/judge-requests.jsonl";
  const std::string script = c.dir() + "/judge.py";
  std::ofstream(script) << kJudge;
  auto judge = MUST(testing::Process::Start(
      {"/usr/bin/python3", script, std::to_string(port), requests}, c.dir() + "/judge.log"));
  MUST(c.WaitUntil("the judge listens", [&](std::string& seen) {
    auto r =
        HttpFetch("GET", absl::StrCat("http://127.0.0.1:", port, "/"), {}, "", absl::Seconds(1));
    seen = r.ok() ? "answered" : std::string(r.status().message());
    return r.ok();
  }));
  const std::string pipeline = absl::StrCat(R"(jobs:
  qa:
    steps:
      - name: gate
        eval:
          name: qa
          dataset: evals/qa.jsonl
          model: python3 model.py
          concurrency: 2
          retries: 0
          metrics: [judge]
          judge:
            url: http://127.0.0.1:)",
                                            port, R"(/v1/chat/completions
            model: grader
            rubric_file: rubric.txt
            threshold: 0.5
          gate: { judge: { min: 0.6 } }
)");
  const int64_t id = PushFiles(c, repo,
                               {{".assay.yml", pipeline},
                                {"model.py", kModel},
                                {"rubric.txt", "Is the answer right?"},
                                {"evals/qa.jsonl", kDataset}});
  json::object p = MUST(c.WaitForPipelineDone(id));
  json::object job = Job(p, "qa");
  const std::string log = MUST(c.JobLog(job.at("id").as_int64()));
  INFO(json::serialize(p) << "\n" << log << "\n" << c.LogTails());
  // Scores 1, 1, 0.2 and 0 (garbage): mean 0.55 < 0.6.
  CHECK(JsonString(job, "state") == "failed");
  CHECK(JsonString(job, "message") ==
        "step \"gate\" failed: eval qa: 1 of 1 gates failed: judge 0.5500 < min 0.6000");
  CHECK(absl::StrContains(log, "assay: eval qa: 4 examples from evals/qa.jsonl"));
  CHECK(absl::StrContains(log, ", 1 without an answer\n"));

  // Every answer reached the judge with the rubric, the reference and the model's answer.
  const std::string sent = testing::ReadFileOrEmpty(requests);
  CHECK(absl::StrContains(sent, R"("model":"grader")"));
  CHECK(absl::StrContains(sent, R"(Rubric:\nIs the answer right?\n\nQuestion:\n2+2\n\n)"
                                R"(Reference answer:\n4\n\nAnswer to grade:\nit is 4")"));
  int lines = 0;
  for (char ch : sent) lines += ch == '\n' ? 1 : 0;
  CHECK(lines == 4);

  json::object run = MUST(c.ApiObject("GET", "/api/v1/evals/1?examples=all"));
  const json::array& ex = run.at("example_results").as_array();
  REQUIRE(ex.size() == 4);
  CHECK(JsonString(ex[3].as_object(), "error") ==
        "judge: the judge's reply holds no JSON object: I cannot grade this.");
  CHECK(ex[0].at("passed").as_bool());
  CHECK_FALSE(ex[2].at("passed").as_bool());
  judge->Kill(SIGKILL);
}

}  // namespace
}  // namespace assay::e2e
