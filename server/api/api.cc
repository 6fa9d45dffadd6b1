#include "server/api/api.h"

#include <boost/json.hpp>

#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "common/git/git.h"
#include "server/api/commit_status_api.h"
#include "server/http/json_util.h"
#include "server/scheduler/explain.h"
#include "server/webhook/forge.h"

namespace assay {
namespace {

using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
using http::Response;
namespace json = boost::json;

json::value TimeJson(absl::Time t) {
  if (t == absl::InfinitePast()) return nullptr;
  return json::value(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone()));
}

// An agent whose server has not marked it seen for this long counts as gone (servers mark
// their agents every 10 s; see server/scheduler/wakeups.h).
constexpr absl::Duration kAgentFresh = absl::Seconds(30);

json::object RepoJson(const store::Repo& r) {
  return {{"id", r.id},
          {"name", r.name},
          {"provider", r.provider},
          {"clone_url", r.clone_url},
          {"html_url", r.html_url.empty() ? json::value(nullptr) : json::value(r.html_url)},
          {"has_webhook_secret", !r.webhook_secret_sealed.empty()},
          {"default_branch", r.default_branch},
          {"cancel_superseded", r.cancel_superseded},
          {"commit_status", CommitStatusJson(r)},
          {"created_at", TimeJson(r.created_at)}};
}

json::object JobJson(const store::JobRow& j) {
  json::array needs;
  for (const auto& n : j.needs) needs.push_back(json::value(n));
  json::array labels;
  for (const auto& l : j.labels) labels.push_back(json::value(l));
  json::array gpus;
  for (uint32_t g : j.gpu_indices) gpus.push_back(json::value(g));
  boost::system::error_code ec;
  json::value runs_on = json::parse(j.requirements_json.empty() ? "{}" : j.requirements_json, ec);
  if (ec || !runs_on.is_object()) runs_on = json::object();
  runs_on.as_object()["labels"] = std::move(labels);
  return {{"id", j.id},
          {"runs_on", std::move(runs_on)},
          {"gpu_indices", std::move(gpus)},
          {"priority", j.priority},
          {"allow_failure", j.allow_failure},
          {"max_attempts", j.max_attempts},
          {"pipeline_id", j.pipeline_id},
          {"name", j.name},
          {"state", j.state},
          {"needs", std::move(needs)},
          {"attempt", j.attempt},
          {"agent", j.agent.empty() ? json::value(nullptr) : json::value(j.agent)},
          {"exit_code", j.exit_code ? json::value(*j.exit_code) : json::value(nullptr)},
          {"message", j.message.empty() ? json::value(nullptr) : json::value(j.message)},
          {"created_at", TimeJson(j.created_at)},
          {"queued_at", TimeJson(j.queued_at)},
          {"started_at", TimeJson(j.started_at)},
          {"finished_at", TimeJson(j.finished_at)}};
}

json::object PipelineJson(const store::PipelineRow& p) {
  json::object o{{"id", p.id},
                 {"repo", p.repo},
                 {"event", p.event},
                 {"ref", p.ref},
                 {"commit_sha", p.commit_sha},
                 {"state", p.state},
                 {"message", p.message.empty() ? json::value(nullptr) : json::value(p.message)},
                 {"trusted", p.trusted},
                 {"pr_number", p.pr_number ? json::value(*p.pr_number) : json::value(nullptr)},
                 {"inputs", p.inputs_json.empty() ? json::value(nullptr) : json::parse(p.inputs_json)},
                 {"scheduled_for", TimeJson(p.scheduled_for)},
                 {"created_at", TimeJson(p.created_at)},
                 {"finished_at", TimeJson(p.finished_at)}};
  return o;
}

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

// A pipeline with its jobs, as GET /api/v1/pipelines/{id} answers.
Response PipelineWithJobs(const ApiDeps& d, int64_t id, int status) {
  auto p = d.pipelines->Get(id);
  if (!p.ok()) return http::StatusToResponse(p.status());
  json::object o = PipelineJson(*p);
  json::array jobs;
  for (const auto& j : p->jobs) jobs.push_back(JobJson(j));
  o["jobs"] = std::move(jobs);
  return JsonResponse(status, o);
}

absl::StatusOr<int64_t> PathId(const Request& req) {
  int64_t id = 0;
  auto it = req.path_params.find("id");
  if (it == req.path_params.end() || !absl::SimpleAtoi(it->second, &id) || id <= 0) {
    return absl::InvalidArgumentError("path parameter 'id' must be a positive integer");
  }
  return id;
}

// Wraps a handler with bearer-token authentication against the admin token.
http::Handler Authed(const ApiDeps& d, http::Handler h) {
  return [&d, h = std::move(h)](Request& req) -> Response {
    std::string given = req.Header("authorization");
    // Why hash first: ConstantTimeEquals leaks length; equal-length digests do not.
    if (!ConstantTimeEquals(Sha256(given), Sha256("Bearer " + d.admin_token))) {
      Response r = ErrorResponse(401, "unauthenticated",
                                 "missing or invalid token: send 'Authorization: Bearer <token>'");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    }
    return h(req);
  };
}

Response CreateRepo(const ApiDeps& d, Request& req) {
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status known = http::OnlyFields(*body, {"name", "clone_url", "provider", "webhook_secret", "html_url"}); !known.ok()) {
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
  store::NewRepo n;
  n.name = *name;
  n.clone_url = *clone_url;
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
    auto sealed = SealSecret(d.secret_key, **secret);
    if (!sealed.ok()) return http::StatusToResponse(sealed.status());
    n.webhook_secret_sealed = *sealed;
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
  if (absl::Status known = http::OnlyFields(*body, {"default_branch", "cancel_superseded"}); !known.ok()) {
    return http::StatusToResponse(known);
  }
  auto branch = http::OptionalString(*body, "default_branch");
  if (!branch.ok()) return http::StatusToResponse(branch.status());
  auto cancel = http::OptionalBool(*body, "cancel_superseded");
  if (!cancel.ok()) return http::StatusToResponse(cancel.status());
  store::RepoSettings set;
  if (branch->has_value()) {
    if (!IsValidBranchName(**branch)) {
      return ErrorResponse(400, "invalid_argument",
                           absl::StrCat("field 'default_branch' must be a valid branch name, got '",
                                        **branch, "'"));
    }
    set.default_branch = **branch;
  }
  set.cancel_superseded = *cancel;
  auto repo = d.repos->Update(*id, set);
  if (!repo.ok()) return http::StatusToResponse(repo.status());
  return JsonResponse(200, RepoJson(*repo));
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
        return ErrorResponse(400, "invalid_argument",
                             absl::StrCat("input '", name, "' must be a string, number or boolean"));
      }
    }
  }
  auto pid = d.planner->PlanManual(*id, *branch, inputs);
  if (!pid.ok()) return http::StatusToResponse(pid.status());
  return PipelineWithJobs(d, *pid, 201);
}

// One endpoint per forge (/hooks/github, /hooks/gitlab, /hooks/gitea): find the repository
// the payload names, verify the delivery with its secret, store the raw delivery (deduplicated
// on the delivery id), answer, and hand branch/tag pushes and pull requests to the planner.
Response ForgeHook(const ApiDeps& d, const std::string& provider, Request& req) {
  const webhook::HookHeaders& h = *webhook::HeadersFor(provider);
  std::string event = req.Header(h.event);
  std::string delivery = req.Header(h.delivery);
  if (provider == "gitea") {  // Forgejo sends its own header names
    if (event.empty()) event = req.Header("X-Forgejo-Event");
    if (delivery.empty()) delivery = req.Header("X-Forgejo-Delivery");
  }
  if (event.empty() || delivery.empty()) {
    d.metrics->WebhookReceived(provider, "bad_request");
    return ErrorResponse(400, "invalid_argument",
                         absl::StrCat("headers ", h.event, " and ", h.delivery, " are required"));
  }
  if (delivery.size() > 200) {
    d.metrics->WebhookReceived(provider, "bad_request");
    return ErrorResponse(400, "invalid_argument",
                         absl::StrCat("header ", h.delivery, " is too long"));
  }
  auto parsed = webhook::ParseDelivery(provider, event, delivery, req.body);
  if (!parsed.ok() || parsed->repo_candidates.empty()) {
    d.metrics->WebhookReceived(provider, "bad_request");
    return ErrorResponse(400, "invalid_payload",
                         parsed.ok() ? "payload names no repository"
                                     : std::string(parsed.status().message()));
  }
  auto repo = d.repos->FindByAny(parsed->repo_candidates);
  if (!repo.ok()) {
    if (repo.status().code() != absl::StatusCode::kNotFound) {
      return http::StatusToResponse(repo.status());
    }
    d.metrics->WebhookReceived(provider, "unknown_repo");
    return ErrorResponse(404, "unknown_repository",
                         absl::StrCat("no registered repository matches ",
                                      parsed->repo_candidates[0]));
  }
  if (repo->provider != provider) {
    d.metrics->WebhookReceived(provider, "bad_request");
    return ErrorResponse(400, "wrong_provider",
                         absl::StrCat("repository ", repo->name, " is registered for ",
                                      repo->provider, ", not ", provider));
  }
  if (repo->webhook_secret_sealed.empty()) {
    d.metrics->WebhookReceived(provider, "bad_signature");
    return ErrorResponse(401, "unauthenticated",
                         absl::StrCat("repository ", repo->name,
                                      " has no webhook secret; deliveries cannot be verified"));
  }
  auto secret = OpenSecret(d.secret_key, repo->webhook_secret_sealed);
  if (!secret.ok()) return http::StatusToResponse(secret.status());
  absl::Status sig = webhook::VerifyDelivery(
      provider, [&req](std::string_view name) { return req.Header(name); }, *secret, req.body);
  if (!sig.ok()) {
    d.metrics->WebhookReceived(provider, "bad_signature");
    return ErrorResponse(401, "bad_signature", std::string(sig.message()));
  }
  store::NewDelivery nd;
  nd.provider = provider;
  nd.delivery_id = delivery;
  nd.event = event;
  nd.repo_id = repo->id;
  json::object headers;
  for (const auto& [k, v] : req.headers) {
    std::string lower = k;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    // Why not all headers: the GitLab token is a secret and must not be stored.
    if (lower == "x-gitlab-token") continue;
    if (lower.rfind("x-", 0) == 0 || lower == "user-agent" || lower == "content-type") {
      headers[k] = v;
    }
  }
  nd.headers_json = json::serialize(headers);
  nd.body = req.body;
  const std::string& kind = parsed->kind;
  const bool plan = (kind == "push" || kind == "tag" || kind == "pull_request") && !parsed->deleted;
  if (!plan) {
    nd.initial_state = "ignored";
    nd.message = kind == "ping"              ? "ping"
                 : parsed->deleted           ? "ref deleted"
                 : !parsed->ignore_reason.empty() ? parsed->ignore_reason
                                                  : absl::StrCat("event '", event, "' is not built");
  }
  auto ins = d.deliveries->Insert(nd);
  if (!ins.ok()) return http::StatusToResponse(ins.status());
  if (!ins->inserted) {
    d.metrics->WebhookReceived(provider, "duplicate");
    return JsonResponse(202, {{"delivery", ins->id}, {"status", "duplicate"}});
  }
  if (kind == "ping") {
    d.metrics->WebhookReceived(provider, "accepted");
    return JsonResponse(200, {{"delivery", ins->id}, {"status", "pong"}});
  }
  if (!plan) {
    d.metrics->WebhookReceived(provider, "ignored");
    return JsonResponse(202, {{"delivery", ins->id}, {"status", "ignored"}});
  }
  d.metrics->WebhookReceived(provider, "accepted");
  d.planner->Enqueue(ins->id);
  return JsonResponse(202, {{"delivery", ins->id}, {"status", "queued"}});
}

}  // namespace

void RegisterApi(http::Router& router, const ApiDeps& deps) {
  const ApiDeps& d = deps;
  router.Add("GET", "/healthz", [&d](Request&) {
    auto active = d.jobs->ActiveWork();
    if (!active.ok()) {
      return ErrorResponse(503, "unavailable", std::string(active.status().message()));
    }
    return JsonResponse(200, {{"status", "ok"},
                              {"active", *active},
                              {"agents", d.dispatcher->ConnectedAgents()}});
  });
  router.Add("GET", "/metrics", [&d](Request&) {
    auto counts = d.jobs->CountByState();
    if (counts.ok()) d.metrics->SetJobStates(*counts);
    Response r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = d.metrics->Serialize();
    return r;
  });
  for (const char* provider : {"github", "gitlab", "gitea"}) {
    router.Add("POST", absl::StrCat("/hooks/", provider), [&d, p = std::string(provider)](
                                                              Request& req) {
      return ForgeHook(d, p, req);
    });
  }

  router.Add("POST", "/api/v1/repos", Authed(d, [&d](Request& req) { return CreateRepo(d, req); }));
  router.Add("PATCH", "/api/v1/repos/{id}",
             Authed(d, [&d](Request& req) { return UpdateRepo(d, req); }));
  router.Add("POST", "/api/v1/repos/{id}/pipelines",
             Authed(d, [&d](Request& req) { return CreateManualPipeline(d, req); }));
  router.Add("GET", "/api/v1/repos", Authed(d, [&d](Request&) {
               auto repos = d.repos->List();
               if (!repos.ok()) return http::StatusToResponse(repos.status());
               json::array a;
               for (const auto& r : *repos) a.push_back(RepoJson(r));
               return JsonResponse(200, {{"repos", std::move(a)}});
             }));
  router.Add("PUT", "/api/v1/repos/{id}/commit-status", Authed(d, [&d](Request& req) {
               return PutCommitStatus(d, req, RepoJson);
             }));
  router.Add("DELETE", "/api/v1/repos/{id}/commit-status", Authed(d, [&d](Request& req) {
               return DeleteCommitStatus(d, req, RepoJson);
             }));
  router.Add("GET", "/api/v1/pipelines", Authed(d, [&d](Request& req) {
               int64_t limit = 50;
               if (auto l = req.Query("limit")) {
                 if (!absl::SimpleAtoi(*l, &limit) || limit < 1 || limit > 1000) {
                   return ErrorResponse(400, "invalid_argument",
                                        "query parameter 'limit' must be between 1 and 1000");
                 }
               }
               auto list = d.pipelines->List(req.Query("repo"), static_cast<int>(limit));
               if (!list.ok()) return http::StatusToResponse(list.status());
               json::array a;
               for (const auto& p : *list) a.push_back(PipelineJson(p));
               return JsonResponse(200, {{"pipelines", std::move(a)}});
             }));
  router.Add("GET", "/api/v1/pipelines/{id}", Authed(d, [&d](Request& req) {
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               return PipelineWithJobs(d, *id, 200);
             }));
  router.Add("POST", "/api/v1/pipelines/{id}/cancel", Authed(d, [&d](Request& req) {
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               // The store's NOTIFY assay_cancel reaches whichever server holds each agent's
               // stream, this one included (server/scheduler/wakeups.h).
               auto canceled = d.pipelines->Cancel(*id);
               if (!canceled.ok()) return http::StatusToResponse(canceled.status());
               auto p = d.pipelines->Get(*id);
               if (!p.ok()) return http::StatusToResponse(p.status());
               return JsonResponse(200, PipelineJson(*p));
             }));
  router.Add("GET", "/api/v1/jobs/{id}", Authed(d, [&d](Request& req) {
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               auto j = d.pipelines->GetJob(*id);
               if (!j.ok()) return http::StatusToResponse(j.status());
               auto o = JobWithReason(d, *j, nullptr);
               if (!o.ok()) return http::StatusToResponse(o.status());
               return JsonResponse(200, *o);
             }));
  router.Add("POST", "/api/v1/jobs/{id}/cancel", Authed(d, [&d](Request& req) {
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               // As for pipelines: the store's NOTIFY tells the agent's server.
               auto canceled = d.pipelines->CancelJob(*id);
               if (!canceled.ok()) return http::StatusToResponse(canceled.status());
               auto j = d.pipelines->GetJob(*id);
               if (!j.ok()) return http::StatusToResponse(j.status());
               return JsonResponse(200, JobJson(*j));
             }));
  router.Add("GET", "/api/v1/queue", Authed(d, [&d](Request& req) {
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
  router.Add("GET", "/api/v1/jobs/{id}/log", Authed(d, [&d](Request& req) {
               auto id = PathId(req);
               if (!id.ok()) return http::StatusToResponse(id.status());
               auto log = d.jobs->ReadLog(*id);
               if (!log.ok()) return http::StatusToResponse(log.status());
               Response r;
               r.content_type = "text/plain; charset=utf-8";
               r.body = std::move(*log);
               return r;
             }));
  router.Add("GET", "/api/v1/agents", Authed(d, [&d](Request&) {
               auto list = d.agents->List();
               if (!list.ok()) return http::StatusToResponse(list.status());
               json::array a;
               for (const auto& ag : *list) {
                 json::array labels;
                 for (const auto& l : ag.labels) labels.push_back(json::value(l));
                 a.push_back({{"id", ag.id},
                              {"name", ag.name},
                              {"state", ag.state},
                              {"version", ag.version},
                              {"labels", std::move(labels)},
                              {"cpu_slots", ag.cpu_slots},
                              {"memory_gb", ag.memory_gb},
                              {"last_seen_at", TimeJson(ag.last_seen_at)},
                              {"gpus", json::parse(ag.gpus_json)}});
               }
               return JsonResponse(200, {{"agents", std::move(a)}});
             }));
}

}  // namespace assay
