#include "server/api/api.h"

#include <boost/json.hpp>

#include <algorithm>
#include <memory>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/log.h"
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

namespace {

Response TooManyAttempts(absl::Duration wait) {
  Response r = ErrorResponse(429, "too_many_requests",
                             "too many failed authentications from this address; retry later");
  r.headers.emplace_back(
      "Retry-After",
      absl::StrCat(std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(wait, absl::Seconds(1))))));
  return r;
}

Response Unauthenticated(std::string_view message) {
  Response r = ErrorResponse(401, "unauthenticated", message);
  r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

// Whether `given` is "Bearer <token>" (compared in constant time: both sides are hashed
// first, since ConstantTimeEquals leaks length and equal-length digests do not).
bool BearerMatches(std::string_view given, const std::string& token) {
  return ConstantTimeEquals(Sha256(given), Sha256("Bearer " + token));
}

auth::Principal FromCredential(const store::Credential& c, auth::PrincipalKind kind) {
  auth::Principal p;
  p.kind = kind;
  p.user_id = c.user.id;
  p.name = c.user.username;
  p.role = c.user.role;
  p.scope = c.scope;
  p.maintains = c.user.maintains;
  p.csrf_token = c.csrf_token;
  p.token_id = c.token_id;
  return p;
}

// Who sent `req`: kUnauthenticated (a wrong, expired or revoked credential was presented)
// or the caller (anonymous when none was presented).
absl::StatusOr<auth::Principal> Authenticate(const ApiDeps& d, const Request& req) {
  std::string given = req.Header("authorization");
  if (!given.empty()) {
    if (BearerMatches(given, d.admin_token)) {
      auth::Principal p;
      p.kind = auth::PrincipalKind::kAdminToken;
      p.name = "admin-token";
      p.role = "admin";
      return p;
    }
    std::string_view token = given;
    if (d.users != nullptr && token.starts_with("Bearer ") &&
        auth::LooksLikeApiToken(token.substr(7))) {
      token.remove_prefix(7);
      auto found = d.users->FindToken(Sha256(token));
      if (!found.ok()) return found.status();
      if (*found) return FromCredential(**found, auth::PrincipalKind::kToken);
    }
    return absl::UnauthenticatedError(
        "missing or invalid token: send 'Authorization: Bearer <token>'");
  }
  if (auto cookie = auth::CookieValue(req.Header("cookie"), "assay_session")) {
    if (d.users != nullptr && auth::LooksLikeSessionId(*cookie)) {
      auto found = d.users->FindSession(Sha256(*cookie));
      if (!found.ok()) return found.status();
      if (*found) return FromCredential(**found, auth::PrincipalKind::kSession);
    }
    return absl::UnauthenticatedError("your session has ended: log in again");
  }
  auth::Principal anonymous;
  anonymous.name = "anonymous";
  return anonymous;
}

// Writes one audit entry; a failure is logged, never turned into the answer (the change it
// records has already been made).
void AuditRequest(const ApiDeps& d, const Request& req, const auth::Principal& who, int status,
                  std::string detail) {
  if (d.users == nullptr) return;
  store::AuditEntry e;
  e.actor = who.name;
  e.actor_kind = who.KindName();
  e.action = absl::StrCat(req.method, " ", req.path);
  e.status = status;
  e.remote_addr = AuthLimiter::AddressOf(req.remote_addr);
  e.request_id = req.request_id;
  e.detail = std::move(detail);
  if (absl::Status s = d.users->Audit(e); !s.ok()) {
    LogError("api", "audit log: could not record '", e.action, "' by ", e.actor, ": ",
             s.ToString());
  }
}

// The {id} path parameter's repository for a kRepoWrite route; nullopt when the id names
// nothing (then only roles over every repository can pass).
absl::StatusOr<std::optional<int64_t>> RepoOfRoute(const ApiDeps& d, const Request& req,
                                                   auth::RepoFrom from) {
  auto id = PathId(req);
  if (!id.ok() || from == auth::RepoFrom::kNone) return std::optional<int64_t>();
  switch (from) {
    case auth::RepoFrom::kRepoId: return std::optional<int64_t>(*id);
    case auth::RepoFrom::kPipelineId: return d.users->RepoOfPipeline(*id);
    case auth::RepoFrom::kJobId: return d.users->RepoOfJob(*id);
    case auth::RepoFrom::kNone: break;
  }
  return std::optional<int64_t>();
}

}  // namespace

http::Handler BearerAuthed(const ApiDeps& d, const std::string& token, http::Handler h) {
  return [&d, token, h = std::move(h)](Request& req) -> Response {
    if (d.auth_limiter != nullptr) {
      if (absl::Duration wait = d.auth_limiter->Blocked(req.remote_addr);
          wait > absl::ZeroDuration()) {
        return TooManyAttempts(wait);
      }
    }
    if (!BearerMatches(req.Header("authorization"), token)) {
      if (d.auth_limiter != nullptr) d.auth_limiter->Failed(req.remote_addr);
      return Unauthenticated("missing or invalid token: send 'Authorization: Bearer <token>'");
    }
    return h(req);
  };
}

const auth::Principal& Caller(const Request& req) {
  static const auth::Principal* const kAnonymous = [] {
    auto* p = new auth::Principal;
    p->name = "anonymous";
    return p;
  }();
  const auto* p = std::any_cast<auth::Principal>(&req.auth);
  return p != nullptr ? *p : *kAnonymous;
}

http::Handler Authed(const ApiDeps& d, auth::Need need, http::Handler h) {
  return [&d, need, h = std::move(h)](Request& req) -> Response {
    if (d.auth_limiter != nullptr) {
      if (absl::Duration wait = d.auth_limiter->Blocked(req.remote_addr);
          wait > absl::ZeroDuration()) {
        return TooManyAttempts(wait);
      }
    }
    auto who = Authenticate(d, req);
    if (!who.ok()) {
      if (who.status().code() != absl::StatusCode::kUnauthenticated) {
        return http::StatusToResponse(who.status());
      }
      if (d.auth_limiter != nullptr) d.auth_limiter->Failed(req.remote_addr);
      auth::Principal anonymous;
      anonymous.name = "anonymous";
      AuditRequest(d, req, anonymous, 401, std::string(who.status().message()));
      return Unauthenticated(std::string(who.status().message()));
    }
    if (who->kind == auth::PrincipalKind::kAnonymous && !d.anonymous_read) {
      return Unauthenticated("missing or invalid token: send 'Authorization: Bearer <token>'");
    }
    if (who->kind == auth::PrincipalKind::kSession && !auth::SafeMethod(req.method) &&
        !ConstantTimeEquals(Sha256(req.Header("x-assay-csrf")), Sha256(who->csrf_token))) {
      static constexpr char kCsrf[] =
          "missing or wrong X-Assay-CSRF header: a request that changes something must carry "
          "the session's CSRF token";
      AuditRequest(d, req, *who, 403, kCsrf);
      return ErrorResponse(403, "permission_denied", kCsrf);
    }
    std::optional<int64_t> repo;
    if (need.level == auth::Level::kRepoWrite && d.users != nullptr && who->role != "admin" &&
        who->role != "maintainer") {
      auto r = RepoOfRoute(d, req, need.repo);
      if (!r.ok()) return http::StatusToResponse(r.status());
      repo = *r;
    }
    if (absl::Status s = auth::Authorize(*who, need, req.method, repo); !s.ok()) {
      if (s.code() == absl::StatusCode::kUnauthenticated) {
        return Unauthenticated(std::string(s.message()));
      }
      AuditRequest(d, req, *who, 403, std::string(s.message()));
      return ErrorResponse(403, "permission_denied", std::string(s.message()));
    }
    const bool audited = !auth::SafeMethod(req.method);
    req.auth = *std::move(who);
    Response r = h(req);
    if (audited) AuditRequest(d, req, Caller(req), r.status, "");
    return r;
  };
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
    if (d.deployments != nullptr) {
      auto active = d.deployments->ActiveCounts();
      if (active.ok()) d.metrics->SetActiveDeployments(*active);
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
  // Issue 11, the settings page's "send test delivery": a delivery the server signs with the
  // repository's own webhook secret and hands to the same intake as /hooks/{provider}/{id}.
  router.Add(
      "POST", "/api/v1/repos/{id}/test-delivery",
      api::Authed(d, auth::Need::RepoWrite(auth::RepoFrom::kRepoId),
                  [&d, intake](Request& req) { return api::TestDelivery(d, *intake, req); }));
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
  api::RegisterDeploymentRoutes(router, d);
  api::RegisterAccessRoutes(router, d);
  api::RegisterEventRoutes(router, d);
  api::RegisterWebRoutes(router, d);
}

}  // namespace assay
