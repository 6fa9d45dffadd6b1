// End to end (issue 8, items 1 and 3, the agent's side): what a job can see and keep of the agent
// that runs it. Real server, real agents, real git.

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "tests/e2e/e2e.h"
#include "tests/support/process.h"

namespace assay::e2e {
namespace {

std::string WriteSecret(const std::string& path, const std::string& value) {
  std::ofstream(path) << value << "\n";
  REQUIRE(chmod(path.c_str(), 0600) == 0);
  return path;
}

// The pids of the processes descending from this test process (its server, agents, their
// steps and git children) whose command line holds `needle`. Why only those: other test runs on
// the same machine are none of this test's business.
std::vector<std::string> CmdlinesHolding(const std::string& needle) {
  std::map<std::string, std::string> parent;  // pid -> ppid
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = testing::ReadFileOrEmpty((entry.path() / "stat").string());
    const size_t close = stat.rfind(')');
    if (close == std::string::npos || close + 4 >= stat.size()) continue;
    parent[name] = stat.substr(close + 4, stat.find(' ', close + 4) - (close + 4));
  }
  std::set<std::string> ours = {std::to_string(getpid())};
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& [pid, ppid] : parent) {
      if (ours.count(ppid) != 0 && ours.insert(pid).second) grew = true;
    }
  }
  std::vector<std::string> found;
  for (const std::string& pid : ours) {
    std::ifstream in("/proc/" + pid + "/cmdline", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (absl::StrContains(text, needle)) found.push_back(pid);
  }
  return found;
}

// Whether a live (not zombie) process has exactly this NUL-separated command line.
bool Alive(const std::string& cmdline) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text != cmdline) continue;
    std::string stat = testing::ReadFileOrEmpty((entry.path() / "stat").string());
    const size_t close = stat.rfind(')');
    if (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z') {
      return true;
    }
  }
  return false;
}

TEST_CASE("a step sees none of the agent's secrets, and no token is on any command line",
          "[e2e][security]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  const std::string token_file = WriteSecret(c.dir() + "/agent.token", testing::kAgentToken);
  // ASSAY_TOKEN from the cluster, --token-file (which wins), an operator's GIT_SSH_COMMAND and
  // another secret of the host.
  MUST(c.StartAgent("a1", {"--token-file", token_file},
                    {{"GIT_SSH_COMMAND", "ssh -i /root/.ssh/deploy_key"},
                     {"GIT_CONFIG_PARAMETERS", "'core.sshcommand=x'"},
                     {"HOST_SECRET", "hunter2"}}));
  MUST(c.WaitForAgents(1));
  const std::string started = c.dir() + "/started", gate = c.dir() + "/gate";
  const std::string pipeline_file = absl::StrReplaceAll(R"yml(jobs:
  look:
    env:
      MINE: job value
    steps:
      - run: |
          env | LC_ALL=C sort
          touch STARTED
          while [ ! -e GATE ]; do sleep 0.02; done
)yml",
                                                        {{"STARTED", started}, {"GATE", gate}});
  const int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", pipeline_file}});
  MUST(c.WaitUntil("the step to start", [&](std::string& seen) {
    seen = std::filesystem::exists(started) ? "started" : "not started";
    return seen == "started";
  }));
  // While the job runs: no process (server, agent, step, git) has a token in its arguments.
  REQUIRE(CmdlinesHolding("assay-agent").size() == 1);  // the scan sees the agent
  CHECK(CmdlinesHolding(testing::kAgentToken).empty());
  CHECK(CmdlinesHolding(testing::kAdminToken).empty());
  std::ofstream(gate) << "go\n";
  boost::json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(boost::json::serialize(p) << "\n" << c.LogTails());
  REQUIRE(JsonString(p, "state") == "succeeded");
  const std::string log = MUST(c.JobLog(JobId(p, "look")));
  INFO(log);
  for (const char* leaked : {testing::kAgentToken, testing::kAdminToken, "deploy_key", "hunter2",
                             "core.sshcommand", token_file.c_str()}) {
    CHECK_FALSE(absl::StrContains(log, leaked));
  }
  // Every variable is allowlisted, the job's own, the agent's job context, or the shell's.
  const std::set<std::string> allowed = {
      "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR", "PWD",
      "OLDPWD", "SHLVL", "_", "MINE", "CI", "ASSAY",
      // The server's GPU assignment, part of the job's variables.
      "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"};
  std::set<std::string> names;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = line.substr(0, eq);
    names.insert(name);
    INFO(name);
    CHECK((allowed.count(name) == 1 || absl::StartsWith(name, "LC_") ||
           absl::StartsWith(name, "ASSAY_")));
  }
  CHECK(names.count("MINE") == 1);
  // ASSAY_* are only those the agent sets on purpose.
  for (const std::string& name : names) {
    if (!absl::StartsWith(name, "ASSAY_")) continue;
    INFO(name);
    CHECK(std::set<std::string>{"ASSAY_JOB_ID", "ASSAY_JOB_NAME", "ASSAY_PIPELINE_ID",
                                "ASSAY_ATTEMPT", "ASSAY_COMMIT_SHA", "ASSAY_REF",
                                "ASSAY_AGENT_NAME", "ASSAY_WORKSPACE", "ASSAY_JOB_INSTANCE"}
              .count(name) == 1);
  }
}

// A pipeline whose job prints file.txt and, in a commit whose `mode` is "attack", tries to make
// later checkouts see other content: a replace ref and a config change through its workspace's
// .git, and files planted in the agent's cache and in the object directory its .git borrows.
constexpr char kAttackPipeline[] = R"yml(jobs:
  work:
    steps:
      - run: |
          cat file.txt
          if [ "$(cat mode)" = attack ]; then
            evil=$(printf 'evil\n' | git hash-object -w --stdin 2>/dev/null) || evil=
            blob=$(git rev-parse HEAD:file.txt)
            if [ -n "$evil" ] && git replace -f "$blob" "$evil" 2>/dev/null
            then echo "replace: done"; else echo "replace: refused"; fi
            if git config core.repositoryformatversion 99 2>/dev/null
            then echo "config: done"; else echo "config: refused"; fi
            if touch "$ASSAY_WORKSPACE/../../cache/planted" 2>/dev/null
            then echo "cache: writable"; else echo "cache: read-only"; fi
            alt=$(cat .git/objects/info/alternates)
            if touch "$alt/planted" 2>/dev/null && mkdir -p "$alt/../refs/replace" 2>/dev/null
            then echo "cache objects: writable"; else echo "cache objects: read-only"; fi
          fi
)yml";

// Runs the attack commit, restarts the agent (so that its git children start afresh), runs a
// second commit with the same file.txt; returns the two logs.
std::pair<std::string, std::string> AttackThenCheck(Cluster& c, GitRepo& repo,
                                                    const std::vector<std::string>& flags) {
  testing::Process* agent = MUST(c.StartAgent("a1", flags));
  MUST(c.WaitForAgents(1));
  int64_t first = PushFiles(
      c, repo, {{".assay.yml", kAttackPipeline}, {"file.txt", "original\n"}, {"mode", "attack\n"}},
      "delivery-attack");
  boost::json::object p1 = MUST(c.WaitForPipelineDone(first));
  INFO(boost::json::serialize(p1) << "\n" << c.LogTails());
  const std::string log1 = MUST(c.JobLog(JobId(p1, "work")));
  agent->Kill(SIGTERM);
  REQUIRE(agent->Wait(absl::Seconds(30)).has_value());
  MUST(c.StartAgent("a1", flags));
  MUST(c.WaitForAgents(1));
  int64_t second = PushFiles(c, repo, {{"mode", "check\n"}}, "delivery-check");
  boost::json::object p2 = MUST(c.WaitForPipelineDone(second));
  INFO(boost::json::serialize(p2) << "\n" << c.LogTails());
  CHECK(JsonString(p2, "state") == "succeeded");
  return {log1, MUST(c.JobLog(JobId(p2, "work")))};
}

TEST_CASE("a job's git replace does not change a later checkout of the same content",
          "[e2e][security]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  // The job runs as the agent's own user. Its git writes into the workspace's own .git (which
  // only borrows the cache's objects), and the agent's git ignores replace refs anyway.
  auto [attack, check] = AttackThenCheck(c, repo, {});
  CHECK(absl::StartsWith(attack, "original\nreplace: done\nconfig: done\n"));
  CHECK(check == "original\n");
}

TEST_CASE("with --job-user, a job runs as that user and cannot touch the agent's files",
          "[e2e][security]") {
  if (geteuid() != 0) {
    WARN("skipped: --job-user needs the agent to run as root");
    return;
  }
  Cluster c(Options());
  // The job user must be able to pass through the test's directory to its workspace.
  REQUIRE(chmod(c.dir().c_str(), 0711) == 0);
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  const std::string token_file = WriteSecret(c.dir() + "/agent.token", testing::kAgentToken);
  const std::vector<std::string> flags = {"--job-user", "65534:65534", "--token-file", token_file};
  SECTION("identity, token and workspace") {
    MUST(c.StartAgent("a1", flags));
    MUST(c.WaitForAgents(1));
    const std::string pipeline_file = absl::StrReplaceAll(R"yml(jobs:
  who:
    steps:
      - run: |
          id -u; id -g
          cat TOKEN_FILE >/dev/null 2>&1 && echo "token: readable" || echo "token: unreadable"
          touch mine && echo "workspace: writable"
          stat -c '%u %a' . .git
)yml",
                                                          {{"TOKEN_FILE", token_file}});
    int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", pipeline_file}});
    boost::json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
    INFO(boost::json::serialize(p) << "\n" << c.LogTails());
    CHECK(JsonString(p, "state") == "succeeded");
    CHECK(MUST(c.JobLog(JobId(p, "who"))) ==
          "65534\n65534\ntoken: unreadable\nworkspace: writable\n65534 700\n65534 755\n");
  }
  SECTION("git replace, git config and the cache") {
    auto [attack, check] = AttackThenCheck(c, repo, flags);
    // The job's git writes only its own .git; the cache it borrows objects from is read-only.
    CHECK(attack ==
          "original\nreplace: done\nconfig: done\ncache: read-only\ncache objects: read-only\n");
    CHECK(check == "original\n");
  }
}

TEST_CASE("a process a step starts with setsid is killed when the job ends", "[e2e][security]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string pid_file = c.dir() + "/escaped.pid";
  const std::string pipeline_file = absl::StrReplaceAll(R"yml(jobs:
  escape:
    steps:
      - run: |
          setsid sh -c 'echo $$ > PID_FILE; exec sleep 987661' &
          while [ ! -s PID_FILE ]; do sleep 0.01; done
          echo started
)yml",
                                                        {{"PID_FILE", pid_file}});
  int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", pipeline_file}});
  boost::json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(boost::json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "succeeded");
  CHECK(MUST(c.JobLog(JobId(p, "escape"))) ==
        "started\nassay: killed 1 process left running by the job\n");
  REQUIRE(!testing::ReadFileOrEmpty(pid_file).empty());
  const std::string cmdline = std::string(
      "sleep\0"
      "987661\0",
      13);
  // The kill happens before the result is sent; the bound only covers a slow /proc.
  MUST(c.WaitUntil("the setsid child to be gone", [&](std::string& seen) {
    const bool alive = Alive(cmdline);
    seen = alive ? "alive" : "gone";
    return !alive;
  }));
}

}  // namespace
}  // namespace assay::e2e
