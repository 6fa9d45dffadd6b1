// Evals (issue 10, docs/evals.md):
//   GET /api/v1/evals?repo=ID&job=ID&name=N&branch=B&before=ID&limit=N   runs, newest first
//   GET /api/v1/evals/{id}?examples=all|failed|none                      a run with its report
//   GET /api/v1/evals/{id}/diff?against=ID|BRANCH                        example by example
//   GET /api/v1/jobs/{id}/evals                                          the runs of a job
// A diff pairs the examples of two runs by example id: `regressed` passed in the baseline and
// not in the candidate, `fixed` the other way round, `still_wrong` failed in both; each with
// its input, expected and both outputs. Without `against`: the baseline the run's gate used,
// else the last complete run of the same eval on the repository's default branch.

#include <boost/json.hpp>
#include <map>
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
  return ErrorResponse(503, "unavailable", "evals are not enabled on this server");
}

json::object RunJson(const store::EvalRun& r) {
  json::object o{{"id", r.id},
                 {"job_id", r.job_id},
                 {"attempt", r.attempt},
                 {"step_index", r.step_index},
                 {"repo_id", r.repo_id},
                 {"pipeline_id", r.pipeline_id},
                 {"job_name", r.job_name},
                 {"name", r.name},
                 {"ref", r.ref},
                 {"commit_sha", r.commit_sha},
                 {"complete", r.complete},
                 {"dataset", json::object{{"path", r.dataset_path}, {"sha256", r.dataset_sha256}}},
                 {"repeat", r.repeat},
                 {"examples", r.examples},
                 {"error", r.error},
                 {"created_at", TimeJson(r.created_at)}};
  o["passed"] = r.passed.has_value() ? json::value(*r.passed) : json::value(nullptr);
  o["baseline_run_id"] = r.baseline_run_id != 0 ? json::value(r.baseline_run_id) : nullptr;
  o["model"] = r.model.empty()
                   ? json::value(nullptr)
                   : json::value(json::object{{"name", r.model}, {"version", r.model_version}});
  o["finished_at"] = r.finished_at.has_value() ? TimeJson(*r.finished_at) : json::value(nullptr);
  boost::system::error_code ec;
  json::value report = json::parse(r.report_json, ec);
  if (!ec && report.is_object()) {
    for (const char* key : {"metrics", "verdicts", "pass_at"}) {
      if (const json::value* v = report.as_object().if_contains(key)) o[key] = *v;
    }
  }
  return o;
}

json::object ExampleJson(const store::EvalExampleRow& e) {
  json::object scores;
  for (const auto& [k, v] : e.scores) scores[k] = v;
  return json::object{{"index", e.index},
                      {"id", e.example_id},
                      {"input", e.input},
                      {"expected", e.expected},
                      {"output", e.output},
                      {"error", e.error},
                      {"passed", e.passed},
                      {"scores", std::move(scores)},
                      {"latency_ms", e.latency_ms},
                      {"input_tokens", e.input_tokens},
                      {"output_tokens", e.output_tokens},
                      {"answered", e.answered},
                      {"passes", e.passes}};
}

// `name` as a positive id; 0 when absent; an error response otherwise.
std::optional<Response> QueryId(Request& req, const char* name, int64_t& out) {
  out = 0;
  auto v = req.Query(name);
  if (!v.has_value()) return std::nullopt;
  if (!absl::SimpleAtoi(*v, &out) || out <= 0) {
    return ErrorResponse(400, "invalid_argument",
                         absl::StrCat("query parameter '", name, "' must be a positive integer"));
  }
  return std::nullopt;
}

// The run `id` (kNotFound "no eval N" when there is none).
absl::StatusOr<store::EvalRun> RunOf(const ApiDeps& d, int64_t id) {
  auto run = d.evals->Get(id);
  if (!run.ok()) return run.status();
  if (!run->has_value()) return absl::NotFoundError(absl::StrCat("no eval ", id));
  return **run;
}

// The run of the path's {id}.
absl::StatusOr<store::EvalRun> RunById(const ApiDeps& d, Request& req) {
  int64_t id = 0;
  if (!absl::SimpleAtoi(req.path_params["id"], &id) || id <= 0) {
    return absl::InvalidArgumentError("eval id must be a positive integer");
  }
  return RunOf(d, id);
}

}  // namespace

void RegisterEvalRoutes(http::Router& router, const ApiDeps& d) {
  router.Add("GET", "/api/v1/evals", Authed(d, auth::Need::Read(), [&d](Request& req) {
               if (d.evals == nullptr) return Unavailable();
               store::EvalFilter f;
               if (auto bad = QueryId(req, "repo", f.repo_id)) return *bad;
               if (auto bad = QueryId(req, "job", f.job_id)) return *bad;
               if (auto bad = QueryId(req, "before", f.before_id)) return *bad;
               f.name = req.Query("name").value_or("");
               f.branch = req.Query("branch").value_or("");
               if (auto l = req.Query("limit")) {
                 if (!absl::SimpleAtoi(*l, &f.limit) || f.limit < 1 || f.limit > 500) {
                   return ErrorResponse(400, "invalid_argument",
                                        "query parameter 'limit' must be between 1 and 500");
                 }
               }
               auto runs = d.evals->List(f);
               if (!runs.ok()) return http::StatusToResponse(runs.status());
               json::array list;
               for (const auto& r : *runs) list.push_back(RunJson(r));
               json::object body{{"evals", std::move(list)}};
               body["next_before"] = static_cast<int>(runs->size()) == f.limit && !runs->empty()
                                         ? json::value(runs->back().id)
                                         : json::value(nullptr);
               return JsonResponse(200, std::move(body));
             }));
  router.Add("GET", "/api/v1/jobs/{id}/evals", Authed(d, auth::Need::Read(), [&d](Request& req) {
               if (d.evals == nullptr) return Unavailable();
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               store::EvalFilter f;
               f.job_id = *id;
               f.limit = 500;
               auto runs = d.evals->List(f);
               if (!runs.ok()) return http::StatusToResponse(runs.status());
               json::array list;
               for (const auto& r : *runs) list.push_back(RunJson(r));
               return JsonResponse(200, {{"evals", std::move(list)}});
             }));
  router.Add("GET", "/api/v1/evals/{id}", Authed(d, auth::Need::Read(), [&d](Request& req) {
               if (d.evals == nullptr) return Unavailable();
               auto run = RunById(d, req);
               if (!run.ok()) return http::StatusToResponse(run.status());
               const std::string which = req.Query("examples").value_or("all");
               if (which != "all" && which != "failed" && which != "none") {
                 return ErrorResponse(400, "invalid_argument",
                                      "query parameter 'examples' must be all, failed or none");
               }
               json::object body = RunJson(*run);
               if (which != "none") {
                 auto examples = d.evals->Examples(run->id);
                 if (!examples.ok()) return http::StatusToResponse(examples.status());
                 json::array list;
                 for (const auto& e : *examples) {
                   if (which == "failed" && e.passed) continue;
                   list.push_back(ExampleJson(e));
                 }
                 body["example_results"] = std::move(list);
               }
               return JsonResponse(200, std::move(body));
             }));
  router.Add("GET", "/api/v1/evals/{id}/diff", Authed(d, auth::Need::Read(), [&d](Request& req) {
               if (d.evals == nullptr) return Unavailable();
               auto run = RunById(d, req);
               if (!run.ok()) return http::StatusToResponse(run.status());
               const store::EvalRun& cand = *run;
               // The baseline: an id, a branch, the gate's baseline, or the default branch's last
               // run.
               std::optional<store::EvalRun> base;
               const std::string against = req.Query("against").value_or("");
               int64_t against_id = 0;
               if (!against.empty() && absl::SimpleAtoi(against, &against_id)) {
                 auto b = d.evals->Get(against_id);
                 if (!b.ok()) return http::StatusToResponse(b.status());
                 if (!b->has_value()) {
                   return ErrorResponse(404, "not_found", absl::StrCat("no eval ", against_id));
                 }
                 base = **b;
               } else if (against.empty() && cand.baseline_run_id != 0) {
                 auto b = d.evals->Get(cand.baseline_run_id);
                 if (!b.ok()) return http::StatusToResponse(b.status());
                 if (b->has_value()) base = **b;
               } else {
                 std::string branch = against;
                 if (branch.empty()) {
                   auto repo = d.repos->Get(cand.repo_id);
                   if (!repo.ok()) return http::StatusToResponse(repo.status());
                   branch = repo->default_branch;
                 }
                 store::EvalFilter f;
                 f.repo_id = cand.repo_id;
                 f.name = cand.name;
                 f.branch = branch;
                 f.limit = 20;
                 auto runs = d.evals->List(f);
                 if (!runs.ok()) return http::StatusToResponse(runs.status());
                 for (const auto& r : *runs) {
                   if (r.complete && r.id != cand.id) {
                     base = r;
                     break;
                   }
                 }
                 if (!base.has_value()) {
                   return ErrorResponse(404, "not_found",
                                        absl::StrCat("no complete run of eval '", cand.name,
                                                     "' on branch ", branch, " to compare with"));
                 }
               }
               if (!base.has_value()) {
                 return ErrorResponse(404, "not_found", "no run to compare with");
               }
               if (base->repo_id != cand.repo_id || base->name != cand.name) {
                 return ErrorResponse(400, "invalid_argument",
                                      absl::StrCat("eval ", base->id, " is not a run of eval '",
                                                   cand.name, "' in the same repository"));
               }
               auto base_examples = d.evals->Examples(base->id);
               if (!base_examples.ok()) return http::StatusToResponse(base_examples.status());
               auto cand_examples = d.evals->Examples(cand.id);
               if (!cand_examples.ok()) return http::StatusToResponse(cand_examples.status());
               std::map<std::string, const store::EvalExampleRow*> by_id;
               for (const auto& e : *base_examples) by_id[e.example_id] = &e;
               json::array regressed, fixed, still_wrong;
               int64_t only_candidate = 0, unchanged_passing = 0;
               for (const auto& e : *cand_examples) {
                 auto it = by_id.find(e.example_id);
                 if (it == by_id.end()) {
                   ++only_candidate;
                   continue;
                 }
                 const store::EvalExampleRow& b = *it->second;
                 by_id.erase(it);
                 if (b.passed && e.passed) {
                   ++unchanged_passing;
                   continue;
                 }
                 json::object o{{"id", e.example_id},           {"input", e.input},
                                {"expected", e.expected},       {"baseline_output", b.output},
                                {"candidate_output", e.output}, {"baseline_error", b.error},
                                {"candidate_error", e.error}};
                 (b.passed ? regressed : e.passed ? fixed : still_wrong).push_back(std::move(o));
               }
               return JsonResponse(200, {{"candidate", RunJson(cand)},
                                         {"baseline", RunJson(*base)},
                                         {"regressed", std::move(regressed)},
                                         {"fixed", std::move(fixed)},
                                         {"still_wrong", std::move(still_wrong)},
                                         {"still_passing", unchanged_passing},
                                         {"only_in_candidate", only_candidate},
                                         {"only_in_baseline", static_cast<int64_t>(by_id.size())}});
             }));
}

}  // namespace assay::api
