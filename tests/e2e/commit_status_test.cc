// Commit statuses end to end: a real server and agent, and a local HTTP server standing in for the
// forge's API that records exactly what it received (GitHub, GitLab, Gitea), answers from a script,
// or is not there at all.
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/crypto/crypto.h"
#include "server/http/http_server.h"
#include "tests/e2e/e2e.h"
#include "tests/unit/tls_test_server.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

// The stand-in forge listens on 127.0.0.1 (and is reached as localhost): the servers of these
// tests allowlist exactly those (issue 8 refuses loopback API hosts otherwise).
ClusterOptions ForgeOptions(std::vector<std::string> flags = {}) {
  flags.insert(flags.end(), {"--allow-private-hosts", "127.0.0.1,localhost"});
  return Options(std::move(flags));
}

// The forge API stand-in: records every request, answers from `script` (then 201).
class ForgeApi {
 public:
  explicit ForgeApi(std::deque<int> script = {})
      : script_(std::move(script)),
        server_(http::ServerOptions{}, [this](http::Request& r) { return Handle(r); }) {
    REQUIRE(server_.Start().ok());
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(server_.port()); }
  std::vector<http::Request> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  // Waits (bounded) until at least `n` requests have arrived; FAILs with `c`'s logs otherwise.
  std::vector<http::Request> WaitForRequests(Cluster& c, size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(30), [&] { return requests_.size() >= n; })) {
      std::ostringstream got;
      for (const auto& r : requests_) got << r.method << " " << r.target << " " << r.body << "\n";
      FAIL("the forge got " << requests_.size() << " request(s), expected " << n << ":\n"
                            << got.str() << c.LogTails());
    }
    return requests_;
  }

 private:
  http::Response Handle(http::Request& r) {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(r);
    cv_.notify_all();
    http::Response resp;
    resp.status = script_.empty() ? 201 : script_.front();
    if (!script_.empty()) script_.pop_front();
    resp.body = resp.status == 201 ? R"({"id":1})" : R"({"message":"try again"})";
    return resp;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> script_;
  std::vector<http::Request> requests_;
  http::Server server_;
};

// A pipeline file whose one job waits for <dir>/gate before it ends with `exit_code`, so that the
// test sees the pending status before the final one.
std::string GatedPipeline(const std::string& dir, int exit_code) {
  return absl::StrCat("jobs:\n  build:\n    steps:\n      - run: while [ ! -e ", dir,
                      "/gate ]; do sleep 0.02; done; echo done; exit ", exit_code, "\n");
}

void OpenGate(const std::string& dir) { std::ofstream(dir + "/gate") << "go\n"; }

int64_t AddRepo(Cluster& c, const std::string& name, const std::string& provider,
                const std::string& url) {
  json::object body{
      {"name", name}, {"clone_url", url}, {"provider", provider}, {"webhook_secret", kSecret}};
  json::object repo = MUST(c.ApiObject("POST", "/api/v1/repos", json::serialize(body)));
  return repo.at("id").as_int64();
}

void PutCommitStatus(Cluster& c, int64_t repo_id, json::object body) {
  auto r = MUST(c.Api("PUT", absl::StrCat("/api/v1/repos/", repo_id, "/commit-status"),
                      json::serialize(body)));
  INFO(r.body);
  REQUIRE(r.status == 200);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every server log written so far.
std::string ServerLogs(Cluster& c) {
  std::string all;
  for (int i = 1; i <= 4; ++i) all += ReadFile(absl::StrCat(c.dir(), "/server-", i, ".log"));
  return all;
}

using Headers = std::vector<std::pair<std::string, std::string>>;

// The request's headers named in `want`, in `want`'s order, with the values received.
Headers Picked(const http::Request& r, const Headers& want) {
  Headers got;
  for (const auto& [name, value] : want) got.emplace_back(name, r.Header(name));
  return got;
}

std::string Metric(Cluster& c, const std::string& line_prefix) {
  auto m = MUST(c.Fetch("GET", "/metrics"));
  for (absl::string_view line : absl::StrSplit(m.body, '\n')) {
    if (absl::StartsWith(line, line_prefix)) return std::string(line);
  }
  return "";
}

TEST_CASE(
    "commit status: GitHub gets pending, then success, set up with the CLI, the token is "
    "never logged",
    "[e2e][commit-status]") {
  ForgeApi forge;
  Cluster c(ForgeOptions({"--public-url", "https://ci.example.com/", "--log-level", "debug"}));
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  const std::string token = "ghp_e2eSecretToken0123456789";
  std::ofstream(c.dir() + "/token") << token << "\n";
  auto set = MUST(c.RunCli({"repo", "commit-status", kRepoName, "--api-url", forge.base(),
                            "--token-file", c.dir() + "/token"}));
  INFO(set.err);
  REQUIRE(set.exit_code == 0);
  CHECK(set.out == "commit statuses for acme/app: on (" + forge.base() +
                       ", repository acme/app, context assay)\n");

  json::object listed = MUST(c.ApiObject("GET", "/api/v1/repos"));
  CHECK(listed.at("repos").as_array().at(0).as_object().at("commit_status") ==
        json::value({{"api_url", forge.base()},
                     {"has_token", true},
                     {"repository", "acme/app"},
                     {"context", "assay"}}));

  const std::string sha = MUST(repo.Commit({{".assay.yml", GatedPipeline(c.dir(), 0)}}));
  int64_t delivery =
      MUST(c.Push(Cluster::PushPayload(repo.clone_url(), kRepoName, sha), "d-1", kSecret));
  int64_t pid = MUST(c.WaitForPipelineOf(delivery));

  auto first = forge.WaitForRequests(c, 1);
  const Headers want_headers = {{"Accept", "application/vnd.github+json"},
                                {"Authorization", "Bearer " + token},
                                {"Content-Type", "application/json"},
                                {"X-GitHub-Api-Version", "2022-11-28"}};
  const std::string target_url = absl::StrCat("https://ci.example.com/api/v1/pipelines/", pid);
  CHECK(first[0].method == "POST");
  CHECK(first[0].target == "/repos/acme/app/statuses/" + sha);
  CHECK(Picked(first[0], want_headers) == want_headers);
  CHECK(json::parse(first[0].body) ==
        json::value({{"state", "pending"},
                     {"target_url", target_url},
                     {"description", absl::StrCat("Assay: pipeline ", pid, " is running")},
                     {"context", "assay"}}));

  OpenGate(c.dir());
  json::object p = MUST(c.WaitForPipelineDone(pid));
  CHECK(JsonString(p, "state") == "succeeded");
  auto all = forge.WaitForRequests(c, 2);
  REQUIRE(all.size() == 2);
  CHECK(all[1].method == "POST");
  CHECK(all[1].target == "/repos/acme/app/statuses/" + sha);
  CHECK(Picked(all[1], want_headers) == want_headers);
  CHECK(json::parse(all[1].body) ==
        json::value({{"state", "success"},
                     {"target_url", target_url},
                     {"description", absl::StrCat("Assay: pipeline ", pid, " succeeded")},
                     {"context", "assay"}}));
  MUST(c.WaitUntil("two statuses counted as delivered", [&](std::string& seen) {
    seen = Metric(c, "assay_commit_statuses_total{result=\"delivered\"}");
    return seen == "assay_commit_statuses_total{result=\"delivered\"} 2";
  }));

  // The token is sealed at rest, never shown, never logged.
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM repos WHERE status_token_enc IS NOT NULL AND "
                        "position('" +
                        token + "'::bytea in status_token_enc) = 0")) == 1);
  CHECK_FALSE(absl::StrContains(MUST(c.Api("GET", "/api/v1/repos")).body, token));
  CHECK_FALSE(absl::StrContains(ServerLogs(c), token));

  // --off turns reporting off.
  auto off = MUST(c.RunCli({"repo", "commit-status", kRepoName, "--off"}));
  CHECK(off.exit_code == 0);
  CHECK(off.out == "commit statuses for acme/app: off\n");
  listed = MUST(c.ApiObject("GET", "/api/v1/repos"));
  CHECK(listed.at("repos").as_array().at(0).as_object().at("commit_status").is_null());
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM repos WHERE status_token_enc IS NULL AND "
                        "status_api_url IS NULL")) == 1);
}

TEST_CASE("commit status: GitLab gets pending, then failed for a failing job",
          "[e2e][commit-status]") {
  ForgeApi forge;
  Cluster c(ForgeOptions({"--public-url", "http://ci.local:8080"}));
  MUST(c.StartServer());
  GitRepo repo = MUST(GitRepo::Init(c.dir() + "/repo"));
  int64_t repo_id = AddRepo(c, "group/sub/app", "gitlab", repo.clone_url());
  PutCommitStatus(
      c, repo_id,
      {{"api_url", forge.base() + "/"}, {"token", "glpat-e2e-token"}, {"context", "ci/assay"}});
  MUST(c.StartAgent("a1"));
  const std::string sha = MUST(repo.Commit({{".assay.yml", GatedPipeline(c.dir(), 3)}}));
  json::object payload{
      {"object_kind", "push"},
      {"ref", "refs/heads/main"},
      {"before", std::string(40, '0')},
      {"after", sha},
      {"checkout_sha", sha},
      {"project", {{"path_with_namespace", "group/sub/app"}, {"git_http_url", repo.clone_url()}}},
      {"commits", json::array{}},
      {"total_commits_count", 0}};
  auto hook = MUST(c.Fetch("POST", "/hooks/gitlab",
                           {{"X-Gitlab-Event", "Push Hook"},
                            {"X-Gitlab-Event-UUID", "u-1"},
                            {"X-Gitlab-Token", kSecret},
                            {"Content-Type", "application/json"}},
                           json::serialize(payload)));
  REQUIRE(hook.status == 202);
  int64_t pid =
      MUST(c.WaitForPipelineOf(json::parse(hook.body).as_object().at("delivery").as_int64()));

  const Headers want_headers = {{"PRIVATE-TOKEN", "glpat-e2e-token"},
                                {"Content-Type", "application/json"}};
  const std::string target = "/api/v4/projects/group%2Fsub%2Fapp/statuses/" + sha;
  const std::string target_url = absl::StrCat("http://ci.local:8080/api/v1/pipelines/", pid);
  auto first = forge.WaitForRequests(c, 1);
  CHECK(first[0].method == "POST");
  CHECK(first[0].target == target);
  CHECK(Picked(first[0], want_headers) == want_headers);
  CHECK(first[0].Header("Authorization") == "");
  CHECK(json::parse(first[0].body) ==
        json::value({{"state", "pending"},
                     {"name", "ci/assay"},
                     {"target_url", target_url},
                     {"description", absl::StrCat("Assay: pipeline ", pid, " is running")}}));
  OpenGate(c.dir());
  json::object p = MUST(c.WaitForPipelineDone(pid));
  CHECK(JsonString(p, "state") == "failed");
  auto all = forge.WaitForRequests(c, 2);
  REQUIRE(all.size() == 2);
  CHECK(all[1].target == target);
  CHECK(Picked(all[1], want_headers) == want_headers);
  CHECK(json::parse(all[1].body) ==
        json::value({{"state", "failed"},
                     {"name", "ci/assay"},
                     {"target_url", target_url},
                     {"description", absl::StrCat("Assay: pipeline ", pid, " failed")}}));
}

TEST_CASE("commit status: Gitea answers 500 twice, then 201: delivered on the third try",
          "[e2e][commit-status]") {
  ForgeApi forge({500, 500, 201});
  Cluster c(ForgeOptions({"--commit-status-backoff", "50ms"}));
  MUST(c.StartServer());
  GitRepo repo = MUST(GitRepo::Init(c.dir() + "/repo"));
  int64_t repo_id = AddRepo(c, "org-app", "gitea", repo.clone_url());
  // The repo's name here is not owner/name: the forge's name is given.
  PutCommitStatus(
      c, repo_id,
      {{"api_url", forge.base()}, {"token", "gitea-e2e-token"}, {"repository", "org/app"}});
  MUST(c.StartAgent("a1"));
  const std::string sha = MUST(repo.Commit({{".assay.yml", GatedPipeline(c.dir(), 0)}}));
  const std::string body = Cluster::PushPayload(repo.clone_url(), "org-app", sha);
  auto hook = MUST(c.Fetch("POST", "/hooks/gitea",
                           {{"X-Gitea-Event", "push"},
                            {"X-Gitea-Delivery", "g-1"},
                            {"X-Gitea-Signature", HexEncode(HmacSha256(kSecret, body))},
                            {"Content-Type", "application/json"}},
                           body));
  INFO(hook.body);
  REQUIRE(hook.status == 202);
  int64_t pid =
      MUST(c.WaitForPipelineOf(json::parse(hook.body).as_object().at("delivery").as_int64()));

  const Headers want_headers = {{"Accept", "application/json"},
                                {"Authorization", "token gitea-e2e-token"},
                                {"Content-Type", "application/json"}};
  const std::string target = "/api/v1/repos/org/app/statuses/" + sha;
  auto tries = forge.WaitForRequests(c, 3);
  REQUIRE(tries.size() == 3);
  for (const auto& r : tries) {
    CHECK(r.method == "POST");
    CHECK(r.target == target);
    CHECK(Picked(r, want_headers) == want_headers);
    CHECK(json::parse(r.body) ==
          json::value({{"state", "pending"},
                       {"description", absl::StrCat("Assay: pipeline ", pid, " is running")},
                       {"context", "assay"}}));
  }
  OpenGate(c.dir());
  CHECK(JsonString(MUST(c.WaitForPipelineDone(pid)), "state") == "succeeded");
  auto all = forge.WaitForRequests(c, 4);
  REQUIRE(all.size() == 4);
  CHECK(json::parse(all[3].body) ==
        json::value({{"state", "success"},
                     {"description", absl::StrCat("Assay: pipeline ", pid, " succeeded")},
                     {"context", "assay"}}));
  MUST(c.WaitUntil("two delivered, two retries in /metrics", [&](std::string& seen) {
    seen = Metric(c, "assay_commit_statuses_total{result=\"delivered\"}") + " / " +
           Metric(c, "assay_commit_status_retries_total");
    return seen ==
           "assay_commit_statuses_total{result=\"delivered\"} 2 / "
           "assay_commit_status_retries_total 2";
  }));
}

TEST_CASE(
    "commit status: with the forge down the pipeline still finishes and the server stays "
    "healthy",
    "[e2e][commit-status]") {
  std::string dead;
  {
    ForgeApi gone;
    dead = gone.base();
  }  // stopped: its port refuses connections
  Cluster c(ForgeOptions({"--commit-status-attempts", "2", "--commit-status-backoff", "20ms"}));
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  json::object repos = MUST(c.ApiObject("GET", "/api/v1/repos"));
  PutCommitStatus(c, repos.at("repos").as_array().at(0).as_object().at("id").as_int64(),
                  {{"api_url", dead}, {"token", "unreachable-forge-token"}});
  MUST(c.StartAgent("a1"));
  int64_t pid =
      PushFiles(c, repo, {{".assay.yml", "jobs:\n  build:\n    steps:\n      - run: echo fine\n"}});
  json::object p = MUST(c.WaitForPipelineDone(pid));
  CHECK(JsonString(p, "state") == "succeeded");
  CHECK(MUST(c.JobLog(JobId(p, "build"))) == "fine\n");
  MUST(c.WaitUntil("the final status given up", [&](std::string& seen) {
    seen = ServerLogs(c);
    return absl::StrContains(
        seen, absl::StrCat("commit status github acme/app@", JsonString(p, "commit_sha"),
                           " success failed after 2 attempt(s): POST ", dead,
                           "/repos/acme/app/statuses/"));
  }));
  auto health = MUST(c.Fetch("GET", "/healthz"));
  CHECK(health.status == 200);
  // Given up for now, not for good: still queued, tried again at the next poll.
  CHECK(MUST(c.QueryInt(absl::StrCat("SELECT count(*) FROM commit_status_outbox WHERE ",
                                     "pipeline_id = ", pid, " AND state = 'succeeded'"))) == 1);
  // The server keeps working: the next push runs too.
  int64_t pid2 =
      PushFiles(c, repo, {{".assay.yml", "jobs:\n  build:\n    steps:\n      - run: echo again\n"}},
                "delivery-2");
  CHECK(JsonString(MUST(c.WaitForPipelineDone(pid2)), "state") == "succeeded");
  CHECK_FALSE(absl::StrContains(ServerLogs(c), "unreachable-forge-token"));
}

TEST_CASE(
    "commit status: an https forge with a private CA, trusted through "
    "--commit-status-ca-file",
    "[e2e][commit-status]") {
  const tls_test::Certs& certs = tls_test::TestCerts();
  tls_test::TlsServer forge(certs.path("leaf.pem"), certs.path("leaf.key"));
  Cluster c(ForgeOptions({"--commit-status-ca-file", certs.path("ca.pem")}));
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  json::object repos = MUST(c.ApiObject("GET", "/api/v1/repos"));
  const std::string api_url = absl::StrCat("https://localhost:", forge.port(), "/api/v3");
  PutCommitStatus(c, repos.at("repos").as_array().at(0).as_object().at("id").as_int64(),
                  {{"api_url", api_url}, {"token", "ghe-token"}});
  MUST(c.StartAgent("a1"));
  int64_t pid =
      PushFiles(c, repo, {{".assay.yml", "jobs:\n  build:\n    steps:\n      - run: echo fine\n"}});
  json::object p = MUST(c.WaitForPipelineDone(pid));
  CHECK(JsonString(p, "state") == "succeeded");
  // The final status arrives over TLS (a pending one may come first, if it was claimed in time).
  MUST(c.WaitUntil("the success status over https", [&](std::string& seen) {
    auto got = forge.seen();
    seen = got.empty() ? "nothing" : got.back().body;
    return !got.empty() && absl::StrContains(got.back().body, "\"state\":\"success\"");
  }));
  auto got = forge.seen();
  CHECK(got.back().sni == "localhost");
  CHECK(got.back().method == "POST");
  CHECK(got.back().target == "/api/v3/repos/acme/app/statuses/" + JsonString(p, "commit_sha"));
  CHECK(json::parse(got.back().body) ==
        json::value({{"state", "success"},
                     {"description", absl::StrCat("Assay: pipeline ", pid, " succeeded")},
                     {"context", "assay"}}));
}

TEST_CASE("commit status: the server refuses to start with an unreadable CA file",
          "[e2e][commit-status]") {
  Cluster c(Options({"--commit-status-ca-file", "/nonexistent/ca.pem"}));
  absl::Status s = c.StartServer();
  CHECK_FALSE(s.ok());
  CHECK(absl::StrContains(ServerLogs(c),
                          "--commit-status-ca-file: cannot load CA file '/nonexistent/ca.pem': "
                          "No such file or directory"));
}

TEST_CASE("commit status API: exact errors for bad input, nothing written, DELETE turns it off",
          "[e2e][commit-status]") {
  Cluster c(Options());
  MUST(c.StartServer());
  int64_t gh = AddRepo(c, "acme/app", "github", "https://github.com/acme/app.git");
  int64_t plain = AddRepo(c, "plain", "gitea", "https://git.example/x/plain.git");
  auto put = [&](int64_t id, const std::string& body) {
    return MUST(c.Api("PUT", absl::StrCat("/api/v1/repos/", id, "/commit-status"), body));
  };
  auto message = [](const HttpClientResponse& r) {
    return std::string(
        json::parse(r.body).as_object().at("error").as_object().at("message").as_string());
  };
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"api_url":"https://api.github.com"})", "field 'token' is required and must be a string"},
      {R"({"token":"t"})", "field 'api_url' is required and must be a string"},
      {R"({"api_url":"ftp://x","token":"t"})",
       "field 'api_url' must be an http:// or https:// URL without query or fragment, e.g. "
       "https://api.github.com"},
      {R"({"api_url":"https://x?a=b","token":"t"})",
       "field 'api_url' must be an http:// or https:// URL without query or fragment, e.g. "
       "https://api.github.com"},
      {R"({"api_url":"https://x","token":""})", "field 'token' must not be empty"},
      {R"({"api_url":"https://x","token":"a\nb"})",
       "field 'token' must not contain control characters"},
      {R"({"api_url":"https://x","token":"t","repository":"a/b/c"})",
       "field 'repository' must be owner/name for github, got 'a/b/c'"},
      {R"({"api_url":"https://x","token":"t","context":""})",
       "field 'context' must be 1 to 100 characters without control characters"},
      {R"({"api_url":"https://x","token":"t","secret":"s"})",
       "unknown field 'secret' (allowed: api_url, token, repository, context)"},
  };
  for (const auto& [body, want] : bad) {
    INFO(body);
    auto r = put(gh, body);
    CHECK(r.status == 400);
    CHECK(message(r) == want);
  }
  auto not_owner = put(plain, R"({"api_url":"https://x","token":"t"})");
  CHECK(not_owner.status == 400);
  CHECK(message(not_owner) ==
        "repository name 'plain' is not owner/name: set field 'repository' to the gitea "
        "repository's owner/name");
  auto missing = put(999, R"({"api_url":"https://x","token":"t"})");
  CHECK(missing.status == 404);
  CHECK(message(missing) == "repository 999 does not exist");
  auto unauthenticated = MUST(c.Fetch("PUT", absl::StrCat("/api/v1/repos/", gh, "/commit-status"),
                                      {}, R"({"api_url":"https://x","token":"t"})"));
  CHECK(unauthenticated.status == 401);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM repos WHERE status_api_url IS NOT NULL OR "
                        "status_token_enc IS NOT NULL")) == 0);

  auto ok = put(gh, R"({"api_url":"https://api.github.com/","token":"ghp_x"})");
  REQUIRE(ok.status == 200);
  json::object repo = json::parse(ok.body).as_object();
  CHECK(repo.at("commit_status") == json::value({{"api_url", "https://api.github.com"},
                                                 {"has_token", true},
                                                 {"repository", "acme/app"},
                                                 {"context", "assay"}}));
  CHECK_FALSE(absl::StrContains(ok.body, "ghp_x"));
  auto del = MUST(c.Api("DELETE", absl::StrCat("/api/v1/repos/", gh, "/commit-status")));
  CHECK(del.status == 200);
  CHECK(json::parse(del.body).as_object().at("commit_status").is_null());
  auto del_missing = MUST(c.Api("DELETE", "/api/v1/repos/999/commit-status"));
  CHECK(del_missing.status == 404);
  auto cli_missing = MUST(c.RunCli({"repo", "commit-status", "nope", "--off"}));
  CHECK(cli_missing.exit_code == 1);
  CHECK(cli_missing.err == "assay: no repository named 'nope'\n");
}

}  // namespace
}  // namespace assay::e2e

namespace assay::e2e {
namespace {

// Issue 8, item 6: an api_url may not make the server call loopback, link-local, private or
// shared addresses (SSRF against itself, a cloud metadata service, the internal network), nor
// carry the token over plain http, unless --allow-private-hosts lists the host.
TEST_CASE("commit status API: non-public API hosts and plain http are refused by default",
          "[e2e][commit-status][security]") {
  Cluster c(Options());
  MUST(c.StartServer());
  int64_t gh = AddRepo(c, "acme/app", "github", "https://github.com/acme/app.git");
  auto refusal = [](const std::string& host, const std::string& addr, const std::string& kind) {
    return "field 'api_url': host '" + host + "' resolves to " + addr + ", a " + kind +
           " address; refused unless allowed by --allow-private-hosts";
  };
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"https://127.0.0.1", refusal("127.0.0.1", "127.0.0.1", "loopback")},
      {"https://169.254.169.254/latest",
       refusal("169.254.169.254", "169.254.169.254", "link-local")},
      {"https://10.1.2.3:8443/api", refusal("10.1.2.3", "10.1.2.3", "private")},
      {"https://100.64.0.1", refusal("100.64.0.1", "100.64.0.1", "shared (CGNAT)")},
      {"https://[::1]:8443", refusal("::1", "::1", "loopback")},
      {"https://0.0.0.0", refusal("0.0.0.0", "0.0.0.0", "unspecified")},
      {"http://api.github.com",
       "field 'api_url': plain http:// to 'api.github.com' is refused: use https://, or allow the "
       "host with --allow-private-hosts"},
      {"https://u:p@api.github.com",
       "field 'api_url' must not contain credentials (use field "
       "'token')"},
  };
  for (const auto& [url, want] : bad) {
    INFO(url);
    auto r = MUST(c.Api("PUT", absl::StrCat("/api/v1/repos/", gh, "/commit-status"),
                        json::serialize(json::object{{"api_url", url}, {"token", "t"}})));
    CHECK(r.status == 400);
    CHECK(json::parse(r.body).as_object().at("error").as_object().at("message").as_string() ==
          want);
  }
  // A name that resolves to loopback (whichever family the resolver lists first).
  auto local = MUST(c.Api("PUT", absl::StrCat("/api/v1/repos/", gh, "/commit-status"),
                          R"({"api_url":"https://localhost:8443","token":"t"})"));
  CHECK(local.status == 400);
  const std::string message(
      json::parse(local.body).as_object().at("error").as_object().at("message").as_string());
  CHECK((message == refusal("localhost", "127.0.0.1", "loopback") ||
         message == refusal("localhost", "::1", "loopback")));
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM repos WHERE status_api_url IS NOT NULL")) == 0);
}

TEST_CASE("commit status: the API host is checked again when a status is sent",
          "[e2e][commit-status][security]") {
  ForgeApi forge;
  Cluster c(ForgeOptions({"--commit-status-attempts", "1"}));
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  json::object repos = MUST(c.ApiObject("GET", "/api/v1/repos"));
  PutCommitStatus(c, repos.at("repos").as_array().at(0).as_object().at("id").as_int64(),
                  {{"api_url", forge.base()}, {"token", "metadata-token"}});
  // As a row written before the check existed (or by hand) would hold it.
  MUST(c.Query("UPDATE repos SET status_api_url = 'https://169.254.169.254/api'"));
  MUST(c.StartAgent("a1"));
  int64_t pid =
      PushFiles(c, repo, {{".assay.yml", "jobs:\n  build:\n    steps:\n      - run: echo ok\n"}});
  json::object p = MUST(c.WaitForPipelineDone(pid));
  MUST(c.WaitUntil("the status refused at send time", [&](std::string& seen) {
    seen = ServerLogs(c);
    return absl::StrContains(
        seen, absl::StrCat("commit status github acme/app@", JsonString(p, "commit_sha"),
                           " success failed after 1 attempt(s): POST "
                           "https://169.254.169.254/api/repos/acme/app/statuses/",
                           JsonString(p, "commit_sha"),
                           ": host '169.254.169.254' resolves to 169.254.169.254, a link-local "
                           "address; refused unless allowed by --allow-private-hosts"));
  }));
  CHECK(forge.requests().empty());
  CHECK_FALSE(absl::StrContains(ServerLogs(c), "metadata-token"));
}

}  // namespace
}  // namespace assay::e2e
