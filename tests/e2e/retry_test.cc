// Retry and re-run (issue 11) through the CLI, against a real server, PostgreSQL, git and agent:
// a failed job runs again and the job it blocked runs after it; a canceled pipeline's jobs run
// again in place; a re-run is a new pipeline of the same commit. Each pipeline shows its
// commit's author and message.
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

// `flaky` fails until FLAG exists (then prints "found"); `after` needs it.
std::string FlakyFile(const std::string& flag) {
  return absl::StrReplaceAll(R"yml(jobs:
  flaky:
    steps:
      - run: test -e FLAG && echo found
  after:
    needs: [flaky]
    steps:
      - run: echo after ran
)yml",
                             {{"FLAG", flag}});
}

TEST_CASE(
    "a failed job is retried, the job it blocked runs after it, and a re-run is a new "
    "pipeline of the same commit",
    "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string flag = c.dir() + "/flag";
  const int64_t id = PushFiles(c, repo, {{".assay.yml", FlakyFile(flag)}});
  json::object p = MUST(c.WaitForPipelineDone(id));
  INFO(json::serialize(p));
  REQUIRE(JsonString(p, "state") == "failed");
  CHECK(JsonString(Job(p, "flaky"), "state") == "failed");
  CHECK(JsonString(Job(p, "after"), "state") == "skipped");
  CHECK(JsonString(p, "commit_author") == "Assay Test <test@assay.invalid>");
  CHECK(JsonString(p, "commit_message") == "test commit");
  CHECK(p.at("rerun_of").is_null());
  const int64_t flaky = JobId(p, "flaky"), after = JobId(p, "after");
  const int64_t planned = Job(p, "flaky").at("max_attempts").as_int64();

  // Refused, with the reason: a skipped job, a job that does not exist, a finished pipeline
  // with nothing to retry (below), a running pipeline.
  auto skipped = MUST(c.RunCli({"retry", std::to_string(after)}));
  CHECK(skipped.exit_code == 1);
  CHECK(absl::StrContains(skipped.err, absl::StrCat("job ", after,
                                                    " was skipped (skipped: a job "
                                                    "it needs did not succeed)")));
  auto missing = MUST(c.RunCli({"retry", "999999"}));
  CHECK(missing.exit_code == 1);
  CHECK(absl::StrContains(missing.err, "job 999999 does not exist"));
  auto bad = MUST(c.RunCli({"retry", "x1"}));
  CHECK(bad.exit_code == 1);

  std::ofstream(flag) << "";
  auto retried = MUST(c.RunCli({"retry", std::to_string(flaky)}));
  INFO(retried.out << retried.err);
  REQUIRE(retried.exit_code == 0);
  CHECK(retried.out == absl::StrCat("retried job ", flaky, " (flaky)\n"));
  p = MUST(c.WaitForPipelineDone(id));
  INFO(json::serialize(p));
  REQUIRE(JsonString(p, "state") == "succeeded");
  CHECK(Job(p, "flaky").at("attempt").as_int64() == 2);
  CHECK(Job(p, "flaky").at("max_attempts").as_int64() == 1 + planned);
  CHECK(JsonString(Job(p, "after"), "state") == "succeeded");
  CHECK(MUST(c.JobLog(flaky)) == "found\n");
  CHECK(MUST(c.JobLog(after)) == "after ran\n");

  auto nothing = MUST(c.RunCli({"retry", "--pipeline", std::to_string(id)}));
  CHECK(nothing.exit_code == 1);
  CHECK(absl::StrContains(nothing.err, absl::StrCat("pipeline ", id,
                                                    " (succeeded) has no failed or canceled "
                                                    "job to retry; re-run it for a new pipeline")));

  auto rerun = MUST(c.RunCli({"rerun", std::to_string(id)}));
  INFO(rerun.out << rerun.err);
  REQUIRE(rerun.exit_code == 0);
  const int64_t second = id + 1;
  CHECK(rerun.out == absl::StrCat("pipeline ", second, " re-runs pipeline ", id, "\n"));
  json::object q = MUST(c.WaitForPipelineDone(second));
  INFO(json::serialize(q));
  CHECK(JsonString(q, "state") == "succeeded");
  CHECK(q.at("rerun_of").as_int64() == id);
  CHECK(JsonString(q, "commit_sha") == JsonString(p, "commit_sha"));
  CHECK(JsonString(q, "ref") == JsonString(p, "ref"));
  CHECK(JsonString(q, "event") == "push");
  CHECK(JsonString(q, "commit_message") == "test commit");
  CHECK(q.at("delivery_id").is_null());
  CHECK(Job(q, "flaky").at("attempt").as_int64() == 1);
}

TEST_CASE("retrying a canceled pipeline runs its canceled jobs again in place", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--kill-grace", "5s"}));
  MUST(c.WaitForAgents(1));
  const std::string flag = c.dir() + "/flag";
  const int64_t id = PushFiles(c, repo,
                               {{".assay.yml", absl::StrReplaceAll(R"yml(jobs:
  long:
    steps:
      - run: if [ -e FLAG ]; then echo done; else exec sleep 300; fi
  after:
    needs: [long]
    steps:
      - run: echo after ran
)yml",
                                                                   {{"FLAG", flag}})}});
  MUST(c.WaitForJobState(id, "long", "running"));
  auto running = MUST(c.RunCli({"retry", "--pipeline", std::to_string(id)}));
  CHECK(running.exit_code == 1);
  CHECK(absl::StrContains(running.err, absl::StrCat("pipeline ", id, " is still running")));
  json::object p = MUST(c.ApiObject("GET", absl::StrCat("/api/v1/pipelines/", id)));
  auto not_done = MUST(c.RunCli({"retry", std::to_string(JobId(p, "long"))}));
  CHECK(not_done.exit_code == 1);
  CHECK(absl::StrContains(not_done.err, "has not finished (running)"));

  REQUIRE(MUST(c.RunCli({"cancel", std::to_string(id)})).exit_code == 0);
  p = MUST(c.WaitForPipelineDone(id));
  INFO(json::serialize(p));
  REQUIRE(JsonString(p, "state") == "canceled");
  CHECK(JsonString(Job(p, "after"), "state") == "canceled");

  std::ofstream(flag) << "";
  auto retried = MUST(c.RunCli({"retry", "--pipeline", std::to_string(id)}));
  INFO(retried.out << retried.err);
  REQUIRE(retried.exit_code == 0);
  CHECK(retried.out == absl::StrCat("retried pipeline ", id, "\n"));
  p = MUST(c.WaitForPipelineDone(id));
  INFO(json::serialize(p));
  REQUIRE(JsonString(p, "state") == "succeeded");
  // An agent still reaping the canceled attempt may refuse the retried one: a refusal is
  // recorded as a 'rejected' attempt and costs no try, so the runs other than refusals are
  // the canceled one and the retry.
  const int64_t long_id = JobId(p, "long");
  const int64_t refused = MUST(c.QueryInt(absl::StrCat(
      "SELECT count(*) FROM job_attempts WHERE state = 'rejected' AND job_id = ", long_id)));
  CHECK(Job(p, "long").at("attempt").as_int64() == 2 + refused);
  CHECK(MUST(c.QueryInt(absl::StrCat("SELECT count(*) FROM job_attempts WHERE state <> "
                                     "'rejected' AND job_id = ",
                                     long_id))) == 2);
  CHECK(MUST(c.JobLog(long_id)) == "done\n");
  CHECK(MUST(c.JobLog(JobId(p, "after"))) == "after ran\n");
}

}  // namespace
}  // namespace assay::e2e
