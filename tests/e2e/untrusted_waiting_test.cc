// An untrusted job (a fork's pull request, issue 9) is never run on the host: while only a
// host agent is connected, even one that accepts untrusted jobs, the job stays queued and the
// API's `waiting` says why; an agent with the sandbox executor then takes it.
#include <fstream>
#include <sstream>

#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

std::string ReadSource(const std::string& path) {
  std::ifstream in(std::string(ASSAY_SOURCE_DIR) + "/" + path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_CASE("an untrusted job waits while only a host agent is connected, and the API says why",
          "[e2e][untrusted]") {
  Cluster c(Options());  // agents get --executors host unless they say otherwise
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("host1", {"--accept-untrusted"}));
  MUST(c.WaitForAgents(1));
  MUST(repo.Commit({{".assay.yml", R"yml(on:
  pull_request: {}
jobs:
  check:
    steps:
      - run: echo "from the fork"
)yml"}}));
  const std::string sha = MUST(repo.CommitOnRef("refs/pull/9/head", {{"src.txt", "x\n"}}));
  json::object o =
      json::parse(ReadSource("tests/fixtures/github/pull_request-opened.json")).as_object();
  o["number"] = 9;
  json::object& pr = o["pull_request"].as_object();
  pr["number"] = 9;
  pr["head"].as_object()["sha"] = sha;
  pr["head"].as_object()["ref"] = "feature";
  pr["head"].as_object()["repo"].as_object()["full_name"] = "someone/app-fork";
  pr["base"].as_object()["ref"] = "main";
  pr["base"].as_object()["repo"].as_object()["full_name"] = kRepoName;
  o["repository"].as_object()["clone_url"] = repo.clone_url();
  o["repository"].as_object()["full_name"] = kRepoName;
  const std::string body = json::serialize(o);
  auto r =
      MUST(c.PostGithub(body, "pr-9", Cluster::GithubSignature(kSecret, body), "pull_request"));
  REQUIRE(r.status == 202);
  const int64_t pid =
      MUST(c.WaitForPipelineOf(json::parse(r.body).as_object().at("delivery").as_int64()));
  const json::object p = MUST(c.ApiObject("GET", "/api/v1/pipelines/" + std::to_string(pid)));
  INFO(json::serialize(p) << c.LogTails());
  REQUIRE(p.at("trusted") == json::value(false));
  const int64_t job = JobId(p, "check");

  const std::string why =
      "untrusted (fork pull request): no connected agent accepts untrusted jobs in a sandbox, "
      "and the host executor never runs them (start one with --accept-untrusted --executors "
      "sandbox)";
  std::string seen;
  MUST(c.WaitUntil("the job's waiting sentence", [&](std::string& observed) {
    auto j = c.ApiObject("GET", "/api/v1/jobs/" + std::to_string(job));
    if (!j.ok()) return false;
    seen = JsonString(*j, "state") + ": " + JsonString(*j, "waiting");
    observed = seen;
    return seen == "queued: " + why;
  }));
  // The host agent was offered nothing: the job is still queued, never started.
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts")) == 0);

  MUST(c.StartAgent("sandbox1", {"--accept-untrusted", "--executors", "sandbox"}));
  const json::object done = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(done) << c.LogTails());
  CHECK(JsonString(Job(done, "check"), "state") == "succeeded");
  CHECK(MUST(c.JobLog(job)) == "from the fork\n");
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts")) == 1);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts t JOIN agents a ON a.id = t.agent_id "
                        "WHERE a.name = 'sandbox1'")) == 1);
}

}  // namespace
}  // namespace assay::e2e
