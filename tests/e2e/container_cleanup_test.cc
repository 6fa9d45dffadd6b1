// Container jobs and each other (issue 9, docs/executors.md): a job's network is isolated from
// other jobs' networks (not only by name: by IP too), and a canceled job's services are stopped
// and removed with it, also when the cancel comes while they are still starting. Without podman
// these tests FAIL (CI installs it).
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "common/proc/subprocess.h"
#include "tests/e2e/e2e.h"
#include "tests/support/container_image.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

ClusterOptions ContainerOptions() {
  ClusterOptions o = Options();
  o.executors = "container,host";
  return o;
}

// Names of the containers (all states) or networks of this cluster's agent `agent`.
std::string Labelled(Cluster& c, const std::string& what, const std::string& agent) {
  const std::string podman = MUST(testing::PodmanPath());
  std::vector<std::string> argv = {podman, "--log-level=error"};
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

std::string LogOf(Cluster& c, int64_t job) {
  auto log = c.JobLog(job);
  return log.ok() ? *log : "";
}

TEST_CASE("container jobs: another job cannot reach a job's service by its IP",
          "[e2e][container]") {
  const std::string image = MUST(testing::BusyboxImage());
  Cluster c(ContainerOptions());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--slots", "2"}));
  MUST(c.WaitForAgents(1));
  const std::string server = absl::StrReplaceAll(R"yml(jobs:
  server:
    image: IMAGE
    services:
      - name: web
        image: IMAGE
        command: [/bin/sh, -c, "mkdir /w && echo reached > /w/x && exec httpd -f -p 8080 -h /w"]
        health:
          cmd: printf 'GET /x HTTP/1.0\r\n\r\n' | nc 127.0.0.1 8080 | grep -q reached
          interval: 1s
    steps:
      - run: |
          ip=$(nslookup web | sed -n 's/^Address: \([0-9.]*\)$/\1/p' | head -1)
          printf 'GET /x HTTP/1.0\r\n\r\n' | nc -w 3 "$ip" 8080 | grep -c reached
          echo "ip=$ip."
          sleep 300
)yml",
                                                 {{"IMAGE", image}});
  const int64_t first = PushFiles(c, repo, {{".assay.yml", server}});
  auto running = MUST(c.WaitForJobState(first, "server", "running"));
  const int64_t server_job = JobId(running, "server");
  std::string log;
  MUST(c.WaitUntil("the service's IP in the log", [&](std::string& seen) {
    seen = log = LogOf(c, server_job);
    return absl::StrContains(seen, ".\n");
  }));
  // The job itself reaches its service by that IP.
  const size_t at = log.find("1\nip=");
  INFO(log);
  REQUIRE(at != std::string::npos);
  const std::string ip = log.substr(at + 5, log.find(".\n", at) - at - 5);
  REQUIRE(!ip.empty());

  // A job of another pipeline, at the same time on the same agent: the same request gets nothing.
  const std::string client = absl::StrReplaceAll(R"yml(jobs:
  client:
    image: IMAGE
    steps:
      - run: |
          printf 'GET /x HTTP/1.0\r\n\r\n' | nc -w 3 IP 8080 2>/dev/null | grep -c reached || true
)yml",
                                                 {{"IMAGE", image}, {"IP", ip}});
  const int64_t second = PushFiles(c, repo, {{".assay.yml", client}}, "delivery-2");
  json::object done = MUST(c.WaitForPipelineDone(second));
  INFO(json::serialize(done) << c.LogTails());
  CHECK(JsonString(Job(done, "client"), "state") == "succeeded");
  const std::string client_log = LogOf(c, JobId(done, "client"));
  const size_t nl = client_log.find('\n');
  CHECK(client_log.substr(nl + 1) == "0\n");
  MUST(c.RunCli({"cancel", std::to_string(first)}));
  MUST(c.WaitForPipelineDone(first));
  MUST(c.WaitUntil(
      "the job's containers and network to be removed",
      [&](std::string& seen) {
        seen = Labelled(c, "container", "a1") + Labelled(c, "network", "a1");
        return seen.empty();
      },
      absl::Seconds(60)));
}

TEST_CASE("canceling a container job stops and removes its services, running or starting",
          "[e2e][container]") {
  const std::string image = MUST(testing::BusyboxImage());
  Cluster c(ContainerOptions());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--slots", "2"}));
  MUST(c.WaitForAgents(1));
  // `running`: its service is up and its step runs. `starting`: its service never becomes
  // healthy, so the cancel comes while the executor waits for it.
  const std::string file = absl::StrReplaceAll(R"yml(jobs:
  running:
    image: IMAGE
    services:
      - name: side
        image: IMAGE
        command: [sleep, "300"]
    steps:
      - run: echo started; sleep 300
  starting:
    image: IMAGE
    services:
      - name: never
        image: IMAGE
        command: [sleep, "300"]
        health: { cmd: "false", interval: 1s, retries: 300 }
    steps:
      - run: echo never
)yml",
                                               {{"IMAGE", image}});
  const int64_t pid = PushFiles(c, repo, {{".assay.yml", file}});
  auto running = MUST(c.WaitForJobState(pid, "running", "running"));
  MUST(c.WaitForJobState(pid, "starting", "running"));
  MUST(c.WaitUntil("the step to start", [&](std::string& seen) {
    seen = LogOf(c, JobId(running, "running"));
    return absl::StrContains(seen, "started\n");
  }));
  // Both jobs' job container (or service) and the two services exist now.
  MUST(c.WaitUntil("the containers of both jobs", [&](std::string& seen) {
    seen = Labelled(c, "container", "a1");
    return absl::StrContains(seen, "-svc-side") && absl::StrContains(seen, "-svc-never");
  }));
  CHECK(Labelled(c, "network", "a1") != "");
  auto cancel = MUST(c.RunCli({"cancel", std::to_string(pid)}));
  CHECK(cancel.exit_code == 0);
  json::object done = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(done));
  CHECK(JsonString(Job(done, "running"), "state") == "canceled");
  CHECK(JsonString(Job(done, "starting"), "state") == "canceled");
  MUST(c.WaitUntil(
      "every container and network of the canceled jobs to be removed",
      [&](std::string& seen) {
        seen = Labelled(c, "container", "a1") + Labelled(c, "network", "a1");
        return seen.empty();
      },
      absl::Seconds(60)));
}

}  // namespace
}  // namespace assay::e2e
