#include "cli/secret_commands.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/table.h"

namespace assay::cli {
namespace {

namespace json = boost::json;

std::string Scope(const std::string& environment) {
  return environment.empty() ? "" : absl::StrCat(" (environment ", environment, ")");
}

}  // namespace

int SecretSet(const ApiClient& api, const SecretSetOptions& o, std::ostream& out,
              std::ostream& err) {
  std::optional<std::string> id = FindRepoId(api, o.repo, err);
  if (!id) return 1;
  json::object body{{"value", o.value}};
  if (!o.environment.empty()) body["environment"] = o.environment;
  std::optional<json::value> reply =
      api.CallJson("PUT", absl::StrCat("/api/v1/repos/", *id, "/secrets/", UrlEscape(o.name)),
                   json::serialize(body), err);
  if (!reply) return 1;
  const json::object* r = reply->is_object() ? &reply->as_object() : nullptr;
  out << "secret " << o.name << " of " << o.repo << Scope(o.environment) << ": "
      << (Field(r, "created") == "true" ? "created" : "updated") << "\n";
  return 0;
}

int SecretRemove(const ApiClient& api, const std::string& repo, const std::string& name,
                 const std::string& environment, std::ostream& out, std::ostream& err) {
  std::optional<std::string> id = FindRepoId(api, repo, err);
  if (!id) return 1;
  std::string path = absl::StrCat("/api/v1/repos/", *id, "/secrets/", UrlEscape(name));
  if (!environment.empty()) absl::StrAppend(&path, "?environment=", UrlEscape(environment));
  if (!api.Call("DELETE", path, "", "application/json", err)) return 1;
  out << "secret " << name << " of " << repo << Scope(environment) << ": removed\n";
  return 0;
}

int SecretList(const ApiClient& api, const std::string& repo, std::ostream& out,
               std::ostream& err) {
  std::optional<std::string> id = FindRepoId(api, repo, err);
  if (!id) return 1;
  std::optional<json::value> reply =
      api.CallJson("GET", absl::StrCat("/api/v1/repos/", *id, "/secrets"), "", err);
  if (!reply) return 1;
  const json::value* list =
      reply->is_object() ? reply->as_object().if_contains("secrets") : nullptr;
  if (list == nullptr || !list->is_array()) {
    err << "assay: unexpected response from the server: no 'secrets' list\n";
    return 1;
  }
  std::vector<std::vector<std::string>> rows;
  for (const json::value& item : list->as_array()) {
    const json::object* s = item.is_object() ? &item.as_object() : nullptr;
    std::string env = Field(s, "environment");
    rows.push_back({Field(s, "name"), env.empty() ? "-" : env, Field(s, "updated_at")});
  }
  WriteTable(out, {"NAME", "ENVIRONMENT", "UPDATED"}, rows);
  return 0;
}

}  // namespace assay::cli
