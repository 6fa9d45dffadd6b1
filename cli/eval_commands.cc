#include "cli/eval_commands.h"

#include <boost/json.hpp>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/table.h"

namespace assay::cli {
namespace {

namespace json = boost::json;
using Result = std::variant<int, std::string>;

std::optional<std::string> CheckOptions(const EvalsArgs& a, const std::string& sub,
                                        const std::set<std::string>& allowed,
                                        std::map<std::string, std::string>& out) {
  for (const auto& [name, value] : a.options) {
    if (!allowed.contains(name)) {
      return absl::StrCat("unknown option '", name, "' for 'assay evals ", sub, "'");
    }
    if (!out.emplace(name, value).second) {
      return absl::StrCat("option ", name, " given more than once");
    }
  }
  return std::nullopt;
}

std::optional<std::string> OneId(const EvalsArgs& a, const std::string& sub) {
  if (a.positional.size() < 2) return absl::StrCat("'assay evals ", sub, "' needs an eval ID");
  if (a.positional.size() > 2) {
    return absl::StrCat("unexpected argument '", a.positional[2], "' for 'assay evals ", sub, "'");
  }
  int64_t id = 0;
  if (!absl::SimpleAtoi(a.positional[1], &id) || id <= 0) {
    return absl::StrCat("eval ID must be a positive integer, got '", a.positional[1], "'");
  }
  return std::nullopt;
}

std::string Num(const json::value* v) {
  if (v == nullptr || !v->is_number()) return "-";
  return absl::StrFormat("%.4f", v->to_number<double>());
}

std::string Passed(const json::object* o) {
  const json::value* p = o != nullptr ? o->if_contains("passed") : nullptr;
  if (p == nullptr || !p->is_bool()) return "-";
  return p->get_bool() ? "passed" : "FAILED";
}

// One line of text for a table cell: newlines shown as \n, cut at 60 characters.
std::string Cell(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t' || c == '\r') {
      out += ' ';
    } else {
      out += c;
    }
  }
  if (out.size() > 60) out = out.substr(0, 57) + "...";
  return out;
}

int List(const EvalsArgs& a, const std::map<std::string, std::string>& o, const ApiClient& api,
         std::ostream& out, std::ostream& err) {
  (void)a;
  std::string query;
  auto add = [&](const char* key, const std::string& value) {
    absl::StrAppend(&query, query.empty() ? "?" : "&", key, "=", UrlEscape(value));
  };
  if (auto it = o.find("--repo"); it != o.end()) {
    std::optional<std::string> id = FindRepoId(api, it->second, err);
    if (!id) return 1;
    add("repo", *id);
  }
  for (const auto& [opt, key] : std::vector<std::pair<std::string, const char*>>{
           {"--job", "job"}, {"--name", "name"}, {"--branch", "branch"}, {"--limit", "limit"}}) {
    if (auto it = o.find(opt); it != o.end()) add(key, it->second);
  }
  std::optional<json::value> reply = api.CallJson("GET", "/api/v1/evals" + query, "", err);
  if (!reply) return 1;
  const json::value* list = reply->is_object() ? reply->as_object().if_contains("evals") : nullptr;
  if (list == nullptr || !list->is_array()) {
    err << "assay: unexpected response from the server: no 'evals' list\n";
    return 1;
  }
  std::vector<std::vector<std::string>> rows;
  for (const json::value& item : list->as_array()) {
    const json::object* e = item.is_object() ? &item.as_object() : nullptr;
    std::string commit = Field(e, "commit_sha");
    rows.push_back({Field(e, "id"), Field(e, "name"), Field(e, "job_id"), Field(e, "ref"),
                    commit.substr(0, 12), Passed(e), Field(e, "examples"), Field(e, "created_at")});
  }
  WriteTable(out, {"ID", "EVAL", "JOB", "REF", "COMMIT", "RESULT", "EXAMPLES", "CREATED"}, rows);
  return 0;
}

int Show(const EvalsArgs& a, const std::map<std::string, std::string>& o, const ApiClient& api,
         std::ostream& out, std::ostream& err) {
  const std::string which = o.contains("--examples") ? o.at("--examples") : "failed";
  std::optional<json::value> reply = api.CallJson(
      "GET", absl::StrCat("/api/v1/evals/", a.positional[1], "?examples=", UrlEscape(which)), "",
      err);
  if (!reply) return 1;
  const json::object* r = reply->is_object() ? &reply->as_object() : nullptr;
  if (r == nullptr) {
    err << "assay: unexpected response from the server\n";
    return 1;
  }
  out << "eval " << Field(r, "id") << " (" << Field(r, "name") << "), job " << Field(r, "job_id")
      << ", " << Field(r, "ref") << " at " << Field(r, "commit_sha").substr(0, 12) << ": "
      << Passed(r) << ", " << Field(r, "examples") << " examples\n";
  if (const json::value* e = r->if_contains("error");
      e != nullptr && e->is_string() && !e->as_string().empty()) {
    out << "stopped early: " << e->as_string().c_str() << "\n";
  }
  std::vector<std::vector<std::string>> metrics;
  if (const json::value* m = r->if_contains("metrics"); m != nullptr && m->is_array()) {
    for (const json::value& item : m->as_array()) {
      const json::object* mo = item.is_object() ? &item.as_object() : nullptr;
      if (mo == nullptr) continue;
      metrics.push_back({Field(mo, "name"), Num(mo->if_contains("value")),
                         Num(mo->if_contains("lo")), Num(mo->if_contains("hi")), Field(mo, "n")});
    }
  }
  WriteTable(out, {"METRIC", "VALUE", "LOW", "HIGH", "N"}, metrics);
  if (const json::value* v = r->if_contains("verdicts"); v != nullptr && v->is_array()) {
    for (const json::value& item : v->as_array()) {
      const json::object* vo = item.is_object() ? &item.as_object() : nullptr;
      out << "gate " << Field(vo, "metric") << ": " << Passed(vo) << ": "
          << Field(vo, "explanation") << "\n";
    }
  }
  if (const json::value* ex = r->if_contains("example_results"); ex != nullptr && ex->is_array()) {
    std::vector<std::vector<std::string>> rows;
    for (const json::value& item : ex->as_array()) {
      const json::object* eo = item.is_object() ? &item.as_object() : nullptr;
      rows.push_back({Field(eo, "id"), Passed(eo), Cell(Field(eo, "expected")),
                      Cell(Field(eo, "error").empty() ? Field(eo, "output")
                                                      : "error: " + Field(eo, "error"))});
    }
    WriteTable(out, {"EXAMPLE", "RESULT", "EXPECTED", "OUTPUT"}, rows);
  }
  return 0;
}

int Diff(const EvalsArgs& a, const std::map<std::string, std::string>& o, const ApiClient& api,
         std::ostream& out, std::ostream& err) {
  std::string path = absl::StrCat("/api/v1/evals/", a.positional[1], "/diff");
  if (auto it = o.find("--against"); it != o.end()) {
    absl::StrAppend(&path, "?against=", UrlEscape(it->second));
  }
  std::optional<json::value> reply = api.CallJson("GET", path, "", err);
  if (!reply) return 1;
  const json::object* r = reply->is_object() ? &reply->as_object() : nullptr;
  const json::value* cand = r != nullptr ? r->if_contains("candidate") : nullptr;
  const json::value* base = r != nullptr ? r->if_contains("baseline") : nullptr;
  if (cand == nullptr || base == nullptr || !cand->is_object() || !base->is_object()) {
    err << "assay: unexpected response from the server\n";
    return 1;
  }
  out << "eval " << Field(&cand->as_object(), "id") << " ("
      << Field(&cand->as_object(), "commit_sha").substr(0, 12) << ") against eval "
      << Field(&base->as_object(), "id") << " ("
      << Field(&base->as_object(), "commit_sha").substr(0, 12) << "), " << Field(r, "still_passing")
      << " still passing\n";
  for (const char* group : {"regressed", "fixed", "still_wrong"}) {
    const json::value* list = r->if_contains(group);
    if (list == nullptr || !list->is_array()) continue;
    out << group << " (" << list->as_array().size() << ")\n";
    for (const json::value& item : list->as_array()) {
      const json::object* e = item.is_object() ? &item.as_object() : nullptr;
      out << "  " << Field(e, "id") << "\n    input:     " << Cell(Field(e, "input"))
          << "\n    expected:  " << Cell(Field(e, "expected"))
          << "\n    baseline:  " << Cell(Field(e, "baseline_output"))
          << "\n    candidate: " << Cell(Field(e, "candidate_output")) << "\n";
    }
  }
  return 0;
}

}  // namespace

Result EvalsCommand(const EvalsArgs& a, const ApiClient& api, std::ostream& out,
                    std::ostream& err) {
  const std::string sub = a.positional.empty() ? "" : a.positional[0];
  std::map<std::string, std::string> o;
  if (sub == "list") {
    if (auto u = CheckOptions(a, sub, {"--repo", "--job", "--name", "--branch", "--limit"}, o)) {
      return *u;
    }
    if (a.positional.size() > 1) {
      return absl::StrCat("unexpected argument '", a.positional[1], "' for 'assay evals list'");
    }
    return List(a, o, api, out, err);
  }
  if (sub == "show") {
    if (auto u = CheckOptions(a, sub, {"--examples"}, o)) return *u;
    if (auto u = OneId(a, sub)) return *u;
    if (o.contains("--examples") && o["--examples"] != "failed" && o["--examples"] != "all" &&
        o["--examples"] != "none") {
      return std::string("--examples must be failed, all or none");
    }
    return Show(a, o, api, out, err);
  }
  if (sub == "diff") {
    if (auto u = CheckOptions(a, sub, {"--against"}, o)) return *u;
    if (auto u = OneId(a, sub)) return *u;
    return Diff(a, o, api, out, err);
  }
  return sub.empty()
             ? std::string("'assay evals' needs a subcommand: list, show or diff")
             : absl::StrCat("unknown subcommand 'evals ", sub, "' (expected list, show or diff)");
}

}  // namespace assay::cli
