#pragma once
// A `deploy:` step (issue 12, docs/deployments.md "From a pipeline"): the server makes the
// deployment (AgentService.StartDeployment) and its controller carries it out; the step follows
// it (FollowDeployment, every `tick`), writes each of its events into the job's log
// ("assay: deploy: weight: step 1 of 2: 10% of traffic to the new version"), and succeeds when
// the deployment is promoted, fails with its message when it ends otherwise (rolled back,
// failed, aborted, superseded). A paused deployment is waited for (a person may resume it;
// the job's timeout bounds the wait). A canceled job asks the server to abort the deployment.
// The step's process is an idle shell, stopped when the step ends.

#include <memory>

#include "agent/step_runner.h"
#include "agent/train_step.h"

namespace assay {

std::shared_ptr<StepDriver> MakeDeployDriver(TrainStepContext ctx);

}  // namespace assay
