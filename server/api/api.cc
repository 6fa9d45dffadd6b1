#include "server/api/api.h"

#include <boost/json.hpp>

#include <algorithm>
#include <memory>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "server/api/routes.h"
#include "server/http/json_util.h"
#include "server/webhook/intake.h"
#include "server/webhook/verify.h"

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

http::Handler BearerAuthed(const ApiDeps& d, const std::string& token, http::Handler h) {
  return [&d, token, h = std::move(h)](Request& req) -> Response {
    if (d.auth_limiter != nullptr) {
      if (absl::Duration wait = d.auth_limiter->Blocked(req.remote_addr);
          wait > absl::ZeroDuration()) {
        Response r = ErrorResponse(429, "too_many_requests",
                                   "too many failed authentications from this address; retry "
                                   "later");
        r.headers.emplace_back("Retry-After",
                               absl::StrCat(std::max<int64_t>(
                                   1, absl::ToInt64Seconds(absl::Ceil(wait, absl::Seconds(1))))));
        return r;
      }
    }
    std::string given = req.Header("authorization");
    // Why hash first: ConstantTimeEquals leaks length; equal-length digests do not.
    if (!ConstantTimeEquals(Sha256(given), Sha256("Bearer " + token))) {
      if (d.auth_limiter != nullptr) d.auth_limiter->Failed(req.remote_addr);
      Response r = ErrorResponse(401, "unauthenticated",
                                 "missing or invalid token: send 'Authorization: Bearer <token>'");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    }
    return h(req);
  };
}

http::Handler Authed(const ApiDeps& d, http::Handler h) {
  return BearerAuthed(d, d.admin_token, std::move(h));
}

}  // namespace api

using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
using http::Response;

namespace {

// Feeds a webhook body, as it streams in, to the intake's verifier. Lets every body through
// to the handler, which answers a failed verification (Intake::Complete) like any other.
class VerifierCheck : public http::BodyCheck {
 public:
  explicit VerifierCheck(std::unique_ptr<webhook::DeliveryVerifier> v) : verifier_(std::move(v)) {}
  void Update(std::string_view bytes) override { verifier_->Update(bytes); }
  std::optional<Response> Finish() override { return std::nullopt; }
  webhook::DeliveryVerifier& verifier() { return *verifier_; }

 private:
  std::unique_ptr<webhook::DeliveryVerifier> verifier_;
};

}  // namespace

void RegisterApi(http::Router& router, const ApiDeps& deps) {
  const ApiDeps& d = deps;
  router.Add("GET", "/healthz", [&d](Request&) {
    auto active = d.jobs->ActiveWork();
    if (!active.ok()) return http::StatusToResponse(active.status());
    return JsonResponse(
        200, {{"status", "ok"}, {"active", *active}, {"agents", d.dispatcher->ConnectedAgents()}});
  });
  http::Handler metrics = [&d](Request&) {
    auto counts = d.jobs->CountByState();
    if (counts.ok()) d.metrics->SetJobStates(*counts);
    if (d.artifacts != nullptr) {
      auto usage = d.artifacts->BytesPerRepo();
      if (usage.ok()) {
        std::vector<std::pair<std::string, int64_t>> bytes;
        for (const auto& u : *usage) bytes.emplace_back(u.repo, u.bytes);
        d.metrics->SetArtifactBytes(bytes);
      }
    }
    if (d.caches != nullptr) {
      auto usage = d.caches->BytesPerRepo();
      if (usage.ok()) {
        std::vector<std::pair<std::string, int64_t>> bytes;
        for (const auto& u : *usage) bytes.emplace_back(u.repo, u.bytes);
        d.metrics->SetCacheBytes(bytes);
      }
    }
    if (d.models != nullptr) {
      auto counts = d.models->VersionsPerModel();
      if (counts.ok()) d.metrics->SetModelVersions(*counts);
    }
    Response r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = d.metrics->Serialize();
    return r;
  };
  if (!d.metrics_token.empty()) metrics = api::BearerAuthed(d, d.metrics_token, metrics);
  router.Add("GET", "/metrics", std::move(metrics));
  // Per forge, the shared URL /hooks/{provider} and the per-repository URL
  // /hooks/{provider}/{repository id}. The head handler authenticates from the headers what it
  // can and gives the HTTP server a verifier that sees the body as it streams in; the route
  // then only adapts HTTP to the Intake (server/webhook/intake.h).
  webhook::Intake::Deps intake_deps{d.repos, d.deliveries, d.metrics, d.secret_key,
                                    [&d](int64_t delivery) { d.planner->Enqueue(delivery); }};
  intake_deps.dedupe_window = d.webhook_dedupe_window;
  auto intake = std::make_shared<const webhook::Intake>(std::move(intake_deps));
  auto to_response = [](const webhook::IntakeResult& r) {
    if (!r.error_code.empty()) return ErrorResponse(r.http_status, r.error_code, r.message);
    return JsonResponse(r.http_status, {{"delivery", r.delivery}, {"status", r.status}});
  };
  for (const char* provider : {"github", "gitlab", "gitea"}) {
    const std::string p = provider;
    http::Handler handle = [intake, p, to_response](Request& req) {
      auto* check = dynamic_cast<VerifierCheck*>(req.body_check.get());
      // The head handler always sets it.
      if (check == nullptr) return http::InternalErrorResponse();
      auto r = intake->Complete(p, req.headers, req.body, check->verifier());
      if (!r.ok()) return http::StatusToResponse(r.status());
      return to_response(*r);
    };
    http::HeadHandler admit = [intake, p, to_response](Request& head) {
      http::Admission a;
      std::optional<std::string> repo;
      if (auto it = head.path_params.find("repo"); it != head.path_params.end()) {
        repo = it->second;
      }
      auto r = intake->Admit(p, repo, head.headers);
      if (!r.ok()) {
        a.refuse = http::StatusToResponse(r.status());
      } else if (r->refusal) {
        a.refuse = to_response(*r->refusal);
      } else {
        a.check = std::make_shared<VerifierCheck>(std::move(r->verifier));
      }
      return a;
    };
    router.Add("POST", absl::StrCat("/hooks/", p), handle, admit);
    router.Add("POST", absl::StrCat("/hooks/", p, "/{repo}"), handle, admit);
  }
  api::RegisterRepoRoutes(router, d);
  api::RegisterPipelineRoutes(router, d);
  api::RegisterJobRoutes(router, d);
  api::RegisterJobLogRoute(router, d);
  api::RegisterAgentRoutes(router, d);
  api::RegisterSecretRoutes(router, d);
  api::RegisterArtifactRoutes(router, d);
  api::RegisterCacheRoutes(router, d);
  api::RegisterEvalRoutes(router, d);
  api::RegisterTrainRoutes(router, d);
  api::RegisterModelRoutes(router, d);
}

}  // namespace assay
