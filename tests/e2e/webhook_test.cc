// End to end: webhook intake. What is refused leaves no trace in the database; what is accepted is
// stored once, however often it is delivered; bad pipeline files give a pipeline in 'error' with a
// message that says where.

#include <string>

#include "common/crypto/crypto.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

// The {"error": {"code", "message"}} of an error answer, as "code: message".
std::string ErrorOf(const HttpClientResponse& r) {
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error") ||
      !v.as_object().at("error").is_object()) {
    return "not an error body: " + r.body;
  }
  const json::object& e = v.as_object().at("error").as_object();
  return JsonString(e, "code") + ": " + JsonString(e, "message");
}

int64_t Rows(Cluster& c, const std::string& table) {
  return MUST(c.QueryInt("SELECT count(*) FROM " + table));
}

TEST_CASE("a webhook with a bad or missing signature is refused and stores nothing", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  std::string sha = MUST(repo.Commit({{".assay.yml", "jobs:\n  a:\n    steps: [echo a]\n"}}));
  const std::string body = Cluster::PushPayload(repo.clone_url(), kRepoName, sha);

  struct Case {
    const char* what;
    std::optional<std::string> signature;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"missing", std::nullopt, "bad_signature: X-Hub-Signature-256: signature header is missing"},
      {"wrong secret", Cluster::GithubSignature("not-the-secret", body),
       "bad_signature: X-Hub-Signature-256: signature does not match the body"},
      {"signature of another body", Cluster::GithubSignature(kSecret, body + " "),
       "bad_signature: X-Hub-Signature-256: signature does not match the body"},
      {"no prefix", HexEncode(HmacSha256(kSecret, body)),
       R"(bad_signature: X-Hub-Signature-256: signature must start with "sha256=")"},
      {"not hex", "sha256=" + std::string(64, 'z'),
       "bad_signature: X-Hub-Signature-256: signature is not hexadecimal"},
  };
  for (const Case& k : cases) {
    INFO(k.what);
    HttpClientResponse r = MUST(c.PostGithub(body, "delivery-1", k.signature));
    CHECK(r.status == 401);
    CHECK(ErrorOf(r) == k.error);
  }
  CHECK(Rows(c, "webhook_deliveries") == 0);
  CHECK(Rows(c, "pipelines") == 0);
  CHECK(Rows(c, "jobs") == 0);

  // The refused attempts did not use up the delivery id: the genuine delivery is accepted.
  int64_t delivery = MUST(c.Push(body, "delivery-1", kSecret));
  MUST(c.WaitForPipelineOf(delivery));
  CHECK(Rows(c, "webhook_deliveries") == 1);
  CHECK(Rows(c, "pipelines") == 1);
}

TEST_CASE("a delivery sent twice makes one delivery row and one pipeline", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  std::string sha = MUST(repo.Commit({{".assay.yml", "jobs:\n  a:\n    steps: [echo once]\n"}}));
  const std::string body = Cluster::PushPayload(repo.clone_url(), kRepoName, sha);

  int64_t delivery = MUST(c.Push(body, "dup-1", kSecret));
  HttpClientResponse again =
      MUST(c.PostGithub(body, "dup-1", Cluster::GithubSignature(kSecret, body)));
  CHECK(again.status == 202);
  CHECK(again.body == absl::StrCat(R"({"delivery":)", delivery, R"(,"status":"duplicate"})"));

  int64_t pipeline_id = MUST(c.WaitForPipelineOf(delivery));
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "succeeded");
  CHECK(MUST(c.JobLog(JobId(p, "a"))) == "once\n");

  // Once more after the pipeline finished: still a duplicate, nothing new runs.
  HttpClientResponse late =
      MUST(c.PostGithub(body, "dup-1", Cluster::GithubSignature(kSecret, body)));
  CHECK(late.status == 202);
  CHECK(late.body == absl::StrCat(R"({"delivery":)", delivery, R"(,"status":"duplicate"})"));
  CHECK(Rows(c, "webhook_deliveries") == 1);
  CHECK(Rows(c, "pipelines") == 1);
  CHECK(Rows(c, "jobs") == 1);
  CHECK(Rows(c, "job_attempts") == 1);
}

TEST_CASE("a request body over --body-limit-mb is answered 413 and stores nothing", "[e2e]") {
  Cluster c(Options({"--body-limit-mb", "1"}));
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  std::string sha = MUST(repo.Commit({{".assay.yml", "jobs:\n  a:\n    steps: [echo a]\n"}}));
  json::object payload =
      json::parse(Cluster::PushPayload(repo.clone_url(), kRepoName, sha)).as_object();
  payload["padding"] = std::string(2 * 1024 * 1024, 'x');
  const std::string body = json::serialize(payload);
  REQUIRE(body.size() > 2 * 1024 * 1024);

  HttpClientResponse r = MUST(c.PostGithub(body, "big-1", Cluster::GithubSignature(kSecret, body)));
  CHECK(r.status == 413);
  CHECK(ErrorOf(r) == "payload_too_large: request body exceeds the limit of 1048576 bytes");
  CHECK(Rows(c, "webhook_deliveries") == 0);
  CHECK(Rows(c, "pipelines") == 0);

  // The server is still serving.
  HttpClientResponse health = MUST(c.Fetch("GET", "/healthz"));
  CHECK(health.status == 200);
}

TEST_CASE("a pipeline file with an unknown key gives a pipeline in error with the lint message",
          "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));

  const std::string bad = R"yml(jobs:
  build:
    steps:
      - run: echo hi
    retries: 3
)yml";
  const std::string lint_message =
      ".assay.yml:5:5: jobs.build.retries: unknown key 'retries' "
      "(allowed keys: needs, env, timeout, steps, if, retry, allow_failure, concurrency, priority, "
      "strategy, runs_on)";
  int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", bad}});
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "error");
  CHECK(JsonString(p, "message") == lint_message);
  CHECK(p.at("jobs").as_array().empty());
  CHECK(Rows(c, "jobs") == 0);

  // `assay lint` on the same file prints the same message, and exits 1.
  CommandResult lint = MUST(c.RunCli({"lint", ".assay.yml"}, repo.dir()));
  CHECK(lint.exit_code == 1);
  CHECK(lint.out == lint_message + "\n");
  CHECK(lint.err == "");

  // Fixed, it lints clean and the next push runs.
  const std::string good = R"yml(jobs:
  build:
    steps:
      - run: echo hi
  test:
    needs: [build]
    steps: [echo test]
)yml";
  int64_t fixed_id = PushFiles(c, repo, {{".assay.yml", good}}, "delivery-2");
  CommandResult ok = MUST(c.RunCli({"lint", ".assay.yml"}, repo.dir()));
  CHECK(ok.exit_code == 0);
  CHECK(ok.out == ".assay.yml: ok (2 jobs)\n");
  CHECK(ok.err == "");
  json::object fixed = MUST(c.WaitForPipelineDone(fixed_id));
  CHECK(JsonString(fixed, "state") == "succeeded");
}

TEST_CASE(
    "a pipeline file with several problems: every one in the message, the API's errors "
    "and assay lint, the near miss of a missing key first",
    "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  const std::string bad = R"yml(jobs:
  build:
    timeout: 10x
    stepz:
      - run: echo hi
)yml";
  // Before: ".assay.yml:2:3: jobs.build.steps: missing required key 'steps' (and 2 more
  // errors)", the typo hidden.
  const std::vector<std::string> lines = {
      ".assay.yml:4:5: jobs.build.stepz: unknown key 'stepz' (did you mean 'steps'?)",
      ".assay.yml:2:3: jobs.build.steps: missing required key 'steps'",
      ".assay.yml:3:14: jobs.build.timeout: invalid duration \"10x\": expected a number "
      "followed by s, m or h (e.g. 30s, 10m, 1h30m)"};
  int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", bad}});
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "error");
  CHECK(JsonString(p, "message") == lines[0] + "\n" + lines[1] + "\n" + lines[2]);
  json::array want;
  for (const auto& l : lines) want.push_back(json::value(l));
  CHECK(json::serialize(p.at("errors")) == json::serialize(want));
  CHECK(Rows(c, "jobs") == 0);

  CommandResult lint = MUST(c.RunCli({"lint", ".assay.yml"}, repo.dir()));
  CHECK(lint.exit_code == 1);
  CHECK(lint.out == lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\n");
  CHECK(lint.err == "");
}

TEST_CASE("a commit without .assay.yml gives a pipeline in error saying so", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  std::string sha = MUST(repo.Commit({{"README", "no pipeline here\n"}}));
  int64_t delivery =
      MUST(c.Push(Cluster::PushPayload(repo.clone_url(), kRepoName, sha), "delivery-1", kSecret));
  int64_t pipeline_id = MUST(c.WaitForPipelineOf(delivery));
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "error");
  CHECK(JsonString(p, "message") == ".assay.yml: no such file at commit " + sha.substr(0, 12));
  CHECK(json::serialize(p.at("errors")) ==
        "[\".assay.yml: no such file at commit " + sha.substr(0, 12) + "\"]");
  CHECK(JsonString(p, "commit_sha") == sha);
  CHECK(p.at("jobs").as_array().empty());
  CHECK(Rows(c, "jobs") == 0);
}

}  // namespace
}  // namespace assay::e2e
