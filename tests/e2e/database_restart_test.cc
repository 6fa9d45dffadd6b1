// End to end: PostgreSQL stopped without a checkpoint (pg_ctl stop -m immediate) and started
// again mid-run. Afterwards dispatching resumes, every job succeeds exactly once, and every log
// holds every line exactly once (chunks sent while the database was down are not lost).
//
// The test runs its own PostgreSQL (tests/support/pg_server.h): it stops the server it
// uses, which must not be the tier's shared one.

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "tests/e2e/e2e.h"
#include "tests/support/pg_server.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

constexpr int kJobs = 20;
constexpr int kLines = 80;  // 8 s a job: some end while the database is down, some after

std::string JobName(int i) { return absl::StrCat("j", i < 10 ? "0" : "", i); }

std::string ExpectedLog(int i) {
  std::string out;
  for (int l = 1; l <= kLines; ++l) absl::StrAppend(&out, JobName(i), " line ", l, "\n");
  return out;
}

TEST_CASE("PostgreSQL killed and restarted mid-run: every job succeeds once, no log line lost",
          "[e2e][recovery]") {
  std::unique_ptr<testing::PgServer> pg = MUST(testing::PgServer::Create());
  {
    ClusterOptions o = Options({"--heartbeat-interval", "500ms"});
    o.admin_dsn = pg->admin_dsn();
    Cluster c(o);
    MUST(c.StartServer());
    GitRepo repo = MakeRepo(c);
    MUST(c.StartAgent("a1", {"--slots", "3"}));
    MUST(c.StartAgent("a2", {"--slots", "3"}));
    MUST(c.WaitForAgents(2));

    std::string file = "jobs:\n";
    for (int i = 1; i <= kJobs; ++i) {
      absl::StrAppend(&file, "  ", JobName(i), ":\n    steps:\n      - run: for i in $(seq 1 ",
                      kLines, "); do echo \"", JobName(i), " line $i\"; sleep 0.1; done\n");
    }
    const int64_t pid = PushFiles(c, repo, {{".assay.yml", file}});
    MUST(c.WaitUntil("a job to succeed while others run", [&](std::string& seen) {
      auto q = c.Query(
          absl::StrCat("SELECT count(*) FILTER (WHERE state = 'succeeded'), "
                       "count(*) FILTER (WHERE state = 'running') FROM jobs WHERE pipeline_id = ",
                       pid));
      if (!q.ok()) {
        seen = std::string(q.status().message());
        return false;
      }
      seen = absl::StrCat((*q)[0][0].value_or(""), " succeeded, ", (*q)[0][1].value_or(""),
                          " running");
      return (*q)[0][0] != "0" && std::atoi((*q)[0][1].value_or("0").c_str()) >= 4;
    }));
    absl::SleepFor(absl::Seconds(1));  // the running jobs are mid-output

    MUST(pg->StopImmediate());
    // Jobs keep printing (and finishing) while the database is down.
    absl::SleepFor(absl::Seconds(3));
    MUST(pg->Start());

    MUST(c.WaitUntil(
        "the pipeline to finish",
        [&](std::string& seen) {
          auto q = c.Query(
              absl::StrCat("SELECT state, (SELECT string_agg(state, ',' ORDER BY name) FROM jobs "
                           "WHERE pipeline_id = ",
                           pid, ") FROM pipelines WHERE id = ", pid));
          if (!q.ok() || q->empty()) {
            seen = q.ok() ? "no pipeline" : std::string(q.status().message());
            return false;
          }
          seen = absl::StrCat((*q)[0][0].value_or("NULL"), ": ", (*q)[0][1].value_or("NULL"));
          return (*q)[0][0] != "running";
        },
        absl::Minutes(3)));
    json::object p = MUST(c.ApiObject("GET", absl::StrCat("/api/v1/pipelines/", pid)));
    INFO(json::serialize(p) << "\n" << c.LogTails());
    CHECK(JsonString(p, "state") == "succeeded");
    for (int i = 1; i <= kJobs; ++i) {
      const int64_t job = JobId(p, JobName(i));
      CHECK(JsonString(Job(p, JobName(i)), "state") == "succeeded");
      CHECK(MUST(c.QueryInt(absl::StrCat("SELECT count(*) FROM job_attempts WHERE job_id = ", job,
                                         " AND state = 'succeeded'"))) == 1);
      CHECK(MUST(c.JobLog(job)) == ExpectedLog(i));
    }
  }
}

TEST_CASE(
    "PostgreSQL killed and restarted while a job prints: the lines printed meanwhile "
    "are kept",
    "[e2e][recovery]") {
  std::unique_ptr<testing::PgServer> pg = MUST(testing::PgServer::Create());
  {
    ClusterOptions o = Options({"--heartbeat-interval", "500ms"});
    o.admin_dsn = pg->admin_dsn();
    Cluster c(o);
    MUST(c.StartServer());
    GitRepo repo = MakeRepo(c);
    MUST(c.StartAgent("a1"));
    MUST(c.WaitForAgents(1));
    // One job that outlives the outage: its result arrives when the database is back.
    const std::string marker = c.dir() + "/printing";
    const int64_t pid = PushFiles(
        c, repo,
        {{".assay.yml",
          absl::StrCat("jobs:\n  long:\n    steps:\n      - run: touch ", marker,
                       "; for i in $(seq 1 200); do echo \"line $i\"; sleep 0.1; done\n")}});
    MUST(c.WaitUntil("the job to print", [&](std::string& seen) {
      const bool started = std::filesystem::exists(marker);
      seen = started ? "started" : "not started";
      return started;
    }));
    absl::SleepFor(absl::Seconds(1));
    MUST(pg->StopImmediate());
    absl::SleepFor(absl::Seconds(3));
    MUST(pg->Start());
    json::object p = MUST(c.WaitForPipelineDone(pid));
    INFO(json::serialize(p) << "\n" << c.LogTails());
    CHECK(JsonString(p, "state") == "succeeded");
    std::string want;
    for (int l = 1; l <= 200; ++l) absl::StrAppend(&want, "line ", l, "\n");
    const int64_t job = JobId(p, "long");
    CHECK(MUST(c.QueryInt(absl::StrCat("SELECT count(*) FROM job_attempts WHERE job_id = ", job,
                                       " AND state = 'succeeded'"))) == 1);
    CHECK(MUST(c.JobLog(job)) == want);
  }
}

}  // namespace
}  // namespace assay::e2e
