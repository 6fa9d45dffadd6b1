// Commit status requests per forge, and the notifier against a recording http::Server.

#include <catch2/catch.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "common/crypto/crypto.h"
#include "common/net/https_client.h"
#include "server/forge/commit_status.h"
#include "server/forge/status_reporter.h"
#include "server/http/http_server.h"
#include "tests/unit/tls_test_server.h"

namespace assay::forge {
namespace {

const std::string kSha = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

CommitStatus Status(const std::string& provider, const std::string& base) {
  CommitStatus s;
  s.provider = provider;
  s.api_base_url = base;
  s.api_token = "tok-123";
  s.repo_full_name = provider == "gitlab" ? "group/sub/app" : "octo/hello";
  s.sha = kSha;
  s.state = "success";
  s.target_url = "https://ci.example/p/7";
  s.description = "3 jobs passed";
  return s;
}

using Headers = std::vector<std::pair<std::string, std::string>>;

TEST_CASE("commit status: GitHub request", "[unit][forge]") {
  auto r = BuildStatusRequest(Status("github", "https://api.github.com/"));
  REQUIRE(r.ok());
  CHECK(r->method == "POST");
  CHECK(r->url == "https://api.github.com/repos/octo/hello/statuses/" + kSha);
  CHECK(r->headers == Headers{{"Accept", "application/vnd.github+json"},
                              {"Authorization", "Bearer tok-123"},
                              {"Content-Type", "application/json"},
                              {"X-GitHub-Api-Version", "2022-11-28"}});
  CHECK(r->body == R"({"state":"success","target_url":"https://ci.example/p/7",)"
                   R"("description":"3 jobs passed","context":"assay"})");
  std::vector<std::pair<std::string, std::string>> states = {
      {"pending", "pending"}, {"running", "pending"}, {"success", "success"},
      {"failure", "failure"}, {"error", "error"},     {"canceled", "error"}};
  for (const auto& [ours, theirs] : states) {
    auto s = Status("github", "https://api.github.com");
    s.state = ours;
    s.target_url = "";
    s.description = "";
    auto q = BuildStatusRequest(s);
    REQUIRE(q.ok());
    CHECK(q->body == R"({"state":")" + theirs + R"(","context":"assay"})");
  }
}

TEST_CASE("commit status: GitLab request", "[unit][forge]") {
  auto r = BuildStatusRequest(Status("gitlab", "https://gitlab.example.com"));
  REQUIRE(r.ok());
  CHECK(r->url == "https://gitlab.example.com/api/v4/projects/group%2Fsub%2Fapp/statuses/" + kSha);
  CHECK(r->headers == Headers{{"PRIVATE-TOKEN", "tok-123"}, {"Content-Type", "application/json"}});
  CHECK(r->body == R"({"state":"success","name":"assay","target_url":"https://ci.example/p/7",)"
                   R"("description":"3 jobs passed"})");
  std::vector<std::pair<std::string, std::string>> states = {
      {"pending", "pending"}, {"running", "running"}, {"success", "success"},
      {"failure", "failed"},  {"error", "failed"},    {"canceled", "canceled"}};
  for (const auto& [ours, theirs] : states) {
    auto s = Status("gitlab", "https://gitlab.com");
    s.state = ours;
    s.repo_full_name = "42";
    s.context = "assay/test";
    s.target_url = "";
    s.description = "";
    auto q = BuildStatusRequest(s);
    REQUIRE(q.ok());
    CHECK(q->url == "https://gitlab.com/api/v4/projects/42/statuses/" + kSha);
    CHECK(q->body == R"({"state":")" + theirs + R"(","name":"assay/test"})");
  }
}

TEST_CASE("commit status: Gitea request", "[unit][forge]") {
  auto r = BuildStatusRequest(Status("gitea", "https://git.example.org"));
  REQUIRE(r.ok());
  CHECK(r->url == "https://git.example.org/api/v1/repos/octo/hello/statuses/" + kSha);
  CHECK(r->headers == Headers{{"Accept", "application/json"},
                              {"Authorization", "token tok-123"},
                              {"Content-Type", "application/json"}});
  CHECK(r->body == R"({"state":"success","target_url":"https://ci.example/p/7",)"
                   R"("description":"3 jobs passed","context":"assay"})");
  auto s = Status("gitea", "https://git.example.org");
  s.state = "running";
  s.description = std::string(139, 'x') + "\xC3\xA9";  // é straddles byte 140
  auto q = BuildStatusRequest(s);
  REQUIRE(q.ok());
  CHECK(q->body == R"({"state":"pending","target_url":"https://ci.example/p/7","description":")" +
                       std::string(139, 'x') + R"(","context":"assay"})");
}

TEST_CASE("commit status: invalid statuses", "[unit][forge]") {
  auto msg = [](CommitStatus s) { return std::string(BuildStatusRequest(s).status().message()); };
  auto s = Status("bitbucket", "https://x");
  CHECK(BuildStatusRequest(s).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(msg(s) == "commit status: unknown provider 'bitbucket'");
  s = Status("github", "https://x");
  s.state = "done";
  CHECK(msg(s) == "commit status: unknown state 'done'");
  s = Status("github", "/");
  CHECK(msg(s) == "commit status: api_base_url is required");
  s = Status("github", "https://x");
  s.api_token = "";
  CHECK(msg(s) == "commit status: api_token is required");
  s = Status("github", "https://x");
  s.sha = "abc";
  CHECK(msg(s) == "commit status: sha must be a 40-character hex commit id");
  for (const char* bad : {"octo", "octo/", "/hello", "a/b/c"}) {
    s = Status("gitea", "https://x");
    s.repo_full_name = bad;
    CHECK(msg(s) == "commit status: repository '" + std::string(bad) + "' must be owner/name");
  }
  s = Status("gitlab", "https://x");
  s.repo_full_name = "";
  CHECK(msg(s) == "commit status: repository is required");
}

// Records every request and answers from a script (then 201 when the script is empty).
// With `gate` set, each handler waits until Release().
class Recorder {
 public:
  explicit Recorder(std::deque<int> script, bool gate = false)
      : script_(std::move(script)),
        gated_(gate),
        server_(http::ServerOptions{}, [this](http::Request& r) { return Handle(r); }) {
    REQUIRE(server_.Start().ok());
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(server_.port()); }
  std::vector<http::Request> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  void WaitForRequests(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return requests_.size() >= n; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    gated_ = false;
    cv_.notify_all();
  }

 private:
  http::Response Handle(http::Request& r) {
    std::unique_lock<std::mutex> lock(mu_);
    requests_.push_back(r);
    cv_.notify_all();
    cv_.wait(lock, [&] { return !gated_; });
    http::Response resp;
    resp.status = script_.empty() ? 201 : script_.front();
    if (!script_.empty()) script_.pop_front();
    resp.body = "{}";
    return resp;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> script_;
  bool gated_;
  std::vector<http::Request> requests_;
  http::Server server_;
};

CommitStatusNotifier::Options FastOptions() {
  CommitStatusNotifier::Options o;
  o.initial_backoff = absl::Milliseconds(1);
  o.max_backoff = absl::Milliseconds(4);
  o.request_timeout = absl::Seconds(10);
  return o;
}

TEST_CASE("notifier: retries 500, 500 then 201, exact requests per provider", "[unit][forge]") {
  for (const std::string provider : {"github", "gitlab", "gitea"}) {
    INFO(provider);
    Recorder rec({500, 500, 201});
    CommitStatusNotifier n(FastOptions());
    n.Post(Status(provider, rec.base()));
    n.Stop(absl::Seconds(30));
    auto st = n.stats();
    CHECK(st.posted == 1);
    CHECK(st.delivered == 1);
    CHECK(st.retries == 2);
    CHECK(st.failed == 0);
    CHECK(st.dropped == 0);
    auto reqs = rec.requests();
    REQUIRE(reqs.size() == 3);
    auto want = BuildStatusRequest(Status(provider, rec.base()));
    REQUIRE(want.ok());
    const std::string target = want->url.substr(rec.base().size());
    for (const auto& r : reqs) {
      CHECK(r.method == "POST");
      CHECK(r.target == target);
      CHECK(r.body == want->body);
      for (const auto& [k, v] : want->headers) CHECK(r.Header(k) == v);
    }
  }
  CHECK(BuildStatusRequest(Status("gitlab", "http://h")).value().url ==
        "http://h/api/v4/projects/group%2Fsub%2Fapp/statuses/" + kSha);
}

TEST_CASE("notifier: 4xx is not retried, 429 is, attempts are bounded", "[unit][forge]") {
  {
    Recorder rec({422});
    CommitStatusNotifier n(FastOptions());
    n.Post(Status("github", rec.base()));
    n.Stop(absl::Seconds(30));
    CHECK(rec.requests().size() == 1);
    CHECK(n.stats().failed == 1);
    CHECK(n.stats().retries == 0);
  }
  {
    Recorder rec({429, 201});
    CommitStatusNotifier n(FastOptions());
    n.Post(Status("gitea", rec.base()));
    n.Stop(absl::Seconds(30));
    CHECK(rec.requests().size() == 2);
    CHECK(n.stats().delivered == 1);
  }
  {
    Recorder rec({503, 503, 503, 503});
    auto o = FastOptions();
    o.max_attempts = 3;
    CommitStatusNotifier n(o);
    n.Post(Status("gitlab", rec.base()));
    n.Stop(absl::Seconds(30));
    CHECK(rec.requests().size() == 3);
    CHECK(n.stats().failed == 1);
    CHECK(n.stats().retries == 2);
  }
}

TEST_CASE("notifier: each posted status's hooks learn how it ended", "[unit][forge]") {
  using Outcome = CommitStatusNotifier::Outcome;
  std::mutex mu;
  std::vector<std::string> log;  // what the hooks saw, in order
  auto hooks = [&](const std::string& name, int allowed_attempts) {
    auto attempts = std::make_shared<int>(0);
    CommitStatusNotifier::Hooks h;
    h.before_attempt = [&, name, attempts, allowed_attempts] {
      std::lock_guard<std::mutex> lock(mu);
      log.push_back(name + " attempt");
      return ++*attempts <= allowed_attempts;
    };
    h.done = [&, name](Outcome o) {
      std::lock_guard<std::mutex> lock(mu);
      const char* words[] = {"delivered", "refused", "gave up", "dropped", "skipped"};
      log.push_back(name + " " + words[static_cast<int>(o)]);
    };
    return h;
  };
  // Answers: a: 201; b: 404; c: 503, 503; d: 503, then not allowed again.
  Recorder rec({201, 404, 503, 503, 503});
  auto o = FastOptions();
  o.max_attempts = 2;
  CommitStatusNotifier n(o);
  n.Post(Status("github", rec.base()), hooks("a", 10));
  n.Post(Status("github", rec.base()), hooks("b", 10));
  n.Post(Status("github", rec.base()), hooks("c", 10));
  n.Post(Status("github", rec.base()), hooks("d", 1));
  n.Stop(absl::Seconds(30));
  n.Post(Status("github", rec.base()), hooks("e", 10));  // after Stop
  CHECK(log == std::vector<std::string>{"a attempt", "a delivered", "b attempt", "b refused",
                                        "c attempt", "c attempt", "c gave up", "d attempt",
                                        "d attempt", "d skipped", "e dropped"});
  CHECK(rec.requests().size() == 5);
  auto st = n.stats();
  CHECK(st.delivered == 1);
  CHECK(st.failed == 2);
  CHECK(st.skipped == 1);
  CHECK(st.dropped == 1);
}

TEST_CASE("notifier: connection errors are retried, invalid statuses fail", "[unit][forge]") {
  std::string dead;
  {
    Recorder rec({});
    dead = rec.base();
  }  // server stopped: its port refuses connections
  auto o = FastOptions();
  o.max_attempts = 2;
  CommitStatusNotifier n(o);
  n.Post(Status("github", dead));
  auto bad = Status("github", dead);
  bad.state = "weird";
  n.Post(bad);
  n.Stop(absl::Seconds(30));
  auto st = n.stats();
  CHECK(st.posted == 2);
  CHECK(st.failed == 2);
  CHECK(st.retries == 1);
  n.Post(Status("github", dead));  // after Stop
  CHECK(n.stats().dropped == 1);
}

TEST_CASE("notifier: Post returns while the forge is slow", "[unit][forge]") {
  Recorder rec({}, /*gate=*/true);
  CommitStatusNotifier n(FastOptions());
  n.Post(Status("github", rec.base()));
  rec.WaitForRequests(1);  // the worker is now stuck in the gated handler
  auto second = Status("github", rec.base());
  second.state = "failure";
  n.Post(second);  // returns although the first request is still in flight
  CHECK(n.stats().delivered == 0);
  CHECK(n.stats().posted == 2);
  rec.Release();
  n.Stop(absl::Seconds(30));
  CHECK(n.stats().delivered == 2);
  auto reqs = rec.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].body.find("\"state\":\"success\"") != std::string::npos);
  CHECK(reqs[1].body.find("\"state\":\"failure\"") != std::string::npos);
}

}  // namespace
}  // namespace assay::forge

namespace assay::forge {
namespace {

// The transport the server uses: FetchHttpOrHttps with an extra CA file.
CommitStatusNotifier::Transport TlsTransport(const std::string& ca_file) {
  return [ca_file](const StatusRequest& r, absl::Duration timeout) {
    return FetchHttpOrHttps(r.method, r.url, r.headers, r.body, timeout, {ca_file});
  };
}

TEST_CASE(
    "notifier over https: trusted with the CA file, an untrusted certificate is retried, "
    "then given up",
    "[unit][forge][https]") {
  const tls_test::Certs& certs = tls_test::TestCerts();
  {
    tls_test::TlsServer server(certs.path("leaf.pem"), certs.path("leaf.key"));
    auto o = FastOptions();
    o.transport = TlsTransport(certs.path("ca.pem"));
    CommitStatusNotifier n(o);
    auto s = Status("github", "https://localhost:" + std::to_string(server.port()));
    n.Post(s);
    n.Stop(absl::Seconds(30));
    CHECK(n.stats().delivered == 1);
    auto seen = server.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].target == "/repos/octo/hello/statuses/" + kSha);
    CHECK(seen[0].body == BuildStatusRequest(s)->body);
  }
  {
    tls_test::TlsServer server(certs.path("self.pem"), certs.path("self.key"));
    auto o = FastOptions();
    o.max_attempts = 3;
    o.transport = TlsTransport(certs.path("ca.pem"));
    CommitStatusNotifier n(o);
    n.Post(Status("gitea", "https://localhost:" + std::to_string(server.port())));
    n.Stop(absl::Seconds(30));
    auto st = n.stats();
    CHECK(st.failed == 1);
    CHECK(st.retries == 2);
    CHECK(st.delivered == 0);
    CHECK(server.seen().empty());
  }
}

}  // namespace
}  // namespace assay::forge

namespace assay::forge {
namespace {

TEST_CASE("reporter: the commit status for each pipeline state", "[unit][forge]") {
  const std::string key(32, 'k');
  store::Db db("postgresql://unused", 1);  // StatusFor does not touch the database
  CommitStatusNotifier notifier(FastOptions());
  StatusReporter reporter(&db, &notifier, key, {"https://ci.example.com//"});
  store::DueStatus d;
  d.pipeline_id = 12;
  d.commit_sha = kSha;
  d.repo_name = "acme/app";
  d.provider = "github";
  d.api_url = "https://api.github.com";
  d.token_sealed = SealSecret(key, "tok-1").value();
  const std::vector<std::vector<std::string>> cases = {
      {"running", "pending", "Assay: pipeline 12 is running"},
      {"succeeded", "success", "Assay: pipeline 12 succeeded"},
      {"failed", "failure", "Assay: pipeline 12 failed"},
      {"canceled", "canceled", "Assay: pipeline 12 was canceled"},
      {"error", "error", "Assay: pipeline 12 could not run"}};
  for (const auto& c : cases) {
    d.state = c[0];
    auto s = reporter.StatusFor(d);
    REQUIRE(s.ok());
    CHECK(s->state == c[1]);
    CHECK(s->description == c[2]);
    CHECK(s->provider == "github");
    CHECK(s->api_base_url == "https://api.github.com");
    CHECK(s->api_token == "tok-1");
    CHECK(s->repo_full_name == "acme/app");
    CHECK(s->sha == kSha);
    CHECK(s->target_url == "https://ci.example.com/api/v1/pipelines/12");
    CHECK(s->context == "assay");
  }
  d.state = "succeeded";
  d.repository = "octo/real";
  d.context = "ci/assay";
  auto s = reporter.StatusFor(d);
  REQUIRE(s.ok());
  CHECK(s->repo_full_name == "octo/real");
  CHECK(s->context == "ci/assay");

  d.token_sealed = SealSecret(std::string(32, 'x'), "tok-1").value();  // another key
  CHECK(reporter.StatusFor(d).status().message() ==
        "pipeline 12 of repository acme/app: cannot open the commit status token (was the "
        "secret key replaced?)");
  d.state = "weird";
  CHECK(reporter.StatusFor(d).status().message() ==
        "pipeline 12 of repository acme/app: no commit status for state 'weird'");

  StatusReporter no_url(&db, &notifier, key, {});
  d.state = "running";
  d.token_sealed = SealSecret(key, "tok-1").value();
  CHECK(no_url.StatusFor(d)->target_url == "");
}

}  // namespace
}  // namespace assay::forge
