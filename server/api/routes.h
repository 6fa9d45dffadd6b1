#pragma once
// Internals of the REST API shared by its per-resource files (repos.cc, pipelines.cc,
// jobs.cc, agents.cc); api.cc registers them all. Not a public API.

#include "absl/status/statusor.h"
#include "server/api/api.h"
#include "server/auth/access.h"

namespace assay::webhook {
class Intake;
}  // namespace assay::webhook

namespace assay::api {

// The {id} path parameter: kInvalidArgument unless it is a positive integer.
absl::StatusOr<int64_t> PathId(const http::Request& req);

// Wraps a handler with authentication and authorization (docs/access.md): the caller is
// found from "Authorization: Bearer" (the admin token or an API token) or the session cookie
// (then a state-changing request must carry the session's X-Assay-CSRF header), or is
// anonymous (allowed only with d.anonymous_read, and only for Need::Read routes). Refusals:
// 401 unauthenticated, 403 forbidden, 429 while the address is blocked for failed attempts.
// The handler finds the caller in req.auth (Caller). Every request that is not GET or HEAD is
// written to the audit log with its answer's status, and so is every refused credential and
// permission. `d` must outlive the handler.
http::Handler Authed(const ApiDeps& d, auth::Need need, http::Handler h);
// Who is asking: the Principal Authed put in req.auth (an anonymous one when none).
const auth::Principal& Caller(const http::Request& req);
// Wraps `h` with "Authorization: Bearer <token>" against `token` (compared in constant
// time), failures counted in d.auth_limiter: 401 unauthenticated with WWW-Authenticate:
// Bearer, or 429 too_many_requests with Retry-After while the client's address is blocked.
http::Handler BearerAuthed(const ApiDeps& d, const std::string& token, http::Handler h);

// Each registers its resource's routes under /api/v1, all behind Authed. `d` must outlive
// the router.
void RegisterRepoRoutes(http::Router& router, const ApiDeps& d);
// POST /api/v1/repos/{id}/test-delivery (issue 11, repos.cc): a delivery signed with the
// repository's webhook secret, handed to `intake` as if the forge had sent it (GitHub: a ping;
// GitLab and Gitea: an event Assay ignores). 200 with what the intake answered; 409 when the
// repository has no webhook secret.
http::Response TestDelivery(const ApiDeps& d, const webhook::Intake& intake, http::Request& req);
void RegisterPipelineRoutes(http::Router& router, const ApiDeps& d);
void RegisterJobRoutes(http::Router& router, const ApiDeps& d);
// GET /api/v1/jobs/{id}/log (server/api/job_log.cc).
void RegisterJobLogRoute(http::Router& router, const ApiDeps& d);
void RegisterAgentRoutes(http::Router& router, const ApiDeps& d);
void RegisterSecretRoutes(http::Router& router, const ApiDeps& d);  // issue 9 (secrets.cc)
void RegisterArtifactRoutes(http::Router& router, const ApiDeps& d);
void RegisterCacheRoutes(http::Router& router, const ApiDeps& d);  // issue 9 (caches.cc)
void RegisterEvalRoutes(http::Router& router, const ApiDeps& d);   // issue 10 (evals.cc)
void RegisterTrainRoutes(http::Router& router, const ApiDeps& d);  // issue 10 (train.cc)
void RegisterModelRoutes(http::Router& router, const ApiDeps& d);  // issue 10 (models.cc)
// Issue 11 (access_routes.cc): session (log in and out), me, users, repository maintainers,
// API tokens, the audit log.
void RegisterAccessRoutes(http::Router& router, const ApiDeps& d);
// Issue 12 (deployments.cc): environments, deployments, approvals, pause/resume/promote/abort,
// rollback.
void RegisterDeploymentRoutes(http::Router& router, const ApiDeps& d);
// GET /api/v1/events (events.cc): live changes as Server-Sent Events.
void RegisterEventRoutes(http::Router& router, const ApiDeps& d);
// The dashboard (web_routes.cc): /, /ui/..., /assets/NAME, /badge/REPO/BRANCH.svg.
void RegisterWebRoutes(http::Router& router, const ApiDeps& d);

// The bytes of one stored file (an artifact or a model version's file) as a download: ETag
// (its SHA-256), single byte ranges (206, 416), small files whole, larger ones streamed with
// read-ahead (artifacts.cc). Needs d.artifacts (chunk sizes) and d.blobs.
http::Response ServeArtifactFile(const ApiDeps& d, const http::Request& req,
                                 const store::ArtifactFileRow& f);

}  // namespace assay::api
