// /api/v1/jobs/{id} (show with why it waits, cancel) and /api/v1/queue; the log: job_log.cc.

#include <boost/json.hpp>

#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/numbers.h"
#include "server/api/json.h"
#include "server/api/routes.h"
#include "server/http/json_util.h"
#include "server/scheduler/explain.h"

namespace assay::api {
namespace {

using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
using http::Response;
namespace json = boost::json;

// An agent whose server has not marked it seen for this long counts as gone (servers mark
// their agents every 10 s; see server/scheduler/wakeups.h).
constexpr absl::Duration kAgentFresh = absl::Seconds(30);

// The job's JSON with "waiting": why a queued or pending job is not running yet (null for
// every other state), from the cluster as the database sees it.
absl::StatusOr<json::object> JobWithReason(const ApiDeps& d, const store::JobRow& j,
                                           const ClusterView* view) {
  json::object o = JobJson(j);
  o["waiting"] = nullptr;
  if (j.state != "queued" && j.state != "pending") return o;
  std::optional<ClusterView> own;
  if (view == nullptr) {
    auto agents = d.agents->List();
    if (!agents.ok()) return agents.status();
    auto live = d.jobs->LiveUsageAll();
    if (!live.ok()) return live.status();
    own = BuildClusterView(*agents, *live, absl::Now(), kAgentFresh);
    view = &*own;
  }
  std::vector<store::JobRow> siblings;
  if (j.state == "pending") {
    auto p = d.pipelines->Get(j.pipeline_id);
    if (!p.ok()) return p.status();
    siblings = std::move(p->jobs);
  }
  o["waiting"] = WhyWaiting(j, *view, siblings);
  return o;
}

}  // namespace

void RegisterJobRoutes(http::Router& router, const ApiDeps& d) {
  router.Add(
      "GET", "/api/v1/jobs/{id}", Authed(d, auth::Need::Read(), [&d](Request& req) {
        auto id = PathId(req);
        if (!id.ok()) return http::StatusToResponse(id.status());
        auto j = d.pipelines->GetJob(*id);
        if (!j.ok()) return http::StatusToResponse(j.status());
        auto o = JobWithReason(d, *j, nullptr);
        if (!o.ok()) return http::StatusToResponse(o.status());
        // Issue 11: where each step begins in the log the job shows (folded on its page).
        auto steps = d.jobs->StepsOf(*id);
        if (!steps.ok()) return http::StatusToResponse(steps.status());
        (*o)["steps"] = json::array();
        if (!steps->empty()) {
          auto parsed = StoredJson(*steps, absl::StrCat("job ", *id), "steps");
          if (!parsed.ok()) return http::StatusToResponse(parsed.status());
          (*o)["steps"] = *std::move(parsed);
        }
        // Issue 9, build_image: what the job pushed (docs/images.md).
        if (d.images != nullptr) {
          auto images = d.images->ImagesOf(*id);
          if (!images.ok()) return http::StatusToResponse(images.status());
          json::array list;
          for (const store::JobImage& i : *images) {
            list.push_back(json::object{{"reference", i.reference},
                                        {"digest", i.digest},
                                        {"pinned", store::PinnedReference(i.reference, i.digest)},
                                        {"primary", i.primary},
                                        {"attempt", i.attempt}});
          }
          (*o)["images"] = std::move(list);
        }
        return JsonResponse(200, *o);
      }));
  router.Add("POST", "/api/v1/jobs/{id}/cancel",
             Authed(d, auth::Need::RepoWrite(auth::RepoFrom::kJobId), [&d](Request& req) {
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               // As for pipelines: the store's NOTIFY tells the agent's server.
               auto canceled = d.pipelines->CancelJob(*id);
               if (!canceled.ok()) return http::StatusToResponse(canceled.status());
               auto j = d.pipelines->GetJob(*id);
               if (!j.ok()) return http::StatusToResponse(j.status());
               return JsonResponse(200, JobJson(*j));
             }));
  // Issue 11: runs a finished job again (PipelineStore::RetryJob).
  router.Add("POST", "/api/v1/jobs/{id}/retry",
             Authed(d, auth::Need::RepoWrite(auth::RepoFrom::kJobId), [&d](Request& req) {
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               auto retried = d.pipelines->RetryJob(*id);
               if (!retried.ok()) return http::StatusToResponse(retried.status());
               auto j = d.pipelines->GetJob(*id);
               if (!j.ok()) return http::StatusToResponse(j.status());
               return JsonResponse(200, JobJson(*j));
             }));
  router.Add("GET", "/api/v1/queue", Authed(d, auth::Need::Read(), [&d](Request& req) {
               int limit = 200;
               if (auto q = req.Query("limit"); q.has_value()) {
                 if (!absl::SimpleAtoi(*q, &limit) || limit < 1 || limit > 1000) {
                   return ErrorResponse(400, "bad_request",
                                        "query parameter 'limit' must be an integer from 1 "
                                        "to 1000");
                 }
               }
               auto waiting = d.pipelines->ListWaiting(limit);
               if (!waiting.ok()) return http::StatusToResponse(waiting.status());
               auto agents = d.agents->List();
               if (!agents.ok()) return http::StatusToResponse(agents.status());
               auto live = d.jobs->LiveUsageAll();
               if (!live.ok()) return http::StatusToResponse(live.status());
               const ClusterView view = BuildClusterView(*agents, *live, absl::Now(), kAgentFresh);
               json::array out;
               for (const auto& j : *waiting) {
                 auto o = JobWithReason(d, j, &view);
                 if (!o.ok()) return http::StatusToResponse(o.status());
                 (*o)["repo"] = j.repo;
                 out.push_back(std::move(*o));
               }
               return JsonResponse(200, {{"jobs", std::move(out)}});
             }));
}

}  // namespace assay::api
