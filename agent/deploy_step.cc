#include "agent/deploy_step.h"

#include <grpcpp/grpcpp.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace assay {
namespace {

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("deploy: ", what, s.error_message()));
}

bool Promoted(const std::string& state) { return state == "watching" || state == "succeeded"; }
bool Ended(const std::string& state) {
  return state == "rolled_back" || state == "failed" || state == "aborted" || state == "superseded";
}

}  // namespace

std::shared_ptr<StepDriver> MakeDeployDriver(TrainStepContext ctx) {
  auto shared = std::make_shared<const TrainStepContext>(std::move(ctx));
  auto driver = std::make_shared<StepDriver>();
  // An idle process for the step's length: the driver decides its outcome.
  driver->start = []() -> absl::StatusOr<std::string> {
    return std::string("exec sleep 2147483647");
  };
  driver->stop_when_done = true;
  auto follow = [shared](const std::atomic<bool>& exited, CancelFlag& cancel) -> absl::Status {
    const TrainStepContext& c = *shared;
    v1::DeploymentRequest req;
    req.set_job_id(c.assignment.job_id());
    req.set_attempt_token(c.assignment.attempt_token());
    req.set_step_index(c.step_index);
    v1::DeploymentProgress progress;
    grpc::Status s = StepRpc(
        c, [&](grpc::ClientContext* cc) { return c.stub->StartDeployment(cc, req, &progress); }, 5,
        absl::Seconds(30));
    if (!s.ok()) return FromGrpc(s, "");
    const int64_t id = progress.deployment_id();
    c.log(absl::StrCat("assay: deploy: deployment ", id, " (", progress.state(), ")\n"));
    int64_t after = 0;
    for (;;) {
      if (cancel.canceled()) {
        req.set_abort(true);
        req.set_reason("the job that made it was canceled");
        req.set_after_event(after);
        (void)StepRpc(
            c,
            [&](grpc::ClientContext* cc) { return c.stub->FollowDeployment(cc, req, &progress); },
            1, absl::Seconds(5), absl::Milliseconds(500));
        c.log(absl::StrCat("assay: deploy: the job was canceled; deployment ", id,
                           " is asked to abort\n"));
        return absl::CancelledError("deploy: canceled");
      }
      if (exited.load()) {
        return absl::InternalError("deploy: the step's process ended before the deployment");
      }
      req.set_after_event(after);
      progress.Clear();
      s = StepRpc(
          c, [&](grpc::ClientContext* cc) { return c.stub->FollowDeployment(cc, req, &progress); },
          5, absl::Seconds(10), absl::Milliseconds(500));
      if (!s.ok()) return FromGrpc(s, absl::StrCat("following deployment ", id, ": "));
      for (const v1::DeploymentEventLine& e : progress.events()) {
        c.log(absl::StrCat("assay: deploy: ", e.kind(), ": ", e.message(), "\n"));
        after = std::max(after, e.id());
      }
      if (progress.events_size() > 0) continue;  // more may be waiting
      if (Promoted(progress.state())) {
        c.log(absl::StrCat("assay: deploy: deployment ", id, " promoted\n"));
        return absl::OkStatus();
      }
      if (Ended(progress.state())) {
        return absl::FailedPreconditionError(absl::StrCat(
            "deploy: deployment ", id, " ", progress.state(), ": ", progress.message()));
      }
      // Wait a second, waking early for a cancel or the process's end.
      for (int i = 0; i < 20 && !cancel.canceled() && !exited.load(); ++i) {
        absl::SleepFor(absl::Milliseconds(50));
      }
    }
  };
  // Why the failure goes into the log too: it is what a reader of the job's log looks for.
  driver->drive = [shared, follow](const std::atomic<bool>& exited,
                                   CancelFlag& cancel) -> absl::Status {
    absl::Status s = follow(exited, cancel);
    if (!s.ok() && !absl::IsCancelled(s)) shared->log(absl::StrCat("assay: ", s.message(), "\n"));
    return s;
  };
  return driver;
}

}  // namespace assay
