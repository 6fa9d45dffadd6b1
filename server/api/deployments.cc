// Environments and deployments (issue 12, docs/deployments.md):
//   PUT/GET/DELETE /api/v1/repos/{id}/environments/{name}, GET /api/v1/repos/{id}/environments
//   POST /api/v1/repos/{id}/environments/{name}/rollback   (a deployment of an earlier version)
//   POST/GET /api/v1/deployments, GET /api/v1/deployments/{id}, GET .../{id}/events
//   POST /api/v1/deployments/{id}/approve|pause|resume|promote|abort
// The handlers validate and store; the deployment controller (server/deploy/controller.h)
// carries a deployment out, so pause, resume, promote and abort answer 202 with the request
// recorded, and the deployment changes at the controller's next tick.

#include <functional>
#include <set>

#include <boost/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/clock.h"
#include "common/deploy/spec.h"
#include "common/pipeline/glob.h"
#include "common/registry/model_input.h"
#include "server/api/json.h"
#include "server/api/routes.h"
#include "server/deploy/haproxy.h"
#include "server/deploy/hooks.h"
#include "server/deploy/kubernetes.h"
#include "server/http/json_util.h"
#include "server/store/deployments.h"
#include "server/store/models.h"

namespace assay::api {
namespace {

using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
using http::Response;
namespace json = boost::json;

absl::Time Now(const ApiDeps& d) {
  return d.clock != nullptr ? d.clock->Now() : SystemClock::Get()->Now();
}

Response Error(const absl::Status& s) { return http::StatusToResponse(s); }

absl::Status Bad(const std::string& m) { return absl::InvalidArgumentError(m); }

std::string Who(const Request& req) {
  const auth::Principal& caller = Caller(req);
  return caller.kind == auth::PrincipalKind::kAdminToken ? "admin" : caller.name;
}

bool ValidEnvName(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-'));
    if (!ok) return false;
  }
  return true;
}

absl::StatusOr<std::string> EnvName(const Request& req) {
  auto it = req.path_params.find("name");
  std::string name = it == req.path_params.end() ? "" : it->second;
  if (!ValidEnvName(name)) {
    return Bad(absl::StrCat("environment name '", name.substr(0, 80),
                            "' must be 1 to 63 of a-z 0-9 _ - starting with a letter or digit"));
  }
  return name;
}

json::value Parsed(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  return ec ? json::value() : v;
}

json::object EnvironmentJson(const store::Environment& e) {
  json::array branches;
  for (const auto& b : e.branches) branches.push_back(json::value(b));
  json::object o{{"id", e.id},
                 {"repo_id", e.repo_id},
                 {"repo", e.repo},
                 {"name", e.name},
                 {"branches", std::move(branches)},
                 {"required_approvals", e.required_approvals},
                 {"target", Parsed(e.target_json)},
                 {"analysis", Parsed(e.analysis_json)},
                 {"alias", e.alias},
                 {"live", e.live_json ? Parsed(*e.live_json) : json::value()},
                 {"created_at", TimeJson(e.created_at)},
                 {"updated_at", TimeJson(e.updated_at)}};
  o["active_deployment"] = e.active_deployment ? json::value(*e.active_deployment) : json::value();
  return o;
}

json::value OptTime(const std::optional<absl::Time>& t) { return t ? TimeJson(*t) : json::value(); }

json::object DeploymentJson(const store::Deployment& d) {
  json::object o{{"id", d.id},
                 {"environment", d.environment},
                 {"environment_id", d.environment_id},
                 {"repo_id", d.repo_id},
                 {"repo", d.repo},
                 {"state", d.state},
                 {"servers", Parsed(d.servers_json)},
                 {"ref", d.ref},
                 {"strategy", Parsed(d.strategy_json)},
                 {"step", d.step},
                 {"weight", d.weight},
                 {"message", d.message},
                 {"created_by", d.created_by},
                 {"approvals", d.approvals},
                 {"created_at", TimeJson(d.created_at)},
                 {"started_at", OptTime(d.started_at)},
                 {"finished_at", OptTime(d.finished_at)},
                 {"watch_until", OptTime(d.watch_until)}};
  json::array approvers;
  for (const auto& a : d.approvers) approvers.push_back(json::value(a));
  o["approvers"] = std::move(approvers);
  if (!d.model.empty()) {
    o["model"] = d.model;
    o["version"] = *d.version;
  } else {
    o["image"] = d.image;
  }
  o["previous"] = d.previous_json ? Parsed(*d.previous_json) : json::value();
  o["requested"] = d.requested_json ? Parsed(*d.requested_json) : json::value();
  auto opt = [](const std::optional<int64_t>& v) { return v ? json::value(*v) : json::value(); };
  o["pipeline_id"] = opt(d.pipeline_id);
  o["job_id"] = opt(d.job_id);
  o["superseded_by"] = opt(d.superseded_by);
  o["rollback_of"] = opt(d.rollback_of);
  o["alias_moved"] = d.alias_moved;
  return o;
}

// {"kind": "haproxy", "runtime_api": "127.0.0.1:9999", "backend": "llm"}, or
// {"kind": "command", "command": ["switch-traffic", "{{environment}}"], "timeout": "30s"}: a
// program of the server's deploy hooks, which must be there now.
absl::StatusOr<json::object> ParseTarget(const json::value& v, const deploy::Hooks& hooks) {
  if (!v.is_object()) return Bad("field 'target' must be an object, e.g. {\"kind\": \"haproxy\"}");
  const json::object& t = v.as_object();
  const json::value* kind = t.if_contains("kind");
  if (kind == nullptr || !kind->is_string()) {
    return Bad("target.kind is required: haproxy, command or kubernetes");
  }
  if (kind->as_string() == "command") {
    if (absl::Status s = http::OnlyFields(t, {"kind", "command", "timeout"}); !s.ok()) {
      return Bad(absl::StrCat("target: ", s.message()));
    }
    const json::value* c = t.if_contains("command");
    if (c == nullptr) return Bad("target.command is required");
    auto command = deploy::ParseHookCommand(*c, "target.command");
    if (!command.ok()) return command.status();
    if (auto path = hooks.Resolve((*command)[0]); !path.ok()) {
      return Bad(absl::StrCat("target.command[0]: ", path.status().message()));
    }
    json::object out{{"kind", "command"}, {"command", *c}};
    if (const json::value* tv = t.if_contains("timeout")) {
      auto d = deploy::ParseDurationField(*tv, "target.timeout");
      if (!d.ok()) return d.status();
      if (*d > deploy::kMaxHookTimeout) return Bad("target.timeout: must be at most 60s");
      out["timeout"] = *tv;
    }
    return out;
  }
  if (kind->as_string() == "kubernetes") {
    auto spec = deploy::ParseKubernetesTarget(t);
    if (!spec.ok()) return spec.status();
    return deploy::KubernetesTargetJson(*spec);
  }
  if (kind->as_string() != "haproxy") {
    return Bad(absl::StrCat("target.kind '", std::string(kind->as_string()),
                            "' is not supported (expected haproxy, command or kubernetes)"));
  }
  if (absl::Status s = http::OnlyFields(t, {"kind", "runtime_api", "backend"}); !s.ok()) {
    return Bad(absl::StrCat("target: ", s.message()));
  }
  auto api = http::RequiredString(t, "runtime_api");
  if (!api.ok()) return Bad(absl::StrCat("target: ", api.status().message()));
  auto backend = http::RequiredString(t, "backend");
  if (!backend.ok()) return Bad(absl::StrCat("target: ", backend.status().message()));
  if (!deploy::ValidHaproxyName(*backend)) {
    return Bad("target.backend must be a haproxy backend name ([A-Za-z0-9_.:-]{1,64})");
  }
  if (api->size() > 300 || !deploy::ParseEndpoint(*api).ok()) {
    return Bad("target.runtime_api must be ADDRESS:PORT with an IP address, e.g. 127.0.0.1:9999");
  }
  return json::object{{"kind", "haproxy"}, {"runtime_api", *api}, {"backend", *backend}};
}

Response PutEnvironment(const ApiDeps& d, Request& req) {
  auto repo_id = PathId(req);
  if (!repo_id.ok()) return Error(repo_id.status());
  auto name = EnvName(req);
  if (!name.ok()) return Error(name.status());
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status s = http::OnlyFields(
          *body, {"branches", "required_approvals", "target", "analysis", "alias"});
      !s.ok()) {
    return Error(s);
  }
  store::EnvironmentPut e;
  e.repo_id = *repo_id;
  e.name = *name;
  e.now = Now(d);
  if (const json::value* b = body->if_contains("branches")) {
    if (!b->is_array() || b->as_array().size() > 50) {
      return Error(Bad("field 'branches' must be an array of at most 50 branch globs"));
    }
    for (const json::value& g : b->as_array()) {
      if (!g.is_string() || g.as_string().empty() || g.as_string().size() > 256) {
        return Error(Bad("field 'branches' must hold branch globs of 1 to 256 bytes"));
      }
      e.branches.emplace_back(g.as_string());
    }
  }
  auto approvals = http::OptionalInt(*body, "required_approvals");
  if (!approvals.ok()) return Error(approvals.status());
  if (*approvals) {
    if (**approvals < 0 || **approvals > 10) {
      return Error(Bad("field 'required_approvals' must be from 0 to 10"));
    }
    e.required_approvals = static_cast<int>(**approvals);
  }
  const json::value* target = body->if_contains("target");
  if (target == nullptr) return Error(Bad("field 'target' is required"));
  auto t = ParseTarget(*target, deploy::Hooks(d.deploy_hooks_dir));
  if (!t.ok()) return Error(t.status());
  e.target_json = json::serialize(*t);
  if (const json::value* a = body->if_contains("analysis")) {
    if (!a->is_object()) return Error(Bad("field 'analysis' must be an object"));
    json::object analysis = a->as_object();
    json::object out;
    if (const json::value* w = analysis.if_contains("watch")) {
      auto dd = deploy::ParseDurationField(*w, "analysis.watch", absl::ZeroDuration());
      if (!dd.ok()) return Error(dd.status());
      out["watch"] = *w;
      analysis.erase("watch");
    }
    if (!analysis.empty()) {
      auto spec = deploy::ParseAnalysis(analysis, "analysis");
      if (!spec.ok()) return Error(spec.status());
      out["metrics"] = analysis["metrics"];
    }
    e.analysis_json = json::serialize(out);
  }
  auto alias = http::OptionalString(*body, "alias");
  if (!alias.ok()) return Error(alias.status());
  if (*alias) e.alias = **alias;
  // The alias a promotion moves (the environment's name unless given) must be one the registry
  // takes, or a promotion would fail at its end.
  if (absl::Status s = registry::ValidateAlias(e.alias.empty() ? e.name : e.alias); !s.ok()) {
    return Error(absl::InvalidArgumentError(absl::StrCat(
        e.alias.empty() ? "the environment's name is its model alias unless 'alias' is given: "
                        : "field 'alias': ",
        s.message())));
  }
  for (const std::string& g : e.branches) {
    if (absl::Status s = ValidateGlob(g); !s.ok()) {
      return Error(absl::InvalidArgumentError(absl::StrCat("field 'branches': ", s.message())));
    }
  }
  auto saved = d.deployments->PutEnvironment(e);
  if (!saved.ok()) return Error(saved.status());
  return JsonResponse(200, EnvironmentJson(*saved));
}

Response GetEnvironment(const ApiDeps& d, Request& req) {
  auto repo_id = PathId(req);
  if (!repo_id.ok()) return Error(repo_id.status());
  auto name = EnvName(req);
  if (!name.ok()) return Error(name.status());
  auto e = d.deployments->GetEnvironment(*repo_id, *name);
  if (!e.ok()) return Error(e.status());
  return JsonResponse(200, EnvironmentJson(*e));
}

Response ListEnvironments(const ApiDeps& d, Request& req) {
  auto repo_id = PathId(req);
  if (!repo_id.ok()) return Error(repo_id.status());
  auto list = d.deployments->ListEnvironments(*repo_id);
  if (!list.ok()) return Error(list.status());
  json::array items;
  for (const auto& e : *list) items.push_back(EnvironmentJson(e));
  return JsonResponse(200, {{"environments", std::move(items)}});
}

Response DeleteEnvironment(const ApiDeps& d, Request& req) {
  auto repo_id = PathId(req);
  if (!repo_id.ok()) return Error(repo_id.status());
  auto name = EnvName(req);
  if (!name.ok()) return Error(name.status());
  if (absl::Status s = d.deployments->DeleteEnvironment(*repo_id, *name); !s.ok()) {
    return Error(s);
  }
  return JsonResponse(200, {{"deleted", *name}});
}

// servers: [{"name": "v2-a", "address": "127.0.0.1:8102"}] or ["127.0.0.1:8102"] (named
// "assay-<creation time>-<i>" then: Assay removes those it named when they leave).
absl::StatusOr<json::array> ParseServers(const json::value* v) {
  if (v == nullptr || !v->is_array() || v->as_array().empty()) {
    return Bad("field 'servers' must be a non-empty array of the new version's servers");
  }
  if (v->as_array().size() > static_cast<size_t>(deploy::kMaxServers)) {
    return Bad(absl::StrCat("field 'servers' has more than ", deploy::kMaxServers, " servers"));
  }
  json::array out;
  std::set<std::string> names;
  for (size_t i = 0; i < v->as_array().size(); ++i) {
    const json::value& s = v->as_array()[i];
    std::string name, address;
    if (s.is_string()) {
      address = std::string(s.as_string());
    } else if (s.is_object()) {
      const json::object& o = s.as_object();
      if (absl::Status st = http::OnlyFields(o, {"name", "address"}); !st.ok()) {
        return Bad(absl::StrCat("servers[", i, "]: ", st.message()));
      }
      auto a = http::RequiredString(o, "address");
      if (!a.ok()) return Bad(absl::StrCat("servers[", i, "]: ", a.status().message()));
      address = *a;
      auto n = http::OptionalString(o, "name");
      if (!n.ok()) return Bad(absl::StrCat("servers[", i, "]: ", n.status().message()));
      if (*n) name = **n;
    } else {
      return Bad(absl::StrCat("servers[", i, "] must be \"ADDRESS:PORT\" or {name, address}"));
    }
    const size_t colon = address.rfind(':');
    int port = 0;
    if (address.size() > 300 || colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 1 || port > 65535 ||
        address.find_first_of(" \t\r\n;#") != std::string::npos) {
      return Bad(
          absl::StrCat("servers[", i, "].address '", address.substr(0, 80), "' must be HOST:PORT"));
    }
    if (!name.empty() && (!deploy::ValidHaproxyName(name) || name.rfind("assay-", 0) == 0)) {
      return Bad(absl::StrCat("servers[", i, "].name '", name.substr(0, 80),
                              "' must be [A-Za-z0-9_.:-]{1,64} and not start with 'assay-'"));
    }
    if (!name.empty() && !names.insert(name).second) {
      return Bad(absl::StrCat("servers[", i, "].name '", name, "' is used twice"));
    }
    out.push_back(json::object{{"name", name}, {"address", address}});
  }
  return out;
}

// Names the unnamed servers after the deployment, once its id is known: the store writes the
// JSON as given, so the names are fixed before insert from a placeholder id.
std::string NameServers(json::array servers, const std::string& prefix) {
  for (size_t i = 0; i < servers.size(); ++i) {
    json::object& o = servers[i].as_object();
    if (o["name"].as_string().empty()) o["name"] = absl::StrCat(prefix, i);
  }
  return json::serialize(servers);
}

Response CreateDeploymentFrom(const ApiDeps& d, Request& req, json::object& body,
                              std::optional<int64_t> rollback_of = std::nullopt) {
  if (absl::Status s = http::OnlyFields(body, {"repo_id", "environment", "model", "version",
                                               "image", "servers", "ref", "strategy", "supersede"});
      !s.ok()) {
    return Error(s);
  }
  auto repo_id = http::RequiredInt(body, "repo_id");
  if (!repo_id.ok()) return Error(repo_id.status());
  auto env = http::RequiredString(body, "environment");
  if (!env.ok()) return Error(env.status());
  if (!ValidEnvName(*env)) return Error(Bad("field 'environment' is not an environment name"));
  store::NewDeployment n;
  n.repo_id = *repo_id;
  n.environment = *env;
  n.created_by = Who(req);
  n.now = Now(d);
  n.rollback_of = rollback_of;
  auto model = http::OptionalString(body, "model");
  if (!model.ok()) return Error(model.status());
  auto image = http::OptionalString(body, "image");
  if (!image.ok()) return Error(image.status());
  if (model->has_value() == image->has_value()) {
    return Error(Bad("give exactly one of 'model' (with 'version') or 'image'"));
  }
  if (*model) {
    if (absl::Status s = registry::ValidateModelName(**model); !s.ok()) return Error(s);
    const json::value* v = body.if_contains("version");
    if (v == nullptr) return Error(Bad("field 'version' is required with 'model'"));
    registry::VersionRef ref;
    if (v->is_int64() && v->as_int64() >= 1 && v->as_int64() <= 1 << 30) {
      ref.version = static_cast<int>(v->as_int64());
    } else if (v->is_string()) {
      auto parsed = registry::ParseVersionRef(std::string(v->as_string()));
      if (!parsed.ok()) return Error(parsed.status());
      ref = *parsed;
    } else {
      return Error(Bad("field 'version' must be a version number or an alias"));
    }
    auto version = d.models->GetVersion(**model, ref);
    if (!version.ok()) return Error(version.status());
    if (version->status != "ready") {
      return Error(absl::FailedPreconditionError(
          absl::StrCat("version ", version->version, " of '", **model, "' is ", version->status)));
    }
    n.model = **model;
    n.version = version->version;
  } else {
    if (!deploy::ImageByDigest(**image)) {
      return Error(Bad("field 'image' must be an image by digest: NAME@sha256:<64 hex>"));
    }
    if (body.contains("version")) return Error(Bad("field 'version' goes with 'model' only"));
    n.image = **image;
  }
  // A kubernetes environment runs the new version itself, as a colour of its own.
  std::optional<deploy::KubernetesSpec> kube;
  if (auto e = d.deployments->GetEnvironment(n.repo_id, n.environment); e.ok()) {
    json::value t = Parsed(e->target_json);
    const json::value* k = t.is_object() ? t.as_object().if_contains("kind") : nullptr;
    if (k != nullptr && k->is_string() && k->as_string() == "kubernetes") {
      auto spec = deploy::ParseKubernetesTarget(t.as_object());
      if (!spec.ok()) return Error(spec.status());
      kube = *std::move(spec);
    }
  }
  absl::StatusOr<json::array> servers = json::array();
  if (!kube) {
    servers = ParseServers(body.if_contains("servers"));
  } else if (body.contains("servers") && !rollback_of) {
    servers = Bad(absl::StrCat("environment '", n.environment,
                               "' is on kubernetes: its target runs the new version itself; "
                               "give no 'servers'"));
  } else if (n.image.empty() && kube->image.empty()) {
    servers = Bad(absl::StrCat("environment '", n.environment,
                               "' has no target.image, the model server image to run model "
                               "version ",
                               *n.version, " with"));
  }
  if (!servers.ok()) return Error(servers.status());
  auto ref = http::OptionalString(body, "ref");
  if (!ref.ok()) return Error(ref.status());
  if (*ref) {
    if ((*ref)->size() > 255) return Error(Bad("field 'ref' is longer than 255 bytes"));
    n.ref = **ref;
  }
  const json::value* strategy = body.if_contains("strategy");
  if (strategy == nullptr) return Error(Bad("field 'strategy' is required"));
  auto parsed = deploy::ParseStrategy(*strategy, "strategy");
  if (!parsed.ok()) return Error(parsed.status());
  if (kube) {
    if (absl::Status s = deploy::CheckKubernetesStrategy(*kube, *parsed); !s.ok()) return Error(s);
  }
  n.strategy_json = json::serialize(*strategy);
  auto supersede = http::OptionalBool(body, "supersede");
  if (!supersede.ok()) return Error(supersede.status());
  n.supersede = supersede->value_or(false);
  // Unnamed servers are named after the creation time (the id is not known yet), so that one
  // deployment's servers never take another's names.
  const int64_t stamp = absl::ToUnixMicros(n.now) % 100000000;
  if (kube) {
    const std::string colour = absl::StrCat(kube->app, "-", stamp);
    n.servers_json = json::serialize(json::array{
        json::object{{"name", colour}, {"address", absl::StrCat(kube->ns, "/", colour)}}});
  } else {
    n.servers_json = NameServers(*servers, absl::StrCat("assay-", stamp, "-"));
  }
  auto created = d.deployments->Create(n);
  if (!created.ok()) return Error(created.status());
  if (d.wake_deployments) d.wake_deployments();
  return JsonResponse(201, DeploymentJson(*created));
}

Response CreateDeployment(const ApiDeps& d, Request& req) {
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  return CreateDeploymentFrom(d, req, *body);
}

Response Rollback(const ApiDeps& d, Request& req) {
  auto repo_id = PathId(req);
  if (!repo_id.ok()) return Error(repo_id.status());
  auto name = EnvName(req);
  if (!name.ok()) return Error(name.status());
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status s = http::OnlyFields(*body, {"to", "supersede"}); !s.ok()) return Error(s);
  auto to = http::RequiredInt(*body, "to");
  if (!to.ok()) return Error(to.status());
  auto earlier = d.deployments->Get(*to);
  if (!earlier.ok()) return Error(earlier.status());
  if (earlier->repo_id != *repo_id || earlier->environment != *name) {
    return Error(absl::NotFoundError(
        absl::StrCat("deployment ", *to, " is not a deployment of environment '", *name, "'")));
  }
  if (earlier->state != "succeeded" && earlier->state != "watching") {
    return Error(absl::FailedPreconditionError(
        absl::StrCat("deployment ", *to, " is ", earlier->state,
                     "; only a promoted deployment is a good version to go back to")));
  }
  // The earlier servers by address: names Assay gave are its own to give again.
  json::array servers;
  json::value earlier_servers = Parsed(earlier->servers_json);
  if (earlier_servers.is_array()) {
    for (const json::value& s : earlier_servers.as_array()) {
      if (s.is_object() && s.as_object().contains("address")) {
        servers.push_back(s.as_object().at("address"));
      }
    }
  }
  json::object b{
      {"repo_id", *repo_id},
      {"environment", *name},
      {"servers", std::move(servers)},
      {"ref", earlier->ref},
      {"strategy",
       json::object{
           {"canary", json::object{{"steps", json::array{json::object{{"weight", 100}}}}}}}}};
  if (!earlier->model.empty()) {
    b["model"] = earlier->model;
    b["version"] = *earlier->version;
  } else {
    b["image"] = earlier->image;
  }
  if (const json::value* s = body->if_contains("supersede")) b["supersede"] = *s;
  // rollback_of names the deployment whose version it brings back.
  return CreateDeploymentFrom(d, req, b, *to);
}

Response GetDeployment(const ApiDeps& d, Request& req) {
  auto id = PathId(req);
  if (!id.ok()) return Error(id.status());
  auto dep = d.deployments->Get(*id);
  if (!dep.ok()) return Error(dep.status());
  return JsonResponse(200, DeploymentJson(*dep));
}

Response ListDeployments(const ApiDeps& d, Request& req) {
  store::DeploymentFilter f;
  if (auto r = req.Query("repo")) {
    int64_t id = 0;
    if (!absl::SimpleAtoi(*r, &id) || id < 1) {
      return ErrorResponse(400, "invalid_argument",
                           "query parameter 'repo' must be a repository id");
    }
    f.repo_id = id;
  }
  if (auto e = req.Query("environment")) {
    if (!ValidEnvName(*e) || !f.repo_id) {
      return ErrorResponse(
          400, "invalid_argument",
          "query parameter 'environment' must be an environment name, with 'repo'");
    }
    f.environment = *e;
  }
  if (auto s = req.Query("state")) {
    static const std::set<std::string> kStates = {"pending_approval", "progressing", "paused",
                                                  "watching",         "succeeded",   "rolled_back",
                                                  "failed",           "aborted",     "superseded"};
    if (!kStates.contains(*s)) {
      return ErrorResponse(400, "invalid_argument",
                           "query parameter 'state' is not a deployment state");
    }
    f.states.push_back(*s);
  }
  if (auto l = req.Query("limit")) {
    int64_t limit = 0;
    if (!absl::SimpleAtoi(*l, &limit) || limit < 1 || limit > 1000) {
      return ErrorResponse(400, "invalid_argument",
                           "query parameter 'limit' must be between 1 and 1000");
    }
    f.limit = static_cast<int>(limit);
  }
  if (auto c = req.Query("cursor")) {
    int64_t before = 0;
    if (!absl::SimpleAtoi(*c, &before) || before < 1) {
      return ErrorResponse(400, "invalid_argument",
                           "query parameter 'cursor' must be a positive integer");
    }
    f.before = before;
  }
  auto list = d.deployments->List(f);
  if (!list.ok()) return Error(list.status());
  json::array items;
  for (const auto& dep : *list) items.push_back(DeploymentJson(dep));
  json::object body{{"deployments", std::move(items)}};
  body["next_cursor"] = static_cast<int>(list->size()) == f.limit && !list->empty()
                            ? json::value(std::to_string(list->back().id))
                            : json::value();
  return JsonResponse(200, body);
}

Response Events(const ApiDeps& d, Request& req) {
  auto id = PathId(req);
  if (!id.ok()) return Error(id.status());
  int64_t after = 0;
  if (auto a = req.Query("after")) {
    if (!absl::SimpleAtoi(*a, &after) || after < 0) {
      return ErrorResponse(400, "invalid_argument", "query parameter 'after' must be an event id");
    }
  }
  int64_t limit = 500;
  if (auto l = req.Query("limit")) {
    if (!absl::SimpleAtoi(*l, &limit) || limit < 1 || limit > 1000) {
      return ErrorResponse(400, "invalid_argument",
                           "query parameter 'limit' must be between 1 and 1000");
    }
  }
  auto events = d.deployments->Events(*id, after, static_cast<int>(limit));
  if (!events.ok()) return Error(events.status());
  json::array items;
  for (const auto& e : *events) {
    items.push_back(json::object{{"id", e.id},
                                 {"at", TimeJson(e.at)},
                                 {"step", e.step},
                                 {"kind", e.kind},
                                 {"message", e.message},
                                 {"data", e.data_json ? Parsed(*e.data_json) : json::value()}});
  }
  return JsonResponse(200, {{"deployment_id", *id}, {"events", std::move(items)}});
}

Response Approve(const ApiDeps& d, Request& req) {
  auto id = PathId(req);
  if (!id.ok()) return Error(id.status());
  auto dep = d.deployments->Approve(*id, Who(req), Now(d));
  if (!dep.ok()) return Error(dep.status());
  if (d.wake_deployments) d.wake_deployments();
  return JsonResponse(200, DeploymentJson(*dep));
}

// POST /deployments/{id}/pause|resume|promote|abort: {"reason", "full" (promote only)}, both
// optional; the request is recorded for the controller (202).
Response Ask(const ApiDeps& d, Request& req, const std::string& action) {
  auto id = PathId(req);
  if (!id.ok()) return Error(id.status());
  std::string reason;
  bool full = false;
  if (!req.body.empty()) {
    Response err;
    auto body = http::ParseJsonBody(req, &err);
    if (!body) return err;
    if (absl::Status s = http::OnlyFields(*body, {"reason", "full"}); !s.ok()) return Error(s);
    auto r = http::OptionalString(*body, "reason");
    if (!r.ok()) return Error(r.status());
    if (*r) {
      if ((*r)->size() > 1000) return Error(Bad("field 'reason' is longer than 1000 bytes"));
      reason = **r;
    }
    auto f = http::OptionalBool(*body, "full");
    if (!f.ok()) return Error(f.status());
    if (*f) {
      if (action != "promote") return Error(Bad("field 'full' goes with promote only"));
      full = **f;
    }
  }
  auto got = d.deployments->Request(*id, action, full, Who(req), reason, Now(d));
  if (!got.ok()) return Error(got.status());
  if (d.wake_deployments) d.wake_deployments();
  return JsonResponse(202, DeploymentJson(*got));
}

}  // namespace

void RegisterDeploymentRoutes(http::Router& router, const ApiDeps& d) {
  auto with = [&d](auth::Need need, std::function<Response(const ApiDeps&, Request&)> h) {
    return Authed(d, need, [&d, h = std::move(h)](Request& req) -> Response {
      if (d.deployments == nullptr || d.models == nullptr) {
        return ErrorResponse(503, "unavailable", "deployments are not configured on this server");
      }
      return h(d, req);
    });
  };
  const std::string env = "/api/v1/repos/{id}/environments";
  router.Add("GET", env, with(auth::Need::Read(), ListEnvironments));
  router.Add("GET", env + "/{name}", with(auth::Need::Read(), GetEnvironment));
  router.Add("PUT", env + "/{name}", with(auth::Need::Maintainer(), PutEnvironment));
  router.Add("DELETE", env + "/{name}", with(auth::Need::Maintainer(), DeleteEnvironment));
  router.Add("POST", env + "/{name}/rollback", with(auth::Need::Maintainer(), Rollback));
  const std::string dep = "/api/v1/deployments";
  router.Add("POST", dep, with(auth::Need::Maintainer(), CreateDeployment));
  router.Add("GET", dep, with(auth::Need::Read(), ListDeployments));
  router.Add("GET", dep + "/{id}", with(auth::Need::Read(), GetDeployment));
  router.Add("GET", dep + "/{id}/events", with(auth::Need::Read(), Events));
  router.Add("POST", dep + "/{id}/approve", with(auth::Need::Maintainer(), Approve));
  for (const std::string action : {"pause", "resume", "promote", "abort"}) {
    router.Add("POST", dep + "/{id}/" + action,
               with(auth::Need::Maintainer(),
                    [action](const ApiDeps& d, Request& req) { return Ask(d, req, action); }));
  }
}

}  // namespace assay::api
