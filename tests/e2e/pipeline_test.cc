// End to end: a push runs its pipeline on a real agent; job order, failure, skipping and timeouts,
// as seen through the REST API, the database and the CLI.

#include <sys/types.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_replace.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

TEST_CASE("push runs a pipeline to success with the exact log bytes", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));

  // stdout and stderr share one pipe, so the log interleaves them in the order written; printf
  // without a newline shows that nothing is added or split into lines.
  const std::string pipeline_file = R"yml(jobs:
  build:
    env:
      GREETING: hello
    steps:
      - name: greet
        run: |
          echo "$GREETING from $ASSAY_JOB_NAME"
          echo "to stderr" >&2
          printf 'no newline'
      - name: check
        run: |
          printf ' / %s\n' "$(cat src/main.txt)"
)yml";
  int64_t pipeline_id =
      PushFiles(c, repo, {{".assay.yml", pipeline_file}, {"src/main.txt", "content"}});
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "succeeded");
  CHECK(p.at("message").is_null());
  json::object job = Job(p, "build");
  CHECK(JsonString(job, "state") == "succeeded");
  CHECK(job.at("attempt").as_int64() == 1);
  CHECK(JsonString(job, "agent") == "a1");
  CHECK(job.at("exit_code").as_int64() == 0);
  CHECK(job.at("message").is_null());

  const std::string expected = "hello from build\nto stderr\nno newline / content\n";
  int64_t job_id = job.at("id").as_int64();
  CHECK(MUST(c.JobLog(job_id)) == expected);

  CHECK(MUST(c.QueryInt(
            absl::StrCat("SELECT count(*) FROM job_attempts WHERE job_id = ", job_id,
                         " AND attempt = 1 AND state = 'succeeded' AND exit_code = 0"))) == 1);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts")) == 1);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM webhook_deliveries WHERE state = "
                        "'processed'")) == 1);

  // `assay logs` prints exactly the same bytes, and nothing on stderr.
  CommandResult logs = MUST(c.RunCli({"logs", std::to_string(job_id)}));
  CHECK(logs.exit_code == 0);
  CHECK(logs.out == expected);
  CHECK(logs.err == "");

  // An unknown job is a clear error, exit 1.
  CommandResult missing = MUST(c.RunCli({"logs", "999999"}));
  CHECK(missing.exit_code == 1);
  CHECK(missing.out == "");
  CHECK(missing.err.find("job 999999 does not exist") != std::string::npos);
}

TEST_CASE("a job with needs starts only after its dependency finished", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  // Two free agents: without the dependency both jobs could run at once.
  MUST(c.StartAgent("a1"));
  MUST(c.StartAgent("a2"));
  MUST(c.WaitForAgents(2));

  const std::string pipeline_file = R"yml(jobs:
  test:
    needs: [build]
    steps:
      - run: echo testing
  build:
    steps:
      - run: sleep 1; echo built
)yml";
  int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", pipeline_file}});
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "succeeded");
  json::object build = Job(p, "build");
  json::object test = Job(p, "test");
  CHECK(JsonString(build, "state") == "succeeded");
  CHECK(JsonString(test, "state") == "succeeded");
  CHECK(json::serialize(test.at("needs")) == R"(["build"])");
  CHECK(json::serialize(build.at("needs")) == "[]");
  CHECK(MUST(c.JobLog(build.at("id").as_int64())) == "built\n");
  CHECK(MUST(c.JobLog(test.at("id").as_int64())) == "testing\n");

  // The exact timestamps, from the database (microseconds, not the API's milliseconds).
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM jobs t, jobs b WHERE t.name = 'test' AND "
                        "b.name = 'build' AND t.queued_at >= b.finished_at AND "
                        "t.started_at >= b.finished_at AND b.finished_at IS NOT NULL")) == 1);
  // The API says the same.
  CHECK(JsonString(test, "started_at") >= JsonString(build, "finished_at"));
}

TEST_CASE("a failing step fails its job, skips its dependents and fails the pipeline", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));

  const std::string pipeline_file = R"yml(jobs:
  build:
    steps:
      - name: compile
        run: echo compiling; exit 3
      - name: never
        run: echo never
  test:
    needs: build
    steps:
      - run: echo test
  deploy:
    needs: [test]
    steps:
      - run: echo deploy
  lint:
    steps:
      - run: echo lint
)yml";
  int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", pipeline_file}});
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "failed");

  json::object build = Job(p, "build");
  CHECK(JsonString(build, "state") == "failed");
  CHECK(build.at("exit_code").as_int64() == 3);
  CHECK(JsonString(build, "message") == R"(step "compile" exited with code 3)");
  CHECK(MUST(c.JobLog(build.at("id").as_int64())) == "compiling\n");

  for (const char* name : {"test", "deploy"}) {
    json::object j = Job(p, name);
    INFO(name);
    CHECK(JsonString(j, "state") == "skipped");
    CHECK(JsonString(j, "message") == "skipped: a job it needs did not succeed");
    CHECK(j.at("attempt").as_int64() == 0);
    CHECK(j.at("exit_code").is_null());
    CHECK(MUST(c.JobLog(j.at("id").as_int64())) == "");
  }
  // A job that does not depend on the failure still runs.
  json::object lint = Job(p, "lint");
  CHECK(JsonString(lint, "state") == "succeeded");
  CHECK(MUST(c.JobLog(lint.at("id").as_int64())) == "lint\n");

  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts")) == 2);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts a JOIN jobs j ON j.id = a.job_id "
                        "WHERE j.name = 'build' AND a.state = 'failed' AND a.exit_code = 3 AND "
                        "a.message = 'step \"compile\" exited with code 3'")) == 1);
}

TEST_CASE("a job past its timeout is timed out and its whole process group is killed", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--kill-grace", "5s"}));
  MUST(c.WaitForAgents(1));

  // The pid files live outside the workspace, which the agent deletes after the job.
  const std::string pids = c.dir();
  const std::string pipeline_file = absl::StrReplaceAll(R"yml(jobs:
  hang:
    timeout: 2s
    steps:
      - name: hang
        run: |
          sleep 300 &
          echo $! > PIDS/bg.pid
          echo $$ > PIDS/sh.pid
          echo started
          sh -c 'echo $$ > PIDS/fg.pid; exec sleep 300'
)yml",
                                                        {{"PIDS", pids}});
  int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", pipeline_file}});
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "failed");
  json::object job = Job(p, "hang");
  CHECK(JsonString(job, "state") == "timed_out");
  CHECK(JsonString(job, "message") == R"(job timed out after 2s in step "hang")");
  CHECK(job.at("exit_code").as_int64() == 143);  // the shell, killed by SIGTERM
  CHECK(MUST(c.JobLog(job.at("id").as_int64())) ==
        "started\nassay: job timed out after 2s; sent SIGTERM to the process group\n");

  // Every process the step started is gone (reaped, not a zombie): the shell, the background sleep
  // and the foreground one.
  for (const char* name : {"sh.pid", "bg.pid", "fg.pid"}) {
    std::string text = testing::ReadFileOrEmpty(pids + "/" + name);
    pid_t child = static_cast<pid_t>(std::atoi(text.c_str()));
    INFO(name << " = '" << text << "'");
    REQUIRE(child > 1);
    MUST(c.WaitUntil(
        absl::StrCat("pid ", child, " (", name, ") to be gone"),
        [&](std::string& seen) {
          seen = testing::PidExists(child) ? "still exists" : "gone";
          return !testing::PidExists(child);
        },
        absl::Seconds(10)));
  }
}

}  // namespace
}  // namespace assay::e2e
