// End to end: webhook intake. What is refused leaves no trace in the database; what is accepted is
// stored once, however often it is delivered; bad pipeline files give a pipeline in 'error' with a
// message that says where.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "common/crypto/crypto.h"
#include "tests/e2e/e2e.h"
#include "tests/support/process.h"

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

constexpr char kNotAuthenticated[] = "unauthenticated: webhook delivery could not be authenticated";

int64_t Rows(Cluster& c, const std::string& table) {
  return MUST(c.QueryInt("SELECT count(*) FROM " + table));
}

TEST_CASE("a webhook with a bad or missing signature is refused and stores nothing", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  std::string sha = MUST(repo.Commit({{".assay.yml", "jobs:\n  a:\n    steps: [echo a]\n"}}));
  const std::string body = Cluster::PushPayload(repo.clone_url(), kRepoName, sha);

  // Every one gets the same answer: nothing tells an attacker which part was wrong.
  struct Case {
    const char* what;
    std::optional<std::string> signature;
  };
  const std::vector<Case> cases = {
      {"missing", std::nullopt},
      {"wrong secret", Cluster::GithubSignature("not-the-secret", body)},
      {"signature of another body", Cluster::GithubSignature(kSecret, body + " ")},
      {"no prefix", HexEncode(HmacSha256(kSecret, body))},
      {"not hex", "sha256=" + std::string(64, 'z')},
  };
  for (const Case& k : cases) {
    INFO(k.what);
    HttpClientResponse r = MUST(c.PostGithub(body, "delivery-1", k.signature));
    CHECK(r.status == 401);
    CHECK(ErrorOf(r) == kNotAuthenticated);
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
      "strategy, runs_on, lfs, artifacts, secrets, environment, image, services, network, cache, "
      "sweep)";
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

namespace assay::e2e {
namespace {

// A blocking socket to the server with 10 s send and receive timeouts.
class Socket {
 public:
  explicit Socket(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~Socket() { ::close(fd_); }
  int fd() const { return fd_; }
  // Sends what the peer takes; false once it refuses more (closed or reset).
  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Everything until the peer closes (or 10 s pass without a byte).
  std::string ReadAll() {
    std::string out;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
};

int Port(const std::string& url) { return std::stoi(url.substr(url.rfind(':') + 1)); }

// kB from /proc/<pid>/status's line `field` ("VmHWM").
int64_t ProcKb(pid_t pid, const std::string& field) {
  const std::string status = testing::ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/status"));
  const size_t at = status.find("\n" + field + ":");
  REQUIRE(at != std::string::npos);
  return std::stoll(status.substr(at + field.size() + 2));
}

TEST_CASE("an unsigned 20 MB webhook body is refused before it is read: peak memory grows < 5 MB",
          "[e2e][webhook][security]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  const int64_t repo_id = MUST(c.QueryInt("SELECT id FROM repos"));
  // Valid JSON, so that a server that parses before verifying pays for the parse too.
  const std::string body = R"({"zen":")" + std::string(20 * 1024 * 1024, 'x') + R"("})";
  const pid_t pid = c.server()->pid();
  const int64_t before = ProcKb(pid, "VmHWM");
  for (const std::string& path :
       {std::string("/hooks/github"), absl::StrCat("/hooks/github/", repo_id)}) {
    INFO(path);
    Socket s(Port(c.http_url()));
    REQUIRE(s.Send(absl::StrCat("POST ", path,
                                " HTTP/1.1\r\nHost: t\r\nX-GitHub-Event: ping\r\n"
                                "X-GitHub-Delivery: big-1\r\nContent-Type: application/json\r\n"
                                "Content-Length: ",
                                body.size(), "\r\n\r\n")));
    s.Send(body);  // the server may stop reading once it has answered
    const std::string reply = s.ReadAll();
    CHECK(absl::StartsWith(reply, "HTTP/1.1 401 "));
    CHECK(absl::EndsWith(reply,
                         "\r\n\r\n{\"error\":{\"code\":\"unauthenticated\",\"message\":"
                         "\"webhook delivery could not be authenticated\"}}"));
  }
  const int64_t after = ProcKb(pid, "VmHWM");
  INFO("VmHWM before " << before << " kB, after " << after << " kB");
  if (kMemoryBoundsHold) CHECK(after - before < 5 * 1024);
  CHECK(Rows(c, "webhook_deliveries") == 0);
}

TEST_CASE("unknown repository, wrong forge and bad signature get the same answer",
          "[e2e][webhook][security]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  std::string sha = MUST(repo.Commit({{".assay.yml", "jobs:\n  a:\n    steps: [echo a]\n"}}));
  const std::string id = std::to_string(MUST(c.QueryInt("SELECT id FROM repos")));
  const std::string body = Cluster::PushPayload(repo.clone_url(), kRepoName, sha);
  const std::string unknown =
      Cluster::PushPayload("https://example.com/nobody/nothing.git", "nobody/nothing", sha);
  const std::string good_sig = Cluster::GithubSignature(kSecret, body);
  auto post = [&](const std::string& path, const std::string& b,
                  std::vector<std::pair<std::string, std::string>> headers) {
    headers.emplace_back("Content-Type", "application/json");
    return MUST(c.Fetch("POST", path, headers, b));
  };
  auto github = [](const std::string& delivery, const std::string& sig) {
    return std::vector<std::pair<std::string, std::string>>{
        {"X-GitHub-Event", "push"}, {"X-GitHub-Delivery", delivery}, {"X-Hub-Signature-256", sig}};
  };
  struct Case {
    const char* what;
    HttpClientResponse r;
  };
  const std::vector<Case> cases = {
      {"unknown repository (shared URL)",
       post("/hooks/github", unknown, github("u-1", Cluster::GithubSignature(kSecret, unknown)))},
      {"unknown repository id", post("/hooks/github/424242", body, github("u-2", good_sig))},
      {"wrong forge (shared URL)", post("/hooks/gitlab", body,
                                        {{"X-Gitlab-Event", "Push Hook"},
                                         {"X-Gitlab-Event-UUID", "u-3"},
                                         {"X-Gitlab-Token", kSecret}})},
      {"wrong forge (its id)", post("/hooks/gitea/" + id, body,
                                    {{"X-Gitea-Event", "push"},
                                     {"X-Gitea-Delivery", "u-4"},
                                     {"X-Gitea-Signature", good_sig.substr(7)}})},
      {"bad signature (shared URL)",
       post("/hooks/github", body, github("u-5", Cluster::GithubSignature("guess", body)))},
      {"bad signature (its id)",
       post("/hooks/github/" + id, body, github("u-6", Cluster::GithubSignature("guess", body)))},
  };
  for (const Case& k : cases) {
    INFO(k.what << ": " << k.r.body);
    CHECK(k.r.status == 401);
    CHECK(k.r.body == R"({"error":{"code":"unauthenticated",)"
                      R"("message":"webhook delivery could not be authenticated"}})");
  }
  CHECK(Rows(c, "webhook_deliveries") == 0);
  // The per-repository URL takes the genuine delivery.
  HttpClientResponse ok = post("/hooks/github/" + id, body, github("u-7", good_sig));
  CHECK(ok.status == 202);
  CHECK(absl::EndsWith(ok.body, R"(,"status":"queued"})"));
}

TEST_CASE("a signed body resent with a new delivery id is a duplicate and makes no pipeline",
          "[e2e][webhook][security]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  std::string sha = MUST(repo.Commit({{".assay.yml", "jobs:\n  a:\n    steps: [echo a]\n"}}));
  const std::string body = Cluster::PushPayload(repo.clone_url(), kRepoName, sha);
  int64_t delivery = MUST(c.Push(body, "replay-1", kSecret));
  MUST(c.WaitForPipelineOf(delivery));
  for (const char* id : {"replay-2", "replay-3"}) {
    HttpClientResponse again =
        MUST(c.PostGithub(body, id, Cluster::GithubSignature(kSecret, body)));
    CHECK(again.status == 202);
    CHECK(again.body == absl::StrCat(R"({"delivery":)", delivery, R"(,"status":"duplicate"})"));
  }
  CHECK(Rows(c, "webhook_deliveries") == 1);
  CHECK(Rows(c, "pipelines") == 1);
}

TEST_CASE("a webhook body trickled byte by byte is cut off at --http-body-timeout",
          "[e2e][webhook][security]") {
  Cluster c(Options({"--http-body-timeout", "500ms"}));
  MUST(c.StartServer());
  MakeRepo(c);
  Socket s(Port(c.http_url()));
  REQUIRE(
      s.Send("POST /hooks/github HTTP/1.1\r\nHost: t\r\nX-GitHub-Event: push\r\n"
             "X-GitHub-Delivery: slow-1\r\nX-Hub-Signature-256: sha256=" +
             std::string(64, '0') + "\r\nContent-Length: 100000\r\n\r\n"));
  // One byte every 50 ms: the whole body would take 83 minutes. Bound: 200 bytes (10 s).
  bool closed = false;
  for (int i = 0; i < 200 && !closed; ++i) {
    ::usleep(50 * 1000);
    char ch;
    const ssize_t peek = ::recv(s.fd(), &ch, 1, MSG_DONTWAIT | MSG_PEEK);
    closed = peek == 0 || (peek < 0 && errno != EAGAIN && errno != EWOULDBLOCK) || !s.Send("x");
  }
  CHECK(closed);
  CHECK(Rows(c, "webhook_deliveries") == 0);
  CHECK(MUST(c.Fetch("GET", "/healthz")).status == 200);
}

TEST_CASE("connections beyond --http-max-connections are answered 503 and closed",
          "[e2e][security]") {
  Cluster c(Options({"--http-max-connections", "3"}));
  MUST(c.StartServer());
  const int port = Port(c.http_url());
  // Three open connections, each proven accepted by an answered request.
  std::vector<std::unique_ptr<Socket>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<Socket>(port));
    REQUIRE(held.back()->Send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
    char buf[512];
    REQUIRE(::recv(held.back()->fd(), buf, sizeof buf, 0) > 0);
  }
  Socket extra(port);
  const std::string reply = extra.ReadAll();
  CHECK(absl::StartsWith(reply, "HTTP/1.1 503 Service Unavailable\r\n"));
  CHECK(absl::StrContains(reply, "\r\nRetry-After: 1\r\n"));
  CHECK(absl::EndsWith(reply, R"({"error":{"code":"overloaded",)"
                              R"("message":"too many open connections; retry later"}})"));
  held.clear();
  // Bounded: 100 tries, 20 ms apart, for the server to see the three close.
  int status = 0;
  for (int i = 0; i < 100 && status != 200; ++i) {
    auto r = c.Fetch("GET", "/healthz");
    status = r.ok() ? r->status : 0;
    if (status != 200) ::usleep(20 * 1000);
  }
  CHECK(status == 200);
}

}  // namespace
}  // namespace assay::e2e
