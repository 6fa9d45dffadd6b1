#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "agent/job_user.h"
#include "agent/step_runner.h"

namespace assay {
namespace {

struct Run {
  JobRunResult result;
  std::string output;
  std::vector<size_t> chunk_sizes;
  std::vector<pid_t> pgids;
};

Run RunSteps(JobRunRequest req, CancelFlag* cancel = nullptr) {
  CancelFlag local;
  Run run;
  run.result = RunJob(
      req, cancel != nullptr ? *cancel : local,
      [&](std::string_view chunk) {
        run.output.append(chunk);
        run.chunk_sizes.push_back(chunk.size());
      },
      &run.pgids);
  return run;
}

JobRunRequest Job(std::vector<StepSpecToRun> steps) {
  JobRunRequest req;
  req.steps = std::move(steps);
  return req;
}

// No process of the group is left, zombies included.
bool GroupGone(pid_t pgid) { return kill(-pgid, 0) == -1 && errno == ESRCH; }

TEST_CASE("RunJob streams the exact output of its steps", "[step_runner]") {
  Run run = RunSteps(Job({{"first", "echo one"}, {"second", "printf 'two\\n'; printf three"}}));
  CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
  CHECK(run.result.exit_code == 0);
  CHECK(run.result.message.empty());
  CHECK(run.output == "one\ntwo\nthree");
  CHECK(run.pgids.size() == 2);
}

TEST_CASE("RunJob merges stdout and stderr in the order written", "[step_runner]") {
  Run run = RunSteps(Job({{"mixed", "echo out1; echo err1 >&2; echo out2; echo err2 1>&2"}}));
  CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
  CHECK(run.output == "out1\nerr1\nout2\nerr2\n");
}

TEST_CASE("RunJob runs steps with sh -e", "[step_runner]") {
  Run run = RunSteps(Job({{"strict", "false; echo no"}}));
  CHECK(run.result.outcome == JobRunOutcome::kFailed);
  CHECK(run.result.exit_code == 1);
  CHECK(run.result.message == "step \"strict\" exited with code 1");
  CHECK(run.output.empty());
}

TEST_CASE("RunJob stops at the first failing step", "[step_runner]") {
  Run run = RunSteps(Job({{"ok", "echo a"}, {"bad", "echo b; exit 3"}, {"never", "echo c"}}));
  CHECK(run.result.outcome == JobRunOutcome::kFailed);
  CHECK(run.result.exit_code == 3);
  CHECK(run.result.message == "step \"bad\" exited with code 3");
  CHECK(run.output == "a\nb\n");
  CHECK(run.pgids.size() == 2);
}

TEST_CASE("RunJob reports a step killed by a signal", "[step_runner]") {
  Run run = RunSteps(Job({{"", "kill -KILL $$"}}));
  CHECK(run.result.outcome == JobRunOutcome::kFailed);
  CHECK(run.result.exit_code == 128 + SIGKILL);
  CHECK(run.result.message == "step \"kill -KILL $$\" was killed by signal 9 (SIGKILL)");
}

TEST_CASE("RunJob passes env, workdir and /dev/null as stdin", "[step_runner]") {
  char tmpl[] = "/tmp/assay-steps-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = std::filesystem::canonical(tmpl).string();
  JobRunRequest req = Job({{"env", "printf '%s|' \"$ASSAY_A\" \"$ASSAY_B\"; pwd -P; cat"}});
  req.env = {{"ASSAY_A", "1"}, {"ASSAY_B", "two words"}};
  req.workdir = dir;
  Run run = RunSteps(req);
  std::filesystem::remove_all(dir);
  CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
  CHECK(run.output == "1|two words|" + dir + "\n");
}

TEST_CASE("RunJob reports a step that cannot start", "[step_runner]") {
  JobRunRequest req = Job({{"build", "true"}});
  req.workdir = "/nonexistent-assay-dir";
  Run run = RunSteps(req);
  CHECK(run.result.outcome == JobRunOutcome::kError);
  CHECK(run.result.exit_code == -1);
  CHECK(run.result.message ==
        "cannot start step \"build\": cannot start /bin/sh: chdir /nonexistent-assay-dir: No "
        "such file or directory");

  req = Job({{"build", "true"}});
  req.env = {{"", "x"}};
  CHECK(RunSteps(req).result.message ==
        "invalid job environment: invalid environment variable name \"\"");
}

TEST_CASE("RunJob kills what a step left in the background", "[step_runner]") {
  // The background sleep holds the output pipe; the step still ends when its shell does.
  Run run = RunSteps(Job({{"bg", "sleep 100 & echo started"}}));
  CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
  CHECK(run.output == "started\n");
  REQUIRE(run.pgids.size() == 1);
  CHECK(GroupGone(run.pgids[0]));
}

TEST_CASE("RunJob delivers large output in chunks of at most 256 KiB", "[step_runner]") {
  Run run = RunSteps(Job({{"big", "head -c 1000000 /dev/zero | tr '\\0' x"}}));
  CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
  CHECK(run.output == std::string(1000000, 'x'));
  for (size_t size : run.chunk_sizes) CHECK(size <= 256 * 1024);
}

TEST_CASE("RunJob times out and terminates the whole process group", "[step_runner]") {
  JobRunRequest req = Job({{"fast", "true"}, {"slow", "sleep 100 & sleep 100; "}});
  req.timeout = absl::Seconds(1);
  req.kill_grace = absl::Milliseconds(300);
  Run run = RunSteps(req);
  CHECK(run.result.outcome == JobRunOutcome::kTimedOut);
  CHECK(run.result.message == "job timed out after 1s in step \"slow\"");
  CHECK(run.result.exit_code == 128 + SIGTERM);
  CHECK(run.output == "assay: job timed out after 1s; sent SIGTERM to the process group\n");
  REQUIRE(run.pgids.size() == 2);
  CHECK(GroupGone(run.pgids[1]));
}

TEST_CASE("RunJob sends SIGKILL after the grace to a group that ignores SIGTERM", "[step_runner]") {
  JobRunRequest req = Job({{"stubborn", "trap '' TERM; echo ready; sleep 100 & sleep 100"}});
  req.timeout = absl::Seconds(1);
  req.kill_grace = absl::Milliseconds(300);
  Run run = RunSteps(req);
  CHECK(run.result.outcome == JobRunOutcome::kTimedOut);
  CHECK(run.result.exit_code == 128 + SIGKILL);
  CHECK(run.output ==
        "ready\n"
        "assay: job timed out after 1s; sent SIGTERM to the process group\n"
        "assay: process group still alive after 0.3s; sent SIGKILL\n");
  REQUIRE(run.pgids.size() == 1);
  CHECK(GroupGone(run.pgids[0]));
}

TEST_CASE("RunJob lets a step handle SIGTERM within the grace", "[step_runner]") {
  JobRunRequest req =
      Job({{"graceful", "trap 'echo cleaning up; exit 7' TERM; echo ready; sleep 100 & wait"}});
  req.timeout = absl::Seconds(1);
  req.kill_grace = absl::Seconds(30);
  Run run = RunSteps(req);
  CHECK(run.result.outcome == JobRunOutcome::kTimedOut);
  CHECK(run.result.exit_code == 7);
  CHECK(run.output ==
        "ready\n"
        "assay: job timed out after 1s; sent SIGTERM to the process group\n"
        "cleaning up\n");
  CHECK(GroupGone(run.pgids.at(0)));
}

TEST_CASE("RunJob stops at once when canceled from another thread", "[step_runner]") {
  CancelFlag cancel;
  std::mutex mu;
  std::condition_variable cv;
  bool started = false;
  std::thread canceler([&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return started; });
    cancel.Cancel();
  });
  JobRunRequest req = Job({{"long", "echo started; sleep 100"}, {"never", "echo never"}});
  req.kill_grace = absl::Seconds(30);
  std::string output;
  std::vector<pid_t> pgids;
  JobRunResult result = RunJob(
      req, cancel,
      [&](std::string_view chunk) {
        output.append(chunk);
        if (output == "started\n") {
          std::lock_guard<std::mutex> lock(mu);
          started = true;
          cv.notify_one();
        }
      },
      &pgids);
  canceler.join();
  CHECK(result.outcome == JobRunOutcome::kCanceled);
  CHECK(result.exit_code == 128 + SIGTERM);
  CHECK(result.message == "job canceled in step \"long\"");
  CHECK(output == "started\nassay: job canceled; sent SIGTERM to the process group\n");
  REQUIRE(pgids.size() == 1);
  CHECK(GroupGone(pgids[0]));
}

TEST_CASE("RunJob starts nothing once canceled", "[step_runner]") {
  CancelFlag cancel;
  cancel.Cancel();
  cancel.Cancel();  // idempotent
  CHECK(cancel.canceled());
  Run run = RunSteps(Job({{"first", "echo no"}}), &cancel);
  CHECK(run.result.outcome == JobRunOutcome::kCanceled);
  CHECK(run.result.exit_code == 0);
  CHECK(run.result.message == "job canceled before step \"first\"");
  CHECK(run.output.empty());
  CHECK(run.pgids.empty());
}

TEST_CASE("FormatSeconds drops trailing zeros", "[step_runner]") {
  CHECK(FormatSeconds(absl::Seconds(1)) == "1");
  CHECK(FormatSeconds(absl::Seconds(90)) == "90");
  CHECK(FormatSeconds(absl::Milliseconds(300)) == "0.3");
  CHECK(FormatSeconds(absl::Milliseconds(2250)) == "2.25");
}

// --- issue 8: what a step inherits, and what outlives it ------------------------------------

// The NAME of every NAME=value line of `env` output.
std::set<std::string> Names(const std::string& env_output) {
  std::set<std::string> names;
  std::istringstream in(env_output);
  std::string line;
  while (std::getline(in, line)) {
    if (const size_t eq = line.find('='); eq != std::string::npos) names.insert(line.substr(0, eq));
  }
  return names;
}

TEST_CASE("RunJob gives steps an allowlisted environment, never the agent's secrets",
          "[step_runner][security]") {
  setenv("ASSAY_TOKEN", "agent-secret-token", 1);
  setenv("GIT_SSH_COMMAND", "ssh -i /root/.ssh/deploy_key", 1);
  setenv("GIT_DIR", "/somewhere", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "aws-secret", 1);
  setenv("LC_TIME", "C", 1);
  setenv("TZ", "UTC", 1);
  JobRunRequest req = Job({{"env", "env"}});
  req.env = {{"MINE", "job value"}, {"TZ", "Europe/Paris"}};
  Run run = RunSteps(req);
  unsetenv("ASSAY_TOKEN");
  unsetenv("GIT_SSH_COMMAND");
  unsetenv("GIT_DIR");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  unsetenv("LC_TIME");
  unsetenv("TZ");
  REQUIRE(run.result.outcome == JobRunOutcome::kSucceeded);
  CHECK(run.output.find("agent-secret-token") == std::string::npos);
  CHECK(run.output.find("deploy_key") == std::string::npos);
  CHECK(run.output.find("aws-secret") == std::string::npos);
  const std::string lines = "\n" + run.output;
  CHECK(lines.find("\nMINE=job value\n") != std::string::npos);
  CHECK(lines.find("\nTZ=Europe/Paris\n") != std::string::npos);  // the job's value wins
  CHECK(lines.find("\nLC_TIME=C\n") != std::string::npos);
  // Every name is allowlisted, the job's own, the scope marker, or one the shell sets itself.
  const std::set<std::string> allowed = {"PATH",  "HOME",   "USER",     "LOGNAME",
                                         "SHELL", "LANG",   "LANGUAGE", "TZ",
                                         "TERM",  "TMPDIR", "MINE",     "ASSAY_JOB_INSTANCE",
                                         "PWD",   "OLDPWD", "SHLVL",    "_"};
  for (const std::string& name : Names("\n" + run.output)) {
    INFO(name);
    CHECK((allowed.count(name) == 1 || name.rfind("LC_", 0) == 0));
  }
}

TEST_CASE("StepEnvironment: a job user's HOME/USER/LOGNAME/SHELL, PATH defaults", "[step_runner]") {
  JobIdentity user;
  user.uid = 65534;
  user.gid = 65534;
  const char* saved = getenv("PATH");
  const std::string path = saved != nullptr ? saved : "";
  unsetenv("PATH");
  auto env = StepEnvironment({{"X", "1"}}, &user, "/w/job-1-1");
  setenv("PATH", path.c_str(), 1);
  REQUIRE(env.ok());
  auto has = [&](const std::string& entry) {
    return std::find(env->begin(), env->end(), entry) != env->end();
  };
  CHECK(has("PATH=/usr/local/bin:/usr/bin:/bin"));
  CHECK(has("HOME=/w/job-1-1"));
  CHECK(has("USER=65534"));
  CHECK(has("LOGNAME=65534"));
  CHECK(has("SHELL=/bin/sh"));
  CHECK(has("X=1"));
  CHECK(StepEnvironment({{"A=B", "x"}}, nullptr, "").status().message() ==
        "invalid environment variable name \"A=B\"");
  CHECK(StepEnvironment({{"A", std::string("x\0y", 3)}}, nullptr, "").status().message() ==
        "environment variable A contains a NUL byte");
}

TEST_CASE("ParseJobUser: names, UID:GID and what is refused", "[step_runner][security]") {
  auto nobody = ParseJobUser("nobody");
  if (nobody.ok()) {  // most systems have one
    CHECK(nobody->uid == 65534);
    CHECK(nobody->name == "nobody");
    CHECK(nobody->home.empty() == !std::filesystem::is_directory("/nonexistent"));
  }
  auto numeric = ParseJobUser("1234:4321");
  REQUIRE(numeric.ok());
  CHECK(numeric->uid == 1234);
  CHECK(numeric->gid == 4321);
  CHECK(numeric->groups.empty());
  for (const char* bad : {"1:", ":1", "a:1", "1:2:3", "-1:0", "4294967295:0", "99999999999:0"}) {
    INFO(bad);
    CHECK(ParseJobUser(bad).status().message() ==
          absl::StrCat("--job-user '", bad, "': must be a user name or UID:GID"));
  }
  CHECK(ParseJobUser("no-such-user-assay").status().message() ==
        "--job-user 'no-such-user-assay': no such user");
  CHECK(ParseJobUser(std::string(300, 'a')).status().message() ==
        absl::StrCat("--job-user '", std::string(300, 'a'), "': must be a user name or UID:GID"));
  // Policy: root needs a choice; a non-root agent cannot switch.
  CHECK(ResolveJobUser("", 0).status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(!ResolveJobUser("root", 0)->has_value());
  CHECK(!ResolveJobUser("", 1000)->has_value());
  CHECK(!ResolveJobUser("1000:1000", 1000)->has_value());
  CHECK(ResolveJobUser("1001:1001", 1000).status().message() ==
        "--job-user needs the agent to run as root to switch users (it runs as uid 1000)");
  CHECK(ResolveJobUser("0:0", 1000).status().message() ==
        "--job-user root: the agent runs as uid 1000, not root");
  auto as_root = ResolveJobUser("1001:1002", 0);
  REQUIRE(as_root.ok());
  REQUIRE(as_root->has_value());
  CHECK((*as_root)->uid == 1001);
}

// Whether a process whose command line is exactly `argv` (NUL-joined) is alive (not a zombie).
bool ProcessWithCmdline(const std::string& cmdline) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text != cmdline) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t close = line.rfind(')');
    if (close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z') {
      return true;
    }
  }
  return false;
}

TEST_CASE("RunJob kills processes that left the step's group (setsid, double fork)",
          "[step_runner][security]") {
  for (const bool cgroup : {true, false}) {
    INFO("allow_cgroup " << cgroup);
    char tmpl[] = "/tmp/assay-scope-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    // Unique arguments name the processes (a pid could be reused).
    const std::string a = cgroup ? "987651" : "987652", b = cgroup ? "987653" : "987654";
    JobRunRequest req =
        Job({{"escape", absl::StrCat("setsid sleep ", a, " &\n", "sh -c 'setsid sh -c \"sleep ", b,
                                     " & echo x > ", dir, "/b\" &'\n", "while [ ! -s ", dir,
                                     "/b ]; do sleep 0.01; done\necho started\n")},
             {"later", "echo second step"}});
    req.allow_cgroup = cgroup;
    Run run = RunSteps(req);
    std::filesystem::remove_all(dir);
    CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
    CHECK(run.output ==
          "started\nsecond step\nassay: killed 2 processes left running by the job\n");
    CHECK_FALSE(
        ProcessWithCmdline(absl::StrCat("sleep", std::string(1, '\0'), a, std::string(1, '\0'))));
    CHECK_FALSE(
        ProcessWithCmdline(absl::StrCat("sleep", std::string(1, '\0'), b, std::string(1, '\0'))));
  }
}

TEST_CASE("RunJob runs steps as the job user when the agent is root", "[step_runner][security]") {
  if (geteuid() != 0) {
    WARN("skipped: switching users needs root");
    return;
  }
  char tmpl[] = "/tmp/assay-user-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  REQUIRE(chmod(dir.c_str(), 0711) == 0);
  const std::string secret = dir + "/token";
  std::ofstream(secret) << "agent-token\n";
  REQUIRE(chmod(secret.c_str(), 0600) == 0);
  const std::string ws = dir + "/ws";
  REQUIRE(mkdir(ws.c_str(), 0700) == 0);
  REQUIRE(chown(ws.c_str(), 65534, 65534) == 0);
  JobRunRequest req = Job({{"who", absl::StrCat("id -u; id -g; id -G; cat ", secret,
                                                " 2>/dev/null || echo unreadable; pwd")}});
  req.workdir = ws;
  JobIdentity user;
  user.uid = 65534;
  user.gid = 65534;
  req.user = user;
  Run run = RunSteps(req);
  CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
  CHECK(run.output == "65534\n65534\n65534\nunreadable\n" + ws + "\n");
  // A workspace the user cannot enter is a start error, checked as that user.
  REQUIRE(chmod(ws.c_str(), 0700) == 0);
  REQUIRE(chown(ws.c_str(), 0, 0) == 0);
  run = RunSteps(req);
  CHECK(run.result.outcome == JobRunOutcome::kError);
  CHECK(run.result.message ==
        "cannot start step \"who\": cannot start /bin/sh: chdir " + ws + ": Permission denied");
  std::filesystem::remove_all(dir);
}

TEST_CASE("a step run as the job user leaves every thread of the agent root",
          "[step_runner][security]") {
  if (geteuid() != 0) {
    WARN("skipped: switching users needs root");
    return;
  }
  // Another thread of this process, as the agent has many. Credentials are per thread in
  // Linux; glibc's setuid() changes all threads of a process, and a child that shares our
  // memory (CLONE_VM) would apply that to our threads.
  absl::Notification checked, stop;
  std::atomic<int> other_euid{-1};
  std::thread other([&] {
    stop.WaitForNotification();
    other_euid = static_cast<int>(geteuid());
    checked.Notify();
  });
  char tmpl[] = "/tmp/assay-user-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string ws = tmpl;
  REQUIRE(chown(ws.c_str(), 65534, 65534) == 0);
  JobRunRequest req = Job({{"who", "id -u"}});
  req.workdir = ws;
  JobIdentity user;
  user.uid = 65534;
  user.gid = 65534;
  req.user = user;
  Run run = RunSteps(req);
  CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
  CHECK(run.output == "65534\n");
  stop.Notify();
  CHECK(checked.WaitForNotificationWithTimeout(absl::Seconds(30)));
  other.join();
  CHECK(other_euid == 0);
  CHECK(geteuid() == 0);
  std::filesystem::remove_all(ws);
}

}  // namespace
}  // namespace assay

namespace assay {
namespace {

// An executor that records the calls RunJob makes and runs each step through `env -i` with a
// marker variable, so the test can tell its command from the host's.
class RecordingExecutor final : public Executor {
 public:
  std::string_view kind() const override { return "recording"; }
  absl::Status Prepare(const JobRunRequest&, absl::Time, CancelFlag&,
                       const JobLogFn& log) override {
    calls.push_back("prepare");
    log("prepared\n");
    return prepare_status;
  }
  absl::StatusOr<StepProcess> StepCommand(const JobRunRequest& req, const StepSpecToRun& step,
                                          const std::vector<std::string>&) override {
    calls.push_back("step " + step.name);
    StepProcess p;
    p.path = "/usr/bin/env";
    p.argv = {"env", "-i", "MARK=wrapped", "/bin/sh", "-e", "-c", step.run};
    p.cwd = req.workdir;
    return p;
  }
  void Cleanup(const JobRunRequest&, const JobLogFn& log) override {
    calls.push_back("cleanup");
    log("cleaned\n");
  }

  absl::Status prepare_status = absl::OkStatus();
  std::vector<std::string> calls;
};

TEST_CASE("RunJob starts steps through the executor: prepare, each step, cleanup",
          "[step_runner][executor]") {
  RecordingExecutor executor;
  JobRunRequest req = Job({{"a", "echo $MARK"}, {"b", "exit 3"}, {"c", "echo never"}});
  req.executor = &executor;
  Run run = RunSteps(req);
  CHECK(run.result.outcome == JobRunOutcome::kFailed);
  CHECK(run.result.message == "step \"b\" exited with code 3");
  CHECK(run.output == "prepared\nwrapped\ncleaned\n");
  CHECK(executor.calls == std::vector<std::string>{"prepare", "step a", "step b", "cleanup"});
}

TEST_CASE("RunJob ends the job when the executor cannot prepare, and still cleans up",
          "[step_runner][executor]") {
  RecordingExecutor executor;
  executor.prepare_status = absl::NotFoundError("image \"x\" not found");
  JobRunRequest req = Job({{"a", "echo never"}});
  req.executor = &executor;
  Run run = RunSteps(req);
  CHECK(run.result.outcome == JobRunOutcome::kError);
  CHECK(run.result.exit_code == -1);
  CHECK(run.result.message == "cannot prepare the recording executor: image \"x\" not found");
  CHECK(run.output == "prepared\ncleaned\n");
  CHECK(executor.calls == std::vector<std::string>{"prepare", "cleanup"});
}

}  // namespace
}  // namespace assay
