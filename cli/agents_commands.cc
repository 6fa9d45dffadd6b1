#include "cli/agents_commands.h"

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/table.h"

namespace assay::cli {

namespace json = boost::json;

int AgentTokenCreate(const ApiClient& api, const TokenCreateOptions& options, std::ostream& out,
                     std::ostream& err) {
  json::object body;
  if (options.name) body["name"] = *options.name;
  json::array labels;
  for (const auto& l : options.labels) labels.push_back(json::value(l));
  body["labels"] = std::move(labels);
  if (options.expires) body["expires_in"] = *options.expires;
  std::optional<json::value> reply =
      api.CallJson("POST", "/api/v1/agents/enrollment-tokens", json::serialize(body), err);
  if (!reply) return 1;
  const json::object* o = reply->is_object() ? &reply->as_object() : nullptr;
  const std::string token = Field(o, "token");
  if (token.empty()) {
    err << "assay: unexpected response from the server: no token\n";
    return 1;
  }
  out << token << "\n";
  std::vector<std::string> allowed;
  if (const json::value* ls = o->if_contains("labels"); ls != nullptr && ls->is_array()) {
    for (const auto& l : ls->as_array()) {
      if (l.is_string()) allowed.emplace_back(l.as_string());
    }
  }
  const std::string name = Field(o, "name");
  err << "enrollment token " << Field(o, "id") << " (shown only now; one use; expires "
      << Field(o, "expires_at") << ") for agent "
      << (name.empty() ? "of any name" : absl::StrCat("'", name, "'"))
      << ", labels: " << (allowed.empty() ? "none" : absl::StrJoin(allowed, ",")) << "\n";
  return 0;
}

int AgentChangeAccess(const ApiClient& api, const std::string& name, const std::string& action,
                      std::ostream& out, std::ostream& err) {
  std::optional<json::value> reply =
      api.CallJson("POST", absl::StrCat("/api/v1/agents/", UrlEscape(name), "/", action), "", err);
  if (!reply) return 1;
  const json::object* o = reply->is_object() ? &reply->as_object() : nullptr;
  out << "agent " << name << ": " << Field(o, "state") << "\n";
  return 0;
}

int AgentDrain(const ApiClient& api, const std::string& name,
               const std::optional<std::string>& reason, const std::optional<std::string>& timeout,
               std::ostream& out, std::ostream& err) {
  json::object body;
  if (reason) body["reason"] = *reason;
  if (timeout) body["timeout"] = *timeout;
  std::optional<json::value> reply =
      api.CallJson("POST", absl::StrCat("/api/v1/agents/", UrlEscape(name), "/drain"),
                   json::serialize(body), err);
  if (!reply) return 1;
  out << "agent " << name << ": drained (no new jobs; running jobs "
      << (timeout ? absl::StrCat("are canceled after ", *timeout) : std::string("finish"))
      << "; `assay agents resume " << name << "` lifts it)\n";
  return 0;
}

int AgentResume(const ApiClient& api, const std::string& name, std::ostream& out,
                std::ostream& err) {
  std::optional<json::value> reply =
      api.CallJson("POST", absl::StrCat("/api/v1/agents/", UrlEscape(name), "/resume"), "", err);
  if (!reply) return 1;
  out << "agent " << name << ": resumed (takes jobs again)\n";
  return 0;
}

int AgentList(const ApiClient& api, std::ostream& out, std::ostream& err) {
  std::optional<json::value> reply = api.CallJson("GET", "/api/v1/agents", "", err);
  if (!reply) return 1;
  const json::object* o = reply->is_object() ? &reply->as_object() : nullptr;
  const json::value* list = o != nullptr ? o->if_contains("agents") : nullptr;
  if (list == nullptr || !list->is_array()) {
    err << "assay: unexpected response from the server: no 'agents' list\n";
    return 1;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& item : list->as_array()) {
    const json::object* a = item.is_object() ? &item.as_object() : nullptr;
    std::vector<std::string> labels;
    if (a != nullptr) {
      if (const json::value* ls = a->if_contains("labels"); ls != nullptr && ls->is_array()) {
        for (const auto& l : ls->as_array()) {
          if (l.is_string()) labels.emplace_back(l.as_string());
        }
      }
    }
    // UNTRUSTED: whether the agent runs jobs of untrusted pipelines (--accept-untrusted).
    const json::value* untrusted = a != nullptr ? a->if_contains("accept_untrusted") : nullptr;
    const std::string accepts = untrusted == nullptr || !untrusted->is_bool() ? "-"
                                : untrusted->as_bool()                        ? "yes"
                                                                              : "no";
    // STATE: "online", and whether it takes jobs (issue 9): "online (drained)" after
    // `assay agents drain`, "online (not accepting)" while it drains itself or lacks disk.
    std::string state = Field(a, "state");
    const json::value* drained = a != nullptr ? a->if_contains("drained") : nullptr;
    const json::value* accepting = a != nullptr ? a->if_contains("accepting") : nullptr;
    if (drained != nullptr && drained->is_bool() && drained->as_bool()) {
      state += " (drained)";
    } else if (state == "online" && accepting != nullptr && accepting->is_bool() &&
               !accepting->as_bool()) {
      state += " (not accepting)";
    }
    rows.push_back({Field(a, "name"), state, Field(a, "access"), absl::StrJoin(labels, ","),
                    Field(a, "cpu_slots"), accepts, Field(a, "last_seen_at")});
  }
  WriteTable(out, {"NAME", "STATE", "ACCESS", "LABELS", "SLOTS", "UNTRUSTED", "LAST_SEEN"}, rows);
  return 0;
}

}  // namespace assay::cli
