#pragma once
// The server's HTTP surface: REST API under /api/v1 (bearer admin token), webhooks under
// /hooks/{provider} and /hooks/{provider}/{repository id}, /healthz and /metrics (bearer
// metrics token when one is set). Handlers only translate between HTTP and the stores,
// planner and dispatcher.

#include <functional>
#include <string>

#include "absl/time/time.h"
#include "common/base/clock.h"
#include "common/crypto/sealed.h"
#include "server/api/auth_limiter.h"
#include "server/artifacts/blob_store.h"
#include "server/http/http_server.h"
#include "server/metrics/metrics.h"
#include "server/pipeline/planner.h"
#include "server/scheduler/dispatcher.h"
#include "server/store/agent_credentials.h"
#include "server/store/agents.h"
#include "server/store/artifacts.h"
#include "server/store/caches.h"
#include "server/store/deliveries.h"
#include "server/store/deployments.h"
#include "server/store/evals.h"
#include "server/store/jobs.h"
#include "server/store/logs.h"
#include "server/store/models.h"
#include "server/store/pipelines.h"
#include "server/store/repos.h"
#include "server/store/secrets.h"
#include "server/store/train.h"
#include "server/store/users.h"

namespace assay {

class AddressPolicy;
namespace logs {
class LogFollowers;
}
namespace events {
class EventHub;
}
namespace web {
struct Assets;
}

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
  // Failed authentications (API token, metrics token) per client address; null: no limit.
  AuthLimiter* auth_limiter = nullptr;
  // Non-empty: GET /metrics requires "Authorization: Bearer <metrics_token>".
  std::string metrics_token;
  // A signed webhook body seen again for the same repository within this window is a
  // duplicate (zero: only the delivery id deduplicates).
  absl::Duration webhook_dedupe_window = absl::Hours(24);
  // Agent enrollment (issue 8): tokens, revoke, disable. Null: those routes answer 503.
  store::AgentCredentialStore* credentials = nullptr;
  // Repository secrets (issue 9, server/api/secrets.cc). Null: those routes answer 503.
  store::SecretStore* secrets = nullptr;
  // Job logs (issue 9): ranges, timestamps and follow. Null logs: GET /log answers 503; null
  // followers: ?follow=1 answers 503.
  store::LogStore* logs = nullptr;
  logs::LogFollowers* log_followers = nullptr;
  // Ends every stream of the agent on this server at once (revoke, disable).
  std::function<void(int64_t agent_id, const std::string& reason)> close_agent;
  // Issue 9: tells the agent's streams on this server at once that it was drained or resumed
  // (the other servers learn through the 'assay_agent_drain' notification). Null: they learn
  // within the agent service's access check interval.
  std::function<void(int64_t agent_id)> refresh_agent_drain;
  // Artifacts (issue 9, server/api/artifacts.cc); null: those routes answer 503.
  store::ArtifactStore* artifacts = nullptr;
  artifacts::BlobStore* blobs = nullptr;
  // build_image (issue 9): GET /api/v1/jobs/{id} lists "images"; null: the key is left out.
  store::JobImageStore* images = nullptr;
  // Caches (issue 9, server/api/caches.cc); null: those routes answer 503.
  store::CacheStore* caches = nullptr;
  // Evals (issue 10, server/api/evals.cc); null: those routes answer 503.
  store::EvalStore* evals = nullptr;
  // Training (issue 10, server/api/train.cc); null: 503.
  store::TrainStore* train = nullptr;
  // The model registry (issue 10, server/api/models.cc); null: those routes answer 503. Its
  // file downloads need artifacts and blobs too.
  store::ModelStore* models = nullptr;
  // Issue 12, deployments (server/api/deployments.cc); null: those routes answer 503. They need
  // models too. wake_deployments: the controller looks for due work now.
  store::DeploymentStore* deployments = nullptr;
  std::function<void()> wake_deployments;
  // The operator's programs for command targets (--deploy-hooks); empty: none.
  std::string deploy_hooks_dir;
  // The registry's clock (created_at, audit times); null: the system clock.
  const Clock* clock = nullptr;
  // Users, sessions, API tokens and the audit log (issue 11, server/api/access_routes.cc).
  // Null: only the admin token authenticates and nothing is audited.
  store::UserStore* users = nullptr;
  // --anonymous-read: GET routes that need only read access answer callers without a
  // credential (a public dashboard).
  bool anonymous_read = false;
  // How long a login lasts.
  absl::Duration session_ttl = absl::Hours(12);
  // Session cookies carry Secure (browsers still send them to http://localhost and
  // http://127.0.0.1); false only for a plain-http server on another host name, which
  // the server's flags make explicit.
  bool secure_cookies = true;
  // Failed logins per username (the address's failures count in auth_limiter); null: none.
  AuthLimiter* login_limiter = nullptr;
  // scrypt cost of new password hashes (common/crypto/password.h); lower only in tests.
  int password_log2_n = 15;
  // Live changes for dashboards (GET /api/v1/events); null: 503.
  events::EventHub* events = nullptr;
  // The dashboard's files (server/web/assets.h); null: its pages say it is not built.
  const web::Assets* web = nullptr;
};

// Registers every route on `router` (webhook routes with a HeadHandler: run the router's
// Admit as the http::Server's HeadHandler). Everything in `deps` must outlive the router.
void RegisterApi(http::Router& router, const ApiDeps& deps);

}  // namespace assay
