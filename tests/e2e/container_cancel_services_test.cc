// A canceled container job's services are stopped and removed with its container and network
// (issue 9: "stopped and removed afterwards even when the job is canceled").
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/proc/subprocess.h"
#include "tests/e2e/e2e.h"
#include "tests/support/container_image.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

// Names of the containers (all states) or networks with the agent's label, one per line.
std::string Labelled(Cluster& c, const std::string& what, const std::string& agent) {
  std::vector<std::string> argv = {MUST(testing::PodmanPath()), "--log-level=error"};
  if (what == "network") {
    argv.insert(argv.end(), {"network", "ls", "--format", "{{.Name}}"});
  } else {
    argv.insert(argv.end(), {"ps", "--all", "--format", "{{.Names}}"});
  }
  argv.insert(argv.end(),
              {"--filter", absl::StrCat("label=assay.agent_dir=", c.dir(), "/agent-", agent)});
  CommandResult r = MUST(RunCommand(argv, {}, {}, {}, absl::Seconds(60)));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return r.out;
}

TEST_CASE("canceling a container job removes its services with its container and network",
          "[e2e][container]") {
  const std::string image = MUST(testing::BusyboxImage());
  ClusterOptions o = Options();
  o.executors = "container,host";
  Cluster c(o);
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string file = absl::StrReplaceAll(R"yml(jobs:
  long:
    image: IMAGE
    services:
      - name: db
        image: IMAGE
        command: ["sleep", "300"]
      - name: cache
        image: IMAGE
        command: ["sleep", "300"]
    steps:
      - run: echo started; sleep 300
)yml",
                                               {{"IMAGE", image}});
  const int64_t pid = PushFiles(c, repo, {{".assay.yml", file}});
  const json::object running = MUST(c.WaitForJobState(pid, "long", "running"));
  const int64_t job = JobId(running, "long");
  MUST(c.WaitUntil("the step to start", [&](std::string& seen) {
    auto log = c.JobLog(job);
    seen = log.ok() ? *log : "";
    return absl::StrContains(seen, "started\n");
  }));
  // The job's container and its two services, on one network.
  const std::vector<std::string> before =
      absl::StrSplit(Labelled(c, "container", "a1"), '\n', absl::SkipWhitespace());
  CHECK(before.size() == 3);
  CHECK(Labelled(c, "network", "a1") != "");

  CommandResult cancel = MUST(c.RunCli({"cancel", std::to_string(pid)}));
  CHECK(cancel.exit_code == 0);
  const json::object done = MUST(c.WaitForPipelineDone(pid));
  CHECK(JsonString(Job(done, "long"), "state") == "canceled");
  MUST(c.WaitUntil(
      "the job's containers, services and network to be removed",
      [&](std::string& seen) {
        seen = Labelled(c, "container", "a1") + Labelled(c, "network", "a1");
        return seen.empty();
      },
      absl::Seconds(60)));
}

}  // namespace
}  // namespace assay::e2e
