// The model registry's REST API (issue 10, docs/models.md), under /api/v1/models: models,
// versions, tags, aliases (audited), and the files of a version by number or alias. Handlers
// only translate; the rules live in common/registry/model_input.h and store/models.h.

#include <boost/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/artifacts/path.h"
#include "common/registry/model_input.h"
#include "server/api/json.h"
#include "server/api/routes.h"
#include "server/http/json_util.h"

namespace assay::api {
namespace {

using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
using http::Response;
using registry::VersionRef;
namespace json = boost::json;

constexpr int kDefaultLimit = 50;
constexpr int kMaxLimit = 1000;

Response Unavailable() {
  return ErrorResponse(503, "unavailable", "the model registry is not enabled on this server");
}

absl::Time Now(const ApiDeps& d) {
  return d.clock != nullptr ? d.clock->Now() : SystemClock::Get()->Now();
}

Response Error(const absl::Status& s) { return http::StatusToResponse(s); }

// JSON a stored column holds; kDataLoss when it does not parse (never expected).
absl::StatusOr<json::value> Stored(const std::string& text, std::string_view what) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return absl::DataLossError(absl::StrCat("stored ", std::string(what), " is not JSON"));
  return v;
}

json::object TagsJson(const std::map<std::string, std::string>& tags) {
  json::object o;
  for (const auto& [k, v] : tags) o[k] = v;
  return o;
}

json::object ModelJson(const store::RegisteredModel& m) {
  json::object aliases;
  for (const auto& [a, v] : m.aliases) aliases[a] = v;
  json::value latest = nullptr;
  if (m.latest_version > 0) latest = m.latest_version;
  return {{"name", m.name},
          {"description", m.description},
          {"tags", TagsJson(m.tags)},
          {"aliases", std::move(aliases)},
          {"latest_version", std::move(latest)},
          {"versions", m.versions},
          {"created_at", TimeJson(m.created_at)},
          {"updated_at", TimeJson(m.updated_at)}};
}

template <typename T>
json::value OptJson(const std::optional<T>& v) {
  if (!v) return nullptr;
  return json::value(*v);
}

absl::StatusOr<json::object> VersionJson(const store::ModelVersion& v) {
  auto params = Stored(v.params_json, "params");
  if (!params.ok()) return params.status();
  auto metrics = Stored(v.metrics_json, "metrics");
  if (!metrics.ok()) return metrics.status();
  auto datasets = Stored(v.datasets_json, "datasets");
  if (!datasets.ok()) return datasets.status();
  json::array aliases;
  for (const auto& a : v.aliases) aliases.push_back(json::value(a));
  json::object source{{"repo_id", OptJson(v.repo_id)}, {"repo", v.repo},
                      {"commit", v.commit_sha},        {"pipeline_id", OptJson(v.pipeline_id)},
                      {"job_id", OptJson(v.job_id)},   {"job", v.job_name},
                      {"path", v.source_path}};
  return json::object{{"model", v.model},
                      {"version", v.version},
                      {"status", v.status},
                      {"description", v.description},
                      {"source", std::move(source)},
                      {"files", v.files},
                      {"bytes", v.bytes},
                      {"params", *std::move(params)},
                      {"metrics", *std::move(metrics)},
                      {"datasets", *std::move(datasets)},
                      {"parent_version", OptJson(v.parent_version)},
                      {"tags", TagsJson(v.tags)},
                      {"aliases", std::move(aliases)},
                      {"created_at", TimeJson(v.created_at)}};
}

Response VersionResponse(int status, const absl::StatusOr<store::ModelVersion>& v) {
  if (!v.ok()) return Error(v.status());
  auto o = VersionJson(*v);
  if (!o.ok()) return Error(o.status());
  return JsonResponse(status, *o);
}

// ?limit=N (1 to 1000).
absl::StatusOr<int> Limit(const Request& req) {
  int limit = kDefaultLimit;
  if (auto l = req.Query("limit")) {
    if (!absl::SimpleAtoi(*l, &limit) || limit < 1 || limit > kMaxLimit) {
      return absl::InvalidArgumentError("query parameter 'limit' must be between 1 and 1000");
    }
  }
  return limit;
}

// Every ?tag=KEY=VALUE of the query.
absl::StatusOr<std::map<std::string, std::string>> TagFilter(const Request& req) {
  std::map<std::string, std::string> tags;
  for (const auto& [k, v] : req.query) {
    if (k != "tag") continue;
    const size_t eq = v.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter 'tag' must be KEY=VALUE, got '", v, "'"));
    }
    std::string key = v.substr(0, eq);
    if (absl::Status s = registry::ValidateTagKey(key); !s.ok()) return s;
    tags[key] = v.substr(eq + 1);
  }
  if (tags.size() > registry::kMaxTags) {
    return absl::InvalidArgumentError(
        absl::StrCat("at most ", registry::kMaxTags, " tag filters are allowed"));
  }
  return tags;
}

// {name}, checked.
absl::StatusOr<std::string> Name(const Request& req) {
  auto it = req.path_params.find("name");
  std::string name = it == req.path_params.end() ? "" : it->second;
  if (absl::Status s = registry::ValidateModelName(name); !s.ok()) return s;
  return name;
}

// {v}: a version number or an alias; {alias}: an alias.
absl::StatusOr<VersionRef> Ref(const Request& req) {
  auto it = req.path_params.find("v");
  if (it != req.path_params.end()) return registry::ParseVersionRef(it->second);
  it = req.path_params.find("alias");
  std::string alias = it == req.path_params.end() ? "" : it->second;
  if (absl::Status s = registry::ValidateAlias(alias); !s.ok()) return s;
  VersionRef ref;
  ref.alias = alias;
  return ref;
}

// A version given in a body: an integer or a string (a number or an alias).
absl::StatusOr<std::optional<VersionRef>> BodyRef(const json::object& body,
                                                  std::string_view field) {
  const json::value* v = body.if_contains(field);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (v->is_int64() || v->is_uint64()) {
    const int64_t n = v->is_int64() ? v->as_int64() : -1;
    if (n < 1 || n > 2147483647) {
      return absl::InvalidArgumentError(
          absl::StrCat("field '", std::string(field), "' must be a version from 1 to 2147483647"));
    }
    VersionRef ref;
    ref.version = static_cast<int>(n);
    return ref;
  }
  if (v->is_string()) {
    auto ref = registry::ParseVersionRef(std::string(v->as_string()));
    if (!ref.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("field '", std::string(field), "': ", ref.status().message()));
    }
    return *ref;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("field '", std::string(field), "' must be a version number or an alias"));
}

absl::StatusOr<std::map<std::string, std::string>> BodyTags(const json::object& body) {
  std::map<std::string, std::string> tags;
  const json::value* v = body.if_contains("tags");
  if (v == nullptr || v->is_null()) return tags;
  if (!v->is_object()) {
    return absl::InvalidArgumentError("field 'tags' must be an object of strings");
  }
  if (v->as_object().size() > registry::kMaxTags) {
    return absl::InvalidArgumentError(absl::StrCat("field 'tags' has ", v->as_object().size(),
                                                   " entries; at most ", registry::kMaxTags));
  }
  for (const auto& [k, val] : v->as_object()) {
    if (!val.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tag '", std::string(k), "' must be a string"));
    }
    tags[std::string(k)] = std::string(val.as_string());
  }
  if (absl::Status s = registry::ValidateTags(tags); !s.ok()) return s;
  return tags;
}

absl::StatusOr<std::string> BodyText(const json::object& body, std::string_view field,
                                     size_t max_bytes) {
  auto s = http::OptionalString(body, field);
  if (!s.ok()) return s.status();
  std::string text = s->value_or("");
  if (absl::Status v =
          registry::ValidateText(absl::StrCat("field '", std::string(field), "'"), text, max_bytes);
      !v.ok()) {
    return v;
  }
  return text;
}

// The audit's principal: the caller (a username, or "admin" for the admin token), from the
// client's address (its port left out).
store::AliasChange Who(const ApiDeps& d, const Request& req) {
  store::AliasChange who;
  const auth::Principal& caller = Caller(req);
  who.principal = caller.kind == auth::PrincipalKind::kAdminToken ? "admin" : caller.name;
  const std::string& addr = req.remote_addr;
  if (!addr.empty() && addr[0] == '[') {
    who.client_addr = addr.substr(1, addr.find(']') - 1);  // "[::1]:port" → "::1"
  } else {
    who.client_addr = addr.substr(0, addr.rfind(':'));  // "ip:port" → "ip"
  }
  who.now = Now(d);
  return who;
}

// Reads "reason" and "actor" from `body` into `who`.
absl::Status ReadWho(const json::object& body, store::AliasChange* who) {
  auto reason = BodyText(body, "reason", registry::kMaxReasonBytes);
  if (!reason.ok()) return reason.status();
  who->reason = *reason;
  auto actor = http::OptionalString(body, "actor");
  if (!actor.ok()) return actor.status();
  who->actor = *actor;
  return absl::OkStatus();
}

Response CreateModel(const ApiDeps& d, Request& req) {
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status s = http::OnlyFields(*body, {"name", "description", "tags"}); !s.ok()) {
    return Error(s);
  }
  auto name = http::RequiredString(*body, "name");
  if (!name.ok()) return Error(name.status());
  auto description = BodyText(*body, "description", registry::kMaxDescriptionBytes);
  if (!description.ok()) return Error(description.status());
  auto tags = BodyTags(*body);
  if (!tags.ok()) return Error(tags.status());
  auto m = d.models->CreateModel(*name, *description, *tags, Now(d));
  if (!m.ok()) return Error(m.status());
  return JsonResponse(201, ModelJson(*m));
}

Response ListModels(const ApiDeps& d, Request& req) {
  store::ModelFilter f;
  auto limit = Limit(req);
  if (!limit.ok()) return Error(limit.status());
  f.limit = *limit;
  auto tags = TagFilter(req);
  if (!tags.ok()) return Error(tags.status());
  f.tags = *tags;
  f.name_glob = req.Query("name").value_or("");
  f.after = req.Query("after").value_or("");
  if (f.name_glob.size() > 2 * registry::kMaxNameBytes ||
      f.after.size() > registry::kMaxNameBytes) {
    return ErrorResponse(400, "invalid_argument", "query parameter 'name' or 'after' is too long");
  }
  auto list = d.models->ListModels(f);
  if (!list.ok()) return Error(list.status());
  json::array a;
  for (const auto& m : *list) a.push_back(ModelJson(m));
  json::value next = nullptr;
  if (static_cast<int>(list->size()) == f.limit) next = json::value(list->back().name);
  return JsonResponse(200, {{"models", std::move(a)}, {"next_after", std::move(next)}});
}

Response RegisterVersion(const ApiDeps& d, Request& req) {
  auto name = Name(req);
  if (!name.ok()) return Error(name.status());
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status s = http::OnlyFields(*body, {"job_id", "path", "params", "metrics", "datasets",
                                                "parent_version", "tags", "description"});
      !s.ok()) {
    return Error(s);
  }
  store::RegisterVersionRequest r;
  r.model = *name;
  auto job = http::RequiredInt(*body, "job_id");
  if (!job.ok()) return Error(job.status());
  if (*job <= 0) return ErrorResponse(400, "invalid_argument", "field 'job_id' must be positive");
  r.job_id = *job;
  auto path = http::OptionalString(*body, "path");
  if (!path.ok()) return Error(path.status());
  auto normalized = registry::NormalizeModelPath(path->value_or("model/"));
  if (!normalized.ok()) return Error(normalized.status());
  r.path = *normalized;
  if (const json::value* p = body->if_contains("params"); p != nullptr && !p->is_null()) {
    auto params = registry::CanonicalParams(*p);
    if (!params.ok()) return Error(params.status());
    r.params_json = *params;
  }
  if (const json::value* m = body->if_contains("metrics"); m != nullptr && !m->is_null()) {
    auto metrics = registry::CanonicalMetrics(*m);
    if (!metrics.ok()) return Error(metrics.status());
    r.metrics_json = *metrics;
  }
  if (const json::value* ds = body->if_contains("datasets"); ds != nullptr && !ds->is_null()) {
    auto datasets = registry::ParseDatasets(*ds);
    if (!datasets.ok()) return Error(datasets.status());
    r.datasets = *datasets;
  }
  auto parent = BodyRef(*body, "parent_version");
  if (!parent.ok()) return Error(parent.status());
  r.parent = *parent;
  auto tags = BodyTags(*body);
  if (!tags.ok()) return Error(tags.status());
  r.tags = *tags;
  auto description = BodyText(*body, "description", registry::kMaxDescriptionBytes);
  if (!description.ok()) return Error(description.status());
  r.description = *description;
  r.now = Now(d);
  auto v = d.models->RegisterVersion(r);
  if (!v.ok()) return Error(v.status());
  return VersionResponse(v->replayed ? 200 : 201, v);
}

Response ListVersions(const ApiDeps& d, Request& req) {
  auto name = Name(req);
  if (!name.ok()) return Error(name.status());
  store::VersionFilter f;
  auto limit = Limit(req);
  if (!limit.ok()) return Error(limit.status());
  f.limit = *limit;
  auto tags = TagFilter(req);
  if (!tags.ok()) return Error(tags.status());
  f.tags = *tags;
  if (auto alias = req.Query("alias")) {
    if (absl::Status s = registry::ValidateAlias(*alias); !s.ok()) return Error(s);
    f.alias = *alias;
  }
  if (auto before = req.Query("before")) {
    int b = 0;
    if (!absl::SimpleAtoi(*before, &b) || b < 1) {
      return ErrorResponse(400, "invalid_argument",
                           "query parameter 'before' must be a positive version number");
    }
    f.before = b;
  }
  auto list = d.models->ListVersions(*name, f);
  if (!list.ok()) return Error(list.status());
  json::array a;
  for (const auto& v : *list) {
    auto o = VersionJson(v);
    if (!o.ok()) return Error(o.status());
    a.push_back(*std::move(o));
  }
  json::value next = nullptr;
  if (static_cast<int>(list->size()) == f.limit) next = list->back().version;
  return JsonResponse(200, {{"versions", std::move(a)}, {"next_before", std::move(next)}});
}

Response UpdateVersion(const ApiDeps& d, Request& req) {
  auto name = Name(req);
  if (!name.ok()) return Error(name.status());
  auto ref = Ref(req);
  if (!ref.ok()) return Error(ref.status());
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status s = http::OnlyFields(*body, {"description", "status"}); !s.ok()) return Error(s);
  auto description = http::OptionalString(*body, "description");
  if (!description.ok()) return Error(description.status());
  auto status = http::OptionalString(*body, "status");
  if (!status.ok()) return Error(status.status());
  return VersionResponse(200, d.models->UpdateVersion(*name, *ref, *description, *status));
}

// PUT .../tags/{key} {"value": "..."} on a model (no {v}) or a version.
Response SetTag(const ApiDeps& d, Request& req, bool version) {
  auto name = Name(req);
  if (!name.ok()) return Error(name.status());
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status s = http::OnlyFields(*body, {"value"}); !s.ok()) return Error(s);
  auto value = http::RequiredString(*body, "value");
  if (!value.ok()) return Error(value.status());
  const std::string key = req.path_params["key"];
  absl::Status s;
  if (version) {
    auto ref = Ref(req);
    if (!ref.ok()) return Error(ref.status());
    s = d.models->SetVersionTag(*name, *ref, key, *value);
  } else {
    s = d.models->SetModelTag(*name, key, *value, Now(d));
  }
  if (!s.ok()) return Error(s);
  return JsonResponse(200, {{"key", key}, {"value", *value}});
}

Response DeleteTag(const ApiDeps& d, Request& req, bool version) {
  auto name = Name(req);
  if (!name.ok()) return Error(name.status());
  const std::string key = req.path_params["key"];
  absl::Status s;
  if (version) {
    auto ref = Ref(req);
    if (!ref.ok()) return Error(ref.status());
    s = d.models->DeleteVersionTag(*name, *ref, key);
  } else {
    s = d.models->DeleteModelTag(*name, key);
  }
  if (!s.ok()) return Error(s);
  return JsonResponse(200, {{"deleted", key}});
}

Response SetAlias(const ApiDeps& d, Request& req) {
  auto name = Name(req);
  if (!name.ok()) return Error(name.status());
  const std::string alias = req.path_params["alias"];
  if (absl::Status s = registry::ValidateAlias(alias); !s.ok()) return Error(s);
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status s = http::OnlyFields(*body, {"version", "reason", "actor"}); !s.ok()) {
    return Error(s);
  }
  auto to = BodyRef(*body, "version");
  if (!to.ok()) return Error(to.status());
  if (!to->has_value()) {
    return ErrorResponse(400, "invalid_argument",
                         "field 'version' is required: a version number or an alias");
  }
  store::AliasChange who = Who(d, req);
  if (absl::Status s = ReadWho(*body, &who); !s.ok()) return Error(s);
  auto r = d.models->SetAlias(*name, alias, **to, who);
  if (!r.ok()) return Error(r.status());
  return JsonResponse(200, {{"model", *name},
                            {"alias", r->alias},
                            {"version", r->version},
                            {"previous_version", OptJson(r->previous)},
                            {"changed", r->changed}});
}

// DELETE .../aliases/{alias}: "reason" and "actor" from a JSON body, else from the query.
Response DeleteAlias(const ApiDeps& d, Request& req) {
  auto name = Name(req);
  if (!name.ok()) return Error(name.status());
  const std::string alias = req.path_params["alias"];
  store::AliasChange who = Who(d, req);
  if (!req.body.empty()) {
    Response err;
    auto body = http::ParseJsonBody(req, &err);
    if (!body) return err;
    if (absl::Status s = http::OnlyFields(*body, {"reason", "actor"}); !s.ok()) return Error(s);
    if (absl::Status s = ReadWho(*body, &who); !s.ok()) return Error(s);
  } else {
    who.reason = req.Query("reason").value_or("");
    who.actor = req.Query("actor");
  }
  auto was = d.models->DeleteAlias(*name, alias, who);
  if (!was.ok()) return Error(was.status());
  return JsonResponse(200, {{"model", *name}, {"alias", alias}, {"previous_version", *was}});
}

Response AliasHistory(const ApiDeps& d, Request& req) {
  auto name = Name(req);
  if (!name.ok()) return Error(name.status());
  const std::string alias = req.path_params["alias"];
  auto limit = Limit(req);
  if (!limit.ok()) return Error(limit.status());
  auto events = d.models->AliasHistory(*name, alias, *limit);
  if (!events.ok()) return Error(events.status());
  json::array a;
  for (const auto& e : *events) {
    a.push_back(json::object{{"id", e.id},
                             {"alias", e.alias},
                             {"from_version", OptJson(e.from_version)},
                             {"to_version", OptJson(e.to_version)},
                             {"principal", e.principal},
                             {"client_addr", e.client_addr},
                             {"actor", OptJson(e.actor)},
                             {"reason", e.reason},
                             {"at", TimeJson(e.at)}});
  }
  return JsonResponse(200, {{"model", *name}, {"alias", alias}, {"history", std::move(a)}});
}

Response ListFiles(const ApiDeps& d, Request& req) {
  auto name = Name(req);
  if (!name.ok()) return Error(name.status());
  auto ref = Ref(req);
  if (!ref.ok()) return Error(ref.status());
  auto v = d.models->GetVersion(*name, *ref);
  if (!v.ok()) return Error(v.status());
  VersionRef number;
  number.version = v->version;  // the version the alias named, not a later one
  auto files = d.models->Files(*name, number);
  if (!files.ok()) return Error(files.status());
  json::array list;
  for (const auto& f : *files) {
    list.push_back(json::object{{"path", f.path},
                                {"size", f.size},
                                {"mode", f.mode == 0755 ? "0755" : "0644"},
                                {"sha256", f.sha256}});
  }
  return JsonResponse(
      200,
      {{"model", *name}, {"version", v->version}, {"files", std::move(list)}, {"bytes", v->bytes}});
}

Response DownloadFile(const ApiDeps& d, Request& req) {
  if (d.artifacts == nullptr || d.blobs == nullptr) return Unavailable();
  auto name = Name(req);
  if (!name.ok()) return Error(name.status());
  auto ref = Ref(req);
  if (!ref.ok()) return Error(ref.status());
  const std::string path = req.path_params["path"];
  if (absl::Status s = artifacts::ValidateArtifactPath(path); !s.ok()) {
    return ErrorResponse(400, "invalid_argument", std::string(s.message()));
  }
  auto file = d.models->File(*name, *ref, path);
  if (!file.ok()) return Error(file.status());
  if (!file->has_value()) {
    return ErrorResponse(
        404, "not_found",
        absl::StrCat("version ", ref->text(), " of '", *name, "' has no file '", path, "'"));
  }
  return ServeArtifactFile(d, req, **file);
}

// Wraps a handler: 503 without a registry, then the admin token.
http::Handler Models(const ApiDeps& d, auth::Need need,
                     std::function<Response(const ApiDeps&, Request&)> h) {
  return Authed(d, need, [&d, h = std::move(h)](Request& req) {
    if (d.models == nullptr) return Unavailable();
    return h(d, req);
  });
}

}  // namespace

void RegisterModelRoutes(http::Router& router, const ApiDeps& d) {
  const std::string m = "/api/v1/models";
  router.Add("POST", m, Models(d, auth::Need::Maintainer(), CreateModel));
  router.Add("GET", m, Models(d, auth::Need::Read(), ListModels));
  // GET /api/v1/models/NAME, or NAME@REF: that version (as .../versions/REF answers).
  router.Add("GET", m + "/{name}",
             Models(d, auth::Need::Read(), [](const ApiDeps& d, Request& req) {
               std::string name = req.path_params["name"];
               if (const size_t at = name.find('@'); at != std::string::npos) {
                 auto ref = registry::ParseVersionRef(name.substr(at + 1));
                 if (!ref.ok()) return Error(ref.status());
                 return VersionResponse(200, d.models->GetVersion(name.substr(0, at), *ref));
               }
               auto model = d.models->GetModel(name);
               if (!model.ok()) return Error(model.status());
               return JsonResponse(200, ModelJson(*model));
             }));
  router.Add("PATCH", m + "/{name}",
             Models(d, auth::Need::Maintainer(), [](const ApiDeps& d, Request& req) {
               auto name = Name(req);
               if (!name.ok()) return Error(name.status());
               Response err;
               auto body = http::ParseJsonBody(req, &err);
               if (!body) return err;
               if (absl::Status s = http::OnlyFields(*body, {"description"}); !s.ok()) {
                 return Error(s);
               }
               auto description = http::RequiredString(*body, "description");
               if (!description.ok()) return Error(description.status());
               auto model = d.models->UpdateModel(*name, *description, Now(d));
               if (!model.ok()) return Error(model.status());
               return JsonResponse(200, ModelJson(*model));
             }));
  router.Add("DELETE", m + "/{name}",
             Models(d, auth::Need::Maintainer(), [](const ApiDeps& d, Request& req) {
               auto name = Name(req);
               if (!name.ok()) return Error(name.status());
               const std::string force = req.Query("force").value_or("false");
               if (force != "true" && force != "false") {
                 return ErrorResponse(400, "invalid_argument",
                                      "query parameter 'force' must be true or false");
               }
               if (absl::Status s = d.models->DeleteModel(*name, force == "true"); !s.ok()) {
                 return Error(s);
               }
               return JsonResponse(200, {{"deleted", *name}});
             }));
  router.Add("PUT", m + "/{name}/tags/{key}",
             Models(d, auth::Need::Maintainer(),
                    [](const ApiDeps& d, Request& req) { return SetTag(d, req, false); }));
  router.Add("DELETE", m + "/{name}/tags/{key}",
             Models(d, auth::Need::Maintainer(),
                    [](const ApiDeps& d, Request& req) { return DeleteTag(d, req, false); }));

  router.Add("POST", m + "/{name}/versions", Models(d, auth::Need::Maintainer(), RegisterVersion));
  router.Add("GET", m + "/{name}/versions", Models(d, auth::Need::Read(), ListVersions));
  auto get_version = [](const ApiDeps& d, Request& req) {
    auto name = Name(req);
    if (!name.ok()) return Error(name.status());
    auto ref = Ref(req);
    if (!ref.ok()) return Error(ref.status());
    auto v = d.models->GetVersion(*name, *ref);
    if (!v.ok()) return Error(v.status());
    auto o = VersionJson(*v);
    if (!o.ok()) return Error(o.status());
    // Issue 10: the eval runs attached to this version (their pipeline registered it), newest
    // first, with each one's verdict and metrics.
    if (d.evals != nullptr) {
      store::EvalFilter f;
      f.model_version_id = v->id;
      f.limit = 100;
      auto runs = d.evals->List(f);
      if (!runs.ok()) return Error(runs.status());
      json::array evals;
      for (const store::EvalRun& r : *runs) {
        json::object e{{"id", r.id}, {"name", r.name}, {"job_id", r.job_id}};
        e["passed"] = r.passed.has_value() ? json::value(*r.passed) : json::value(nullptr);
        boost::system::error_code ec;
        json::value report = json::parse(r.report_json, ec);
        if (!ec && report.is_object()) {
          if (const json::value* ms = report.as_object().if_contains("metrics")) e["metrics"] = *ms;
        }
        evals.push_back(std::move(e));
      }
      (*o)["evals"] = std::move(evals);
    }
    return JsonResponse(200, *std::move(o));
  };
  router.Add("GET", m + "/{name}/versions/{v}", Models(d, auth::Need::Read(), get_version));
  router.Add("PATCH", m + "/{name}/versions/{v}",
             Models(d, auth::Need::Maintainer(), UpdateVersion));
  router.Add("PUT", m + "/{name}/versions/{v}/tags/{key}",
             Models(d, auth::Need::Maintainer(),
                    [](const ApiDeps& d, Request& req) { return SetTag(d, req, true); }));
  router.Add("DELETE", m + "/{name}/versions/{v}/tags/{key}",
             Models(d, auth::Need::Maintainer(),
                    [](const ApiDeps& d, Request& req) { return DeleteTag(d, req, true); }));
  router.Add("GET", m + "/{name}/versions/{v}/files", Models(d, auth::Need::Read(), ListFiles));
  router.Add("GET", m + "/{name}/versions/{v}/files/{path...}",
             Models(d, auth::Need::Read(), DownloadFile));

  router.Add("GET", m + "/{name}/aliases/{alias}", Models(d, auth::Need::Read(), get_version));
  router.Add("PUT", m + "/{name}/aliases/{alias}", Models(d, auth::Need::Maintainer(), SetAlias));
  router.Add("DELETE", m + "/{name}/aliases/{alias}",
             Models(d, auth::Need::Maintainer(), DeleteAlias));
  router.Add("GET", m + "/{name}/aliases/{alias}/history",
             Models(d, auth::Need::Read(), AliasHistory));
  router.Add("GET", m + "/{name}/aliases/{alias}/files", Models(d, auth::Need::Read(), ListFiles));
  router.Add("GET", m + "/{name}/aliases/{alias}/files/{path...}",
             Models(d, auth::Need::Read(), DownloadFile));
}

}  // namespace assay::api
