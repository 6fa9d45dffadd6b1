// End to end: nothing accepted is lost. An agent killed mid-job loses its lease and the job runs
// again elsewhere, with exactly one result recorded; a server restarted mid-job picks up where it
// was, and the agent's log and result arrive exactly once.

#include <signal.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_replace.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

// Waits until job `name` of the pipeline is 'running' and its log is exactly `log`.
int64_t WaitRunningWithLog(Cluster& c, int64_t pipeline_id, const std::string& name,
                           const std::string& log) {
  json::object p = MUST(c.WaitForJobState(pipeline_id, name, "running"));
  int64_t job_id = JobId(p, name);
  MUST(
      c.WaitUntil(absl::StrCat("job ", job_id, "'s log to be '", log, "'"), [&](std::string& seen) {
        auto got = c.JobLog(job_id);
        seen = got.ok() ? "log '" + *got + "'" : std::string(got.status().message());
        return got.ok() && *got == log;
      }));
  return job_id;
}

TEST_CASE("a job whose agent is SIGKILLed runs again on another agent, one result recorded",
          "[e2e]") {
  Cluster c(Options({"--lease", "2s", "--heartbeat-interval", "300ms"}));
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  testing::Process* first = MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));

  // Attempt 1 prints, then sleeps (exec'd, so the sleep keeps the shell's pid and its parent-death
  // signal); attempt 2 finishes at once.
  const std::string pid_file = c.dir() + "/attempt-1.pid";
  const std::string pipeline_file = absl::StrReplaceAll(R"yml(jobs:
  work:
    steps:
      - name: work
        run: |
          echo "attempt $ASSAY_ATTEMPT on $ASSAY_AGENT_NAME"
          if [ "$ASSAY_ATTEMPT" = 1 ]; then echo $$ > PID_FILE; exec sleep 5; fi
          echo done
)yml",
                                                        {{"PID_FILE", pid_file}});
  int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", pipeline_file}});
  int64_t job_id = WaitRunningWithLog(c, pipeline_id, "work", "attempt 1 on a1\n");
  MUST(c.WaitUntil("the pid file of attempt 1", [&](std::string& seen) {
    seen = testing::ReadFileOrEmpty(pid_file);
    return !seen.empty() && seen.back() == '\n';
  }));

  first->Kill(SIGKILL);
  REQUIRE(first->Wait(absl::Seconds(10)) == 128 + SIGKILL);
  // Why: the sleep should die with the agent (parent-death signal); make sure of it, since it is
  // not this test's subject.
  pid_t sleeper = static_cast<pid_t>(std::atoi(testing::ReadFileOrEmpty(pid_file).c_str()));
  REQUIRE(sleeper > 1);  // never kill(0) or kill(-1)
  ::kill(sleeper, SIGKILL);

  // Started after the kill, so attempt 1 can only have been a1's.
  MUST(c.StartAgent("a2"));
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "succeeded");
  json::object job = Job(p, "work");
  CHECK(JsonString(job, "state") == "succeeded");
  CHECK(job.at("attempt").as_int64() == 2);
  CHECK(JsonString(job, "agent") == "a2");
  CHECK(job.at("exit_code").as_int64() == 0);
  CHECK(job.at("message").is_null());

  // The log is attempt 2's alone.
  CHECK(MUST(c.JobLog(job_id)) == "attempt 2 on a2\ndone\n");

  auto attempts =
      MUST(c.Query("SELECT a.attempt, a.state, g.name, coalesce(a.exit_code::text, 'null'), "
                   "coalesce(a.message, 'null') FROM job_attempts a "
                   "JOIN agents g ON g.id = a.agent_id ORDER BY a.job_id, a.attempt"));
  REQUIRE(attempts.size() == 2);
  CHECK(*attempts[0][0] == "1");
  CHECK(*attempts[0][1] == "lost");
  CHECK(*attempts[0][2] == "a1");
  CHECK(*attempts[0][3] == "null");
  CHECK(*attempts[0][4] == "agent lost: lease expired");
  CHECK(*attempts[1][0] == "2");
  CHECK(*attempts[1][1] == "succeeded");
  CHECK(*attempts[1][2] == "a2");
  CHECK(*attempts[1][3] == "0");
  CHECK(*attempts[1][4] == "null");
  // Exactly one result: one attempt with an exit code; attempt 1's log stays as it was.
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts WHERE exit_code IS NOT NULL")) == 1);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM log_chunks WHERE attempt = 1 AND "
                        "convert_from(data, 'UTF8') = 'attempt 1 on a1\n'")) == 1);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM log_chunks WHERE attempt = 1")) == 1);
}

TEST_CASE("a server restarted mid-job resumes it: one attempt, every log line once", "[e2e]") {
  // The default 30 s lease outlives the restart, so the running attempt stays valid.
  Cluster c(Options({"--heartbeat-interval", "300ms"}));
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));

  const std::string pipeline_file = R"yml(jobs:
  slow:
    steps:
      - run: |
          echo before
          sleep 3
          echo after
)yml";
  int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", pipeline_file}});
  int64_t job_id = WaitRunningWithLog(c, pipeline_id, "slow", "before\n");

  MUST(c.StopServer(SIGTERM));
  CHECK(c.server()->Wait(absl::ZeroDuration()) == 0);  // a clean shutdown
  MUST(c.StartServer());                               // same ports, database and data dir

  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "succeeded");
  json::object job = Job(p, "slow");
  CHECK(JsonString(job, "state") == "succeeded");
  CHECK(job.at("attempt").as_int64() == 1);
  CHECK(JsonString(job, "agent") == "a1");
  CHECK(job.at("exit_code").as_int64() == 0);
  CHECK(MUST(c.JobLog(job_id)) == "before\nafter\n");
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts")) == 1);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts WHERE attempt = 1 AND "
                        "state = 'succeeded' AND exit_code = 0")) == 1);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM pipelines")) == 1);
}

}  // namespace
}  // namespace assay::e2e
