// GitLab and Gitea/Forgejo webhooks end to end: token / HMAC checks, dedupe on the delivery
// header, and a push that runs its pipeline.
#include "absl/strings/match.h"
#include "common/crypto/crypto.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

constexpr char kFile[] = "jobs:\n  build:\n    steps:\n      - run: echo built $ASSAY_REF\n";

absl::StatusOr<HttpClientResponse> Post(Cluster& c, const std::string& path,
                                        std::vector<std::pair<std::string, std::string>> headers,
                                        const std::string& body) {
  headers.emplace_back("Content-Type", "application/json");
  return c.Fetch("POST", path, headers, body);
}

void AddRepo(Cluster& c, const std::string& name, const std::string& provider,
             const std::string& url) {
  json::object body{
      {"name", name}, {"clone_url", url}, {"provider", provider}, {"webhook_secret", kSecret}};
  auto r = MUST(c.Api("POST", "/api/v1/repos", json::serialize(body)));
  REQUIRE(r.status == 201);
}

int64_t DeliveryId(const HttpClientResponse& r) {
  return json::parse(r.body).as_object().at("delivery").as_int64();
}

TEST_CASE("a GitLab push hook with the right token runs, a wrong token stores nothing", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MUST(GitRepo::Init(c.dir() + "/repo"));
  AddRepo(c, "group/app", "gitlab", repo.clone_url());
  MUST(c.StartAgent("a1"));
  std::string sha = MUST(repo.Commit({{".assay.yml", kFile}}));
  json::object payload{
      {"object_kind", "push"},
      {"ref", "refs/heads/main"},
      {"before", std::string(40, '0')},
      {"after", sha},
      {"checkout_sha", sha},
      {"project", {{"path_with_namespace", "group/app"}, {"git_http_url", repo.clone_url()}}},
      {"commits", json::array{}},
      {"total_commits_count", 0}};
  const std::string body = json::serialize(payload);

  auto bad = MUST(Post(c, "/hooks/gitlab",
                       {{"X-Gitlab-Event", "Push Hook"},
                        {"X-Gitlab-Event-UUID", "u-1"},
                        {"X-Gitlab-Token", "wrong-token"}},
                       body));
  CHECK(bad.status == 401);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM webhook_deliveries")) == 0);

  std::vector<std::pair<std::string, std::string>> good = {
      {"X-Gitlab-Event", "Push Hook"}, {"X-Gitlab-Event-UUID", "u-1"}, {"X-Gitlab-Token", kSecret}};
  auto ok = MUST(Post(c, "/hooks/gitlab", good, body));
  REQUIRE(ok.status == 202);
  auto again = MUST(Post(c, "/hooks/gitlab", good, body));
  CHECK(again.status == 202);
  CHECK(json::parse(again.body).as_object().at("status").as_string() == "duplicate");
  int64_t pid = MUST(c.WaitForPipelineOf(DeliveryId(ok)));
  json::object p = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "succeeded");
  CHECK(MUST(c.JobLog(JobId(p, "build"))) == "built refs/heads/main\n");
  // The token is a secret: it is not among the stored headers.
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM webhook_deliveries WHERE headers::text ILIKE "
                        "'%gitlab-token%'")) == 0);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM webhook_deliveries")) == 1);
  // What /metrics says about these deliveries and jobs.
  auto metrics = MUST(c.Fetch("GET", "/metrics"));
  REQUIRE(metrics.status == 200);
  for (const char* line :
       {"assay_webhooks_received_total{provider=\"gitlab\",result=\"bad_signature\"} 1\n",
        "assay_webhooks_received_total{provider=\"gitlab\",result=\"accepted\"} 1\n",
        "assay_webhooks_received_total{provider=\"gitlab\",result=\"duplicate\"} 1\n",
        "assay_jobs{state=\"succeeded\"} 1\n", "assay_queue_depth 0\n",
        "assay_connected_agents 1\n", "assay_job_duration_seconds_count 1\n",
        "assay_dispatch_latency_seconds_count 1\n"}) {
    INFO(metrics.body);
    CHECK(absl::StrContains(metrics.body, line));
  }
}

TEST_CASE(
    "a Forgejo push signed with X-Forgejo-Signature runs, a GitHub hook for a Gitea "
    "repository is refused",
    "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MUST(GitRepo::Init(c.dir() + "/repo"));
  AddRepo(c, "org/app", "gitea", repo.clone_url());
  MUST(c.StartAgent("a1"));
  std::string sha = MUST(repo.Commit({{".assay.yml", kFile}}));
  const std::string body = Cluster::PushPayload(repo.clone_url(), "org/app", sha);

  auto wrong_forge = MUST(c.PostGithub(body, "g-1", Cluster::GithubSignature(kSecret, body)));
  // The same answer as an unknown repository or a bad signature (no oracle); the log says which.
  CHECK(wrong_forge.status == 401);
  CHECK(json::parse(wrong_forge.body).as_object().at("error").as_object().at("message") ==
        "webhook delivery could not be authenticated");

  const std::string sig = HexEncode(HmacSha256(kSecret, body));
  auto ok = MUST(Post(
      c, "/hooks/gitea",
      {{"X-Forgejo-Event", "push"}, {"X-Forgejo-Delivery", "f-1"}, {"X-Forgejo-Signature", sig}},
      body));
  REQUIRE(ok.status == 202);
  int64_t pid = MUST(c.WaitForPipelineOf(DeliveryId(ok)));
  json::object p = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "succeeded");
  CHECK(MUST(c.Query("SELECT provider, delivery_id, state FROM webhook_deliveries")) ==
        std::vector<std::vector<std::optional<std::string>>>{{"gitea", "f-1", "processed"}});
}

}  // namespace
}  // namespace assay::e2e
