// Training (issue 10, docs/train.md):
//   GET /api/v1/jobs/{id}/train?points=N   the job's train steps: each metric series (at most N
//                                          points each, the newest; default 10,000), the
//                                          attempts and the checkpoint step each resumed from,
//                                          the newest checkpoint, the registered version
//   GET /api/v1/pipelines/{id}/sweeps      the pipeline's sweeps (docs/train.md "Sweeps"): each
//                                          trial with its params, state, its metric's last
//                                          step and value, whether it is the best or was
//                                          stopped early; the best and its registered version
// A series holds every attempt's points ordered by step, each point [step, value, attempt], so a
// resumed attempt shows as points of attempt 2 going on from the checkpoint's step.

#include <boost/json.hpp>

#include "absl/strings/numbers.h"
#include "server/api/json.h"
#include "server/api/routes.h"
#include "server/http/json_util.h"

namespace assay::api {

using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
namespace json = boost::json;

void RegisterTrainRoutes(http::Router& router, const ApiDeps& d) {
  router.Add("GET", "/api/v1/jobs/{id}/train", Authed(d, auth::Need::Read(), [&d](Request& req) {
               if (d.train == nullptr) {
                 return ErrorResponse(503, "unavailable", "training is not enabled on this server");
               }
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               int points = 10'000;
               if (auto p = req.Query("points")) {
                 if (!absl::SimpleAtoi(*p, &points) || points < 1 || points > 100'000) {
                   return ErrorResponse(400, "invalid_argument",
                                        "query parameter 'points' must be between 1 and 100000");
                 }
               }
               auto runs = d.train->RunsOf(*id, points);
               if (!runs.ok()) return http::StatusToResponse(runs.status());
               json::array list;
               for (const store::TrainRunView& r : *runs) {
                 json::object series;
                 for (const auto& [name, pts] : r.series) {
                   json::array a;
                   for (const store::TrainPoint& p : pts) a.push_back({p.step, p.value, p.attempt});
                   series[name] = std::move(a);
                 }
                 json::array attempts;
                 for (const auto& [attempt, resumed] : r.attempts) {
                   attempts.push_back(
                       {{"attempt", attempt},
                        {"resumed_from", resumed ? json::value(*resumed) : json::value(nullptr)}});
                 }
                 json::object o{{"step_index", r.step_index},
                                {"name", r.name},
                                {"model", r.model},
                                {"series", std::move(series)},
                                {"attempts", std::move(attempts)},
                                {"datasets", json::parse(r.datasets_json)}};
                 o["latest_checkpoint_step"] = r.latest_checkpoint_step
                                                   ? json::value(*r.latest_checkpoint_step)
                                                   : json::value(nullptr);
                 o["model_version"] =
                     r.model_version ? json::value(*r.model_version) : json::value(nullptr);
                 list.push_back(std::move(o));
               }
               return JsonResponse(200, {{"job_id", *id}, {"train", std::move(list)}});
             }));
  router.Add("GET", "/api/v1/pipelines/{id}/sweeps",
             Authed(d, auth::Need::Read(), [&d](Request& req) {
               if (d.train == nullptr) {
                 return ErrorResponse(503, "unavailable", "training is not enabled on this server");
               }
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               auto sweeps = d.train->SweepsOf(*id);
               if (!sweeps.ok()) return http::StatusToResponse(sweeps.status());
               auto opt = [](const auto& v) { return v ? json::value(*v) : json::value(nullptr); };
               json::array list;
               for (const store::SweepView& s : *sweeps) {
                 json::array trials;
                 json::value best = nullptr;
                 for (const store::SweepTrialView& t : s.trial_views) {
                   json::object o{{"job_id", t.job_id},   {"name", t.name},
                                  {"trial", t.trial},     {"state", t.state},
                                  {"message", t.message}, {"params", json::parse(t.params_json)},
                                  {"step", opt(t.step)},  {"value", opt(t.value)},
                                  {"best", t.best},       {"stopped_early", t.stopped_early}};
                   if (t.best)
                     best = {{"job_id", t.job_id}, {"trial", t.trial}, {"value", opt(t.value)}};
                   trials.push_back(std::move(o));
                 }
                 json::value model = nullptr;
                 if (s.model_version) model = {{"name", s.model}, {"version", *s.model_version}};
                 list.push_back({{"name", s.name},
                                 {"method", s.method},
                                 {"metric", s.metric},
                                 {"goal", s.goal},
                                 {"planned", s.trials},
                                 {"concluded", s.concluded},
                                 {"best", std::move(best)},
                                 {"model", std::move(model)},
                                 {"message", s.message},
                                 {"trials", std::move(trials)}});
               }
               return JsonResponse(200, {{"pipeline_id", *id}, {"sweeps", std::move(list)}});
             }));
}

}  // namespace assay::api
