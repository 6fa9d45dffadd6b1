#pragma once
// Internals of the REST API shared by its per-resource files (repos.cc, pipelines.cc,
// jobs.cc, agents.cc); api.cc registers them all. Not a public API.

#include "absl/status/statusor.h"
#include "server/api/api.h"

namespace assay::api {

// The {id} path parameter: kInvalidArgument unless it is a positive integer.
absl::StatusOr<int64_t> PathId(const http::Request& req);

// Wraps a handler with bearer-token authentication against the admin token. `d` must
// outlive the handler.
http::Handler Authed(const ApiDeps& d, http::Handler h);
// Wraps `h` with "Authorization: Bearer <token>" against `token` (compared in constant
// time), failures counted in d.auth_limiter: 401 unauthenticated with WWW-Authenticate:
// Bearer, or 429 too_many_requests with Retry-After while the client's address is blocked.
http::Handler BearerAuthed(const ApiDeps& d, const std::string& token, http::Handler h);

// Each registers its resource's routes under /api/v1, all behind Authed. `d` must outlive
// the router.
void RegisterRepoRoutes(http::Router& router, const ApiDeps& d);
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

// The bytes of one stored file (an artifact or a model version's file) as a download: ETag
// (its SHA-256), single byte ranges (206, 416), small files whole, larger ones streamed with
// read-ahead (artifacts.cc). Needs d.artifacts (chunk sizes) and d.blobs.
http::Response ServeArtifactFile(const ApiDeps& d, const http::Request& req,
                                 const store::ArtifactFileRow& f);

}  // namespace assay::api
