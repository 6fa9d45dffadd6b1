// JobScope::CleanStale: the cgroups of an agent that died (SIGKILL) are emptied and removed by
// the next agent to start. Needs a writable cgroup v2 (a root agent); skipped otherwise.

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/job_scope.h"
#include "common/proc/spawn.h"

namespace assay {
namespace {

// The cgroup v2 directory of this process, or "" (as JobScope finds it).
std::string OwnCgroupDirForTest() {
  std::ifstream in("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  for (const char* mount : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}) {
    if (std::filesystem::exists(absl::StrCat(mount, "/cgroup.procs")) &&
        std::filesystem::exists(absl::StrCat(mount, "/cgroup.subtree_control"))) {
      return absl::StrCat(mount, path == "/" ? "" : path);
    }
  }
  return "";
}

TEST_CASE("JobScope::CleanStale kills and removes the job cgroups of a dead agent",
          "[job_scope][security]") {
  const std::string own = OwnCgroupDirForTest();
  // A pid that is surely dead: a child that has exited and been reaped.
  pid_t dead = fork();
  REQUIRE(dead >= 0);
  if (dead == 0) _exit(0);
  REQUIRE(waitpid(dead, nullptr, 0) == dead);
  const std::string stale = absl::StrCat(own, "/assay-job-", dead, "-1-1");
  if (own.empty() || mkdir(stale.c_str(), 0755) != 0) {
    WARN("skipped: no writable cgroup v2 here");
    return;
  }
  // A process left in it, as a step's setsid child would be.
  UniqueFd procs(open((stale + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  REQUIRE(procs.valid());
  SpawnOptions o;
  o.path = "/bin/sleep";
  o.argv = {"sleep", "987670"};
  o.cgroup_procs_fd = procs.get();
  pid_t leftover = *SpawnProcess(o);
  procs.Reset();
  // A live agent's cgroup (ours) is left alone.
  const std::string mine = absl::StrCat(own, "/assay-job-", getpid(), "-999-1");
  REQUIRE(mkdir(mine.c_str(), 0755) == 0);

  CHECK(JobScope::CleanStale() >= 1);
  // The leftover was SIGKILLed, and reaped (it is a child of this process, as a re-parented
  // orphan is of a subreaper agent): nothing of it is left, not even a zombie.
  CHECK(kill(leftover, 0) == -1);
  CHECK(errno == ESRCH);
  CHECK_FALSE(WaitForExit(leftover).reaped);
  CHECK_FALSE(std::filesystem::exists(stale));
  CHECK(std::filesystem::exists(mine));
  rmdir(mine.c_str());
}

// Issue 11: what a container runtime leaves in a job's scope for a moment is let finish; what
// does not finish within the bound is still there for KillRemaining.
TEST_CASE("JobScope::WaitForExit waits for the job's processes, within its bound", "[job_scope]") {
  std::unique_ptr<JobScope> scope = JobScope::Create();
  auto spawn = [&scope](const std::string& seconds) {
    SpawnOptions o;
    o.path = "/bin/sleep";
    o.argv = {"sleep", seconds};
    o.env = {absl::StrCat(JobScope::kMarkerName, "=", scope->id())};
    o.cgroup_procs_fd = scope->cgroup_procs_fd();
    return *SpawnProcess(o);
  };
  const pid_t brief = spawn("0.2");
  CHECK(scope->WaitForExit(absl::Seconds(30)));
  // It has exited: reaped by WaitForExit, or (not in a cgroup: a zombie is not found by its
  // environment) a zombie reaped now, never still running.
  CHECK(waitpid(brief, nullptr, WNOHANG) != 0);
  const pid_t stays = spawn("987671");
  CHECK_FALSE(scope->WaitForExit(absl::Milliseconds(200)));
  CHECK(kill(stays, 0) == 0);
  CHECK(scope->KillRemaining() == 1);
}

}  // namespace
}  // namespace assay
