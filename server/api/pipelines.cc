// /api/v1/pipelines: list, show (with jobs), cancel, retry, re-run; POST
// /api/v1/repos/{id}/pipelines starts a manual pipeline.

#include <boost/json.hpp>

#include <set>

#include <map>

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

// A pipeline with its jobs, as GET /api/v1/pipelines/{id} answers.
Response PipelineWithJobs(const ApiDeps& d, int64_t id, int status) {
  auto p = d.pipelines->Get(id);
  if (!p.ok()) return http::StatusToResponse(p.status());
  auto o = PipelineJson(*p);
  if (!o.ok()) return http::StatusToResponse(o.status());
  json::array jobs;
  for (const auto& j : p->jobs) jobs.push_back(JobJson(j));
  (*o)["jobs"] = std::move(jobs);
  return JsonResponse(status, *o);
}

// POST /api/v1/repos/{id}/pipelines: {"branch": "...", "inputs": {NAME: value}}, both optional.
Response CreateManualPipeline(const ApiDeps& d, Request& req) {
  auto id = PathId(req);
  if (!id.ok()) return http::StatusToResponse(id.status());
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status known = http::OnlyFields(*body, {"branch", "inputs"}); !known.ok()) {
    return http::StatusToResponse(known);
  }
  auto branch = http::OptionalString(*body, "branch");
  if (!branch.ok()) return http::StatusToResponse(branch.status());
  std::map<std::string, std::string> inputs;
  if (const json::value* in = body->if_contains("inputs"); in != nullptr && !in->is_null()) {
    if (!in->is_object()) {
      return ErrorResponse(400, "invalid_argument", "field 'inputs' must be an object");
    }
    for (const auto& [k, v] : in->as_object()) {
      std::string name(k);
      if (v.is_string()) {
        inputs[name] = std::string(v.as_string());
      } else if (v.is_bool()) {
        inputs[name] = v.as_bool() ? "true" : "false";
      } else if (v.is_int64()) {
        inputs[name] = absl::StrCat(v.as_int64());
      } else if (v.is_uint64()) {
        inputs[name] = absl::StrCat(v.as_uint64());
      } else if (v.is_double()) {
        inputs[name] = absl::StrCat(v.as_double());
      } else {
        return ErrorResponse(
            400, "invalid_argument",
            absl::StrCat("input '", name, "' must be a string, number or boolean"));
      }
    }
  }
  auto pid = d.planner->PlanManual(*id, *branch, inputs);
  if (!pid.ok()) return http::StatusToResponse(pid.status());
  return PipelineWithJobs(d, *pid, 201);
}

}  // namespace

namespace {

// GET /api/v1/pipelines?repo=&branch=&state=&event=&limit=&cursor=: newest first;
// "next_cursor" (null on the last page) pages on. An unknown filter value is a 400 naming it.
Response ListPipelines(const ApiDeps& d, Request& req) {
  store::PipelineStore::Filter f;
  if (auto l = req.Query("limit")) {
    int64_t limit = 0;
    if (!absl::SimpleAtoi(*l, &limit) || limit < 1 || limit > 1000) {
      return ErrorResponse(400, "invalid_argument",
                           "query parameter 'limit' must be between 1 and 1000");
    }
    f.limit = static_cast<int>(limit);
  }
  if (auto c = req.Query("cursor"); c && !c->empty()) {
    if (!absl::SimpleAtoi(*c, &f.before_id) || f.before_id < 1) {
      return ErrorResponse(400, "invalid_argument",
                           "query parameter 'cursor' must be a next_cursor this API gave");
    }
  }
  const auto nonempty = [&req](std::string_view name) -> std::optional<std::string> {
    auto v = req.Query(name);
    if (!v || v->empty()) return std::nullopt;
    return v;
  };
  f.repo = nonempty("repo");
  if (auto b = nonempty("branch")) f.ref = "refs/heads/" + *b;
  if (auto t = nonempty("tag")) f.ref = "refs/tags/" + *t;
  f.state = nonempty("state");
  static const std::set<std::string> kStates = {"running", "succeeded", "failed", "canceled",
                                                "error"};
  if (f.state && kStates.count(*f.state) == 0) {
    return ErrorResponse(400, "invalid_argument",
                         "query parameter 'state' must be running, succeeded, failed, canceled "
                         "or error");
  }
  f.event = nonempty("event");
  static const std::set<std::string> kEvents = {"push", "tag", "pull_request", "manual",
                                                "schedule"};
  if (f.event && kEvents.count(*f.event) == 0) {
    return ErrorResponse(400, "invalid_argument",
                         "query parameter 'event' must be push, tag, pull_request, manual or "
                         "schedule");
  }
  auto list = d.pipelines->List(f);
  if (!list.ok()) return http::StatusToResponse(list.status());
  json::array a;
  for (const auto& p : *list) {
    auto o = PipelineJson(p);
    if (!o.ok()) return http::StatusToResponse(o.status());
    a.push_back(*std::move(o));
  }
  json::object body{{"pipelines", std::move(a)}};
  body["next_cursor"] = static_cast<int>(list->size()) == f.limit
                            ? json::value(absl::StrCat(list->back().id))
                            : json::value(nullptr);
  return JsonResponse(200, std::move(body));
}

}  // namespace

void RegisterPipelineRoutes(http::Router& router, const ApiDeps& d) {
  router.Add("POST", "/api/v1/repos/{id}/pipelines",
             Authed(d, auth::Need::RepoWrite(auth::RepoFrom::kRepoId),
                    [&d](Request& req) { return CreateManualPipeline(d, req); }));
  router.Add("GET", "/api/v1/pipelines",
             Authed(d, auth::Need::Read(), [&d](Request& req) { return ListPipelines(d, req); }));
  router.Add("GET", "/api/v1/pipelines/{id}", Authed(d, auth::Need::Read(), [&d](Request& req) {
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               return PipelineWithJobs(d, *id, 200);
             }));
  // Issue 11: retry every failed or canceled job of a finished pipeline, in place.
  router.Add("POST", "/api/v1/pipelines/{id}/retry",
             Authed(d, auth::Need::RepoWrite(auth::RepoFrom::kPipelineId), [&d](Request& req) {
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               auto retried = d.pipelines->RetryPipeline(*id);
               if (!retried.ok()) return http::StatusToResponse(retried.status());
               return PipelineWithJobs(d, *id, 200);
             }));
  // Issue 11: a new pipeline of the same commit, ref, event and inputs.
  router.Add("POST", "/api/v1/pipelines/{id}/rerun",
             Authed(d, auth::Need::RepoWrite(auth::RepoFrom::kPipelineId), [&d](Request& req) {
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               auto pid = d.planner->PlanRerun(*id);
               if (!pid.ok()) return http::StatusToResponse(pid.status());
               return PipelineWithJobs(d, *pid, 201);
             }));
  router.Add("POST", "/api/v1/pipelines/{id}/cancel",
             Authed(d, auth::Need::RepoWrite(auth::RepoFrom::kPipelineId), [&d](Request& req) {
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               // The store's NOTIFY assay_cancel reaches whichever server holds each agent's
               // stream, this one included (server/scheduler/wakeups.h).
               auto canceled = d.pipelines->Cancel(*id);
               if (!canceled.ok()) return http::StatusToResponse(canceled.status());
               auto p = d.pipelines->Get(*id);
               if (!p.ok()) return http::StatusToResponse(p.status());
               auto o = PipelineJson(*p);
               if (!o.ok()) return http::StatusToResponse(o.status());
               return JsonResponse(200, *o);
             }));
}

}  // namespace assay::api
