#include "cli/api_commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/table.h"

namespace assay::cli {
namespace {

namespace json = boost::json;

const json::object* AsObject(const json::value* value) {
  return value != nullptr && value->is_object() ? &value->as_object() : nullptr;
}

// The array at `key` of an object, or the value itself when it is an array (so both
// {"pipelines":[...]} and [...] are understood). Reports and returns null otherwise.
const json::array* ListIn(const json::value& value, std::string_view key, std::ostream& err) {
  if (value.is_array()) return &value.as_array();
  const json::object* object = AsObject(&value);
  const json::value* list = object != nullptr ? object->if_contains(key) : nullptr;
  if (list == nullptr || !list->is_array()) {
    err << "assay: unexpected response from the server: no '" << key << "' list\n";
    return nullptr;
  }
  return &list->as_array();
}

std::string Short(std::string text, size_t size) {
  if (text.size() > size) text.resize(size);
  return text;
}

std::string FirstLine(std::string text) {
  const size_t end = text.find_first_of("\r\n");
  if (end != std::string::npos) text.resize(end);
  return text;
}

// The id of the repository named `repo` (or, when none has that name and `repo` is a number,
// that id), through GET /api/v1/repos. Reports and returns nullopt when there is none.
std::optional<std::string> ResolveRepo(const ApiClient& api, const std::string& repo,
                                       std::ostream& err) {
  std::optional<json::value> reply = api.CallJson("GET", "/api/v1/repos", "", err);
  if (!reply) return std::nullopt;
  const json::array* repos = ListIn(*reply, "repos", err);
  if (repos == nullptr) return std::nullopt;
  for (const json::value& item : *repos) {
    const json::object* r = AsObject(&item);
    if (Field(r, "name") == repo) return Field(r, "id");
  }
  for (const json::value& item : *repos) {
    const json::object* r = AsObject(&item);
    if (Field(r, "id") == repo) return repo;
  }
  err << "assay: no repository named '" << repo << "'\n";
  return std::nullopt;
}

}  // namespace

int RepoSet(const ApiClient& api, const RepoSetOptions& options, std::ostream& out,
            std::ostream& err) {
  std::optional<std::string> id = ResolveRepo(api, options.repo, err);
  if (!id) return kExitFailure;
  json::object body;
  if (options.default_branch) body["default_branch"] = *options.default_branch;
  if (options.cancel_superseded) body["cancel_superseded"] = *options.cancel_superseded;
  std::optional<json::value> reply = api.CallJson(
      "PATCH", absl::StrCat("/api/v1/repos/", UrlEscape(*id)), json::serialize(body), err);
  if (!reply) return kExitFailure;
  const json::object* repo = AsObject(&*reply);
  out << "repo " << Field(repo, "name") << ": default_branch=" << Field(repo, "default_branch")
      << " cancel_superseded=" << Field(repo, "cancel_superseded") << "\n";
  return kExitOk;
}

int RunPipeline(const ApiClient& api, const RunOptions& options, std::ostream& out,
                std::ostream& err) {
  std::optional<std::string> id = ResolveRepo(api, options.repo, err);
  if (!id) return kExitFailure;
  json::object body;
  if (options.branch) body["branch"] = *options.branch;
  json::object inputs;
  for (const auto& [k, v] : options.inputs) inputs[k] = v;
  body["inputs"] = std::move(inputs);
  std::optional<json::value> reply =
      api.CallJson("POST", absl::StrCat("/api/v1/repos/", UrlEscape(*id), "/pipelines"),
                   json::serialize(body), err);
  if (!reply) return kExitFailure;
  out << Field(AsObject(&*reply), "id") << "\n";
  return kExitOk;
}

int RepoAdd(const ApiClient& api, const RepoAddOptions& options, std::ostream& out,
            std::ostream& err) {
  json::object body;
  body["name"] = options.name;
  body["clone_url"] = options.clone_url;
  if (options.provider) body["provider"] = *options.provider;
  if (options.webhook_secret) body["webhook_secret"] = *options.webhook_secret;
  if (options.html_url) body["html_url"] = *options.html_url;
  std::optional<json::value> reply =
      api.CallJson("POST", "/api/v1/repos", json::serialize(body), err);
  if (!reply) return kExitFailure;
  // Accept the repo itself or {"repo": {...}}.
  const json::object* repo = AsObject(&*reply);
  if (repo != nullptr && AsObject(repo->if_contains("repo")) != nullptr) {
    repo = AsObject(repo->if_contains("repo"));
  }
  out << "created repo " << Field(repo, "name") << " (id " << Field(repo, "id") << ")\n";
  return kExitOk;
}

int RepoCommitStatus(const ApiClient& api, const RepoCommitStatusOptions& options,
                     std::ostream& out, std::ostream& err) {
  std::optional<json::value> reply = api.CallJson("GET", "/api/v1/repos", "", err);
  if (!reply) return kExitFailure;
  const json::array* repos = ListIn(*reply, "repos", err);
  if (repos == nullptr) return kExitFailure;
  std::string id;
  for (const json::value& item : *repos) {
    const json::object* repo = AsObject(&item);
    if (repo != nullptr && Field(repo, "name") == options.name) id = Field(repo, "id");
  }
  if (id.empty()) {
    err << "assay: no repository named '" << options.name << "'\n";
    return kExitFailure;
  }
  const std::string path = absl::StrCat("/api/v1/repos/", UrlEscape(id), "/commit-status");
  if (options.off) {
    if (!api.CallJson("DELETE", path, "", err)) return kExitFailure;
    out << "commit statuses for " << options.name << ": off\n";
    return kExitOk;
  }
  json::object body;
  body["api_url"] = options.api_url;
  body["token"] = options.token;
  if (options.repository) body["repository"] = *options.repository;
  if (options.context) body["context"] = *options.context;
  std::optional<json::value> updated = api.CallJson("PUT", path, json::serialize(body), err);
  if (!updated) return kExitFailure;
  const json::object* repo = AsObject(&*updated);
  const json::object* status =
      repo != nullptr ? AsObject(repo->if_contains("commit_status")) : nullptr;
  out << "commit statuses for " << options.name << ": on (" << Field(status, "api_url")
      << ", repository " << Field(status, "repository") << ", context " << Field(status, "context")
      << ")\n";
  return kExitOk;
}

int RepoList(const ApiClient& api, std::ostream& out, std::ostream& err) {
  std::optional<json::value> reply = api.CallJson("GET", "/api/v1/repos", "", err);
  if (!reply) return kExitFailure;
  const json::array* repos = ListIn(*reply, "repos", err);
  if (repos == nullptr) return kExitFailure;
  if (repos->empty()) {
    out << "no repos\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const json::value& item : *repos) {
    const json::object* repo = AsObject(&item);
    rows.push_back({Field(repo, "id"), Field(repo, "name"), Field(repo, "provider"),
                    Field(repo, "clone_url")});
  }
  WriteTable(out, {"ID", "NAME", "PROVIDER", "CLONE_URL"}, rows);
  return kExitOk;
}

int ListPipelines(const ApiClient& api, const std::optional<std::string>& repo,
                  std::optional<int> limit, std::ostream& out, std::ostream& err) {
  std::string path = "/api/v1/pipelines";
  char separator = '?';
  if (repo) {
    absl::StrAppend(&path, std::string(1, separator), "repo=", UrlEscape(*repo));
    separator = '&';
  }
  if (limit) absl::StrAppend(&path, std::string(1, separator), "limit=", *limit);
  std::optional<json::value> reply = api.CallJson("GET", path, "", err);
  if (!reply) return kExitFailure;
  const json::array* pipelines = ListIn(*reply, "pipelines", err);
  if (pipelines == nullptr) return kExitFailure;
  if (pipelines->empty()) {
    out << "no pipelines\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const json::value& item : *pipelines) {
    const json::object* p = AsObject(&item);
    rows.push_back({Field(p, "id"), Field(p, "state"), Field(p, "repo"), Field(p, "ref"),
                    Short(Field(p, "commit_sha"), 12), Field(p, "created_at")});
  }
  WriteTable(out, {"ID", "STATE", "REPO", "REF", "COMMIT", "CREATED"}, rows);
  return kExitOk;
}

int ShowPipeline(const ApiClient& api, std::string_view id, std::ostream& out, std::ostream& err) {
  std::optional<json::value> reply =
      api.CallJson("GET", absl::StrCat("/api/v1/pipelines/", UrlEscape(id)), "", err);
  if (!reply) return kExitFailure;
  // Accept the pipeline at the top level or under "pipeline"; jobs beside it or inside.
  const json::object* top = AsObject(&*reply);
  if (top == nullptr) {
    err << "assay: unexpected response from the server: not an object\n";
    return kExitFailure;
  }
  const json::object* pipeline = top;
  if (AsObject(top->if_contains("pipeline")) != nullptr) {
    pipeline = AsObject(top->if_contains("pipeline"));
  }
  const json::value* jobs_value = top->if_contains("jobs");
  if (jobs_value == nullptr) jobs_value = pipeline->if_contains("jobs");
  out << "pipeline " << Field(pipeline, "id") << " " << Field(pipeline, "state")
      << "  repo=" << Field(pipeline, "repo") << " ref=" << Field(pipeline, "ref")
      << " commit=" << Short(Field(pipeline, "commit_sha"), 12)
      << " created=" << Field(pipeline, "created_at")
      << " finished=" << Field(pipeline, "finished_at") << "\n";
  const std::string message = FirstLine(Field(pipeline, "message"));
  if (message != "-" && !message.empty()) out << "message: " << message << "\n";
  if (jobs_value == nullptr || !jobs_value->is_array() || jobs_value->as_array().empty()) {
    out << "no jobs\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const json::value& item : jobs_value->as_array()) {
    const json::object* job = AsObject(&item);
    rows.push_back({Field(job, "id"), Field(job, "name"), Field(job, "state"),
                    Field(job, "attempt"), Field(job, "agent"), Field(job, "started_at"),
                    Field(job, "finished_at"), Field(job, "exit_code")});
  }
  out << "\n";
  WriteTable(out, {"ID", "NAME", "STATE", "ATTEMPT", "AGENT", "STARTED", "FINISHED", "EXIT"}, rows);
  return kExitOk;
}

int ShowLog(const ApiClient& api, std::string_view job_id, std::ostream& out, std::ostream& err,
            bool timestamps) {
  std::optional<std::string> body = api.Call(
      "GET",
      absl::StrCat("/api/v1/jobs/", UrlEscape(job_id), "/log", timestamps ? "?timestamps=1" : ""),
      "", "text/plain", err);
  if (!body) return kExitFailure;
  out.write(body->data(), static_cast<std::streamsize>(body->size()));
  out.flush();
  return kExitOk;
}

int Artifacts(const ApiClient& api, std::string_view job_id, const std::string& path,
              const std::string& output, std::ostream& out, std::ostream& err) {
  const std::string base = absl::StrCat("/api/v1/jobs/", UrlEscape(job_id), "/artifacts");
  if (path.empty()) {
    std::optional<boost::json::value> v = api.CallJson("GET", base, "", err);
    if (!v) return kExitFailure;
    const boost::json::object* o = v->if_object();
    const boost::json::value* files = o == nullptr ? nullptr : o->if_contains("files");
    if (files == nullptr || !files->is_array()) {
      err << "assay: unexpected response from the server\n";
      return kExitFailure;
    }
    for (const auto& f : files->as_array()) {
      const boost::json::object& fo = f.as_object();
      out << fo.at("mode").as_string().c_str() << " " << fo.at("size").to_number<int64_t>() << " "
          << fo.at("path").as_string().c_str() << "\n";
    }
    return kExitOk;
  }
  // Each segment escaped on its own: the '/' between them stays a path separator.
  std::string escaped;
  for (absl::string_view seg : absl::StrSplit(path, '/')) {
    absl::StrAppend(&escaped, "/", UrlEscape(std::string_view(seg.data(), seg.size())));
  }
  if (output.empty()) {
    const bool ok = api.Download(
        base + escaped,
        [&out](std::string_view piece) {
          out.write(piece.data(), static_cast<std::streamsize>(piece.size()));
          return static_cast<bool>(out);
        },
        err);
    out.flush();
    return ok ? kExitOk : kExitFailure;
  }
  // Why OUTPUT.part and a rename: the file is never held in memory, and a download that fails
  // half way leaves no OUTPUT behind (nor a stale one replaced by half a file).
  const std::string part = output + ".part";
  const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    err << "assay: cannot write " << part << ": " << std::strerror(errno) << "\n";
    return kExitFailure;
  }
  std::string write_error;
  const bool ok = api.Download(
      base + escaped,
      [&](std::string_view piece) {
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
  if (ok && ::fsync(fd) != 0) write_error = std::strerror(errno);
  if (::close(fd) != 0 && write_error.empty()) write_error = std::strerror(errno);
  if (ok && write_error.empty() && ::rename(part.c_str(), output.c_str()) == 0) return kExitOk;
  if (ok && write_error.empty()) write_error = std::strerror(errno);
  ::unlink(part.c_str());
  if (!write_error.empty()) err << "assay: cannot write " << output << ": " << write_error << "\n";
  return kExitFailure;
}

int CancelPipeline(const ApiClient& api, std::string_view id, std::ostream& out,
                   std::ostream& err) {
  std::optional<std::string> body =
      api.Call("POST", absl::StrCat("/api/v1/pipelines/", UrlEscape(id), "/cancel"), "",
               "application/json", err);
  if (!body) return kExitFailure;
  out << "cancel requested for pipeline " << id << "\n";
  return kExitOk;
}

int CancelJob(const ApiClient& api, std::string_view id, std::ostream& out, std::ostream& err) {
  std::optional<std::string> body = api.Call(
      "POST", absl::StrCat("/api/v1/jobs/", UrlEscape(id), "/cancel"), "", "application/json", err);
  if (!body) return kExitFailure;
  out << "cancel requested for job " << id << "\n";
  return kExitOk;
}

int RetryJob(const ApiClient& api, std::string_view id, std::ostream& out, std::ostream& err) {
  std::optional<json::value> reply =
      api.CallJson("POST", absl::StrCat("/api/v1/jobs/", UrlEscape(id), "/retry"), "", err);
  if (!reply) return kExitFailure;
  out << "retried job " << id << " (" << Field(AsObject(&*reply), "name") << ")\n";
  return kExitOk;
}

int RetryPipeline(const ApiClient& api, std::string_view id, std::ostream& out, std::ostream& err) {
  std::optional<json::value> reply =
      api.CallJson("POST", absl::StrCat("/api/v1/pipelines/", UrlEscape(id), "/retry"), "", err);
  if (!reply) return kExitFailure;
  out << "retried pipeline " << id << "\n";
  return kExitOk;
}

int RerunPipeline(const ApiClient& api, std::string_view id, std::ostream& out, std::ostream& err) {
  std::optional<json::value> reply =
      api.CallJson("POST", absl::StrCat("/api/v1/pipelines/", UrlEscape(id), "/rerun"), "", err);
  if (!reply) return kExitFailure;
  const json::object* p = AsObject(&*reply);
  out << "pipeline " << Field(p, "id") << " re-runs pipeline " << id << "\n";
  return kExitOk;
}

int ListQueue(const ApiClient& api, std::optional<int> limit, std::ostream& out,
              std::ostream& err) {
  std::string path = "/api/v1/queue";
  if (limit) absl::StrAppend(&path, "?limit=", *limit);
  std::optional<json::value> reply = api.CallJson("GET", path, "", err);
  if (!reply) return kExitFailure;
  const json::array* jobs = ListIn(*reply, "jobs", err);
  if (jobs == nullptr) return kExitFailure;
  if (jobs->empty()) {
    out << "queue is empty\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const json::value& item : *jobs) {
    const json::object* j = AsObject(&item);
    rows.push_back({Field(j, "id"), Field(j, "state"), Field(j, "priority"), Field(j, "repo"),
                    Field(j, "pipeline_id"), Field(j, "name"), Field(j, "waiting")});
  }
  WriteTable(out, {"JOB", "STATE", "PRIO", "REPO", "PIPELINE", "NAME", "WAITING"}, rows);
  return kExitOk;
}

}  // namespace assay::cli
