// /api/v1/repos: register, update, list; commit-status settings (commit_status_api.cc).

#include <boost/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "common/crypto/sealed.h"
#include "common/git/clone_url.h"
#include "common/git/git.h"
#include "server/api/commit_status_api.h"
#include "server/api/json.h"
#include "server/api/routes.h"
#include "server/http/json_util.h"
#include "server/webhook/intake.h"

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

// PATCH /api/v1/repos/{id}: {"default_branch": "...", "cancel_superseded": bool,
// "webhook_secret": "..."}, each optional.
Response UpdateRepo(const ApiDeps& d, Request& req) {
  auto id = PathId(req);
  if (!id.ok()) return http::StatusToResponse(id.status());
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status known =
          http::OnlyFields(*body, {"default_branch", "cancel_superseded", "webhook_secret"});
      !known.ok()) {
    return http::StatusToResponse(known);
  }
  auto branch = http::OptionalString(*body, "default_branch");
  if (!branch.ok()) return http::StatusToResponse(branch.status());
  auto cancel = http::OptionalBool(*body, "cancel_superseded");
  if (!cancel.ok()) return http::StatusToResponse(cancel.status());
  auto secret = http::OptionalString(*body, "webhook_secret");
  if (!secret.ok()) return http::StatusToResponse(secret.status());
  store::RepoSettings set;
  if (secret->has_value()) {
    // Write-only: sealed for this row, never answered back (RepoJson says only whether one is
    // set). The length bound keeps the HMAC key and the sealed row small.
    if ((*secret)->empty() || (*secret)->size() > 1024) {
      return ErrorResponse(400, "invalid_argument",
                           "field 'webhook_secret' must be 1 to 1024 bytes");
    }
    auto sealed = d.secret_key.Seal(**secret, RowAad("repos", *id, "webhook_secret"));
    if (!sealed.ok()) return http::StatusToResponse(sealed.status());
    set.webhook_secret_sealed = *std::move(sealed);
  }
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

// GET /api/v1/repos/{id}/deliveries?limit=&cursor=: newest first, next_cursor pages on.
Response ListDeliveries(const ApiDeps& d, Request& req) {
  auto id = PathId(req);
  if (!id.ok()) return http::StatusToResponse(id.status());
  int64_t limit = 50, before = 0;
  if (auto l = req.Query("limit");
      l && (!absl::SimpleAtoi(*l, &limit) || limit < 1 || limit > 200)) {
    return ErrorResponse(400, "invalid_argument",
                         "query parameter 'limit' must be between 1 and 200");
  }
  if (auto c = req.Query("cursor");
      c && !c->empty() && (!absl::SimpleAtoi(*c, &before) || before < 1)) {
    return ErrorResponse(400, "invalid_argument",
                         "query parameter 'cursor' must be a next_cursor this API gave");
  }
  auto repo = d.repos->Get(*id);
  if (!repo.ok()) return http::StatusToResponse(repo.status());
  auto list = d.deliveries->ListOfRepo(*id, before, static_cast<int>(limit));
  if (!list.ok()) return http::StatusToResponse(list.status());
  json::array out;
  for (const auto& x : *list) {
    out.push_back(json::object{
        {"id", x.id},
        {"provider", x.provider},
        {"delivery_id", x.delivery_id},
        {"event", x.event},
        {"state", x.state},
        {"message", x.message.empty() ? json::value(nullptr) : json::value(x.message)},
        {"received_at", TimeJson(x.received_at)},
        {"processed_at", TimeJson(x.processed_at)},
        {"pipeline_id", x.pipeline_id ? json::value(*x.pipeline_id) : json::value(nullptr)}});
  }
  json::object body{{"deliveries", std::move(out)}};
  body["next_cursor"] = static_cast<int64_t>(list->size()) == limit
                            ? json::value(absl::StrCat(list->back().id))
                            : json::value(nullptr);
  return JsonResponse(200, std::move(body));
}

}  // namespace

Response TestDelivery(const ApiDeps& d, const webhook::Intake& intake, Request& req) {
  auto id = PathId(req);
  if (!id.ok()) return http::StatusToResponse(id.status());
  auto repo = d.repos->Get(*id);
  if (!repo.ok()) return http::StatusToResponse(repo.status());
  if (repo->webhook_secret_sealed.empty()) {
    return ErrorResponse(409, "failed_precondition",
                         absl::StrCat("repository ", repo->name,
                                      " has no webhook secret: nothing can be signed or verified"));
  }
  auto secret =
      d.secret_key.Open(repo->webhook_secret_sealed, RowAad("repos", repo->id, "webhook_secret"));
  if (!secret.ok()) return http::StatusToResponse(secret.status());
  // A fresh delivery id and body each time, so that neither counts as a replay.
  const std::string nonce = RandomHexToken(8);
  const std::string delivery = "assay-test-" + nonce;
  const json::object where{{"full_name", repo->name},
                           {"path_with_namespace", repo->name},
                           {"clone_url", repo->clone_url},
                           {"html_url", repo->html_url}};
  webhook::Intake::Headers headers{{"Content-Type", "application/json"}};
  std::string body;
  if (repo->provider == "github") {
    body = json::serialize(json::object{{"zen", absl::StrCat("Assay test delivery ", nonce)},
                                        {"hook_id", 0},
                                        {"repository", where}});
    headers.insert(
        headers.end(),
        {{"X-GitHub-Event", "ping"},
         {"X-GitHub-Delivery", delivery},
         {"X-Hub-Signature-256", "sha256=" + absl::BytesToHexString(HmacSha256(*secret, body))}});
  } else if (repo->provider == "gitlab") {
    body = json::serialize(
        json::object{{"object_kind", "assay_test"}, {"nonce", nonce}, {"project", where}});
    headers.insert(headers.end(), {{"X-Gitlab-Event", "Assay Test Hook"},
                                   {"X-Gitlab-Event-UUID", delivery},
                                   {"X-Gitlab-Token", *secret}});
  } else {
    body = json::serialize(
        json::object{{"zen", absl::StrCat("Assay test delivery ", nonce)}, {"repository", where}});
    headers.insert(headers.end(),
                   {{"X-Gitea-Event", "ping"},
                    {"X-Gitea-Delivery", delivery},
                    {"X-Gitea-Signature", absl::BytesToHexString(HmacSha256(*secret, body))}});
  }
  auto r = intake.Receive(repo->provider, headers, body, absl::StrCat(repo->id));
  if (!r.ok()) return http::StatusToResponse(r.status());
  json::object out{
      {"http_status", r->http_status},
      {"result", r->result},
      {"delivery", r->delivery > 0 ? json::value(r->delivery) : json::value(nullptr)},
      {"status", r->status.empty() ? json::value(nullptr) : json::value(r->status)},
      {"message", r->message.empty() ? json::value(nullptr) : json::value(r->message)}};
  return JsonResponse(200, std::move(out));
}

void RegisterRepoRoutes(http::Router& router, const ApiDeps& d) {
  router.Add("GET", "/api/v1/repos/{id}/deliveries",
             Authed(d, auth::Need::Read(), [&d](Request& req) { return ListDeliveries(d, req); }));
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
