// The container executor (issue 9): a job with `image:` runs in a container of that image
// (podman), with its services reachable by name; a cancel and an agent killed with SIGKILL
// leave no container or network behind; a missing image with `pull: never` fails the job with
// a message naming the key and the image. Images are built offline (tests/support/
// container_image.h). Without podman these tests FAIL (CI installs it), they do not skip.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/proc/subprocess.h"
#include "tests/e2e/e2e.h"
#include "tests/support/container_image.h"

namespace assay::e2e {
namespace {

// The cluster's agents offer the container executor (and the host, for jobs without image).
ClusterOptions ContainerOptions() {
  ClusterOptions o = Options();
  o.executors = "container,host";
  return o;
}

namespace json = boost::json;

// The log without its first line (the executor's "assay: container executor: ..." line, which
// names the container with a random suffix).
std::string AfterFirstLine(const std::string& log) {
  const size_t nl = log.find('\n');
  return nl == std::string::npos ? "" : log.substr(nl + 1);
}

// Names of the containers (all states) or networks that carry label `label`.
std::string Labelled(const std::string& what, const std::string& label) {
  const std::string podman = MUST(testing::PodmanPath());
  std::vector<std::string> argv = {podman, "--log-level=error"};
  if (what == "network") {
    argv.insert(argv.end(), {"network", "ls", "--format", "{{.Name}}"});
  } else {
    argv.insert(argv.end(), {"ps", "--all", "--format", "{{.Names}}"});
  }
  argv.insert(argv.end(), {"--filter", absl::StrCat("label=", label)});
  CommandResult r = MUST(RunCommand(argv, {}, {}, {}, absl::Seconds(60)));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return r.out;
}

std::string AgentDirLabel(Cluster& c, const std::string& agent) {
  return absl::StrCat("assay.agent_dir=", c.dir(), "/agent-", agent);
}

TEST_CASE("a job with image: runs its steps inside that image, workspace at /workspace",
          "[e2e][container]") {
  const std::string image = MUST(testing::BusyboxImage());
  Cluster c(ContainerOptions());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string file = absl::StrReplaceAll(R"yml(jobs:
  inside:
    image: IMAGE
    env: { GREETING: "hello from the job" }
    steps:
      - run: |
          cat /etc/os-release
          ls /bin/busybox
          test ! -e /usr
          pwd
          cat hello.txt
          echo "$GREETING"
          echo "workspace=$ASSAY_WORKSPACE home_of_agent=${ASSAY_AGENT_TOKEN:-unset}"
          test ! -e /work
)yml",
                                               {{"IMAGE", image}});
  int64_t pid = PushFiles(c, repo, {{".assay.yml", file}, {"hello.txt", "a file of the repo\n"}});
  auto done = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(done) << c.LogTails());
  REQUIRE(JsonString(Job(done, "inside"), "state") == "succeeded");
  const std::string log = MUST(c.JobLog(JobId(done, "inside")));
  INFO(log);
  CHECK(absl::StartsWith(log, "assay: container executor: "));
  CHECK(AfterFirstLine(log) ==
        "ID=assay-busybox\nNAME=\"Assay test busybox\"\n"
        "/bin/busybox\n"
        "/workspace\n"
        "a file of the repo\n"
        "hello from the job\n"
        "workspace=/workspace home_of_agent=unset\n");
  // Nothing is left of the job's container and network.
  const std::string label = AgentDirLabel(c, "a1");
  CHECK(Labelled("container", label) == "");
  CHECK(Labelled("network", label) == "");
}

TEST_CASE("a service is reachable by its name once its health check passes", "[e2e][container]") {
  const std::string image = MUST(testing::BusyboxImage());
  Cluster c(ContainerOptions());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string file = absl::StrReplaceAll(R"yml(jobs:
  with-db:
    image: IMAGE
    services:
      - name: db
        image: { name: IMAGE, pull: never }
        env: { ANSWER: "pong from the service" }
        command:
          - /bin/sh
          - -c
          - sleep 1; mkdir /www && echo "$ANSWER" > /www/ping && exec httpd -f -p 8080 -h /www
        health:
          cmd: wget -q -O /dev/null http://127.0.0.1:8080/ping
          interval: 1s
          retries: 30
    steps:
      - run: wget -q -O - http://db:8080/ping
)yml",
                                               {{"IMAGE", image}});
  int64_t pid = PushFiles(c, repo, {{".assay.yml", file}});
  auto done = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(done) << c.LogTails());
  const std::string log = MUST(c.JobLog(JobId(done, "with-db")));
  INFO(log);
  REQUIRE(JsonString(Job(done, "with-db"), "state") == "succeeded");
  CHECK(AfterFirstLine(log) == "assay: service db is healthy\npong from the service\n");
  const std::string label = AgentDirLabel(c, "a1");
  CHECK(Labelled("container", label) == "");
  CHECK(Labelled("network", label) == "");
}

TEST_CASE("a missing image with pull: never fails the job naming the key and the image",
          "[e2e][container]") {
  MUST(testing::PodmanPath());
  Cluster c(ContainerOptions());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  int64_t pid = PushFiles(c, repo, {{".assay.yml", R"yml(jobs:
  nope:
    image: { name: localhost/assay-no-such-image:1, pull: never }
    steps: [echo never]
)yml"}});
  auto done = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(done) << c.LogTails());
  const auto job = Job(done, "nope");
  CHECK(JsonString(job, "state") == "error");
  CHECK(JsonString(job, "message") ==
        "cannot prepare the container executor: image: image "
        "'localhost/assay-no-such-image:1' is not on this agent and image.pull is 'never'");
  const std::string label = AgentDirLabel(c, "a1");
  CHECK(Labelled("container", label) == "");
  CHECK(Labelled("network", label) == "");
}

// Runs the runtime (podman) with `args`; its result.
CommandResult Podman(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {MUST(testing::PodmanPath()), "--log-level=error"};
  argv.insert(argv.end(), args.begin(), args.end());
  return MUST(RunCommand(argv, {}, {}, {}, absl::Seconds(60)));
}

TEST_CASE("an image found present is not checked again for the next job, until a run fails",
          "[e2e][container]") {
  const std::string busybox = MUST(testing::BusyboxImage());
  Cluster c(ContainerOptions());
  // The agent's runtime: podman behind a script that records each command line.
  const std::string bin = c.dir() + "/runtime-bin";
  std::filesystem::create_directories(bin);
  const std::string calls = c.dir() + "/runtime-calls.log";
  {
    std::ofstream script(bin + "/podman");
    script << "#!/bin/sh\necho \"$*\" >> '" << calls << "'\nexec '" << MUST(testing::PodmanPath())
           << "' \"$@\"\n";
  }
  std::filesystem::permissions(bin + "/podman", std::filesystem::perms::owner_all);
  const std::string tag = absl::StrCat("localhost/assay-seen-", ::getpid(), ":1");
  REQUIRE(Podman({"tag", busybox, tag}).exit_code == 0);
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--container-runtime", bin + "/podman"}));
  MUST(c.WaitForAgents(1));
  auto exists_calls = [&] {
    int n = 0;
    for (absl::string_view line : absl::StrSplit(testing::ReadFileOrEmpty(calls), '\n')) {
      if (line == absl::StrCat("--log-level=error image exists ", tag)) ++n;
    }
    return n;
  };
  const std::string two = absl::StrReplaceAll(R"yml(jobs:
  first:
    image: { name: TAG, pull: never }
    steps: [echo first]
  second:
    needs: [first]
    image: { name: TAG, pull: never }
    steps: [echo second]
)yml",
                                              {{"TAG", tag}});
  auto done = MUST(c.WaitForPipelineDone(PushFiles(c, repo, {{".assay.yml", two}})));
  INFO(json::serialize(done) << c.LogTails());
  CHECK(JsonString(done, "state") == "succeeded");
  CHECK(AfterFirstLine(MUST(c.JobLog(JobId(done, "second")))) == "second\n");
  CHECK(exists_calls() == 1);  // the first job asked; the second trusted the answer

  // The image goes away behind the agent's back: the next job's run fails with the runtime's
  // own words (exit 125); the one after asks again and gets the agent's message.
  REQUIRE(Podman({"untag", tag}).exit_code == 0);
  const std::string one = absl::StrReplaceAll(R"yml(jobs:
  third:
    image: { name: TAG, pull: never }
    steps: [echo third]
)yml",
                                              {{"TAG", tag}});
  auto gone = MUST(c.WaitForPipelineDone(PushFiles(c, repo, {{".assay.yml", one}}, "d-2")));
  INFO(json::serialize(gone));
  CHECK(JsonString(Job(gone, "third"), "state") == "failed");
  CHECK(JsonString(Job(gone, "third"), "message") == "step \"step 1\" exited with code 125");
  CHECK(absl::StrContains(MUST(c.JobLog(JobId(gone, "third"))), "image not known"));
  CHECK(exists_calls() == 1);
  auto again = MUST(c.WaitForPipelineDone(PushFiles(
      c, repo, {{".assay.yml", absl::StrReplaceAll(one, {{"third", "fourth"}})}}, "d-3")));
  INFO(json::serialize(again));
  CHECK(JsonString(Job(again, "fourth"), "state") == "error");
  CHECK(JsonString(Job(again, "fourth"), "message") ==
        absl::StrCat("cannot prepare the container executor: image: image '", tag,
                     "' is not on this agent and image.pull is 'never'"));
  CHECK(exists_calls() == 2);
}

TEST_CASE("canceling a container job removes its container and network", "[e2e][container]") {
  const std::string image = MUST(testing::BusyboxImage());
  Cluster c(ContainerOptions());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string file = absl::StrReplaceAll(R"yml(jobs:
  long:
    image: IMAGE
    steps:
      - run: echo started; sleep 300
)yml",
                                               {{"IMAGE", image}});
  int64_t pid = PushFiles(c, repo, {{".assay.yml", file}});
  auto running = MUST(c.WaitForJobState(pid, "long", "running"));
  const int64_t job = JobId(running, "long");
  MUST(c.WaitUntil("the step to start", [&](std::string& seen) {
    auto log = c.JobLog(job);
    seen = log.ok() ? *log : "";
    return absl::StrContains(seen, "started\n");
  }));
  const std::string label = AgentDirLabel(c, "a1");
  CHECK(Labelled("container", label) != "");
  auto cancel = MUST(c.RunCli({"cancel", std::to_string(pid)}));
  CHECK(cancel.exit_code == 0);
  auto done = MUST(c.WaitForPipelineDone(pid));
  CHECK(JsonString(Job(done, "long"), "state") == "canceled");
  MUST(c.WaitUntil("the agent's report of the canceled attempt", [&](std::string& seen) {
    auto log = c.JobLog(job);
    seen = log.ok() ? *log : "";
    return absl::StrContains(seen, "sent SIGTERM");
  }));
  MUST(c.WaitUntil(
      "the job's container and network to be removed",
      [&](std::string& seen) {
        seen = Labelled("container", label) + Labelled("network", label);
        return seen.empty();
      },
      absl::Seconds(60)));
}

TEST_CASE("an agent killed with SIGKILL removes its leftover containers when it restarts",
          "[e2e][container]") {
  const std::string image = MUST(testing::BusyboxImage());
  Cluster c(ContainerOptions());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  testing::Process* agent = MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string file = absl::StrReplaceAll(R"yml(jobs:
  long:
    image: IMAGE
    services:
      - name: side
        image: IMAGE
        command: ["sleep", "300"]
    steps:
      - run: echo started; sleep 300
)yml",
                                               {{"IMAGE", image}});
  int64_t pid = PushFiles(c, repo, {{".assay.yml", file}});
  auto running = MUST(c.WaitForJobState(pid, "long", "running"));
  const int64_t job = JobId(running, "long");
  MUST(c.WaitUntil("the step to start", [&](std::string& seen) {
    auto log = c.JobLog(job);
    seen = log.ok() ? *log : "";
    return absl::StrContains(seen, "started\n");
  }));
  const std::string label = AgentDirLabel(c, "a1");
  agent->Kill(SIGKILL);
  REQUIRE(agent->Wait(absl::Seconds(10)).has_value());
  // The job's container and its service are left behind by the killed agent...
  const std::vector<std::string> left =
      absl::StrSplit(Labelled("container", label), '\n', absl::SkipWhitespace());
  REQUIRE(left.size() == 2);
  const std::string left_network = Labelled("network", label);
  REQUIRE(left_network != "");
  // ... and removed by the same agent (same name, same work dir) when it starts again. (The
  // server may run the job again on it, as a new attempt with new containers: only the old
  // names must be gone.)
  MUST(c.StartAgent("a1"));
  MUST(c.WaitUntil(
      "the restarted agent to remove the leftovers",
      [&](std::string& seen) {
        seen = Labelled("container", label) + Labelled("network", label);
        for (const std::string& name : left) {
          if (absl::StrContains(seen, name)) return false;
        }
        return !absl::StrContains(seen, left_network);
      },
      absl::Seconds(60)));
  // The job may run again (attempt 2, sleeping 300 s): cancel it, so that this test leaves no
  // container behind on the machine either.
  MUST(c.RunCli({"cancel", std::to_string(pid)}));
  MUST(c.WaitForPipelineDone(pid));
  MUST(c.WaitUntil(
      "the second attempt's containers to be removed",
      [&](std::string& seen) {
        seen = Labelled("container", label) + Labelled("network", label);
        return seen.empty();
      },
      absl::Seconds(60)));
}

}  // namespace
}  // namespace assay::e2e
