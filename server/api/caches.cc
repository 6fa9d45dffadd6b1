// Caches (issue 9, docs/caches.md): GET /api/v1/caches/usage (bytes and entries per
// repository), GET /api/v1/repos/{id}/caches (a repository's entries, newest first) and
// DELETE /api/v1/repos/{id}/caches/{entry}.

#include <boost/json.hpp>

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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

Response Unavailable() {
  return ErrorResponse(503, "unavailable", "caches are not enabled on this server");
}

constexpr int kListLimit = 1000;

}  // namespace

void RegisterCacheRoutes(http::Router& router, const ApiDeps& d) {
  router.Add("GET", "/api/v1/caches/usage", Authed(d, auth::Need::Read(), [&d](Request&) {
               if (d.caches == nullptr) return Unavailable();
               auto usage = d.caches->BytesPerRepo();
               if (!usage.ok()) return http::StatusToResponse(usage.status());
               json::array repos;
               for (const auto& u : *usage) {
                 repos.push_back(json::object{{"repo_id", u.repo_id},
                                              {"repo", u.repo},
                                              {"cache_bytes", u.bytes},
                                              {"cache_entries", u.count}});
               }
               return JsonResponse(200, {{"repos", std::move(repos)}});
             }));
  router.Add("GET", "/api/v1/repos/{id}/caches", Authed(d, auth::Need::Read(), [&d](Request& req) {
               if (d.caches == nullptr) return Unavailable();
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               auto entries = d.caches->List(*id, kListLimit);
               if (!entries.ok()) return http::StatusToResponse(entries.status());
               json::array list;
               for (const auto& e : *entries) {
                 list.push_back(json::object{{"id", e.id},
                                             {"scope", e.scope},
                                             {"key", e.key},
                                             {"files", e.files},
                                             {"bytes", e.bytes},
                                             {"created_at", TimeJson(e.created_at)},
                                             {"last_used_at", TimeJson(e.last_used_at)}});
               }
               return JsonResponse(200, {{"caches", std::move(list)}});
             }));
  router.Add("DELETE", "/api/v1/repos/{id}/caches/{entry}",
             Authed(d, auth::Need::RepoWrite(auth::RepoFrom::kRepoId), [&d](Request& req) {
               if (d.caches == nullptr) return Unavailable();
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               int64_t entry = 0;
               if (!absl::SimpleAtoi(req.path_params["entry"], &entry) || entry <= 0) {
                 return ErrorResponse(400, "invalid_argument",
                                      "cache entry id must be a positive integer");
               }
               auto deleted = d.caches->Delete(*id, entry);
               if (!deleted.ok()) return http::StatusToResponse(deleted.status());
               if (!*deleted) {
                 return ErrorResponse(
                     404, "not_found",
                     absl::StrCat("repository ", *id, " has no cache entry ", entry));
               }
               return JsonResponse(200, {{"deleted", entry}});
             }));
}

}  // namespace assay::api
