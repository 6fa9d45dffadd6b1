#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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

TEST_CASE("RunJob delivers large output in chunks of at most 64 KiB", "[step_runner]") {
  Run run = RunSteps(Job({{"big", "head -c 1000000 /dev/zero | tr '\\0' x"}}));
  CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
  CHECK(run.output == std::string(1000000, 'x'));
  for (size_t size : run.chunk_sizes) CHECK(size <= 64 * 1024);
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

}  // namespace
}  // namespace assay
