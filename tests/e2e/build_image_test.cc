// The build_image step (issue 9, docs/images.md): a job builds an image from the workspace with
// buildah, tags it with the commit SHA and its listed tags, pushes it to a registry (Debian's
// docker-registry on loopback, htpasswd auth) with credentials from a secret, and records the
// digests on the job; a later job runs `image: ${{ jobs.build.image }}`, pinned by digest.
// Bad input: a registry that refuses the push, a missing Containerfile, a context that leaves
// the workspace through a symlink. Images are built offline from the tests' busybox image.
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/proc/subprocess.h"
#include "tests/e2e/e2e.h"
#include "tests/support/container_image.h"
#include "tests/support/registry.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

constexpr char kUser[] = "assay-builder";
constexpr char kPassword[] = "registry-pass-4821";

// The lines of `log` that start with "assay: ".
std::vector<std::string> AssayLines(const std::string& log) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (absl::StartsWith(line, "assay: ")) out.emplace_back(line);
  }
  return out;
}

struct Setup {
  std::unique_ptr<testing::TestRegistry> registry;
  std::unique_ptr<Cluster> cluster;
  std::unique_ptr<GitRepo> repo;
};

// A server, one agent with the container and host executors that reaches the registry through
// its registries.conf, and the repository with secret REG (and BAD, a wrong password).
Setup Start() {
  Setup s;
  ClusterOptions o = Options();
  o.executors = "container,host";
  s.cluster = std::make_unique<Cluster>(o);
  Cluster& c = *s.cluster;
  s.registry = MUST(testing::TestRegistry::Start(c.dir() + "/registry", kUser, kPassword));
  MUST(c.StartServer());
  s.repo = std::make_unique<GitRepo>(MakeRepo(c));
  REQUIRE(MUST(c.Api("PUT", "/api/v1/repos/1/secrets/REG",
                     json::serialize(json::object{{"value", absl::StrCat(kUser, ":", kPassword)}})))
              .status == 201);
  REQUIRE(MUST(c.Api("PUT", "/api/v1/repos/1/secrets/BAD",
                     json::serialize(json::object{{"value", absl::StrCat(kUser, ":wrong")}})))
              .status == 201);
  MUST(c.StartAgent("a1", {"--slots", "4"},
                    {{"CONTAINERS_REGISTRIES_CONF", s.registry->registries_conf()}}));
  MUST(c.WaitForAgents(1));
  return s;
}

// Removes what the test built from the local image store (best effort).
void RemoveImages(const std::vector<std::string>& refs) {
  std::vector<std::string> argv = {MUST(testing::PodmanPath()), "--log-level=error", "rmi", "-f"};
  argv.insert(argv.end(), refs.begin(), refs.end());
  (void)RunCommand(argv, {}, {}, {}, absl::Seconds(60));
}

int64_t PushCommit(Setup& s, const std::string& sha) {
  Cluster& c = *s.cluster;
  int64_t delivery =
      MUST(c.Push(Cluster::PushPayload(s.repo->clone_url(), kRepoName, sha), "d-1", kSecret));
  return MUST(c.WaitForPipelineOf(delivery));
}

TEST_CASE("build_image pushes to a registry, records the digests, a later job runs the image",
          "[e2e][container][build_image]") {
  const std::string base = MUST(testing::BusyboxImage());
  Setup s = Start();
  Cluster& c = *s.cluster;
  const std::string host = s.registry->host();
  const std::string file = absl::StrReplaceAll(R"yml(jobs:
  build:
    secrets: [REG]
    steps:
      - name: image
        build_image:
          context: docker
          tags: [HOST/e2e/app, "HOST/e2e/app:v1"]
          push: true
          registry_secret: REG
  use:
    needs: [build]
    image: ${{ jobs.build.image }}
    steps: [cat /built.txt]
)yml",
                                               {{"HOST", host}});
  const std::string sha = MUST(s.repo->Commit(
      {{".assay.yml", file},
       {"docker/Containerfile", absl::StrCat("FROM ", base, "\nCOPY message.txt /built.txt\n")},
       {"docker/message.txt", "built by assay, pushed and pulled\n"}}));
  const int64_t pid = PushCommit(s, sha);
  auto done = MUST(c.WaitForPipelineDone(pid, absl::Seconds(180)));
  INFO(json::serialize(done) << c.LogTails());
  const std::string build_log = MUST(c.JobLog(JobId(done, "build")));
  INFO(build_log);
  REQUIRE(JsonString(Job(done, "build"), "state") == "succeeded");

  // The digests the registry serves for both tags are the ones recorded on the job.
  const std::string sha_digest = MUST(s.registry->ManifestDigest("e2e/app", sha));
  const std::string v1_digest = MUST(s.registry->ManifestDigest("e2e/app", "v1"));
  const std::string repo = absl::StrCat(host, "/e2e/app");
  json::object job = MUST(c.ApiObject("GET", absl::StrCat("/api/v1/jobs/", JobId(done, "build"))));
  CHECK(json::serialize(job.at("images")) ==
        json::serialize(json::array{json::object{{"reference", absl::StrCat(repo, ":", sha)},
                                                 {"digest", sha_digest},
                                                 {"pinned", absl::StrCat(repo, "@", sha_digest)},
                                                 {"primary", true},
                                                 {"attempt", 1}},
                                    json::object{{"reference", absl::StrCat(repo, ":v1")},
                                                 {"digest", v1_digest},
                                                 {"pinned", absl::StrCat(repo, "@", v1_digest)},
                                                 {"primary", false},
                                                 {"attempt", 1}}}));
  CHECK(AssayLines(build_log) ==
        std::vector<std::string>{
            absl::StrCat("assay: building ", repo, ":", sha),
            absl::StrCat("assay: tagged ", repo, ":", sha),
            absl::StrCat("assay: tagged ", repo, ":v1"),
            absl::StrCat("assay: pushed ", repo, ":", sha, "@", sha_digest),
            absl::StrCat("assay: pushed ", repo, ":v1@", v1_digest),
        });
  CHECK(build_log.find(kPassword) == std::string::npos);

  // The later job pulled the image by digest (with the builder's credential) and ran in it.
  const std::string use_log = MUST(c.JobLog(JobId(done, "use")));
  INFO(use_log);
  REQUIRE(JsonString(Job(done, "use"), "state") == "succeeded");
  const size_t nl = use_log.find('\n');
  REQUIRE(nl != std::string::npos);
  CHECK(use_log.substr(nl + 1) == absl::StrCat("assay: pulling image ", repo, "@", sha_digest,
                                               "\nbuilt by assay, pushed and pulled\n"));
  RemoveImages({absl::StrCat(repo, ":", sha), absl::StrCat(repo, ":v1"),
                absl::StrCat(repo, "@", sha_digest)});
}

TEST_CASE(
    "build_image: a refused push, a missing Containerfile, a context leaving the workspace and "
    "a failing build fail the job with the reason, and record no image",
    "[e2e][container][build_image]") {
  const std::string base = MUST(testing::BusyboxImage());
  Setup s = Start();
  Cluster& c = *s.cluster;
  const std::string host = s.registry->host();
  const std::string file = absl::StrReplaceAll(R"yml(jobs:
  refused:
    secrets: [BAD]
    steps:
      - name: image
        build_image: { context: docker, tags: HOST/e2e/refused, push: true, registry_secret: BAD }
  missing:
    steps:
      - name: image
        build_image: { context: docker, file: nope/Containerfile, tags: localhost/e2e/missing }
  escape:
    steps:
      - ln -s /etc outside
      - name: image
        build_image: { context: outside, tags: localhost/e2e/escape }
  broken:
    steps:
      - name: image
        build_image: { context: docker, file: docker/Broken, tags: localhost/e2e/broken }
)yml",
                                               {{"HOST", host}});
  const std::string sha =
      MUST(s.repo->Commit({{".assay.yml", file},
                           {"docker/Containerfile", absl::StrCat("FROM ", base, "\nRUN true\n")},
                           {"docker/Broken", absl::StrCat("FROM ", base, "\nRUN exit 3\n")}}));
  const int64_t pid = PushCommit(s, sha);
  auto done = MUST(c.WaitForPipelineDone(pid, absl::Seconds(180)));
  INFO(json::serialize(done) << c.LogTails());

  const std::string repo = absl::StrCat(host, "/e2e/refused");
  const std::string refused = MUST(c.JobLog(JobId(done, "refused")));
  INFO(refused);
  CHECK(JsonString(Job(done, "refused"), "state") == "failed");
  // The job's message says which push failed, where, and the registry's answer.
  const std::string refused_message = JsonString(Job(done, "refused"), "message");
  CHECK(absl::StartsWith(
      refused_message,
      absl::StrCat("step \"image\" exited with code 125: build_image: push of ", repo, ":", sha,
                   " to registry ", host, " failed (exit status 125): ")));
  CHECK(absl::EndsWith(refused_message, "unauthorized: authentication required"));
  CHECK(refused_message.find('\n') == std::string::npos);
  CHECK(AssayLines(refused) == std::vector<std::string>{
                                   absl::StrCat("assay: building ", repo, ":", sha),
                                   absl::StrCat("assay: tagged ", repo, ":", sha),
                                   absl::StrCat("assay: push of ", repo, ":", sha, " to registry ",
                                                host, " failed (exit status 125)"),
                               });
  // The registry's own answer is in the log: it refused the credentials.
  CHECK(refused.find("unauthorized: authentication required") != std::string::npos);
  CHECK(refused.find("wrong") == std::string::npos);
  CHECK(s.registry->ManifestDigest("e2e/refused", sha).status().code() ==
        absl::StatusCode::kNotFound);

  const std::string missing = MUST(c.JobLog(JobId(done, "missing")));
  CHECK(JsonString(Job(done, "missing"), "state") == "failed");
  CHECK(missing ==
        "assay: build_image: file 'nope/Containerfile' does not exist in the workspace\n");
  CHECK(JsonString(Job(done, "missing"), "message") ==
        "step \"image\" exited with code 1: build_image: file 'nope/Containerfile' does not "
        "exist in the workspace");

  const std::string escape = MUST(c.JobLog(JobId(done, "escape")));
  CHECK(JsonString(Job(done, "escape"), "state") == "failed");
  CHECK(escape == "assay: build_image: context 'outside' leads out of the workspace\n");
  CHECK(JsonString(Job(done, "escape"), "message") ==
        "step \"image\" exited with code 1: build_image: context 'outside' leads out of the "
        "workspace");

  // A build that fails: the builder's last words in the message.
  CHECK(JsonString(Job(done, "broken"), "state") == "failed");
  CHECK(JsonString(Job(done, "broken"), "message") ==
        absl::StrCat(
            "step \"image\" exited with code 3: build_image: build of localhost/e2e/broken:", sha,
            " failed (exit status 3): building at STEP \"RUN exit 3\": while running "
            "runtime: exit status 3"));

  RemoveImages({absl::StrCat(repo, ":", sha)});
  for (const char* name : {"refused", "missing", "escape", "broken"}) {
    json::object job = MUST(c.ApiObject("GET", absl::StrCat("/api/v1/jobs/", JobId(done, name))));
    CHECK(json::serialize(job.at("images")) == "[]");
  }
}

}  // namespace
}  // namespace assay::e2e
