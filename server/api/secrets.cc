// /api/v1/repos/{id}/secrets (issue 9, docs/secrets.md): set, delete and list repository
// secrets. Write-only: no answer ever holds a value.

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/base/secret_rules.h"
#include "server/api/json.h"
#include "server/api/routes.h"
#include "server/http/json_util.h"
#include "server/secrets/job_secrets.h"

namespace assay::api {
namespace {

using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
using http::Response;
namespace json = boost::json;

Response NoStore() {
  return ErrorResponse(503, "unavailable", "secrets are not available on this server");
}

// The {name} path parameter, checked.
absl::StatusOr<std::string> PathName(const Request& req) {
  auto it = req.path_params.find("name");
  std::string name = it == req.path_params.end() ? std::string() : it->second;
  absl::Status s = ValidateSecretName(name);
  if (!s.ok()) return s;
  return name;
}

// ?environment=E (DELETE) or the body's "environment" (PUT); "" when absent.
absl::StatusOr<std::string> CheckedEnvironment(std::optional<std::string> env) {
  std::string e = env.value_or("");
  absl::Status s = ValidateEnvironmentName(e);
  if (!s.ok()) return s;
  return e;
}

// PUT /api/v1/repos/{id}/secrets/{name}: {"value": "...", "environment": "staging"}.
// 201 created, 200 replaced; the answer names the secret, never its value.
Response PutSecret(const ApiDeps& d, Request& req) {
  if (d.secrets == nullptr) return NoStore();
  auto id = PathId(req);
  if (!id.ok()) return http::StatusToResponse(id.status());
  auto name = PathName(req);
  if (!name.ok()) return http::StatusToResponse(name.status());
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status known = http::OnlyFields(*body, {"value", "environment"}); !known.ok()) {
    return http::StatusToResponse(known);
  }
  auto value = http::RequiredString(*body, "value");
  if (!value.ok()) return http::StatusToResponse(value.status());
  auto env_field = http::OptionalString(*body, "environment");
  if (!env_field.ok()) return http::StatusToResponse(env_field.status());
  auto env = CheckedEnvironment(*env_field);
  if (!env.ok()) return http::StatusToResponse(env.status());
  if (value->size() > kMaxSecretValueBytes) {
    return ErrorResponse(413, "too_large",
                         absl::StrCat("field 'value' must be at most ", kMaxSecretValueBytes,
                                      " bytes, got ", value->size()));
  }
  if (absl::Status s = ValidateSecretValue(*value); !s.ok()) {
    return ErrorResponse(400, "invalid_argument", absl::StrCat("field 'value': ", s.message()));
  }
  auto sealed = d.secret_key.Seal(*value, SecretAad(*id, *env, *name));
  if (!sealed.ok()) return http::StatusToResponse(sealed.status());
  auto created = d.secrets->Put(*id, *env, *name, *sealed, kMaxSecretsPerScope);
  if (created.status().code() == absl::StatusCode::kResourceExhausted) {
    return ErrorResponse(409, "too_many", std::string(created.status().message()));
  }
  if (!created.ok()) return http::StatusToResponse(created.status());
  return JsonResponse(*created ? 201 : 200,
                      {{"name", *name}, {"environment", *env}, {"created", *created}});
}

// DELETE /api/v1/repos/{id}/secrets/{name}[?environment=E]: 204, or 404 when there is none.
Response DeleteSecret(const ApiDeps& d, Request& req) {
  if (d.secrets == nullptr) return NoStore();
  auto id = PathId(req);
  if (!id.ok()) return http::StatusToResponse(id.status());
  auto name = PathName(req);
  if (!name.ok()) return http::StatusToResponse(name.status());
  auto env = CheckedEnvironment(req.Query("environment"));
  if (!env.ok()) return http::StatusToResponse(env.status());
  auto deleted = d.secrets->Delete(*id, *env, *name);
  if (!deleted.ok()) return http::StatusToResponse(deleted.status());
  if (!*deleted) {
    return ErrorResponse(404, "not_found",
                         env->empty()
                             ? absl::StrCat("secret ", *name, " does not exist in repo ", *id)
                             : absl::StrCat("secret ", *name, " does not exist in environment '",
                                            *env, "' of repo ", *id));
  }
  Response r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

// GET /api/v1/repos/{id}/secrets: {"secrets": [{name, environment, created_at, updated_at}]}.
Response ListSecrets(const ApiDeps& d, Request& req) {
  if (d.secrets == nullptr) return NoStore();
  auto id = PathId(req);
  if (!id.ok()) return http::StatusToResponse(id.status());
  auto list = d.secrets->List(*id);
  if (!list.ok()) return http::StatusToResponse(list.status());
  json::array a;
  for (const store::SecretInfo& s : *list) {
    a.push_back({{"name", s.name},
                 {"environment", s.environment},
                 {"created_at", TimeJson(s.created_at)},
                 {"updated_at", TimeJson(s.updated_at)}});
  }
  return JsonResponse(200, {{"secrets", std::move(a)}});
}

}  // namespace

void RegisterSecretRoutes(http::Router& router, const ApiDeps& d) {
  router.Add("GET", "/api/v1/repos/{id}/secrets",
             Authed(d, auth::Need::RepoWrite(auth::RepoFrom::kRepoId),
                    [&d](Request& req) { return ListSecrets(d, req); }));
  router.Add("PUT", "/api/v1/repos/{id}/secrets/{name}",
             Authed(d, auth::Need::RepoWrite(auth::RepoFrom::kRepoId),
                    [&d](Request& req) { return PutSecret(d, req); }));
  router.Add("DELETE", "/api/v1/repos/{id}/secrets/{name}",
             Authed(d, auth::Need::RepoWrite(auth::RepoFrom::kRepoId),
                    [&d](Request& req) { return DeleteSecret(d, req); }));
}

}  // namespace assay::api
