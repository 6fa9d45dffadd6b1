// /api/v1/repos: register, update, list; commit-status settings (commit_status_api.cc).

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "common/git/clone_url.h"
#include "common/git/git.h"
#include "server/api/commit_status_api.h"
#include "server/api/json.h"
#include "server/api/routes.h"
#include "server/http/json_util.h"

namespace assay::api {
namespace {

using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
using http::Response;
namespace json = boost::json;

Response CreateRepo(const ApiDeps& d, Request& req) {
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status known =
          http::OnlyFields(*body, {"name", "clone_url", "provider", "webhook_secret", "html_url"});
      !known.ok()) {
    return http::StatusToResponse(known);
  }
  auto name = http::RequiredString(*body, "name");
  if (!name.ok()) return http::StatusToResponse(name.status());
  auto clone_url = http::RequiredString(*body, "clone_url");
  if (!clone_url.ok()) return http::StatusToResponse(clone_url.status());
  auto provider = http::OptionalString(*body, "provider");
  if (!provider.ok()) return http::StatusToResponse(provider.status());
  auto secret = http::OptionalString(*body, "webhook_secret");
  if (!secret.ok()) return http::StatusToResponse(secret.status());
  auto html_url = http::OptionalString(*body, "html_url");
  if (!html_url.ok()) return http::StatusToResponse(html_url.status());
  // The clone-URL policy (common/git/clone_url.h): https and ssh only (local repositories with
  // --allow-local-repos); "user:password@" is split off, sealed, and never stored in the URL.
  auto parsed_url = ParseCloneUrl(*clone_url, d.allow_local_repos);
  if (!parsed_url.ok()) {
    return ErrorResponse(400, "invalid_argument",
                         absl::StrCat("field 'clone_url' ", parsed_url.status().message()));
  }
  store::NewRepo n;
  n.name = *name;
  n.clone_url = parsed_url->url;
  if (!parsed_url->username.empty() || !parsed_url->password.empty()) {
    // Sealed for its row, whose id the store assigns inside its transaction.
    n.seal_clone_credential =
        [&d,
         plain = JoinCloneCredential(parsed_url->username, parsed_url->password)](int64_t repo_id) {
          return d.secret_key.Seal(plain, RowAad("repos", repo_id, "clone_credential"));
        };
  }
  n.provider = provider->value_or("github");
  if (n.provider != "github" && n.provider != "gitlab" && n.provider != "gitea") {
    return ErrorResponse(400, "invalid_argument",
                         "field 'provider' must be one of github, gitlab, gitea");
  }
  n.html_url = html_url->value_or("");
  if (secret->has_value()) {
    if ((*secret)->empty()) {
      return ErrorResponse(400, "invalid_argument", "field 'webhook_secret' must not be empty");
    }
    // Sealed for its row, whose id the store assigns inside its transaction.
    n.seal_webhook_secret = [&d, plain = **secret](int64_t repo_id) {
      return d.secret_key.Seal(plain, RowAad("repos", repo_id, "webhook_secret"));
    };
  }
  auto repo = d.repos->Create(n);
  if (!repo.ok()) return http::StatusToResponse(repo.status());
  return JsonResponse(201, RepoJson(*repo));
}

// PATCH /api/v1/repos/{id}: {"default_branch": "...", "cancel_superseded": bool}, both optional.
Response UpdateRepo(const ApiDeps& d, Request& req) {
  auto id = PathId(req);
  if (!id.ok()) return http::StatusToResponse(id.status());
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status known = http::OnlyFields(*body, {"default_branch", "cancel_superseded"});
      !known.ok()) {
    return http::StatusToResponse(known);
  }
  auto branch = http::OptionalString(*body, "default_branch");
  if (!branch.ok()) return http::StatusToResponse(branch.status());
  auto cancel = http::OptionalBool(*body, "cancel_superseded");
  if (!cancel.ok()) return http::StatusToResponse(cancel.status());
  store::RepoSettings set;
  if (branch->has_value()) {
    if (!IsValidBranchName(**branch)) {
      return ErrorResponse(
          400, "invalid_argument",
          absl::StrCat("field 'default_branch' must be a valid branch name, got '", **branch, "'"));
    }
    set.default_branch = **branch;
  }
  set.cancel_superseded = *cancel;
  auto repo = d.repos->Update(*id, set);
  if (!repo.ok()) return http::StatusToResponse(repo.status());
  return JsonResponse(200, RepoJson(*repo));
}

}  // namespace

void RegisterRepoRoutes(http::Router& router, const ApiDeps& d) {
  router.Add("POST", "/api/v1/repos",
             Authed(d, auth::Need::Admin(), [&d](Request& req) { return CreateRepo(d, req); }));
  router.Add("PATCH", "/api/v1/repos/{id}",
             Authed(d, auth::Need::RepoWrite(auth::RepoFrom::kRepoId),
                    [&d](Request& req) { return UpdateRepo(d, req); }));
  router.Add("GET", "/api/v1/repos", Authed(d, auth::Need::Read(), [&d](Request&) {
               auto repos = d.repos->List();
               if (!repos.ok()) return http::StatusToResponse(repos.status());
               json::array a;
               for (const auto& r : *repos) a.push_back(RepoJson(r));
               return JsonResponse(200, {{"repos", std::move(a)}});
             }));
  router.Add("PUT", "/api/v1/repos/{id}/commit-status",
             Authed(d, auth::Need::RepoWrite(auth::RepoFrom::kRepoId),
                    [&d](Request& req) { return PutCommitStatus(d, req, RepoJson); }));
  router.Add("DELETE", "/api/v1/repos/{id}/commit-status",
             Authed(d, auth::Need::RepoWrite(auth::RepoFrom::kRepoId),
                    [&d](Request& req) { return DeleteCommitStatus(d, req, RepoJson); }));
}

}  // namespace assay::api
