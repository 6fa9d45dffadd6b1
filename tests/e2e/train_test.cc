// The train: step (issue 10, docs/train.md) through a real server and agents: a training
// command (Python, no dependencies) writes metrics and checkpoints; the agent streams the
// metrics and uploads the checkpoints; SIGKILLing the agent mid-training makes attempt 2, on
// another agent, resume from the newest checkpoint; on success the model is registered with
// its params, final metrics and dataset digest. Bad input: a command that fails, one that
// writes no model, bad metrics lines.
#include <signal.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/crypto/crypto.h"
#include "tests/e2e/e2e.h"
#include "tests/support/process.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

// Steps 1..steps; "w" grows by 1 a step, so the final model shows whether a resume restored
// it. A checkpoint every `every` steps, renamed into place. Attempt 1 stops at stall_at: it
// writes its pid and sleeps, for the test to kill its agent.
constexpr char kTrain[] = R"(import json, os, sys, time
p = json.loads(os.environ["ASSAY_PARAMS"])
ck = os.environ["ASSAY_CHECKPOINT_DIR"]
metrics = open(os.environ["ASSAY_METRICS_FILE"], "a")
start, w = 0, 0
resume = os.environ.get("ASSAY_RESUME_STEP")
if resume is not None:
    with open(os.path.join(ck, "step-" + resume, "state.json")) as f:
        state = json.load(f)
    start, w = state["step"], state["w"]
    print("resumed at", start, flush=True)
for step in range(start + 1, p["steps"] + 1):
    w += 1
    metrics.write(json.dumps({"step": step, "loss": 1.0 / step, "w": w}) + "\n")
    metrics.flush()
    if step % p["every"] == 0:
        tmp = os.path.join(ck, ".tmp-%d" % step)
        os.makedirs(tmp)
        with open(os.path.join(tmp, "state.json"), "w") as f:
            json.dump({"step": step, "w": w}, f)
        os.rename(tmp, os.path.join(ck, "step-%d" % step))
    if os.environ["ASSAY_ATTEMPT"] == "1" and step == p.get("stall_at", -1):
        with open(p["pid_file"], "w") as f:
            f.write("%d\n" % os.getpid())
        time.sleep(600)
os.makedirs(os.environ["ASSAY_MODEL_DIR"], exist_ok=True)
with open(os.path.join(os.environ["ASSAY_MODEL_DIR"], "model.json"), "w") as f:
    json.dump({"w": w}, f)
print("trained to", p["steps"], "w", w, flush=True)
)";

constexpr char kCorpus[] = "the quick brown fox\n";

std::string Pipeline(const std::string& params, const std::string& extra = "") {
  return R"(jobs:
  ft:
    retry: { max: 1, on: [agent_lost] }
    steps:
      - name: fit
        train:
          command: python3 train.py
          model: tiny
          params: )" +
         params + R"(
          datasets: [data/corpus.txt]
          checkpoint_interval: 1s
)" + extra;
}

TEST_CASE(
    "train: SIGKILL the agent mid-training, and attempt 2 on another agent resumes from the "
    "newest checkpoint and registers the model",
    "[e2e][train]") {
  Cluster c(Options({"--lease", "2s", "--heartbeat-interval", "300ms"}));
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  testing::Process* first = MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string pid_file = c.dir() + "/train.pid";
  const int64_t pipeline_id = PushFiles(
      c, repo,
      {{".assay.yml",
        Pipeline(R"({steps: 50, every: 10, stall_at: 30, pid_file: ")" + pid_file + "\"}")},
       {"train.py", kTrain},
       {"data/corpus.txt", kCorpus}});

  // Attempt 1 stalls at step 30, after writing checkpoint step-30; the agent uploads it.
  MUST(c.WaitUntil("attempt 1 stalled", [&](std::string& seen) {
    seen = testing::ReadFileOrEmpty(pid_file);
    return !seen.empty() && seen.back() == '\n';
  }));
  MUST(c.WaitUntil(
      "checkpoint step 30 saved",
      [&](std::string& seen) {
        auto n = c.QueryInt("SELECT coalesce(max(step), -1) FROM train_checkpoints");
        seen = n.ok() ? std::to_string(*n) : std::string(n.status().message());
        return n.ok() && *n == 30;
      },
      absl::Seconds(30)));
  MUST(c.WaitUntil("attempt 1's 30 loss points stored", [&](std::string& seen) {
    auto n = c.QueryInt("SELECT count(*) FROM train_metrics WHERE name = 'loss' AND attempt = 1");
    seen = n.ok() ? std::to_string(*n) : std::string(n.status().message());
    return n.ok() && *n == 30;
  }));
  first->Kill(SIGKILL);
  REQUIRE(first->Wait(absl::Seconds(10)) == 128 + SIGKILL);
  const pid_t trainer = static_cast<pid_t>(std::atoi(testing::ReadFileOrEmpty(pid_file).c_str()));
  REQUIRE(trainer > 1);
  ::kill(trainer, SIGKILL);

  MUST(c.StartAgent("a2"));
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id, absl::Seconds(60)));
  json::object job = Job(p, "ft");
  const int64_t job_id = job.at("id").as_int64();
  const std::string log = MUST(c.JobLog(job_id));
  INFO(json::serialize(p) << "\n" << log << "\n" << c.LogTails());
  REQUIRE(JsonString(job, "state") == "succeeded");
  CHECK(job.at("attempt").as_int64() == 2);
  CHECK(JsonString(job, "agent") == "a2");
  CHECK(absl::StrContains(log,
                          "assay: train: restored checkpoint step 30 (saved by attempt 1): "
                          "1 file, 0.0 MiB, 0.0 MiB downloaded; ASSAY_RESUME_STEP=30\n"));
  CHECK(absl::StrContains(log, "resumed at 30\ntrained to 50 w 50\n"));
  CHECK(absl::StrContains(
      log, "assay: train: dataset data/corpus.txt sha256 " + HexEncode(Sha256(kCorpus)) + "\n"));
  CHECK(absl::StrContains(log, "assay: train: model 'tiny' is registered when the job succeeds\n"));

  // The series: attempt 1's steps 1..30, then attempt 2's 31..50; no restart from step 0.
  json::object train =
      MUST(c.ApiObject("GET", "/api/v1/jobs/" + std::to_string(job_id) + "/train"));
  INFO(json::serialize(train));
  const json::array& runs = train.at("train").as_array();
  REQUIRE(runs.size() == 1);
  const json::object& run = runs[0].as_object();
  CHECK(JsonString(run, "name") == "fit");
  CHECK(JsonString(run, "model") == "tiny");
  CHECK(run.at("model_version").as_int64() == 1);
  CHECK(json::serialize(run.at("attempts")) == R"([{"attempt":2,"resumed_from":30}])");
  const json::array& loss = run.at("series").at("loss").as_array();
  REQUIRE(loss.size() == 50);
  for (size_t i = 0; i < loss.size(); ++i) {
    const json::array& pt = loss[i].as_array();
    INFO("point " << i << ": " << json::serialize(pt));
    CHECK(pt[0].as_int64() == static_cast<int64_t>(i + 1));
    CHECK(pt[2].as_int64() == (i < 30 ? 1 : 2));
  }
  CHECK(MUST(c.QueryInt("SELECT min(step) FROM train_metrics WHERE attempt = 2")) == 31);

  // The CLI says the same: the step, its version and resume, a row per series; every point of
  // one series with --series.
  CommandResult cli = MUST(c.RunCli({"train", std::to_string(job_id)}));
  INFO(cli.out << cli.err);
  CHECK(cli.exit_code == 0);
  CHECK(absl::StartsWith(cli.out,
                         "train step fit (step 0), model tiny, version 1, newest "
                         "checkpoint "));
  CHECK(absl::StrContains(cli.out, "; attempt 2 resumed from step 30\n"));
  CHECK(absl::StrContains(cli.out, "SERIES"));
  CHECK(absl::StrContains(cli.out, "\nloss "));
  CHECK(absl::StrContains(cli.out, "\nw "));
  CommandResult points = MUST(c.RunCli({"train", std::to_string(job_id), "--series", "loss"}));
  CHECK(points.exit_code == 0);
  int rows = 0;
  for (char ch : points.out) rows += ch == '\n' ? 1 : 0;
  CHECK(rows == 51);  // the header and 50 points
  CHECK(absl::StrContains(points.out, "\n31 "));
  CommandResult missing = MUST(c.RunCli({"train", std::to_string(job_id), "--series", "acc"}));
  CHECK(missing.exit_code == 1);
  CHECK(missing.err == "assay: job " + std::to_string(job_id) + " has no series 'acc'\n");
  CommandResult usage = MUST(c.RunCli({"train", "x"}));
  CHECK(usage.exit_code == 2);
  CHECK(absl::StrContains(usage.err, "JOB_ID must be a positive integer, got 'x'"));
  // Every value exactly as Python computed it (1.0 / step in IEEE double): compared in SQL, as
  // this test's own JSON parser (Boost 1.81) may read a 17-digit number one ulp off.
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM train_metrics WHERE name = 'loss' AND "
                        "value = 1.0::float8 / step")) == 50);

  // The registered version: files, lineage, params, final metrics, dataset digest.
  json::object v = MUST(c.ApiObject("GET", "/api/v1/models/tiny/versions/1"));
  INFO(json::serialize(v));
  CHECK(v.at("source").at("job_id").as_int64() == job_id);
  CHECK(v.at("metrics").at("loss").to_number<double>() == 0.02);
  CHECK(v.at("metrics").at("w").to_number<double>() == 50);
  CHECK(v.at("metrics").as_object().size() == 2);
  CHECK(v.at("params").at("steps").as_int64() == 50);
  CHECK(json::serialize(v.at("datasets")) ==
        R"([{"path":"data/corpus.txt","sha256":")" + HexEncode(Sha256(kCorpus)) + R"("}])");
  auto file = MUST(c.Api("GET", "/api/v1/models/tiny/versions/1/files/model.json"));
  CHECK(file.status == 200);
  CHECK(file.body == R"({"w": 50})");
}

TEST_CASE("train: a command that fails, writes no model or bad metrics lines says so",
          "[e2e][train]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));

  const std::string bad = R"(jobs:
  exits:
    steps:
      - name: fit
        train: { command: "echo '{\"step\": 1, \"loss\": 2}' >> $ASSAY_METRICS_FILE; exit 3", model: m }
  nomodel:
    steps:
      - name: fit
        train:
          command: "printf 'oops\n{\"step\": 2, \"loss\": 1}\n[3]' >> $ASSAY_METRICS_FILE"
          model: m
)";
  const int64_t id = PushFiles(c, repo, {{".assay.yml", bad}});
  json::object p = MUST(c.WaitForPipelineDone(id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  json::object exits = Job(p, "exits");
  CHECK(JsonString(exits, "state") == "failed");
  CHECK(JsonString(exits, "message") == "step \"fit\" exited with code 3");
  json::object nomodel = Job(p, "nomodel");
  CHECK(JsonString(nomodel, "state") == "failed");
  CHECK(JsonString(nomodel, "message") ==
        "step \"fit\" failed: the model directory 'model' holds no file: the command must write "
        "the model to $ASSAY_MODEL_DIR");
  const std::string log = MUST(c.JobLog(nomodel.at("id").as_int64()));
  INFO(log);
  CHECK(absl::StrContains(
      log,
      "assay: warning: train: metrics file line 1 is not a JSON object with an integer "
      "\"step\" >= 0: oops\n"));
  CHECK(absl::StrContains(
      log,
      "assay: warning: train: metrics file line 3 is not a JSON object with an integer "
      "\"step\" >= 0: [3]\n"));
  // The good lines of both jobs were stored; no model was registered.
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM train_metrics")) == 2);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM model_versions")) == 0);
}

// The model under test reads the trained model's "w" from the train job's artifacts; the
// repository's quality.txt says whether it answers every other question wrong.
constexpr char kQaModel[] = R"(import json, sys
w = json.load(open("model/model.json"))["w"]
bad = open("quality.txt").read().strip() == "bad"
for line in sys.stdin:
    req = json.loads(line)
    n = int(req["prompt"].split("+")[0])
    out = "wrong" if bad and n % 2 == 0 else str(n + 1)
    print(json.dumps({"id": req["id"], "output": out}), flush=True)
)";

constexpr char kReleasePipeline[] = R"(jobs:
  ft:
    steps:
      - name: fit
        train: { command: python3 train.py, model: tiny, params: { steps: 5, every: 100 } }
  qa:
    needs: [{ job: ft, artifacts: true }]
    allow_failure: true
    steps:
      - name: gate
        eval:
          name: qa
          dataset: evals/qa.jsonl
          model: python3 qa_model.py
          metrics: [exact_match]
          gate: { exact_match: { max_drop: 0.1, vs: "@production" } }
  release:
    needs: [qa]
    steps:
      - promote: { model: tiny, alias: production, if: "evals.qa.passed" }
)";

std::string Questions() {
  std::string out;
  for (int n = 0; n < 20; ++n) {
    out += absl::StrCat(R"({"id": "q)", n, R"(", "input": ")", n, R"(+1", "expected": ")", n + 1,
                        "\"}\n");
  }
  return out;
}

TEST_CASE(
    "train: eval runs attach to the registered version, promote moves the alias when the "
    "eval passed, and the next fine-tune is gated against @production",
    "[e2e][train]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  auto push = [&](const std::string& quality, const std::string& delivery) {
    const int64_t id = PushFiles(c, repo,
                                 {{".assay.yml", kReleasePipeline},
                                  {"train.py", kTrain},
                                  {"qa_model.py", kQaModel},
                                  {"quality.txt", quality},
                                  {"evals/qa.jsonl", Questions()}},
                                 delivery);
    return MUST(c.WaitForPipelineDone(id, absl::Seconds(60)));
  };
  auto log_of = [&](const json::object& p, const char* job) {
    return MUST(c.JobLog(Job(p, job).at("id").as_int64()));
  };

  // 1. Version 1; no production yet, so no baseline; the eval passes; production -> 1.
  json::object p1 = push("good", "d-1");
  INFO(json::serialize(p1) << "\n" << c.LogTails());
  REQUIRE(JsonString(Job(p1, "ft"), "state") == "succeeded");
  CHECK(JsonString(Job(p1, "qa"), "state") == "succeeded");
  CHECK(absl::StrContains(log_of(p1, "qa"),
                          "gate exact_match passed: no baseline: no successful run of eval 'qa' "
                          "on the version at alias production yet, so max_drop is not judged\n"));
  CHECK(JsonString(Job(p1, "release"), "state") == "succeeded");
  CHECK(absl::StrContains(log_of(p1, "release"),
                          "assay: promote: promoted: tiny@production -> version 1 (new alias); "
                          "`evals.qa.passed` is true\n"));
  json::object v1 = MUST(c.ApiObject("GET", "/api/v1/models/tiny/versions/1"));
  INFO(json::serialize(v1));
  REQUIRE(v1.at("evals").as_array().size() == 1);
  CHECK(JsonString(v1.at("evals").as_array()[0].as_object(), "name") == "qa");
  CHECK(v1.at("evals").as_array()[0].at("passed").as_bool());
  CHECK(json::serialize(v1.at("aliases")) == R"(["production"])");

  // 2. Version 2 answers half wrong: the gate against @production (run 1 on version 1) fails,
  // and the promote step leaves production on version 1.
  json::object p2 = push("bad", "d-2");
  INFO(json::serialize(p2));
  CHECK(JsonString(Job(p2, "qa"), "state") == "failed");
  CHECK(absl::StartsWith(JsonString(Job(p2, "qa"), "message"),
                         "step \"gate\" failed: eval qa: 1 of 1 gates failed: exact_match against "
                         "@production (run 1, commit "));
  CHECK(JsonString(Job(p2, "release"), "state") == "succeeded");
  CHECK(absl::StrContains(log_of(p2, "release"),
                          "assay: promote: not promoted: tiny@production stays; "
                          "`evals.qa.passed` is false\n"));
  json::object history = MUST(c.ApiObject("GET", "/api/v1/models/tiny/aliases/production/history"));
  INFO(json::serialize(history));
  const json::array& events = history.at("history").as_array();
  REQUIRE(events.size() == 1);
  CHECK(JsonString(events[0].as_object(), "principal") ==
        "pipeline " + std::to_string(p1.at("id").as_int64()) + " job " +
            std::to_string(Job(p1, "release").at("id").as_int64()));
  CHECK(JsonString(events[0].as_object(), "reason") == "promote step 'step 1': if evals.qa.passed");
  json::object v2 = MUST(c.ApiObject("GET", "/api/v1/models/tiny/versions/2"));
  CHECK(v2.at("evals").as_array()[0].at("passed").as_bool() == false);
  json::object run2 = MUST(c.ApiObject("GET", "/api/v1/evals/2"));
  CHECK(json::serialize(run2.at("model")) == R"({"name":"tiny","version":2})");
  CHECK(run2.at("baseline_run_id").as_int64() == 1);
}

}  // namespace
}  // namespace assay::e2e
