// /api/v1/agents: every agent the database knows, with its GPUs; enrollment tokens, revoke,
// disable and enable (issue 8); drain and resume (issue 9, lifecycle).

#include <boost/json.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <regex>

#include "absl/strings/str_cat.h"
#include "common/crypto/agent_secret.h"
#include "common/pipeline/duration.h"
#include "server/api/json.h"
#include "server/api/routes.h"
#include "server/http/json_util.h"

namespace assay::api {
namespace {

namespace json = boost::json;
using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
using http::Response;

// The limits of an enrollment token's grants; the same as the gRPC service's Hello limits.
constexpr size_t kMaxLabels = 64;
constexpr int64_t kMinExpiry = 60;              // 1 minute
constexpr int64_t kMaxExpiry = 30 * 24 * 3600;  // 30 days
constexpr int64_t kDefaultExpiry = 3600;        // 1 hour

bool ValidLabel(const std::string& l) {
  static const std::regex kLabel("^[A-Za-z0-9][A-Za-z0-9_.:/=+\\-]{0,99}$");
  return std::regex_match(l, kLabel);
}

// POST /api/v1/agents/enrollment-tokens {"name"?, "labels"?: [..], "expires_in"?: "1h"}:
// 201 with the token, shown only in this answer (the server keeps its hash).
Response CreateEnrollmentToken(const ApiDeps& d, Request& req) {
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status known = http::OnlyFields(*body, {"name", "labels", "expires_in"}); !known.ok()) {
    return http::StatusToResponse(known);
  }
  auto name = http::OptionalString(*body, "name");
  if (!name.ok()) return http::StatusToResponse(name.status());
  if (name->has_value() && (*name)->empty()) name->reset();
  auto expires_in = http::OptionalString(*body, "expires_in");
  if (!expires_in.ok()) return http::StatusToResponse(expires_in.status());
  int64_t seconds = kDefaultExpiry;
  if (expires_in->has_value()) {
    auto parsed = ParseDurationSeconds(**expires_in);
    if (!parsed.ok() || *parsed < kMinExpiry || *parsed > kMaxExpiry) {
      return ErrorResponse(400, "invalid_argument",
                           "field 'expires_in' must be a duration from 1m to 720h, like 1h");
    }
    seconds = *parsed;
  }
  std::vector<std::string> labels;
  if (const json::value* v = body->if_contains("labels"); v != nullptr && !v->is_null()) {
    if (!v->is_array() || v->as_array().size() > kMaxLabels) {
      return ErrorResponse(
          400, "invalid_argument",
          absl::StrCat("field 'labels' must be an array of at most ", kMaxLabels, " strings"));
    }
    for (const auto& l : v->as_array()) {
      if (!l.is_string() || !ValidLabel(std::string(l.as_string()))) {
        return ErrorResponse(400, "invalid_argument",
                             "each label must be 1-100 characters of letters, digits, "
                             "'_', '.', ':', '/', '=', '+', '-'");
      }
      labels.emplace_back(l.as_string());
    }
  }
  const std::string token = NewAgentSecret(AgentSecretKind::kEnrollmentToken);
  auto row = d.credentials->CreateEnrollmentToken(AgentSecretHash(token), *name, labels,
                                                  absl::Now() + absl::Seconds(seconds));
  if (!row.ok()) return http::StatusToResponse(row.status());
  json::array ls;
  for (const auto& l : row->labels) ls.push_back(json::value(l));
  return JsonResponse(201, {{"id", row->id},
                            {"token", token},
                            {"name", row->name ? json::value(*row->name) : json::value(nullptr)},
                            {"labels", std::move(ls)},
                            {"expires_at", TimeJson(row->expires_at)}});
}

// POST /api/v1/agents/{name}/revoke|disable|enable.
Response ChangeAccess(const ApiDeps& d, Request& req, const std::string& action) {
  const std::string name = req.path_params["name"];
  absl::StatusOr<int64_t> id = action == "revoke"
                                   ? d.credentials->Revoke(name)
                                   : d.credentials->SetDisabled(name, action == "disable");
  if (!id.ok()) return http::StatusToResponse(id.status());
  if (action != "enable" && d.close_agent) {
    d.close_agent(*id, absl::StrCat("agent '", name, "' was ",
                                    action == "revoke" ? "revoked" : "disabled", " by an admin"));
  }
  return JsonResponse(200, {{"id", *id},
                            {"name", name},
                            {"state", action == "revoke"    ? "revoked"
                                      : action == "disable" ? "disabled"
                                                            : "enabled"}});
}

// The longest drain reason (the agents table's CHECK) and drain timeout.
constexpr size_t kMaxDrainReason = 300;
constexpr int64_t kMaxDrainTimeout = 30 * 24 * 3600;  // 30 days

// POST /api/v1/agents/{name}/drain {"reason"?: "...", "timeout"?: "30m"} (the body may be
// empty): the agent takes no new job, on any server, until resumed; running jobs finish, or
// are canceled once `timeout` has passed ("0s": at once). The agent stays connected and idle.
// Idempotent: a second drain keeps the first drained_at and replaces reason and timeout.
// 200 {"id", "name", "drained": true, "reason", "deadline"}; 404 for an unknown agent.
Response Drain(const ApiDeps& d, Request& req) {
  const std::string name = req.path_params["name"];
  std::string reason;
  std::optional<absl::Time> deadline;
  if (!req.body.empty()) {
    Response err;
    auto body = http::ParseJsonBody(req, &err);
    if (!body) return err;
    if (absl::Status known = http::OnlyFields(*body, {"reason", "timeout"}); !known.ok()) {
      return http::StatusToResponse(known);
    }
    auto r = http::OptionalString(*body, "reason");
    if (!r.ok()) return http::StatusToResponse(r.status());
    if (r->has_value()) reason = **r;
    if (reason.size() > kMaxDrainReason || std::any_of(reason.begin(), reason.end(), [](char c) {
          return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
        })) {
      return ErrorResponse(400, "invalid_argument",
                           absl::StrCat("field 'reason' must be at most ", kMaxDrainReason,
                                        " bytes of text without control characters"));
    }
    auto t = http::OptionalString(*body, "timeout");
    if (!t.ok()) return http::StatusToResponse(t.status());
    if (t->has_value()) {
      // Why the special case: the pipeline's duration parser refuses zero, and "0s" (cancel
      // at once) is a timeout a drain may well have.
      const bool zero = **t == "0" || **t == "0s" || **t == "0m" || **t == "0h";
      auto parsed = zero ? absl::StatusOr<int64_t>(0) : ParseDurationSeconds(**t);
      if (!parsed.ok() || *parsed < 0 || *parsed > kMaxDrainTimeout) {
        return ErrorResponse(400, "invalid_argument",
                             "field 'timeout' must be a duration from 0s to 720h, like 30m");
      }
      deadline = absl::Now() + absl::Seconds(*parsed);
    }
  }
  auto id = d.agents->Drain(name, reason, deadline);
  if (!id.ok()) return http::StatusToResponse(id.status());
  if (d.refresh_agent_drain) d.refresh_agent_drain(*id);
  return JsonResponse(200, {{"id", *id},
                            {"name", name},
                            {"drained", true},
                            {"reason", reason},
                            {"deadline", deadline ? TimeJson(*deadline) : json::value(nullptr)}});
}

// POST /api/v1/agents/{name}/resume: lifts a drain (a no-op for an agent that is not drained).
// 200 {"id", "name", "drained": false}; 404 for an unknown agent.
Response Resume(const ApiDeps& d, Request& req) {
  const std::string name = req.path_params["name"];
  auto id = d.agents->Resume(name);
  if (!id.ok()) return http::StatusToResponse(id.status());
  if (d.refresh_agent_drain) d.refresh_agent_drain(*id);
  return JsonResponse(200, {{"id", *id}, {"name", name}, {"drained", false}});
}

}  // namespace

void RegisterAgentRoutes(http::Router& router, const ApiDeps& d) {
  router.Add("GET", "/api/v1/agents", Authed(d, auth::Need::Read(), [&d](Request&) {
               auto list = d.agents->List();
               if (!list.ok()) return http::StatusToResponse(list.status());
               // Issue 11: each agent's live jobs (assigned or running), for the agents page.
               auto live = d.jobs->LiveUsageAll();
               if (!live.ok()) return http::StatusToResponse(live.status());
               std::map<int64_t, json::array> jobs_of;
               for (const auto& u : *live) {
                 jobs_of[u.agent_id].push_back(
                     json::object{{"job_id", u.job_id}, {"pipeline_id", u.pipeline_id}});
               }
               json::array a;
               for (const auto& ag : *list) {
                 auto o = AgentJson(ag);
                 if (!o.ok()) return http::StatusToResponse(o.status());
                 (*o)["jobs"] = std::move(jobs_of[ag.id]);
                 a.push_back(*std::move(o));
               }
               return JsonResponse(200, {{"agents", std::move(a)}});
             }));
  router.Add("POST", "/api/v1/agents/{name}/drain",
             Authed(d, auth::Need::Admin(), [&d](Request& req) { return Drain(d, req); }));
  router.Add("POST", "/api/v1/agents/{name}/resume",
             Authed(d, auth::Need::Admin(), [&d](Request& req) { return Resume(d, req); }));
  if (d.credentials == nullptr) return;
  router.Add(
      "POST", "/api/v1/agents/enrollment-tokens",
      Authed(d, auth::Need::Admin(), [&d](Request& req) { return CreateEnrollmentToken(d, req); }));
  for (const char* action : {"revoke", "disable", "enable"}) {
    router.Add("POST", absl::StrCat("/api/v1/agents/{name}/", action),
               Authed(d, auth::Need::Admin(), [&d, a = std::string(action)](Request& req) {
                 return ChangeAccess(d, req, a);
               }));
  }
}

}  // namespace assay::api
