// Issue 9's "Bad input", end to end: a missing image (pull: never, and pull: if_missing or
// always with a registry that cannot be reached), a service that never gets healthy, a glob that
// matches nothing (a warning, or a failed job with `if_no_files: error`), an artifact path that
// escapes the workspace, a secret that does not exist. Each fails the job or the pipeline with
// a message naming the key and the value, and leaves nothing behind: no container, no network,
// no artifact listing, no blob in the server's artifact store.
//
// (The registry refusing a push belongs to build_image's tests, an unknown function in a cache
// key to the caches' tests; a missing image with pull: never to container_test.cc.)
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "common/proc/subprocess.h"
#include "tests/e2e/e2e.h"
#include "tests/support/container_image.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

// A loopback TCP port that refuses every connection for as long as this object lives: the
// socket is bound (so nothing else can take the port) but never listens.
class RefusedPort {
 public:
  RefusedPort() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
  }
  ~RefusedPort() { close(fd_); }
  RefusedPort(const RefusedPort&) = delete;
  RefusedPort& operator=(const RefusedPort&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

CommandResult Podman(std::vector<std::string> args) {
  std::vector<std::string> argv = {MUST(testing::PodmanPath()), "--log-level=error"};
  argv.insert(argv.end(), args.begin(), args.end());
  return MUST(RunCommand(argv, {}, {}, {}, absl::Seconds(60)));
}

// A second tag of the tests' busybox image, removed (the tag only) at the end of the test.
class ExtraTag {
 public:
  ExtraTag(const std::string& image, std::string tag) : tag_(std::move(tag)) {
    CommandResult r = Podman({"tag", image, tag_});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
  }
  ~ExtraTag() { Podman({"untag", tag_}); }
  ExtraTag(const ExtraTag&) = delete;
  ExtraTag& operator=(const ExtraTag&) = delete;

 private:
  std::string tag_;
};

// Names of the containers (all states) and networks that carry the agent's label: what the
// agent's jobs left behind.
std::string LeftByAgent(Cluster& c, const std::string& agent) {
  const std::string label = absl::StrCat("label=assay.agent_dir=", c.dir(), "/agent-", agent);
  CommandResult containers = Podman({"ps", "--all", "--format", "{{.Names}}", "--filter", label});
  CommandResult networks = Podman({"network", "ls", "--format", "{{.Name}}", "--filter", label});
  REQUIRE(containers.exit_code == 0);
  REQUIRE(networks.exit_code == 0);
  return containers.out + networks.out;
}

// Waits (bounded) until the agent's job workspaces and container env files are all removed.
void WaitForNoAgentFiles(Cluster& c, const std::string& agent) {
  const std::string dir = absl::StrCat(c.dir(), "/agent-", agent);
  MUST(
      c.WaitUntil("the agent's job workspaces and env files to be removed", [&](std::string& seen) {
        seen.clear();
        for (const char* sub : {"/jobs", "/containers"}) {
          std::error_code ec;
          for (const auto& e : std::filesystem::directory_iterator(dir + sub, ec)) {
            seen += e.path().string() + " ";
          }
        }
        return seen.empty();
      }));
}

// Regular files under the server's artifact store (blobs and temporary uploads).
int StoredBlobs(Cluster& c) {
  int n = 0;
  const std::filesystem::path root = c.dir() + "/server-data/artifacts";
  if (!std::filesystem::exists(root)) return 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) ++n;
  }
  return n;
}

// GET /api/v1/jobs/{id}/artifacts: "<status> <body>".
std::string ArtifactListing(Cluster& c, int64_t job) {
  HttpClientResponse r = MUST(c.Api("GET", absl::StrCat("/api/v1/jobs/", job, "/artifacts")));
  return absl::StrCat(r.status, " ", r.body);
}

std::string NoArtifacts(int64_t job) {
  return absl::StrCat(R"(404 {"error":{"code":"not_found","message":"job )", job,
                      R"( has no artifacts"}})");
}

// The log without its first line (the container executor's line, with a random name in it).
std::string AfterFirstLine(const std::string& log) {
  const size_t nl = log.find('\n');
  return nl == std::string::npos ? "" : log.substr(nl + 1);
}

TEST_CASE("bad input: images that are absent or cannot be pulled fail the job naming key and image",
          "[e2e][container][bad_input]") {
  const std::string busybox = MUST(testing::BusyboxImage());
  RefusedPort registry;
  const std::string host = absl::StrCat("127.0.0.1:", registry.port());
  // The busybox image under the unreachable registry's name: present on the agent.
  const std::string local = host + "/assay-busybox:1";
  ExtraTag tag(busybox, local);
  const std::string absent = host + "/assay-no-such-image:1";

  ClusterOptions o = Options();
  o.executors = "container,host";
  Cluster c(o);
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--slots", "4"}));
  MUST(c.WaitForAgents(1));
  const std::string file =
      absl::StrReplaceAll(R"yml(jobs:
  present:
    image: { name: LOCAL, pull: if_missing }
    steps: [echo present]
  always:
    image: { name: LOCAL, pull: always }
    artifacts: { paths: ["**"], when: always }
    steps: [echo never]
  absent:
    image: ABSENT
    artifacts: { paths: ["**"], when: always }
    steps: [echo never]
  service:
    image: BUSYBOX
    services:
      - name: db
        image: { name: localhost/assay-no-such-image:1, pull: never }
    artifacts: { paths: ["**"], when: always }
    steps: [echo never]
)yml",
                          {{"LOCAL", local}, {"ABSENT", absent}, {"BUSYBOX", busybox}});
  const int64_t pid = PushFiles(c, repo, {{".assay.yml", file}});
  const json::object done = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(done) << c.LogTails());

  // if_missing takes the image the agent has and pulls nothing.
  CHECK(JsonString(Job(done, "present"), "state") == "succeeded");
  CHECK(AfterFirstLine(MUST(c.JobLog(JobId(done, "present")))) == "present\n");

  // always pulls even so, and the registry refuses: the message names the key and the image,
  // then the runtime's command and words.
  for (const auto& [name, image] : {std::pair{"always", local}, std::pair{"absent", absent}}) {
    const json::object job = Job(done, name);
    const std::string message = JsonString(job, "message");
    const std::string log = MUST(c.JobLog(JobId(done, name)));
    INFO(name << ": " << message << "\nlog:\n" << log);
    CHECK(JsonString(job, "state") == "error");
    const std::string prefix = absl::StrCat(
        "cannot prepare the container executor: image: cannot pull image '", image, "': ");
    CHECK(absl::StartsWith(message, prefix));
    CHECK(absl::StrContains(message, absl::StrCat(" pull -- ", image, " exited with code 125: ")));
    CHECK(absl::StrContains(message, "connection refused"));
    CHECK(AfterFirstLine(log) == absl::StrCat("assay: pulling image ", image, "\n"));
    CHECK(ArtifactListing(c, JobId(done, name)) == NoArtifacts(JobId(done, name)));
  }

  const json::object service = Job(done, "service");
  CHECK(JsonString(service, "state") == "error");
  CHECK(JsonString(service, "message") ==
        "cannot prepare the container executor: services[0].image: image "
        "'localhost/assay-no-such-image:1' is not on this agent and services[0].image.pull is "
        "'never'");
  CHECK(ArtifactListing(c, JobId(done, "service")) == NoArtifacts(JobId(done, "service")));

  // Nothing is left: no container, no network, no blob, no pulled image.
  CHECK(LeftByAgent(c, "a1") == "");
  CHECK(StoredBlobs(c) == 0);
  CHECK(Podman({"image", "exists", absent}).exit_code == 1);
  WaitForNoAgentFiles(c, "a1");
}

TEST_CASE("bad input: a service that never gets healthy fails the job naming it, nothing is left",
          "[e2e][container][bad_input]") {
  const std::string busybox = MUST(testing::BusyboxImage());
  ClusterOptions o = Options();
  o.executors = "container,host";
  Cluster c(o);
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string file = absl::StrReplaceAll(R"yml(jobs:
  sick:
    image: BUSYBOX
    services:
      - name: db
        image: BUSYBOX
        command: ["sleep", "300"]
        env: { PASSWORD: "an env file is written for this" }
        health:
          cmd: echo not yet >&2; exit 3
          interval: 1s
          retries: 2
    artifacts: { paths: ["**"], when: always }
    steps: [echo never]
)yml",
                                               {{"BUSYBOX", busybox}});
  const int64_t pid = PushFiles(c, repo, {{".assay.yml", file}});
  const json::object done = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(done) << c.LogTails());
  const json::object job = Job(done, "sick");
  CHECK(JsonString(job, "state") == "error");
  CHECK(JsonString(job, "message") ==
        "cannot prepare the container executor: services[0] 'db' is not healthy after 2 checks; "
        "last: exit code 3: not yet");
  CHECK(AfterFirstLine(MUST(c.JobLog(JobId(done, "sick")))) == "");
  CHECK(ArtifactListing(c, JobId(done, "sick")) == NoArtifacts(JobId(done, "sick")));
  CHECK(LeftByAgent(c, "a1") == "");
  CHECK(StoredBlobs(c) == 0);
  WaitForNoAgentFiles(c, "a1");
}

TEST_CASE("bad input: a glob that matches nothing warns, or fails the job with if_no_files: error",
          "[e2e][bad_input]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--slots", "4"}));
  MUST(c.WaitForAgents(1));
  const std::string file = R"yml(jobs:
  warned:
    artifacts: { paths: ["dist/**"] }
    steps: [echo built]
  strict:
    artifacts: { paths: ["dist/**", "*.whl"], if_no_files: error }
    steps: [echo built]
  outside:
    artifacts: { paths: [out/, secret.txt], if_no_files: error }
    steps:
      - run: ln -s /etc out && ln -s /etc/passwd secret.txt && echo linked
  unknown-secret:
    secrets: [NO_SUCH_SECRET]
    artifacts: { paths: ["**"], when: always }
    steps: [echo never]
)yml";
  const int64_t pid = PushFiles(c, repo, {{".assay.yml", file}});
  const json::object done = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(done) << c.LogTails());
  auto log = [&](const char* name) { return MUST(c.JobLog(JobId(done, name))); };

  // Warned: the job succeeds; what it committed is an empty listing.
  const json::object warned = Job(done, "warned");
  CHECK(JsonString(warned, "state") == "succeeded");
  CHECK(log("warned") ==
        "built\n"
        "assay: warning: artifacts.paths matched no file (dist/**)\n"
        "assay: uploaded 0 files, 0.0 MiB (0.0 MiB new)\n");
  const std::string listing = ArtifactListing(c, JobId(done, "warned"));
  INFO(listing);
  CHECK(absl::StartsWith(listing, "200 "));
  const json::object warned_files = json::parse(listing.substr(4)).as_object();
  CHECK(warned_files.at("files").as_array().empty());
  CHECK(warned_files.at("bytes").as_int64() == 0);

  const json::object strict = Job(done, "strict");
  CHECK(JsonString(strict, "state") == "failed");
  CHECK(JsonString(strict, "message") ==
        "artifacts.paths matched no file (dist/**, *.whl), and if_no_files is error");
  CHECK(log("strict") ==
        "built\n"
        "assay: artifacts.paths matched no file (dist/**, *.whl), and if_no_files is error\n");
  CHECK(ArtifactListing(c, JobId(done, "strict")) == NoArtifacts(JobId(done, "strict")));

  // Symlinks out of the workspace are refused by name: then nothing matched.
  const json::object outside = Job(done, "outside");
  CHECK(JsonString(outside, "state") == "failed");
  CHECK(JsonString(outside, "message") ==
        "artifacts.paths matched no file (out/, secret.txt), and if_no_files is error");
  CHECK(log("outside") ==
        "linked\n"
        "assay: artifacts: refused out: a symlink to /etc, outside the workspace\n"
        "assay: artifacts: refused secret.txt: a symlink to /etc/passwd, outside the workspace\n"
        "assay: artifacts.paths matched no file (out/, secret.txt), and if_no_files is error\n");
  CHECK(ArtifactListing(c, JobId(done, "outside")) == NoArtifacts(JobId(done, "outside")));

  // A secret that does not exist: refused by name before the job runs, nothing uploaded.
  const json::object unknown = Job(done, "unknown-secret");
  CHECK(JsonString(unknown, "state") == "failed");
  CHECK(JsonString(unknown, "message") == "secrets: NO_SUCH_SECRET: no such secret in repo 1");
  CHECK(log("unknown-secret") == "assay: secrets: NO_SUCH_SECRET: no such secret in repo 1\n");
  CHECK(ArtifactListing(c, JobId(done, "unknown-secret")) ==
        NoArtifacts(JobId(done, "unknown-secret")));

  CHECK(StoredBlobs(c) == 0);
  WaitForNoAgentFiles(c, "a1");
}

TEST_CASE("bad input: an artifact path that escapes the workspace is refused before any job",
          "[e2e][bad_input]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string file = R"yml(jobs:
  build:
    artifacts:
      paths: [out/, ../../etc/passwd]
    steps: [echo never]
)yml";
  const std::string message =
      ".assay.yml:4:21: jobs.build.artifacts.paths[1]: pattern '../../etc/passwd' must not leave "
      "the workspace ('..')";
  const int64_t pid = PushFiles(c, repo, {{".assay.yml", file}});
  const json::object p = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(p) << c.LogTails());
  CHECK(JsonString(p, "state") == "error");
  CHECK(JsonString(p, "message") == message);
  CHECK(p.at("jobs").as_array().empty());
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM jobs")) == 0);
  CHECK(StoredBlobs(c) == 0);

  // `assay lint` says the same, and an absolute path likewise.
  CommandResult lint = MUST(c.RunCli({"lint", ".assay.yml"}, repo.dir()));
  CHECK(lint.exit_code == 1);
  CHECK(lint.out == message + "\n");
  const std::string absolute = R"yml(jobs:
  build:
    artifacts: { paths: [/etc/passwd] }
    steps: [echo never]
)yml";
  const int64_t pid2 = PushFiles(c, repo, {{".assay.yml", absolute}}, "delivery-2");
  const json::object p2 = MUST(c.WaitForPipelineDone(pid2));
  CHECK(JsonString(p2, "state") == "error");
  CHECK(JsonString(p2, "message") ==
        ".assay.yml:3:26: jobs.build.artifacts.paths[0]: pattern '/etc/passwd' must be relative "
        "to the workspace");
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM jobs")) == 0);
}

}  // namespace
}  // namespace assay::e2e
