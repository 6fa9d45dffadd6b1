#pragma once
// The server's HTTP surface: REST API under /api/v1 (bearer admin token), webhooks under
// /hooks, /healthz and /metrics. Handlers only translate between HTTP and the stores,
// planner and dispatcher.

#include <functional>
#include <string>

#include "server/http/http_server.h"
#include "server/metrics/metrics.h"
#include "server/pipeline/planner.h"
#include "server/scheduler/dispatcher.h"
#include "server/store/agent_credentials.h"
#include "server/store/agents.h"
#include "server/store/deliveries.h"
#include "server/store/jobs.h"
#include "server/store/pipelines.h"
#include "server/store/repos.h"

namespace assay {

struct ApiDeps {
  store::RepoStore* repos;
  store::DeliveryStore* deliveries;
  store::PipelineStore* pipelines;
  store::JobStore* jobs;
  store::AgentStore* agents;
  Planner* planner;
  Dispatcher* dispatcher;
  Metrics* metrics;
  std::string admin_token;
  std::string secret_key;  // 32 bytes; seals webhook secrets at rest
  // Agent enrollment (issue 8): tokens, revoke, disable. Null: those routes answer 503.
  store::AgentCredentialStore* credentials = nullptr;
  // Ends every stream of the agent on this server at once (revoke, disable).
  std::function<void(int64_t agent_id, const std::string& reason)> close_agent;
};

// Registers every route on `router`. Everything in `deps` must outlive the router.
void RegisterApi(http::Router& router, const ApiDeps& deps);

}  // namespace assay
