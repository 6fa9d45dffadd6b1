// Driven steps (StepDriver, agent/step_runner.h): the driver decides the step while its
// process runs (issue 10's eval steps).
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "agent/step_runner.h"

namespace assay {
namespace {

struct Run {
  JobRunResult result;
  std::string output;
  std::vector<pid_t> pgids;
};

Run RunSteps(JobRunRequest req, CancelFlag& cancel) {
  Run run;
  run.result = RunJob(
      req, cancel, [&](std::string_view chunk) { run.output.append(chunk); }, &run.pgids);
  return run;
}

bool GroupGone(pid_t pgid) { return kill(-pgid, 0) == -1 && errno == ESRCH; }

// Waits (bounded: 20 s) for the process to exit, or for the cancel.
bool AwaitExit(const std::atomic<bool>& exited, CancelFlag& cancel) {
  for (int i = 0; i < 2000 && !exited.load() && !cancel.canceled(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return exited.load();
}

StepSpecToRun Driven(std::string name, std::string run,
                     std::function<absl::Status(const std::atomic<bool>&, CancelFlag&)> drive) {
  auto driver = std::make_shared<StepDriver>();
  driver->start = [run] { return run; };
  driver->drive = std::move(drive);
  StepSpecToRun step;
  step.name = std::move(name);
  step.run = "echo the original run text is not used";
  step.driver = std::move(driver);
  return step;
}

JobRunRequest Job(std::vector<StepSpecToRun> steps) {
  JobRunRequest req;
  req.steps = std::move(steps);
  req.kill_grace = absl::Milliseconds(300);
  return req;
}

TEST_CASE("a driver that is done first stops its process and the job goes on", "[driver]") {
  CancelFlag cancel;
  std::atomic<bool> saw_exit{true};
  Run run = RunSteps(Job({Driven("eval", "echo started; exec sleep 30",
                                 [&](const std::atomic<bool>& exited, CancelFlag&) {
                                   saw_exit = exited.load();
                                   return absl::OkStatus();
                                 }),
                          {"after", "echo after", {}, nullptr}}),
                     cancel);
  CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
  CHECK(run.result.message.empty());
  CHECK(!saw_exit.load());  // the driver returned while the process still ran
  CHECK(run.output ==
        "started\nassay: the step's driver is done; sent SIGTERM to the process group\nafter\n");
  REQUIRE(run.pgids.size() == 2);
  CHECK(GroupGone(run.pgids[0]));
}

TEST_CASE("a driver's error fails the step with its message, and later steps do not run",
          "[driver]") {
  CancelFlag cancel;
  Run run = RunSteps(Job({Driven("eval", "exec sleep 30",
                                 [](const std::atomic<bool>&, CancelFlag&) {
                                   return absl::InvalidArgumentError("qa.jsonl:3: not JSON");
                                 }),
                          {"after", "echo after", {}, nullptr}}),
                     cancel);
  CHECK(run.result.outcome == JobRunOutcome::kFailed);
  CHECK(run.result.exit_code == 1);
  CHECK(run.result.failed_step == 0);
  CHECK(run.result.message == "step \"eval\" failed: qa.jsonl:3: not JSON");
  CHECK(run.output.find("after") == std::string::npos);
}

TEST_CASE("a process that exits first is told to the driver, whose status decides", "[driver]") {
  CancelFlag cancel;
  SECTION("the driver fails it") {
    Run run = RunSteps(Job({Driven("eval", "echo bye; exit 3",
                                   [](const std::atomic<bool>& exited, CancelFlag& c) {
                                     if (!AwaitExit(exited, c)) return absl::OkStatus();
                                     return absl::UnavailableError("the model command exited");
                                   })}),
                       cancel);
    CHECK(run.result.outcome == JobRunOutcome::kFailed);
    CHECK(run.result.message == "step \"eval\" failed: the model command exited");
    CHECK(run.output == "bye\n");
  }
  SECTION("the driver is content: the exit status does not matter") {
    Run run = RunSteps(Job({Driven("eval", "exit 7",
                                   [](const std::atomic<bool>& exited, CancelFlag& c) {
                                     AwaitExit(exited, c);
                                     return absl::OkStatus();
                                   })}),
                       cancel);
    CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
    CHECK(run.output.empty());
  }
}

TEST_CASE("a cancel stops a driven step and waits for its driver", "[driver]") {
  CancelFlag cancel;
  std::atomic<bool> driver_saw_cancel{false};
  std::thread canceler([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel.Cancel();
  });
  Run run = RunSteps(Job({Driven("eval", "exec sleep 30",
                                 [&](const std::atomic<bool>& exited, CancelFlag& c) {
                                   AwaitExit(exited, c);
                                   driver_saw_cancel = c.canceled();
                                   return absl::OkStatus();
                                 })}),
                     cancel);
  canceler.join();
  CHECK(run.result.outcome == JobRunOutcome::kCanceled);
  CHECK(run.result.message == "job canceled in step \"eval\"");
  CHECK(driver_saw_cancel.load());
  REQUIRE(run.pgids.size() == 1);
  CHECK(GroupGone(run.pgids[0]));
}

TEST_CASE("a driver that cannot start is an error before any process", "[driver]") {
  CancelFlag cancel;
  StepSpecToRun step =
      Driven("eval", "", [](const std::atomic<bool>&, CancelFlag&) { return absl::OkStatus(); });
  step.driver->start = []() -> absl::StatusOr<std::string> {
    return absl::FailedPreconditionError("cannot make the FIFOs");
  };
  Run run = RunSteps(Job({step}), cancel);
  CHECK(run.result.outcome == JobRunOutcome::kError);
  CHECK(run.result.message == "cannot start step \"eval\": cannot make the FIFOs");
  CHECK(run.pgids.empty());
}

}  // namespace
}  // namespace assay
