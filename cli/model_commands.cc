#include "cli/model_commands.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/table.h"
#include "common/crypto/crypto.h"

namespace assay::cli {
namespace {

namespace json = boost::json;
using Usage = std::string;
using Result = std::variant<int, std::string>;

constexpr int kOk = 0, kFailed = 1;

// The options of one subcommand: `once` may be given at most once, `many` any number of times.
struct Opts {
  std::map<std::string, std::string> once;
  std::map<std::string, std::vector<std::string>> many;
};
std::optional<Usage> CheckOptions(const ModelsArgs& a, const std::string& sub,
                                  const std::set<std::string>& once,
                                  const std::set<std::string>& many, Opts& out) {
  for (const auto& [name, value] : a.options) {
    if (many.contains(name)) {
      out.many[name].push_back(value);
    } else if (!once.contains(name)) {
      return absl::StrCat("unknown option '", name, "' for 'assay models ", sub, "'");
    } else if (!out.once.emplace(name, value).second) {
      return absl::StrCat("option ", name, " given more than once");
    }
  }
  return std::nullopt;
}

std::optional<Usage> Positionals(const ModelsArgs& a, const std::string& sub, size_t min,
                                 size_t max, const std::string& missing) {
  const size_t n = a.positional.size() - 1;
  if (n < min) return absl::StrCat("'assay models ", sub, "' needs ", missing);
  if (n > max) {
    return absl::StrCat("unexpected argument '", a.positional[1 + max], "' for 'assay models ", sub,
                        "'");
  }
  return std::nullopt;
}

// "K=V" split at the first '='; nullopt when there is none or K is empty.
std::optional<std::pair<std::string, std::string>> KeyValue(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return std::nullopt;
  return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
}

// NAME@REF → {NAME, REF}; NAME → {NAME, ""}.
std::pair<std::string, std::string> SplitRef(const std::string& text) {
  const size_t at = text.find('@');
  if (at == std::string::npos) return {text, ""};
  return {text.substr(0, at), text.substr(at + 1)};
}

std::string ModelPath(const std::string& name) {
  return absl::StrCat("/api/v1/models/", UrlEscape(name));
}
std::string VersionPath(const std::string& name, const std::string& ref) {
  return absl::StrCat(ModelPath(name), "/versions/", UrlEscape(ref));
}

// A JSON object's entries as "k=v, k=v" ("-" when empty).
std::string Pairs(const json::object* o, std::string_view key) {
  const json::value* v = o == nullptr ? nullptr : o->if_contains(key);
  if (v == nullptr || !v->is_object() || v->as_object().empty()) return "-";
  std::vector<std::string> parts;
  for (const auto& [k, val] : v->as_object()) {
    parts.push_back(absl::StrCat(std::string(k), "=", Field(&v->as_object(), k)));
  }
  return absl::StrJoin(parts, ", ");
}

std::string List(const json::object* o, std::string_view key) {
  const json::value* v = o == nullptr ? nullptr : o->if_contains(key);
  if (v == nullptr || !v->is_array() || v->as_array().empty()) return "-";
  std::vector<std::string> parts;
  for (const auto& item : v->as_array()) {
    parts.push_back(item.is_string() ? std::string(item.as_string()) : json::serialize(item));
  }
  return absl::StrJoin(parts, ",");
}

const json::object* Obj(const std::optional<json::value>& v) {
  return v && v->is_object() ? &v->as_object() : nullptr;
}

const json::array* Array(const json::object* o, std::string_view key, std::ostream& err) {
  const json::value* v = o == nullptr ? nullptr : o->if_contains(key);
  if (v == nullptr || !v->is_array()) {
    err << "assay: unexpected response from the server: no '" << key << "' list\n";
    return nullptr;
  }
  return &v->as_array();
}

std::string Query(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [k, v] : params) {
    absl::StrAppend(&q, q.empty() ? "?" : "&", k, "=", UrlEscape(v));
  }
  return q;
}

Result ListModels(const ModelsArgs& a, const ApiClient& api, std::ostream& out, std::ostream& err) {
  Opts o;
  if (auto e = CheckOptions(a, "list", {"--name", "--limit"}, {"--tag"}, o)) return *e;
  if (auto e = Positionals(a, "list", 0, 0, "")) return *e;
  std::vector<std::pair<std::string, std::string>> q;
  if (o.once.contains("--name")) q.emplace_back("name", o.once["--name"]);
  for (const auto& t : o.many["--tag"]) q.emplace_back("tag", t);
  if (o.once.contains("--limit")) q.emplace_back("limit", o.once["--limit"]);
  auto reply = api.CallJson("GET", "/api/v1/models" + Query(q), "", err);
  if (!reply) return kFailed;
  const json::array* models = Array(Obj(reply), "models", err);
  if (models == nullptr) return kFailed;
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : *models) {
    const json::object* mo = m.if_object();
    rows.push_back({Field(mo, "name"), Field(mo, "latest_version"), Pairs(mo, "aliases"),
                    Field(mo, "updated_at")});
  }
  WriteTable(out, {"NAME", "LATEST", "ALIASES", "UPDATED"}, rows);
  return kOk;
}

Result Versions(const ModelsArgs& a, const ApiClient& api, std::ostream& out, std::ostream& err) {
  Opts o;
  if (auto e = CheckOptions(a, "versions", {"--alias", "--limit"}, {"--tag"}, o)) return *e;
  if (auto e = Positionals(a, "versions", 1, 1, "a model NAME")) return *e;
  std::vector<std::pair<std::string, std::string>> q;
  if (o.once.contains("--alias")) q.emplace_back("alias", o.once["--alias"]);
  for (const auto& t : o.many["--tag"]) q.emplace_back("tag", t);
  if (o.once.contains("--limit")) q.emplace_back("limit", o.once["--limit"]);
  auto reply = api.CallJson("GET", ModelPath(a.positional[1]) + "/versions" + Query(q), "", err);
  if (!reply) return kFailed;
  const json::array* versions = Array(Obj(reply), "versions", err);
  if (versions == nullptr) return kFailed;
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : *versions) {
    const json::object* vo = v.if_object();
    const json::value* src = vo == nullptr ? nullptr : vo->if_contains("source");
    const json::object* so = src != nullptr ? src->if_object() : nullptr;
    rows.push_back({Field(vo, "version"), Field(vo, "status"), List(vo, "aliases"),
                    Field(so, "job_id"), Field(so, "commit").substr(0, 12),
                    Field(vo, "created_at")});
  }
  WriteTable(out, {"VERSION", "STATUS", "ALIASES", "JOB", "COMMIT", "CREATED"}, rows);
  return kOk;
}

void ShowVersion(const json::object* v, std::ostream& out) {
  const json::value* src = v->if_contains("source");
  const json::object* s = src != nullptr ? src->if_object() : nullptr;
  out << "model: " << Field(v, "model") << "\n"
      << "version: " << Field(v, "version") << " (" << Field(v, "status") << ")\n"
      << "aliases: " << List(v, "aliases") << "\n"
      << "source: " << Field(s, "repo") << "@" << Field(s, "commit") << " pipeline "
      << Field(s, "pipeline_id") << " job " << Field(s, "job_id") << " (" << Field(s, "job")
      << "), path " << Field(s, "path") << "\n"
      << "parent: " << Field(v, "parent_version") << "\n"
      << "params: " << Pairs(v, "params") << "\n"
      << "metrics: " << Pairs(v, "metrics") << "\n";
  std::vector<std::string> datasets;
  if (const json::value* d = v->if_contains("datasets"); d != nullptr && d->is_array()) {
    for (const auto& item : d->as_array()) {
      const json::object* io = item.if_object();
      const std::string md5 = Field(io, "md5");
      datasets.push_back(absl::StrCat(Field(io, "path"), " ",
                                      md5 != "-" ? "md5:" + md5 : "sha256:" + Field(io, "sha256")));
    }
  }
  out << "datasets: " << (datasets.empty() ? "-" : absl::StrJoin(datasets, ", ")) << "\n"
      << "tags: " << Pairs(v, "tags") << "\n"
      << "files: " << Field(v, "files") << " (" << Field(v, "bytes") << " bytes)\n"
      << "description: " << Field(v, "description") << "\n"
      << "created: " << Field(v, "created_at") << "\n";
}

Result Show(const ModelsArgs& a, const ApiClient& api, std::ostream& out, std::ostream& err) {
  Opts o;
  if (auto e = CheckOptions(a, "show", {}, {}, o)) return *e;
  if (auto e = Positionals(a, "show", 1, 1, "NAME or NAME@VERSION")) return *e;
  const auto [name, ref] = SplitRef(a.positional[1]);
  if (!ref.empty()) {
    auto reply = api.CallJson("GET", VersionPath(name, ref), "", err);
    if (!reply) return kFailed;
    const json::object* v = Obj(reply);
    if (v == nullptr) {
      err << "assay: unexpected response from the server\n";
      return kFailed;
    }
    ShowVersion(v, out);
    return kOk;
  }
  auto reply = api.CallJson("GET", ModelPath(name), "", err);
  if (!reply) return kFailed;
  const json::object* m = Obj(reply);
  out << "name: " << Field(m, "name") << "\n"
      << "description: " << Field(m, "description") << "\n"
      << "latest version: " << Field(m, "latest_version") << " (" << Field(m, "versions")
      << " versions)\n"
      << "aliases: " << Pairs(m, "aliases") << "\n"
      << "tags: " << Pairs(m, "tags") << "\n"
      << "created: " << Field(m, "created_at") << "\n"
      << "updated: " << Field(m, "updated_at") << "\n";
  return kOk;
}

// --param K=V: V as JSON when it reads as a number, true, false or null; else a string.
json::value ParamValue(const std::string& text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (!ec && (v.is_number() || v.is_bool() || v.is_null())) return v;
  return json::value(text);
}

Result Register(const ModelsArgs& a, const ApiClient& api, std::ostream& out, std::ostream& err) {
  Opts o;
  if (auto e = CheckOptions(a, "register", {"--job", "--path", "--parent", "--description"},
                            {"--param", "--metric", "--tag"}, o)) {
    return *e;
  }
  if (auto e = Positionals(a, "register", 1, 1, "a model NAME")) return *e;
  if (!o.once.contains("--job")) return Usage("'assay models register' needs --job ID");
  int64_t job = 0;
  if (!absl::SimpleAtoi(o.once["--job"], &job) || job <= 0) {
    return absl::StrCat("--job must be a positive integer, got '", o.once["--job"], "'");
  }
  json::object body{{"job_id", job}};
  if (o.once.contains("--path")) body["path"] = o.once["--path"];
  if (o.once.contains("--description")) body["description"] = o.once["--description"];
  if (o.once.contains("--parent")) {
    int64_t n = 0;
    if (absl::SimpleAtoi(o.once["--parent"], &n)) {
      body["parent_version"] = n;
    } else {
      body["parent_version"] = o.once["--parent"];
    }
  }
  json::object params, metrics, tags;
  for (const auto& p : o.many["--param"]) {
    auto kv = KeyValue(p);
    if (!kv) return absl::StrCat("--param must be KEY=VALUE, got '", p, "'");
    params[kv->first] = ParamValue(kv->second);
  }
  for (const auto& m : o.many["--metric"]) {
    auto kv = KeyValue(m);
    double d = 0;
    if (!kv || !absl::SimpleAtod(kv->second, &d) || !std::isfinite(d)) {
      return absl::StrCat("--metric must be KEY=NUMBER, got '", m, "'");
    }
    metrics[kv->first] = d;
  }
  for (const auto& t : o.many["--tag"]) {
    auto kv = KeyValue(t);
    if (!kv) return absl::StrCat("--tag must be KEY=VALUE, got '", t, "'");
    tags[kv->first] = kv->second;
  }
  if (!params.empty()) body["params"] = std::move(params);
  if (!metrics.empty()) body["metrics"] = std::move(metrics);
  if (!tags.empty()) body["tags"] = std::move(tags);
  const std::string& name = a.positional[1];
  auto reply = api.CallJson("POST", ModelPath(name) + "/versions", json::serialize(body), err);
  if (!reply) return kFailed;
  const json::object* v = Obj(reply);
  out << "registered " << name << " version " << Field(v, "version") << " from job " << job << " ("
      << Field(v, "files") << " files, " << Field(v, "bytes") << " bytes)\n";
  return kOk;
}

Result Alias(const ModelsArgs& a, const ApiClient& api, std::ostream& out, std::ostream& err) {
  Opts o;
  if (auto e = CheckOptions(a, "alias", {"--reason"}, {}, o)) return *e;
  if (auto e = Positionals(a, "alias", 3, 3, "a model NAME, an ALIAS and a VERSION")) return *e;
  if (!o.once.contains("--reason") || o.once["--reason"].empty()) {
    return Usage("'assay models alias' needs --reason TEXT (it goes into the audit)");
  }
  const std::string &name = a.positional[1], &alias = a.positional[2], &to = a.positional[3];
  json::object body{{"reason", o.once["--reason"]}};
  int64_t n = 0;
  if (absl::SimpleAtoi(to, &n)) {
    body["version"] = n;
  } else {
    body["version"] = to;
  }
  if (!a.user.empty()) body["actor"] = a.user;
  auto reply = api.CallJson("PUT", ModelPath(name) + "/aliases/" + UrlEscape(alias),
                            json::serialize(body), err);
  if (!reply) return kFailed;
  const json::object* r = Obj(reply);
  out << name << "@" << alias << ": ";
  if (Field(r, "changed") != "true") {
    out << "already version " << Field(r, "version") << "\n";
  } else if (Field(r, "previous_version") == "-") {
    out << "set to version " << Field(r, "version") << "\n";
  } else {
    out << "moved from version " << Field(r, "previous_version") << " to " << Field(r, "version")
        << "\n";
  }
  return kOk;
}

Result AliasRemove(const ModelsArgs& a, const ApiClient& api, std::ostream& out,
                   std::ostream& err) {
  Opts o;
  if (auto e = CheckOptions(a, "alias-rm", {"--reason"}, {}, o)) return *e;
  if (auto e = Positionals(a, "alias-rm", 2, 2, "a model NAME and an ALIAS")) return *e;
  const std::string &name = a.positional[1], &alias = a.positional[2];
  json::object body{{"reason", o.once["--reason"]}};
  if (!a.user.empty()) body["actor"] = a.user;
  auto reply = api.CallJson("DELETE", ModelPath(name) + "/aliases/" + UrlEscape(alias),
                            json::serialize(body), err);
  if (!reply) return kFailed;
  out << name << "@" << alias << ": removed (was version " << Field(Obj(reply), "previous_version")
      << ")\n";
  return kOk;
}

Result History(const ModelsArgs& a, const ApiClient& api, std::ostream& out, std::ostream& err) {
  Opts o;
  if (auto e = CheckOptions(a, "history", {"--limit"}, {}, o)) return *e;
  if (auto e = Positionals(a, "history", 2, 2, "a model NAME and an ALIAS")) return *e;
  std::vector<std::pair<std::string, std::string>> q;
  if (o.once.contains("--limit")) q.emplace_back("limit", o.once["--limit"]);
  auto reply = api.CallJson(
      "GET",
      ModelPath(a.positional[1]) + "/aliases/" + UrlEscape(a.positional[2]) + "/history" + Query(q),
      "", err);
  if (!reply) return kFailed;
  const json::array* events = Array(Obj(reply), "history", err);
  if (events == nullptr) return kFailed;
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : *events) {
    const json::object* eo = e.if_object();
    std::string by = Field(eo, "principal");
    if (const std::string addr = Field(eo, "client_addr"); addr != "-" && !addr.empty()) {
      by += " (" + addr + ")";
    }
    const std::string reason = Field(eo, "reason");
    rows.push_back({Field(eo, "at"), Field(eo, "from_version"), Field(eo, "to_version"), by,
                    Field(eo, "actor"), reason.empty() ? "-" : reason});
  }
  WriteTable(out, {"WHEN", "FROM", "TO", "BY", "ACTOR", "REASON"}, rows);
  return kOk;
}

Result Tag(const ModelsArgs& a, const ApiClient& api, bool set, std::ostream& out,
           std::ostream& err) {
  const std::string sub = set ? "tag" : "untag";
  Opts o;
  if (auto e = CheckOptions(a, sub, {}, {}, o)) return *e;
  if (auto e = Positionals(a, sub, 2, 64,
                           set ? "NAME[@VERSION] and KEY=VALUE" : "NAME[@VERSION] and a KEY")) {
    return *e;
  }
  const auto [name, ref] = SplitRef(a.positional[1]);
  const std::string base = ref.empty() ? ModelPath(name) : VersionPath(name, ref);
  const std::string target = ref.empty() ? name : absl::StrCat(name, "@", ref);
  for (size_t i = 2; i < a.positional.size(); ++i) {
    if (set) {
      auto kv = KeyValue(a.positional[i]);
      if (!kv) return absl::StrCat("expected KEY=VALUE, got '", a.positional[i], "'");
      json::object body{{"value", kv->second}};
      if (!api.CallJson("PUT", base + "/tags/" + UrlEscape(kv->first), json::serialize(body),
                        err)) {
        return kFailed;
      }
      out << "tag " << kv->first << " set on " << target << "\n";
    } else {
      if (!api.Call("DELETE", base + "/tags/" + UrlEscape(a.positional[i]), "", "application/json",
                    err)) {
        return kFailed;
      }
      out << "tag " << a.positional[i] << " removed from " << target << "\n";
    }
  }
  return kOk;
}

// A path from the server, checked again here: relative, no empty, "." or ".." segment.
bool SafePath(const std::string& path) {
  if (path.empty() || path.front() == '/' || path.find('\0') != std::string::npos) return false;
  for (absl::string_view seg : absl::StrSplit(path, '/')) {
    if (seg.empty() || seg == "." || seg == "..") return false;
  }
  return true;
}

// Creates every directory of `dir`/`path` above the file.
bool MakeParents(const std::string& dir, const std::string& path, std::ostream& err) {
  std::string at = dir;
  std::vector<std::string> segs = absl::StrSplit(path, '/');
  for (size_t i = 0; i + 1 < segs.size(); ++i) {
    at += "/" + segs[i];
    if (::mkdir(at.c_str(), 0755) != 0 && errno != EEXIST) {
      err << "assay: cannot create " << at << ": " << std::strerror(errno) << "\n";
      return false;
    }
  }
  return true;
}

// Streams one file to `target` through `target`.part, checking its SHA-256.
bool DownloadOne(const ApiClient& api, const std::string& url, const std::string& target,
                 const std::string& sha256, int mode, std::ostream& err) {
  const std::string part = target + ".part";
  const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    err << "assay: cannot write " << part << ": " << std::strerror(errno) << "\n";
    return false;
  }
  Sha256Stream hash;
  std::string write_error;
  bool ok = api.Download(
      url,
      [&](std::string_view piece) {
        hash.Update(piece);
        while (!piece.empty()) {
          const ssize_t n = ::write(fd, piece.data(), piece.size());
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) {
            write_error = std::strerror(errno);
            return false;
          }
          piece.remove_prefix(static_cast<size_t>(n));
        }
        return true;
      },
      err);
  if (ok && ::fchmod(fd, static_cast<mode_t>(mode)) != 0) write_error = std::strerror(errno);
  if (::close(fd) != 0 && write_error.empty()) write_error = std::strerror(errno);
  if (ok && write_error.empty()) {
    if (const std::string got = hash.Hex(); got != sha256) {
      err << "assay: " << target << ": SHA-256 " << got << " is not the registry's " << sha256
          << "\n";
      ok = false;
    } else if (::rename(part.c_str(), target.c_str()) == 0) {
      return true;
    } else {
      write_error = std::strerror(errno);
    }
  }
  ::unlink(part.c_str());
  if (!write_error.empty()) err << "assay: cannot write " << target << ": " << write_error << "\n";
  return false;
}

Result Download(const ModelsArgs& a, const ApiClient& api, std::ostream& out, std::ostream& err) {
  Opts o;
  if (auto e = CheckOptions(a, "download", {"--output"}, {}, o)) return *e;
  if (auto e = Positionals(a, "download", 1, 1, "NAME@VERSION or NAME@ALIAS")) return *e;
  const auto [name, ref] = SplitRef(a.positional[1]);
  if (ref.empty()) return Usage("'assay models download' needs NAME@VERSION or NAME@ALIAS");
  auto reply = api.CallJson("GET", VersionPath(name, ref) + "/files", "", err);
  if (!reply) return kFailed;
  const json::object* listing = Obj(reply);
  const json::array* files = Array(listing, "files", err);
  if (files == nullptr) return kFailed;
  const std::string version = Field(listing, "version");
  const std::string dir =
      o.once.contains("--output") ? o.once["--output"] : absl::StrCat(name, "-v", version);
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    err << "assay: cannot create " << dir << ": " << std::strerror(errno) << "\n";
    return kFailed;
  }
  int64_t bytes = 0;
  for (const auto& f : *files) {
    const json::object* fo = f.if_object();
    const std::string path = Field(fo, "path");
    if (!SafePath(path)) {
      err << "assay: refused a file path from the server: '" << path << "'\n";
      return kFailed;
    }
    if (!MakeParents(dir, path, err)) return kFailed;
    std::string escaped;
    for (absl::string_view seg : absl::StrSplit(path, '/')) {
      absl::StrAppend(&escaped, "/", UrlEscape(std::string_view(seg.data(), seg.size())));
    }
    // By number, not by alias: every file from the version the listing named.
    const std::string url = VersionPath(name, version) + "/files" + escaped;
    const int mode = Field(fo, "mode") == "0755" ? 0755 : 0644;
    if (!DownloadOne(api, url, dir + "/" + path, Field(fo, "sha256"), mode, err)) return kFailed;
    int64_t size = 0;
    if (absl::SimpleAtoi(Field(fo, "size"), &size)) bytes += size;
  }
  out << "downloaded " << name << " version " << version << ": " << files->size() << " files, "
      << bytes << " bytes into " << dir << "\n";
  return kOk;
}

}  // namespace

std::variant<int, std::string> ModelsCommand(const ModelsArgs& a, const ApiClient& api,
                                             std::ostream& out, std::ostream& err) {
  const std::string sub = a.positional.empty() ? "" : a.positional[0];
  if (sub == "list") return ListModels(a, api, out, err);
  if (sub == "show") return Show(a, api, out, err);
  if (sub == "versions") return Versions(a, api, out, err);
  if (sub == "register") return Register(a, api, out, err);
  if (sub == "alias") return Alias(a, api, out, err);
  if (sub == "alias-rm") return AliasRemove(a, api, out, err);
  if (sub == "history") return History(a, api, out, err);
  if (sub == "tag") return Tag(a, api, true, out, err);
  if (sub == "untag") return Tag(a, api, false, out, err);
  if (sub == "download") return Download(a, api, out, err);
  return std::string(
      sub.empty() ? "'assay models' needs a subcommand: list, show, versions, register, alias, "
                    "alias-rm, history, tag, untag or download"
                  : absl::StrCat("unknown subcommand 'models ", sub, "'"));
}

}  // namespace assay::cli
