#include "server/api/api.h"

#include <boost/json.hpp>

#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "server/api/routes.h"
#include "server/http/json_util.h"
#include "server/webhook/intake.h"

namespace assay {
namespace api {

using http::ErrorResponse;
using http::Request;
using http::Response;

absl::StatusOr<int64_t> PathId(const Request& req) {
  int64_t id = 0;
  auto it = req.path_params.find("id");
  if (it == req.path_params.end() || !absl::SimpleAtoi(it->second, &id) || id <= 0) {
    return absl::InvalidArgumentError("path parameter 'id' must be a positive integer");
  }
  return id;
}

http::Handler Authed(const ApiDeps& d, http::Handler h) {
  return [&d, h = std::move(h)](Request& req) -> Response {
    std::string given = req.Header("authorization");
    // Why hash first: ConstantTimeEquals leaks length; equal-length digests do not.
    if (!ConstantTimeEquals(Sha256(given), Sha256("Bearer " + d.admin_token))) {
      Response r = ErrorResponse(401, "unauthenticated",
                                 "missing or invalid token: send 'Authorization: Bearer <token>'");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    }
    return h(req);
  };
}

}  // namespace api

using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
using http::Response;

void RegisterApi(http::Router& router, const ApiDeps& deps) {
  const ApiDeps& d = deps;
  router.Add("GET", "/healthz", [&d](Request&) {
    auto active = d.jobs->ActiveWork();
    if (!active.ok()) {
      return ErrorResponse(503, "unavailable", std::string(active.status().message()));
    }
    return JsonResponse(
        200, {{"status", "ok"}, {"active", *active}, {"agents", d.dispatcher->ConnectedAgents()}});
  });
  router.Add("GET", "/metrics", [&d](Request&) {
    auto counts = d.jobs->CountByState();
    if (counts.ok()) d.metrics->SetJobStates(*counts);
    Response r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = d.metrics->Serialize();
    return r;
  });
  // One endpoint per forge (/hooks/github, /hooks/gitlab, /hooks/gitea); the route only
  // adapts HTTP to the Intake (server/webhook/intake.h).
  auto intake = std::make_shared<const webhook::Intake>(
      webhook::Intake::Deps{d.repos, d.deliveries, d.metrics, d.secret_key,
                            [&d](int64_t delivery) { d.planner->Enqueue(delivery); }});
  for (const char* provider : {"github", "gitlab", "gitea"}) {
    router.Add(
        "POST", absl::StrCat("/hooks/", provider),
        [intake, p = std::string(provider)](Request& req) {
          auto r = intake->Receive(p, req.headers, req.body);
          if (!r.ok()) return http::StatusToResponse(r.status());
          if (!r->error_code.empty()) {
            return ErrorResponse(r->http_status, r->error_code, r->message);
          }
          return JsonResponse(r->http_status, {{"delivery", r->delivery}, {"status", r->status}});
        });
  }
  api::RegisterRepoRoutes(router, d);
  api::RegisterPipelineRoutes(router, d);
  api::RegisterJobRoutes(router, d);
  api::RegisterAgentRoutes(router, d);
}

}  // namespace assay
