// `sweep:` (issue 10, docs/train.md "Sweeps") through a real server and agent: a grid of four
// trials run one at a time; the third is worse than the median of the first two and is
// stopped by the server while its command still runs; when the last ends, the best trial's
// model alone is registered and the job after the sweep promotes it.
#include <signal.h>

#include <cerrno>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/e2e/e2e.h"
#include "tests/support/process.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

// loss = lr / step for steps 1..10. A trial with lr >= 3 writes its pid and goes on slowly
// (0.5 s a step, 120 steps): only the server's stop ends it before the test does.
constexpr char kTrain[] = R"(import json, os, time
p = json.loads(os.environ["ASSAY_PARAMS"])
metrics = open(os.environ["ASSAY_METRICS_FILE"], "a")
slow = p["lr"] >= 3
if slow:
    with open(p["pid_file"], "w") as f:
        f.write("%d\n" % os.getpid())
for step in range(1, (120 if slow else 10) + 1):
    metrics.write(json.dumps({"step": step, "loss": p["lr"] / step}) + "\n")
    metrics.flush()
    if slow:
        time.sleep(0.5)
os.makedirs(os.environ["ASSAY_MODEL_DIR"], exist_ok=True)
with open(os.path.join(os.environ["ASSAY_MODEL_DIR"], "model.json"), "w") as f:
    json.dump({"lr": p["lr"]}, f)
print("trained with lr", p["lr"], flush=True)
)";

TEST_CASE(
    "sweep: a grid runs a job per trial, the median rule stops the worse trial while it runs, "
    "and the best trial alone is registered and promoted",
    "[e2e][train]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string pid_file = c.dir() + "/slow.pid";
  const std::string pipeline_file = R"(jobs:
  tune:
    sweep:
      parameters:
        lr: [1, 2, 3, 0.5]
      metric: {name: loss, goal: minimize}
      max_parallel: 1
      early_stop: {rule: median, min_trials: 2}
    steps:
      - name: fit
        train:
          command: python3 train.py
          model: sweepy
          params: {pid_file: ")" + pid_file +
                                    R"("}
  ship:
    needs: [tune]
    steps:
      - promote: {model: sweepy, alias: staging}
)";
  const int64_t pipeline_id =
      PushFiles(c, repo, {{".assay.yml", pipeline_file}, {"train.py", kTrain}});
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id, absl::Seconds(120)));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  REQUIRE(JsonString(p, "state") == "succeeded");
  for (const char* name :
       {"tune (trial 1)", "tune (trial 2)", "tune (trial 3)", "tune (trial 4)", "ship"}) {
    CHECK(JsonString(Job(p, name), "state") == "succeeded");
  }

  // Trial 3 (lr 3) was stopped at its first judged step s: 3/s against the median of 1/s and
  // 2/s, exactly as Python computed them (compared in SQL, in IEEE doubles).
  const int64_t trial3 = JobId(p, "tune (trial 3)");
  const std::string message = JsonString(Job(p, "tune (trial 3)"), "message");
  CHECK(absl::StartsWith(message, "stopped early: loss "));
  CHECK(absl::EndsWith(message, " of 2 other trials at that step"));
  CHECK(MUST(c.QueryInt(absl::StrCat(
            "SELECT count(*) FROM sweep_stops WHERE job_id = ", trial3,
            " AND value = 3.0::float8 / step AND median = (1.0::float8 / step + 2.0::float8 / "
            "step) / 2 AND others = 2"))) == 1);
  // Its command was ended by the stop, not by running out: it is gone, and wrote no model.
  const pid_t slow = static_cast<pid_t>(std::atoi(testing::ReadFileOrEmpty(pid_file).c_str()));
  REQUIRE(slow > 1);
  CHECK((::kill(slow, 0) == -1 && errno == ESRCH));
  CHECK(MUST(c.QueryInt(absl::StrCat("SELECT count(*) FROM train_metrics WHERE job_id = ", trial3,
                                     " AND step > 60"))) == 0);

  // The best is trial 4 (lr 0.5, loss 0.05 at step 10); its model alone is registered.
  json::object s =
      MUST(c.ApiObject("GET", absl::StrCat("/api/v1/pipelines/", pipeline_id, "/sweeps")));
  const json::object& sweep = s.at("sweeps").as_array().at(0).as_object();
  CHECK(JsonString(sweep, "name") == "tune");
  CHECK(sweep.at("planned").as_int64() == 4);
  CHECK(sweep.at("concluded").as_bool());
  CHECK(sweep.at("best").at("trial").as_int64() == 4);
  CHECK(sweep.at("best").at("job_id").as_int64() == JobId(p, "tune (trial 4)"));
  CHECK(sweep.at("model") == json::value{{"name", "sweepy"}, {"version", 1}});
  const json::array& trials = sweep.at("trials").as_array();
  REQUIRE(trials.size() == 4);
  std::vector<std::string> marks;
  for (const json::value& t : trials) {
    marks.push_back(absl::StrCat(json::serialize(t.at("params")), " best=", t.at("best").as_bool(),
                                 " stopped=", t.at("stopped_early").as_bool(),
                                 " step=", json::serialize(t.at("step"))));
  }
  CHECK(marks[0] == R"({"lr":1} best=0 stopped=0 step=10)");
  CHECK(marks[1] == R"({"lr":2} best=0 stopped=0 step=10)");
  CHECK(absl::StartsWith(marks[2], R"({"lr":3} best=0 stopped=1 step=)"));
  CHECK(marks[3] == R"({"lr":5E-1} best=1 stopped=0 step=10)");
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM model_versions")) == 1);
  json::object v = MUST(c.ApiObject("GET", "/api/v1/models/sweepy/versions/1"));
  CHECK(v.at("source").at("job_id").as_int64() == JobId(p, "tune (trial 4)"));
  CHECK(v.at("params") == json::value{{"lr", 0.5}, {"pid_file", pid_file}});
  CHECK(v.at("tags").at("sweep") == "tune");
  CHECK(v.at("tags").at("sweep_trial") == "4");
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM model_versions WHERE (metrics->>'loss')::float8 = "
                        "0.5::float8 / 10")) == 1);

  // `ship` promoted that version to staging.
  json::object m = MUST(c.ApiObject("GET", "/api/v1/models/sweepy"));
  INFO(json::serialize(m));
  CHECK(m.at("aliases").at("staging").as_int64() == 1);

  // The CLI: the sweep's line and a row per trial, the best marked.
  CommandResult cli = MUST(c.RunCli({"sweep", std::to_string(pipeline_id)}));
  INFO(cli.out << cli.err);
  CHECK(cli.exit_code == 0);
  CHECK(absl::StartsWith(
      cli.out, absl::StrCat("sweep tune: grid, minimize loss; best trial 4 (job ",
                            JobId(p, "tune (trial 4)"), "), registered as sweepy version 1\n")));
  CHECK(absl::StrContains(cli.out, "stopped\n"));
  CHECK(absl::StrContains(cli.out, "lr=0.5"));
  CHECK(absl::EndsWith(cli.out, "*\n"));
  CommandResult none = MUST(c.RunCli({"sweep", "999999"}));
  CHECK(none.exit_code == 1);
  CommandResult usage = MUST(c.RunCli({"sweep"}));
  CHECK(usage.exit_code == 2);
  CHECK(absl::StrContains(usage.err, "'assay sweep' needs one PIPELINE_ID"));
}

}  // namespace
}  // namespace assay::e2e
