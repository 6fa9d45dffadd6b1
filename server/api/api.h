#pragma once
// The server's HTTP surface: REST API under /api/v1 (bearer admin token), webhooks under
// /hooks, /healthz and /metrics. Handlers only translate between HTTP and the stores,
// planner and dispatcher.

#include <string>

#include "common/crypto/sealed.h"
#include "server/http/http_server.h"
#include "server/metrics/metrics.h"
#include "server/pipeline/planner.h"
#include "server/scheduler/dispatcher.h"
#include "server/store/agents.h"
#include "server/store/deliveries.h"
#include "server/store/jobs.h"
#include "server/store/pipelines.h"
#include "server/store/repos.h"

namespace assay {

class AddressPolicy;

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
  KeyRing secret_key;  // seals webhook secrets and status tokens at rest (common/crypto/sealed.h)
  // --allow-local-repos: file:// and absolute-path clone URLs are accepted.
  bool allow_local_repos = false;
  // --allow-private-hosts: which forge API hosts may resolve to non-public addresses; null:
  // none (not owned).
  const AddressPolicy* address_policy = nullptr;
};

// Registers every route on `router`. Everything in `deps` must outlive the router.
void RegisterApi(http::Router& router, const ApiDeps& deps);

}  // namespace assay
