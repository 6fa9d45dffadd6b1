#include "cli/deploy_commands.h"

#include <boost/json.hpp>

#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/table.h"
#include "common/pipeline/duration.h"

namespace assay::cli {
namespace {

namespace json = boost::json;
using Result = std::variant<int, std::string>;
constexpr int kOk = 0, kFailed = 1;

std::string Text(const json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_null()) return "-";
  return json::serialize(v);
}

std::string Field(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v == nullptr ? "-" : Text(*v);
}

// Options of a subcommand: each at most once unless in `many`.
std::variant<std::map<std::string, std::vector<std::string>>, std::string> Options(
    const DeployArgs& a, const std::string& what, const std::set<std::string>& allowed,
    const std::set<std::string>& many = {}) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& [name, value] : a.options) {
    if (!allowed.contains(name)) {
      return absl::StrCat("unknown option '", name, "' for 'assay ", what, "'");
    }
    auto& values = out[name];
    if (!values.empty() && !many.contains(name)) {
      return absl::StrCat("option ", name, " given more than once");
    }
    values.push_back(value);
  }
  return out;
}

std::string One(const std::map<std::string, std::vector<std::string>>& o, const std::string& k) {
  auto it = o.find(k);
  return it == o.end() ? "" : it->second.front();
}

// JSON given inline or as @FILE.
std::variant<json::value, std::string> JsonArg(const DeployArgs& a, const std::string& option,
                                               const std::string& text) {
  std::string body = text;
  if (!text.empty() && text[0] == '@') {
    auto read = a.read_file(text.substr(1));
    if (!read.ok()) return absl::StrCat(option, ": ", read.status().message());
    body = *read;
  }
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return absl::StrCat(option, " must be a JSON object (or @FILE)");
  return v;
}

void PrintDeployment(const json::object& d, std::ostream& out) {
  const std::string what = d.contains("model")
                               ? absl::StrCat(Field(d, "model"), " version ", Field(d, "version"))
                               : Field(d, "image");
  out << "deployment " << Field(d, "id") << " to " << Field(d, "environment") << " of "
      << Field(d, "repo") << ": " << what << "\n"
      << "state: " << Field(d, "state") << ", weight " << Field(d, "weight") << "%, step "
      << Field(d, "step") << "\n";
  if (const std::string m = Field(d, "message"); !m.empty() && m != "-") {
    out << "message: " << m << "\n";
  }
}

int Act(const ApiClient& api, const std::string& id, const std::string& action,
        const json::object& body, std::ostream& out, std::ostream& err) {
  auto r = api.CallJson("POST", absl::StrCat("/api/v1/deployments/", id, "/", action),
                        json::serialize(body), err);
  if (!r) return kFailed;
  if (r->is_object()) PrintDeployment(r->as_object(), out);
  return kOk;
}

bool Positive(const std::string& s) {
  int64_t n = 0;
  return absl::SimpleAtoi(s, &n) && n > 0;
}

Result Deploy(const DeployArgs& a, const ApiClient& api, std::ostream& out, std::ostream& err) {
  auto opts_or =
      Options(a, "deploy",
              {"--repo", "--model", "--image", "--endpoint", "--strategy", "--ref", "--supersede"},
              {"--endpoint"});
  if (auto* u = std::get_if<std::string>(&opts_or)) return *u;
  auto& o = std::get<0>(opts_or);
  if (a.positional.size() != 1) return std::string("'assay deploy' needs ENVIRONMENT");
  const std::string repo = One(o, "--repo");
  if (!Positive(repo)) return std::string("'assay deploy' needs --repo ID");
  json::object body{{"repo_id", std::stoll(repo)}, {"environment", a.positional[0]}};
  const std::string model = One(o, "--model"), image = One(o, "--image");
  if (model.empty() == image.empty()) {
    return std::string("'assay deploy' needs --model NAME@VERSION or --image NAME@sha256:HEX");
  }
  if (!model.empty()) {
    const size_t at = model.find('@');
    if (at == std::string::npos || at == 0 || at + 1 == model.size()) {
      return std::string("--model must be NAME@VERSION or NAME@ALIAS");
    }
    body["model"] = model.substr(0, at);
    int64_t v = 0;
    if (absl::SimpleAtoi(model.substr(at + 1), &v)) {
      body["version"] = v;
    } else {
      body["version"] = model.substr(at + 1);
    }
  } else {
    body["image"] = image;
  }
  json::array servers;
  if (auto it = o.find("--endpoint"); it != o.end()) {
    for (const auto& s : it->second) servers.push_back(json::value(s));
  }
  // No --endpoint: the server says whether the environment needs them (a kubernetes target
  // runs the new version itself).
  if (!servers.empty()) body["servers"] = std::move(servers);
  const std::string strategy = One(o, "--strategy");
  if (strategy.empty()) return std::string("'assay deploy' needs --strategy JSON|@FILE");
  auto s = JsonArg(a, "--strategy", strategy);
  if (auto* u = std::get_if<std::string>(&s)) return *u;
  body["strategy"] = std::get<json::value>(s);
  if (const std::string ref = One(o, "--ref"); !ref.empty()) body["ref"] = ref;
  if (o.contains("--supersede")) body["supersede"] = true;
  auto r = api.CallJson("POST", "/api/v1/deployments", json::serialize(body), err);
  if (!r) return kFailed;
  if (r->is_object()) PrintDeployment(r->as_object(), out);
  return kOk;
}

Result Deployments(const DeployArgs& a, const ApiClient& api, std::ostream& out,
                   std::ostream& err) {
  if (a.positional.empty()) {
    return std::string(
        "'assay deployments' needs list, show, wait, approve, pause, resume, promote or abort");
  }
  const std::string sub = a.positional[0];
  const std::string what = "deployments " + sub;
  if (sub == "list") {
    auto opts_or = Options(a, what, {"--repo", "--environment", "--state", "--limit"});
    if (auto* u = std::get_if<std::string>(&opts_or)) return *u;
    auto& o = std::get<0>(opts_or);
    if (a.positional.size() != 1) return std::string("'assay deployments list' takes no argument");
    std::string query;
    for (const char* k : {"--repo", "--environment", "--state", "--limit"}) {
      if (const std::string v = One(o, k); !v.empty()) {
        absl::StrAppend(&query, query.empty() ? "?" : "&", std::string(k).substr(2), "=",
                        UrlEscape(v));
      }
    }
    auto r = api.CallJson("GET", "/api/v1/deployments" + query, "", err);
    if (!r) return kFailed;
    std::vector<std::vector<std::string>> rows;
    for (const json::value& d : r->as_object().at("deployments").as_array()) {
      const json::object& x = d.as_object();
      rows.push_back(
          {Field(x, "id"), Field(x, "environment"),
           x.contains("model") ? absl::StrCat(Field(x, "model"), "@", Field(x, "version"))
                               : Field(x, "image"),
           Field(x, "state"), Field(x, "weight"), Field(x, "created_by"), Field(x, "created_at")});
    }
    WriteTable(out, {"ID", "ENVIRONMENT", "WHAT", "STATE", "WEIGHT", "BY", "CREATED"}, rows);
    return kOk;
  }
  if (a.positional.size() != 2 || !Positive(a.positional[1])) {
    return absl::StrCat("'assay ", what, "' needs a deployment ID");
  }
  const std::string id = a.positional[1];
  if (sub == "show") {
    auto opts_or = Options(a, what, {});
    if (auto* u = std::get_if<std::string>(&opts_or)) return *u;
    auto d = api.CallJson("GET", "/api/v1/deployments/" + id, "", err);
    if (!d) return kFailed;
    auto e = api.CallJson("GET", "/api/v1/deployments/" + id + "/events", "", err);
    if (!e) return kFailed;
    PrintDeployment(d->as_object(), out);
    std::vector<std::vector<std::string>> rows;
    for (const json::value& ev : e->as_object().at("events").as_array()) {
      const json::object& x = ev.as_object();
      rows.push_back({Field(x, "at"), Field(x, "kind"), Field(x, "message")});
    }
    WriteTable(out, {"AT", "EVENT", "MESSAGE"}, rows);
    return kOk;
  }
  if (sub == "wait") {
    auto opts_or = Options(a, what, {"--timeout"});
    if (auto* u = std::get_if<std::string>(&opts_or)) return *u;
    auto& o = std::get<0>(opts_or);
    absl::Duration timeout = absl::Minutes(10);
    if (const std::string t = One(o, "--timeout"); !t.empty()) {
      auto secs = ParseDurationSeconds(t);
      if (!secs.ok()) return absl::StrCat("--timeout: ", secs.status().message());
      timeout = absl::Seconds(*secs);
    }
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      auto d = api.CallJson("GET", "/api/v1/deployments/" + id, "", err);
      if (!d) return kFailed;
      const json::object& x = d->as_object();
      const std::string state = Field(x, "state");
      if (state == "watching" || state == "succeeded") {
        PrintDeployment(x, out);
        return kOk;
      }
      if (state == "rolled_back" || state == "failed" || state == "aborted" ||
          state == "superseded" || state == "paused") {
        PrintDeployment(x, out);
        err << "assay: deployment " << id << " is " << state << "\n";
        return kFailed;
      }
      if (absl::Now() >= deadline) {
        err << "assay: deployment " << id << " is still " << state << " after "
            << absl::FormatDuration(timeout) << "\n";
        return kFailed;
      }
      a.sleep(absl::Milliseconds(500));
    }
  }
  if (sub == "approve" || sub == "pause" || sub == "resume" || sub == "abort" || sub == "promote") {
    std::set<std::string> allowed = {"--reason"};
    if (sub == "promote") allowed.insert("--full");
    if (sub == "approve") allowed.clear();
    auto opts_or = Options(a, what, allowed);
    if (auto* u = std::get_if<std::string>(&opts_or)) return *u;
    auto& o = std::get<0>(opts_or);
    json::object body;
    if (const std::string r = One(o, "--reason"); !r.empty()) body["reason"] = r;
    if (o.contains("--full")) body["full"] = true;
    return Act(api, id, sub, body, out, err);
  }
  return absl::StrCat("unknown subcommand 'deployments ", sub, "'");
}

Result Environments(const DeployArgs& a, const ApiClient& api, std::ostream& out,
                    std::ostream& err) {
  if (a.positional.empty()) {
    return std::string("'assay environments' needs list, show, set or rollback");
  }
  const std::string sub = a.positional[0];
  const std::string what = "environments " + sub;
  std::set<std::string> allowed = {"--repo"};
  if (sub == "set") allowed.insert("--config");
  if (sub == "rollback") allowed.insert({"--to", "--supersede"});
  auto opts_or = Options(a, what, allowed);
  if (auto* u = std::get_if<std::string>(&opts_or)) return *u;
  auto& o = std::get<0>(opts_or);
  const std::string repo = One(o, "--repo");
  if (!Positive(repo)) return absl::StrCat("'assay ", what, "' needs --repo ID");
  const std::string base = absl::StrCat("/api/v1/repos/", repo, "/environments");
  if (sub == "list") {
    if (a.positional.size() != 1) return std::string("'assay environments list' takes no argument");
    auto r = api.CallJson("GET", base, "", err);
    if (!r) return kFailed;
    std::vector<std::vector<std::string>> rows;
    for (const json::value& e : r->as_object().at("environments").as_array()) {
      const json::object& x = e.as_object();
      const json::value* live = x.if_contains("live");
      std::string serves = "-";
      if (live != nullptr && live->is_object()) {
        const json::object& l = live->as_object();
        serves = l.contains("model") ? absl::StrCat(Field(l, "model"), "@", Field(l, "version"))
                                     : Field(l, "image");
      }
      rows.push_back({Field(x, "name"), serves, Field(x, "active_deployment"),
                      Field(x, "required_approvals"), Field(x, "alias")});
    }
    WriteTable(out, {"ENVIRONMENT", "SERVES", "ACTIVE", "APPROVALS", "ALIAS"}, rows);
    return kOk;
  }
  if (a.positional.size() != 2) return absl::StrCat("'assay ", what, "' needs ENVIRONMENT");
  const std::string path = absl::StrCat(base, "/", UrlEscape(a.positional[1]));
  if (sub == "show") {
    auto r = api.CallJson("GET", path, "", err);
    if (!r) return kFailed;
    out << json::serialize(*r) << "\n";
    return kOk;
  }
  if (sub == "set") {
    const std::string config = One(o, "--config");
    if (config.empty()) return std::string("'assay environments set' needs --config JSON|@FILE");
    auto c = JsonArg(a, "--config", config);
    if (auto* u = std::get_if<std::string>(&c)) return *u;
    auto r = api.CallJson("PUT", path, json::serialize(std::get<json::value>(c)), err);
    if (!r) return kFailed;
    out << "environment " << a.positional[1] << " saved\n";
    return kOk;
  }
  if (sub == "rollback") {
    const std::string to = One(o, "--to");
    if (!Positive(to)) return std::string("'assay environments rollback' needs --to DEPLOYMENT");
    json::object body{{"to", std::stoll(to)}};
    if (o.contains("--supersede")) body["supersede"] = true;
    auto r = api.CallJson("POST", path + "/rollback", json::serialize(body), err);
    if (!r) return kFailed;
    if (r->is_object()) PrintDeployment(r->as_object(), out);
    return kOk;
  }
  return absl::StrCat("unknown subcommand 'environments ", sub, "'");
}

}  // namespace

std::variant<int, std::string> DeployCommand(const DeployArgs& args, const ApiClient& api,
                                             std::ostream& out, std::ostream& err) {
  if (args.command == "deploy") return Deploy(args, api, out, err);
  if (args.command == "deployments") return Deployments(args, api, out, err);
  return Environments(args, api, out, err);
}

}  // namespace assay::cli
