// The server and agent images (issue 12, docs/operations.md "Container images"): the `images`
// job of the project's own .assay.yml, run as it is by a real agent with buildah or podman,
// builds both FROM scratch from the root filesystems deploy/container/stage-rootfs.sh stages
// (here from this build's binaries, in place of the file's `build` job, which compiles them);
// the images then run: the agent image's shell, git and user, and the server image serving
// /healthz on the test's PostgreSQL.
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/net/http_client.h"
#include "common/proc/subprocess.h"
#include "tests/e2e/e2e.h"
#include "tests/support/container_image.h"
#include "tests/support/process.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

std::string Source(const std::string& path) {
  std::ifstream in(std::string(ASSAY_SOURCE_DIR) + "/" + path, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

CommandResult Podman(const std::vector<std::string>& args, absl::Duration timeout) {
  std::vector<std::string> argv = {MUST(testing::PodmanPath()), "--log-level=error"};
  argv.insert(argv.end(), args.begin(), args.end());
  return MUST(RunCommand(argv, {}, {}, {}, timeout));
}

TEST_CASE("images: the project's own pipeline builds server and agent images that run",
          "[e2e][container][build_image]") {
  MUST(testing::PodmanPath());
  ClusterOptions o = Options();
  o.executors = "container,host";
  Cluster c(o);
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--slots", "2"}));
  MUST(c.WaitForAgents(1));

  // The project's file, its `images` job verbatim; its `build` job (cmake, npm) replaced by
  // staging this build's binaries with the same script.
  const std::string own = Source(".assay.yml");
  const size_t images_at = own.find("\n  images:\n");
  REQUIRE(images_at != std::string::npos);
  const std::string file = absl::StrCat(
      "jobs:\n  build:\n    artifacts:\n      paths: [image/]\n    steps:\n",
      "      - WEB_DIST=", ASSAY_SOURCE_DIR, "/web/dist sh deploy/container/stage-rootfs.sh ",
      ASSAY_BINARY_DIR, " image/server server\n", "      - sh deploy/container/stage-rootfs.sh ",
      ASSAY_BINARY_DIR, " image/agent agent\n", own.substr(images_at + 1));
  const std::string sha = MUST(
      repo.Commit({{".assay.yml", file},
                   {"deploy/container/stage-rootfs.sh", Source("deploy/container/stage-rootfs.sh")},
                   {"deploy/container/Containerfile.server-runtime",
                    Source("deploy/container/Containerfile.server-runtime")},
                   {"deploy/container/Containerfile.agent-runtime",
                    Source("deploy/container/Containerfile.agent-runtime")}}));
  const int64_t delivery =
      MUST(c.Push(Cluster::PushPayload(repo.clone_url(), kRepoName, sha), "d-1", kSecret));
  const int64_t pid = MUST(c.WaitForPipelineOf(delivery));
  json::object done = MUST(c.WaitForPipelineDone(pid, absl::Seconds(480)));
  INFO(json::serialize(done) << c.LogTails());
  INFO(MUST(c.JobLog(JobId(done, "build"))));
  INFO(MUST(c.JobLog(JobId(done, "images"))));
  REQUIRE(JsonString(done, "state") == "succeeded");

  const std::string server = absl::StrCat("localhost/assay/assay-server:", sha);
  const std::string agent = absl::StrCat("localhost/assay/assay-agent:", sha);
  // Built and tagged on the agent (not pushed: the file names no registry).
  std::vector<std::string> said;
  for (absl::string_view line : absl::StrSplit(MUST(c.JobLog(JobId(done, "images"))), '\n')) {
    if (absl::StartsWith(line, "assay: ")) said.emplace_back(line);
  }
  REQUIRE(said.size() == 5);
  CHECK(absl::StartsWith(said[0], "assay: downloaded "));  // the staged trees, from `build`
  CHECK(std::vector<std::string>(said.begin() + 1, said.end()) ==
        std::vector<std::string>{"assay: building " + server, "assay: tagged " + server,
                                 "assay: building " + agent, "assay: tagged " + agent});
  struct Cleanup {
    std::vector<std::string> refs;
    ~Cleanup() {
      std::vector<std::string> args = {"rmi", "-f"};
      args.insert(args.end(), refs.begin(), refs.end());
      (void)Podman(args, absl::Seconds(60));
    }
  } cleanup{{server, agent}};

  // The agent image: a shell and git for `run:` steps, as user assay, and the agent.
  CommandResult a = Podman(
      {"run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", agent, "-c",
       "id -u; git --version | cut -d' ' -f1,2; touch /tmp/x /var/lib/assay/y && echo writable"},
      absl::Seconds(120));
  INFO(a.out << a.err);
  CHECK(a.exit_code == 0);
  CHECK(a.out == "10001\ngit version\nwritable\n");
  CommandResult ah =
      Podman({"run", "--rm", "--network", "none", agent, "--help"}, absl::Seconds(60));
  CHECK(ah.exit_code == 0);
  CHECK(absl::StartsWith(ah.out + ah.err, "usage: assay-agent"));

  // The server image: the CLI, and the server itself on the test's database.
  CommandResult cli = Podman(
      {"run", "--rm", "--network", "none", "--entrypoint", "/usr/local/bin/assay", server, "help"},
      absl::Seconds(60));
  INFO(cli.out << cli.err);
  // The CLI's usage (exit 2, a usage answer): it loaded every library it links.
  CHECK(cli.exit_code == 2);
  CHECK(absl::StartsWith(cli.out, "usage: assay "));
  const int port = testing::FreePort();
  const int grpc = testing::FreePort();
  const std::string name = absl::StrCat("assay-e2e-server-", port);
  CommandResult run =
      Podman({"run", "-d", "--rm", "--name", name, "--network", "host", "-e",
              absl::StrCat("ASSAY_ADMIN_TOKEN=", std::string(40, 'k')), server, "--database-url",
              c.dsn(), "--data-dir", "/var/lib/assay", "--http-listen",
              absl::StrCat("127.0.0.1:", port), "--grpc-listen", absl::StrCat("127.0.0.1:", grpc)},
             absl::Seconds(60));
  INFO(run.out << run.err);
  REQUIRE(run.exit_code == 0);
  struct Stop {
    std::string name;
    ~Stop() { (void)Podman({"rm", "-f", name}, absl::Seconds(60)); }
  } stop{name};
  absl::Status up = c.WaitUntil(
      "the server image's /healthz",
      [&](std::string& seen) {
        auto r = HttpFetch("GET", absl::StrCat("http://127.0.0.1:", port, "/healthz"), {}, {},
                           absl::Seconds(2));
        seen = r.ok() ? absl::StrCat(r->status, " ", r->body) : std::string(r.status().message());
        return r.ok() && r->status == 200;
      },
      absl::Seconds(60));
  INFO(Podman({"logs", name}, absl::Seconds(30)).err);
  MUST(up);
  // It serves the dashboard it carries.
  auto ui = MUST(
      HttpFetch("GET", absl::StrCat("http://127.0.0.1:", port, "/ui/"), {}, {}, absl::Seconds(5)));
  CHECK(ui.status == 200);
  CHECK(absl::StrContains(ui.body, "<html"));
}

}  // namespace
}  // namespace assay::e2e
