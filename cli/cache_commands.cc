#include "cli/cache_commands.h"

#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/table.h"

namespace assay::cli {
namespace {

namespace json = boost::json;

}  // namespace

int CacheList(const ApiClient& api, const std::string& repo, std::ostream& out, std::ostream& err) {
  std::optional<std::string> id = FindRepoId(api, repo, err);
  if (!id) return 1;
  std::optional<json::value> reply =
      api.CallJson("GET", absl::StrCat("/api/v1/repos/", *id, "/caches"), "", err);
  if (!reply) return 1;
  const json::value* list = reply->is_object() ? reply->as_object().if_contains("caches") : nullptr;
  if (list == nullptr || !list->is_array()) {
    err << "assay: unexpected response from the server: no 'caches' list\n";
    return 1;
  }
  std::vector<std::vector<std::string>> rows;
  for (const json::value& item : list->as_array()) {
    const json::object* e = item.is_object() ? &item.as_object() : nullptr;
    rows.push_back({Field(e, "id"), Field(e, "scope"), Field(e, "key"), Field(e, "files"),
                    Field(e, "bytes"), Field(e, "last_used_at")});
  }
  WriteTable(out, {"ID", "SCOPE", "KEY", "FILES", "BYTES", "LAST_USED"}, rows);
  return 0;
}

int CacheRemove(const ApiClient& api, const std::string& repo, const std::string& entry,
                std::ostream& out, std::ostream& err) {
  std::optional<std::string> id = FindRepoId(api, repo, err);
  if (!id) return 1;
  const std::string path = absl::StrCat("/api/v1/repos/", *id, "/caches/", UrlEscape(entry));
  if (!api.Call("DELETE", path, "", "application/json", err)) return 1;
  out << "cache entry " << entry << " of " << repo << ": removed\n";
  return 0;
}

}  // namespace assay::cli
