// Cancel through the CLI. A pipeline (POST /api/v1/pipelines/{id}/cancel): the running job's
// process group is stopped, the job and its waiting dependents end 'canceled', and the agent's
// late result changes nothing. One job (POST /api/v1/jobs/{id}/cancel): its process group is
// stopped, its dependents are skipped, the rest of the pipeline runs on.
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

// A pipeline file whose job `long` starts a background and a foreground process (their pids
// written to PIDS/bg.pid and PIDS/fg.pid) and runs until stopped; `after` needs it. `extra`
// (more jobs, YAML) is appended.
std::string LongJobFile(const std::string& pids, const std::string& extra = "") {
  return absl::StrReplaceAll(R"yml(jobs:
  long:
    steps:
      - name: work
        run: |
          sleep 300 &
          echo $! > PIDS/bg.pid
          echo working
          sh -c 'echo $$ > PIDS/fg.pid; exec sleep 300'
  after:
    needs: [long]
    steps:
      - run: echo never
)yml",
                             {{"PIDS", pids}}) +
         extra;
}

void WaitForLongJobProcesses(Cluster& c, const std::string& pids) {
  MUST(c.WaitUntil("the job's processes to start", [&](std::string& seen) {
    seen = testing::ReadFileOrEmpty(pids + "/fg.pid");
    return !seen.empty();
  }));
}

// Both processes of `long` are gone, and the agent has reported the canceled attempt with
// exactly its output and the TERM line.
void CheckLongJobStopped(Cluster& c, const std::string& pids, int64_t job) {
  for (const char* name : {"bg.pid", "fg.pid"}) {
    pid_t child =
        static_cast<pid_t>(std::atoi(testing::ReadFileOrEmpty(pids + "/" + name).c_str()));
    REQUIRE(child > 1);
    MUST(c.WaitUntil(
        absl::StrCat("pid ", child, " (", name, ") to be gone"),
        [&](std::string& seen) {
          seen = testing::PidExists(child) ? "still exists" : "gone";
          return !testing::PidExists(child);
        },
        absl::Seconds(10)));
  }
  MUST(c.WaitUntil("the agent's report of the canceled attempt", [&](std::string& seen) {
    auto log = c.JobLog(job);
    seen = log.ok() ? *log : "";
    return absl::StrContains(seen, "sent SIGTERM");
  }));
  CHECK(MUST(c.JobLog(job)) == "working\nassay: job canceled; sent SIGTERM to the process group\n");
}

TEST_CASE("canceling a pipeline stops its running job's process tree", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--kill-grace", "5s"}));
  MUST(c.WaitForAgents(1));
  const std::string pids = c.dir();
  int64_t pid = PushFiles(c, repo, {{".assay.yml", LongJobFile(pids)}});
  MUST(c.WaitForJobState(pid, "long", "running"));
  WaitForLongJobProcesses(c, pids);

  auto cancel = MUST(c.RunCli({"cancel", std::to_string(pid)}));
  INFO(cancel.out << cancel.err);
  CHECK(cancel.exit_code == 0);

  json::object p = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "canceled");
  CHECK(JsonString(Job(p, "long"), "state") == "canceled");
  CHECK(JsonString(Job(p, "long"), "message") == "canceled by request");
  CHECK(JsonString(Job(p, "after"), "state") == "canceled");
  CHECK(Job(p, "after").at("attempt").as_int64() == 0);
  // The agent reports the canceled attempt; the log says why it stopped, the row stays canceled.
  CheckLongJobStopped(c, pids, JobId(p, "long"));
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM jobs WHERE state = 'canceled'")) == 2);
  // Canceling again is refused with the reason.
  auto again = MUST(c.RunCli({"cancel", std::to_string(pid)}));
  CHECK(again.exit_code == 1);
  CHECK(again.err == absl::StrCat("assay: 409 failed_precondition: pipeline ", pid,
                                  " has already finished (canceled)\n"));
}

TEST_CASE("canceling one running job stops its process tree and skips its dependents", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--kill-grace", "5s", "--slots", "2"}));
  MUST(c.WaitForAgents(1));
  const std::string pids = c.dir();
  const int64_t pid = PushFiles(c, repo, {{".assay.yml", LongJobFile(pids, R"yml(  other:
    steps:
      - run: echo other ran
)yml")}});
  json::object p = MUST(c.WaitForJobState(pid, "long", "running"));
  WaitForLongJobProcesses(c, pids);
  const int64_t job = JobId(p, "long");

  auto cancel = MUST(c.RunCli({"cancel", "--job", std::to_string(job)}));
  INFO(cancel.out << cancel.err);
  CHECK(cancel.exit_code == 0);
  CHECK(cancel.out == absl::StrCat("cancel requested for job ", job, "\n"));

  p = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "canceled");
  CHECK(JsonString(Job(p, "long"), "state") == "canceled");
  CHECK(JsonString(Job(p, "long"), "message") == "canceled by request");
  CHECK(JsonString(Job(p, "after"), "state") == "skipped");
  CHECK(JsonString(Job(p, "after"), "message") == "skipped: a job it needs did not succeed");
  CHECK(JsonString(Job(p, "other"), "state") == "succeeded");
  CheckLongJobStopped(c, pids, job);
  CHECK(MUST(c.QueryInt(absl::StrCat("SELECT count(*) FROM job_attempts WHERE job_id = ", job,
                                     " AND state = 'canceled'"))) == 1);
}

}  // namespace
}  // namespace assay::e2e
