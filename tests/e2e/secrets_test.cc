// Repository secrets end to end (issue 9, docs/secrets.md): set with the CLI and the API,
// delivered as an environment variable and a 0400 file, masked in the stored log (also base64
// and multi-line), environment values over repository-wide ones, a missing secret failing its
// job by name, a fork's pull request getting none, and the API's write-only and hostile-input
// answers.

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

constexpr char kApiKey[] = "s3cr3t-api-key-value";
constexpr char kCert[] = "line-one-aaaa\nline-two-bbbb";

HttpClientResponse PutSecret(Cluster& c, const std::string& path, const json::object& body) {
  return MUST(c.Api("PUT", path, json::serialize(body)));
}

TEST_CASE("secrets: env and file delivery, masked log, environment override, missing secret",
          "[e2e][secrets]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--slots", "2"}));
  MUST(c.WaitForAgents(1));

  // The CLI reads the value from stdin (one trailing newline dropped) or a file (exact).
  CommandResult set =
      MUST(c.RunCli({"secret", "set", kRepoName, "API_KEY"}, "", std::string(kApiKey) + "\n"));
  INFO(set.out << set.err);
  REQUIRE(set.exit_code == 0);
  CHECK(set.out == "secret API_KEY of acme/app: created\n");
  {
    std::ofstream f(c.dir() + "/cert.pem", std::ios::binary);
    f << kCert;
  }
  set = MUST(c.RunCli({"secret", "set", kRepoName, "CERT", "--from-file", c.dir() + "/cert.pem"}));
  CHECK(set.exit_code == 0);
  set = MUST(c.RunCli({"secret", "set", kRepoName, "API_KEY", "--environment", "staging"}, "",
                      "staging-api-key-value"));
  CHECK(set.out == "secret API_KEY of acme/app (environment staging): created\n");
  // Never from argv.
  CommandResult argv = MUST(c.RunCli({"secret", "set", kRepoName, "X", "--value", "abcdef"}));
  CHECK(argv.exit_code == 2);
  CHECK(argv.err ==
        "assay: --value would show the secret in the process list; pipe it to stdin or use "
        "--from-file F\nRun 'assay --help' for usage.\n");
  CommandResult list = MUST(c.RunCli({"secret", "list", kRepoName}));
  CHECK(list.exit_code == 0);
  CHECK(list.out.find(kApiKey) == std::string::npos);
  CHECK(list.out.substr(0, list.out.find('\n')) == "NAME     ENVIRONMENT  UPDATED");

  const std::string file = R"yml(jobs:
  use:
    secrets: [API_KEY, {name: CERT, as: file}]
    steps:
      - run: |
          echo "key=$API_KEY"
          printf %s "$API_KEY" | base64
          echo "mode=$(stat -c %a "$CERT_FILE")"
          cat "$CERT_FILE"; echo
          echo "path=$CERT_FILE"
          printf %s "$API_KEY" | cut -c1-6
          printf %s "${API_KEY%value}"; sleep 0.5; printf 'value\n'
  staged:
    environment: staging
    secrets: [API_KEY]
    steps:
      - run: test "$API_KEY" = staging-api-key-value && echo "staged $API_KEY"
  missing:
    secrets: [API_KEY, NOPE]
    steps:
      - run: echo never
)yml";
  const int64_t pid = PushFiles(c, repo, {{".assay.yml", file}});
  json::object p = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(Job(p, "use"), "state") == "succeeded");
  CHECK(JsonString(Job(p, "staged"), "state") == "succeeded");
  CHECK(JsonString(Job(p, "missing"), "state") == "failed");
  CHECK(JsonString(Job(p, "missing"), "message") == "secrets: NOPE: no such secret in repo 1");

  const std::string log = MUST(c.JobLog(JobId(p, "use")));
  const size_t path_at = log.find("path=");
  REQUIRE(path_at != std::string::npos);
  const std::string path = log.substr(path_at + 5, log.find('\n', path_at) - path_at - 5);
  // The last line reached the agent in two reads, half a second apart: masked all the same.
  CHECK(log == "key=***\n***\nmode=400\n***\npath=" + path + "\ns3cr3t\n***\n");
  CHECK(path.size() > 20);
  CHECK(path.substr(path.size() - 13) == ".secrets/CERT");
  CHECK(!std::filesystem::exists(path));  // removed with the job
  CHECK(!std::filesystem::exists(path.substr(0, path.size() - 5)));
  CHECK(MUST(c.JobLog(JobId(p, "staged"))) == "staged ***\n");
  CHECK(MUST(c.JobLog(JobId(p, "missing"))) == "assay: secrets: NOPE: no such secret in repo 1\n");
  // The server's own log never holds a value.
  CHECK(c.LogTails().find(kApiKey) == std::string::npos);

  // Removed: the next pipeline's job that lists it fails by name.
  CommandResult rm = MUST(c.RunCli({"secret", "rm", kRepoName, "CERT"}));
  CHECK(rm.out == "secret CERT of acme/app: removed\n");
  rm = MUST(c.RunCli({"secret", "rm", kRepoName, "CERT"}));
  CHECK(rm.exit_code == 1);
  CHECK(rm.err == "assay: 404 not_found: secret CERT does not exist in repo 1\n");
}

std::string ReadSource(const std::string& path) {
  std::ifstream in(std::string(ASSAY_SOURCE_DIR) + "/" + path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_CASE("secrets: a fork's pull request gets none, and its log says why", "[e2e][secrets]") {
  ClusterOptions options = Options();
  options.executors = "sandbox";  // an untrusted job runs only in a sandbox or a container
  Cluster c(options);
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("u1", {"--accept-untrusted"}));
  MUST(c.WaitForAgents(1));
  REQUIRE(PutSecret(c, "/api/v1/repos/1/secrets/API_KEY", {{"value", kApiKey}}).status == 201);
  MUST(repo.Commit({{".assay.yml", R"yml(on:
  pull_request: {}
jobs:
  check:
    secrets: [API_KEY, {name: OTHER, as: file}]
    steps:
      - run: echo "key=[$API_KEY] file=[${OTHER_FILE:-}]"
)yml"}}));
  const std::string sha = MUST(repo.CommitOnRef("refs/pull/7/head", {{"src.txt", "x\n"}}));
  json::object o =
      json::parse(ReadSource("tests/fixtures/github/pull_request-opened.json")).as_object();
  o["number"] = 7;
  json::object& pr = o["pull_request"].as_object();
  pr["number"] = 7;
  pr["head"].as_object()["sha"] = sha;
  pr["head"].as_object()["ref"] = "feature";
  pr["head"].as_object()["repo"].as_object()["full_name"] = "someone/app-fork";
  pr["base"].as_object()["ref"] = "main";
  pr["base"].as_object()["repo"].as_object()["full_name"] = kRepoName;
  o["repository"].as_object()["clone_url"] = repo.clone_url();
  o["repository"].as_object()["full_name"] = kRepoName;
  const std::string body = json::serialize(o);
  auto r =
      MUST(c.PostGithub(body, "pr-1", Cluster::GithubSignature(kSecret, body), "pull_request"));
  REQUIRE(r.status == 202);
  const int64_t pid =
      MUST(c.WaitForPipelineOf(json::parse(r.body).as_object().at("delivery").as_int64()));
  json::object p = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(p.at("trusted") == json::value(false));
  // OTHER does not even exist: an untrusted job is not told which secrets the repo has.
  CHECK(JsonString(Job(p, "check"), "state") == "succeeded");
  CHECK(MUST(c.JobLog(JobId(p, "check"))) ==
        "assay: secret API_KEY withheld: this pipeline is untrusted (a fork's pull request), "
        "and untrusted pipelines never get secrets\n"
        "assay: secret OTHER withheld: this pipeline is untrusted (a fork's pull request), and "
        "untrusted pipelines never get secrets\n"
        "key=[] file=[]\n");
}

TEST_CASE("secrets API: write-only, name and value rules, limits, auth", "[e2e][secrets]") {
  Cluster c(Options());
  MUST(c.StartServer());
  MakeRepo(c);
  auto put = [&](const std::string& name, const json::object& body) {
    return PutSecret(c, "/api/v1/repos/1/secrets/" + name, body);
  };
  auto error = [](const HttpClientResponse& r) {
    return json::parse(r.body).as_object().at("error").as_object().at("message").as_string();
  };
  HttpClientResponse r = put("HF_TOKEN", {{"value", "hf_abcdef"}});
  CHECK(r.status == 201);
  CHECK(json::parse(r.body) ==
        json::parse(R"({"name":"HF_TOKEN","environment":"","created":true})"));
  r = put("HF_TOKEN", {{"value", "hf_other"}});
  CHECK(r.status == 200);
  CHECK(r.body.find("hf_") == std::string::npos);
  r = put("HF_TOKEN", {{"value", "hf_prod_value"}, {"environment", "prod"}});
  CHECK(r.status == 201);

  // Listing: names, environments and dates; never a value, sealed or not.
  json::object l = MUST(c.ApiObject("GET", "/api/v1/repos/1/secrets"));
  const json::array& a = l.at("secrets").as_array();
  REQUIRE(a.size() == 2);
  CHECK(a[0].as_object().at("name") == "HF_TOKEN");
  CHECK(a[0].as_object().at("environment") == "");
  CHECK(a[1].as_object().at("environment") == "prod");
  for (const auto& item : a) {
    CHECK(item.as_object().size() == 4);  // name, environment, created_at, updated_at
  }
  CHECK(json::serialize(l).find("hf_") == std::string::npos);
  // At rest: sealed (the plain value appears nowhere in the row).
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM repo_secrets WHERE position('hf_other'::bytea "
                        "IN value_enc) > 0")) == 0);

  r = put("HF_TOKEN", {{"value", "abc"}});
  CHECK(r.status == 400);
  CHECK(error(r) ==
        "field 'value': secret value must be at least 4 characters (a shorter one cannot be "
        "masked in logs), got 3");
  r = put("HF_TOKEN", {{"value", std::string(64 * 1024 + 1, 'x')}});
  CHECK(r.status == 413);
  CHECK(error(r) == "field 'value' must be at most 65536 bytes, got 65537");
  r = put("HF_TOKEN", {{"value", std::string("ab\0cd", 5)}});
  CHECK(r.status == 400);
  CHECK(error(r) == "field 'value' must not contain a NUL character");
  r = put("PATH", {{"value", "abcdef"}});
  CHECK(r.status == 400);
  CHECK(error(r) == "secret name 'PATH' is reserved (a variable steps rely on)");
  r = put("ASSAY_X", {{"value", "abcdef"}});
  CHECK(error(r) == "secret name 'ASSAY_X' is reserved (names starting with ASSAY_ are)");
  r = put("A%3DB", {{"value", "abcdef"}});  // "A=B"
  CHECK(r.status == 400);
  CHECK(error(r) ==
        "secret name 'A=B' must be upper-case letters, digits and '_', not starting with a digit");
  r = put("A%00B", {{"value", "abcdef"}});  // NUL in the name
  CHECK(r.status == 400);
  r = put("HF_TOKEN", {{"value", "abcdef"}, {"environment", "../prod"}});
  CHECK(r.status == 400);
  r = put("HF_TOKEN", {{"value", "abcdef"}, {"extra", 1}});
  CHECK(r.status == 400);
  r = put("HF_TOKEN", {{"value", 12345}});
  CHECK(r.status == 400);
  r = PutSecret(c, "/api/v1/repos/99/secrets/HF_TOKEN", {{"value", "abcdef"}});
  CHECK(r.status == 404);
  CHECK(error(r) == "repository 99 does not exist");

  // Too many in one scope.
  for (int i = 0; i < 199; ++i) {
    REQUIRE(put("S" + std::to_string(i), {{"value", "value-" + std::to_string(i)}}).status == 201);
  }
  r = put("ONE_TOO_MANY", {{"value", "abcdef"}});
  CHECK(r.status == 409);
  CHECK(error(r) ==
        "repository 1 already has 200 secrets in its repository-wide scope (the limit is 200)");
  CHECK(put("S0", {{"value", "replaced"}}).status == 200);  // replacing one is fine

  // No token, a wrong one, a token for another purpose: 401, nothing changed.
  for (const std::string& auth :
       std::vector<std::string>{"", "Bearer wrong-token", "Bearer " + std::string(40, 'a')}) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!auth.empty()) headers.emplace_back("Authorization", auth);
    for (const char* method : {"GET", "PUT", "DELETE"}) {
      const std::string path = std::string("/api/v1/repos/1/secrets") +
                               (std::string(method) == "GET" ? "" : "/HF_TOKEN");
      HttpClientResponse u = MUST(c.Fetch(method, path, headers, R"({"value":"stolen-value"})"));
      INFO(method << " " << auth);
      CHECK(u.status == 401);
    }
  }
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM repo_secrets WHERE name = 'HF_TOKEN'")) == 2);

  r = MUST(c.Api("DELETE", "/api/v1/repos/1/secrets/HF_TOKEN?environment=prod"));
  CHECK(r.status == 204);
  r = MUST(c.Api("DELETE", "/api/v1/repos/1/secrets/HF_TOKEN?environment=prod"));
  CHECK(r.status == 404);
  CHECK(error(r) == "secret HF_TOKEN does not exist in environment 'prod' of repo 1");
}

}  // namespace
}  // namespace assay::e2e
