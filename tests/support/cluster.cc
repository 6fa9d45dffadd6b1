#include "tests/support/cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <pqxx/pqxx>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"

namespace assay::testing {
namespace {

namespace json = boost::json;

constexpr absl::Duration kPoll = absl::Milliseconds(20);

// Environment variables the children do not inherit. Why: the binaries read ASSAY_CONFIG and
// ASSAY_<FLAG>; a developer's settings must not leak into a test's server or agents.
const std::vector<std::string>& DroppedEnv() {
  static const auto* prefixes = new std::vector<std::string>{"ASSAY_"};
  return *prefixes;
}

// Secrets reach the binaries through the environment, never argv (issue 8: any local user,
// and any job, can read /proc/*/cmdline).
// The secrets go in the environment (the binaries refuse them as flags); the shared agent token
// only when the cluster's agents use it (a server given one without the opt-in refuses to
// start).
std::vector<std::pair<std::string, std::string>> ServerSecrets(bool shared_agent_token) {
  std::vector<std::pair<std::string, std::string>> env = {{"ASSAY_ADMIN_TOKEN", kAdminToken}};
  if (shared_agent_token) env.emplace_back("ASSAY_AGENT_TOKEN", kAgentToken);
  return env;
}

std::string MakeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp", "/assay-e2e-XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error(absl::StrCat("mkdtemp(", tmpl, ") failed: ", strerror(errno)));
  }
  return tmpl;
}

std::optional<json::object> ParseObject(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

}  // namespace

Cluster::Cluster(ClusterOptions options)
    : options_(std::move(options)), dir_(MakeTempDir()), db_(false, options_.admin_dsn) {}

Cluster::~Cluster() {
  // Agents first: a stopping agent still reports to the server.
  for (auto it = agents_.rbegin(); it != agents_.rend(); ++it) it->second->Stop();
  for (auto& r : replicas_) r.process->Stop();
  if (server_) server_->Stop();
  if (const char* keep = std::getenv("ASSAY_E2E_KEEP"); keep == nullptr || *keep != '1') {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string Cluster::http_url() const { return absl::StrCat("http://127.0.0.1:", http_port_); }
std::string Cluster::grpc_address() const { return absl::StrCat("127.0.0.1:", grpc_port_); }

void Cluster::AddAgentAccessFlags(std::vector<std::string>& argv, bool server) const {
  if (!options_.shared_token_agents) return;
  // The token itself goes through the environment (ServerSecrets, StartAgent).
  if (server) {
    argv.insert(argv.end(), {"--allow-shared-agent-token", "--grpc-insecure"});
  } else {
    argv.push_back("--grpc-insecure");
  }
}

std::string Cluster::Binary(const char* relative) const {
  return absl::StrCat(options_.binary_dir, "/", relative);
}

absl::Status Cluster::StartServer() {
  if (server_ != nullptr && !server_->Exited()) {
    return absl::FailedPreconditionError("StartServer: the server is running already");
  }
  if (server_ != nullptr) old_servers_.push_back(std::move(server_));
  if (http_port_ != 0) return StartServerOnce();
  absl::Status last;
  for (int i = 0; i < 3; ++i) {
    http_port_ = FreePort();
    grpc_port_ = FreePort();
    if (http_port_ == 0 || grpc_port_ == 0 || http_port_ == grpc_port_) continue;
    last = StartServerOnce();
    if (last.ok()) return last;
    // The ports may have been taken in between: forget this attempt and try new ones.
    if (server_ != nullptr) {
      server_->Stop();
      old_servers_.push_back(std::move(server_));
    }
  }
  return last;
}

absl::Status Cluster::StartServerOnce() {
  // clang-format off
  std::vector<std::string> argv = {
      Binary("server/assay-server"),
      "--http-listen", absl::StrCat("127.0.0.1:", http_port_),
      "--grpc-listen", grpc_address(),
      "--database-url", db_.dsn(),
      "--data-dir", dir_ + "/server-data"};
  // clang-format on
  // The tests' repositories are local (file://); issue 8 refuses those by default.
  if (options_.allow_local_repos) argv.push_back("--allow-local-repos");
  AddAgentAccessFlags(argv, true);
  argv.insert(argv.end(), options_.server_flags.begin(), options_.server_flags.end());
  std::string log = absl::StrCat(dir_, "/server-", ++server_starts_, ".log");
  auto p = Process::Start(argv, log, ServerSecrets(options_.shared_token_agents), DroppedEnv());
  if (!p.ok()) return p.status();
  server_ = std::move(*p);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::string last;
  while (absl::Now() < deadline) {
    if (server_->Exited()) {
      return absl::UnavailableError(
          absl::StrCat("assay-server exited before it became healthy:\n", server_->LogTail()));
    }
    auto r = HttpFetch("GET", http_url() + "/healthz", {}, {}, absl::Seconds(5));
    if (r.ok() && r->status == 200) return absl::OkStatus();
    last =
        r.ok() ? absl::StrCat("HTTP ", r->status, " ", r->body) : std::string(r.status().message());
    absl::SleepFor(kPoll);
  }
  return absl::UnavailableError(
      absl::StrCat("assay-server not healthy after 30s (last: ", last, "):\n", server_->LogTail()));
}

absl::StatusOr<int> Cluster::StartReplica() {
  if (server_ == nullptr)
    return absl::FailedPreconditionError("StartReplica: start the server first");
  const int index = static_cast<int>(replicas_.size());
  const std::string data = absl::StrCat(dir_, "/replica-", index, "-data");
  std::error_code ec;
  std::filesystem::create_directories(data, ec);
  std::filesystem::copy_file(dir_ + "/server-data/secret.key", data + "/secret.key", ec);
  if (ec) return absl::InternalError(absl::StrCat("StartReplica: copying the key: ", ec.message()));
  absl::Status last = absl::UnavailableError("no free ports");
  for (int attempt = 0; attempt < 3; ++attempt) {
    Replica r;
    r.http_port = FreePort();
    r.grpc_port = FreePort();
    if (r.http_port == 0 || r.grpc_port == 0 || r.http_port == r.grpc_port) continue;
    // clang-format off
    std::vector<std::string> argv = {
        Binary("server/assay-server"),
        "--http-listen", absl::StrCat("127.0.0.1:", r.http_port),
        "--grpc-listen", absl::StrCat("127.0.0.1:", r.grpc_port),
        "--database-url", db_.dsn(),
        "--data-dir", data};
    // clang-format on
    if (options_.allow_local_repos) argv.push_back("--allow-local-repos");
    AddAgentAccessFlags(argv, true);
    argv.insert(argv.end(), options_.server_flags.begin(), options_.server_flags.end());
    auto p = Process::Start(argv, absl::StrCat(dir_, "/replica-", index, "-", attempt, ".log"),
                            ServerSecrets(options_.shared_token_agents), DroppedEnv());
    if (!p.ok()) return p.status();
    r.process = std::move(*p);
    const std::string url = absl::StrCat("http://127.0.0.1:", r.http_port);
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    bool healthy = false;
    while (absl::Now() < deadline && !r.process->Exited()) {
      auto h = HttpFetch("GET", url + "/healthz", {}, {}, absl::Seconds(5));
      if (h.ok() && h->status == 200) {
        healthy = true;
        break;
      }
      absl::SleepFor(kPoll);
    }
    if (healthy) {
      replicas_.push_back(std::move(r));
      return index;
    }
    last = absl::UnavailableError(absl::StrCat("replica not healthy:\n", r.process->LogTail()));
    r.process->Stop();
  }
  return last;
}

std::string Cluster::replica_http_url(int i) const {
  return absl::StrCat("http://127.0.0.1:", replicas_.at(i).http_port);
}

std::string Cluster::replica_grpc_address(int i) const {
  return absl::StrCat("127.0.0.1:", replicas_.at(i).grpc_port);
}

absl::Status Cluster::StopServer(int sig) {
  if (server_ == nullptr) return absl::FailedPreconditionError("StopServer: no server");
  server_->Kill(sig);
  if (!server_->Wait(absl::Seconds(30))) {
    server_->Stop(absl::ZeroDuration());
    return absl::DeadlineExceededError(
        absl::StrCat("assay-server did not exit within 30s of signal ", sig, "; killed it:\n",
                     server_->LogTail()));
  }
  return absl::OkStatus();
}

absl::StatusOr<Process*> Cluster::StartAgent(
    const std::string& name, const std::vector<std::string>& extra_flags,
    const std::vector<std::pair<std::string, std::string>>& extra_env) {
  // clang-format off
  std::vector<std::string> argv = {
      Binary("agent/assay-agent"),
      "--server", grpc_address(),
      "--name", name,
      "--slots", "1",
      "--work-dir", absl::StrCat(dir_, "/agent-", name),
      "--kill-grace", options_.kill_grace};
  // clang-format on
  if (options_.allow_local_repos) argv.push_back("--allow-local-repos");
  // Why root by default: the existing tests' steps write into dir(), which only root can.
  if (geteuid() == 0) argv.insert(argv.end(), {"--job-user", "root"});
  if (!options_.executors.empty()) argv.insert(argv.end(), {"--executors", options_.executors});
  AddAgentAccessFlags(argv, false);
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  std::vector<std::pair<std::string, std::string>> env;
  if (options_.shared_token_agents) env.emplace_back("ASSAY_TOKEN", kAgentToken);
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  auto p = Process::Start(argv, absl::StrCat(dir_, "/agent-", name, ".log"), env, DroppedEnv());
  if (!p.ok()) return p.status();
  agents_.emplace_back(name, std::move(*p));
  return agents_.back().second.get();
}

absl::Status Cluster::WaitForAgents(int n) {
  return WaitUntil(absl::StrCat(n, " connected agent(s) in /healthz"), [&](std::string& seen) {
    auto r = Fetch("GET", "/healthz");
    if (!r.ok()) {
      seen = std::string(r.status().message());
      return false;
    }
    seen = absl::StrCat("HTTP ", r->status, " ", r->body);
    auto o = ParseObject(r->body);
    const json::value* agents = o ? o->if_contains("agents") : nullptr;
    return r->status == 200 && agents != nullptr && agents->is_int64() && agents->as_int64() == n;
  });
}

absl::StatusOr<HttpClientResponse> Cluster::Fetch(
    std::string_view method, std::string_view path,
    const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body) {
  return HttpFetch(method, http_url() + std::string(path), headers, body, absl::Seconds(30));
}

absl::StatusOr<HttpClientResponse> Cluster::Api(std::string_view method, std::string_view path,
                                                std::string_view body) {
  return Fetch(method, path, {{"Authorization", absl::StrCat("Bearer ", kAdminToken)}}, body);
}

absl::StatusOr<json::object> Cluster::ApiObject(std::string_view method, std::string_view path,
                                                std::string_view body) {
  auto r = Api(method, path, body);
  if (!r.ok()) return r.status();
  auto o = ParseObject(r->body);
  if (r->status < 200 || r->status > 299 || !o) {
    return absl::InternalError(absl::StrCat(std::string(method), " ", std::string(path), ": HTTP ",
                                            r->status, " ", r->body));
  }
  return std::move(*o);
}

absl::Status Cluster::AddRepo(const std::string& name, const std::string& clone_url,
                              const std::string& webhook_secret) {
  json::object body{{"name", name}, {"clone_url", clone_url}, {"webhook_secret", webhook_secret}};
  auto r = Api("POST", "/api/v1/repos", json::serialize(body));
  if (!r.ok()) return r.status();
  if (r->status != 201) {
    return absl::InternalError(absl::StrCat("POST /api/v1/repos: HTTP ", r->status, " ", r->body));
  }
  return absl::OkStatus();
}

std::string Cluster::PushPayload(const std::string& clone_url, const std::string& full_name,
                                 const std::string& after_sha, const std::string& ref) {
  json::object o{{"ref", ref},
                 {"before", std::string(40, '0')},
                 {"after", after_sha},
                 {"repository", json::object{{"clone_url", clone_url}, {"full_name", full_name}}}};
  return json::serialize(o);
}

std::string Cluster::GithubSignature(std::string_view secret, std::string_view body) {
  return "sha256=" + HexEncode(HmacSha256(secret, body));
}

absl::StatusOr<HttpClientResponse> Cluster::PostGithub(std::string_view body,
                                                       std::string_view delivery,
                                                       const std::optional<std::string>& signature,
                                                       std::string_view event) {
  std::vector<std::pair<std::string, std::string>> headers = {
      {"X-GitHub-Event", std::string(event)}, {"X-GitHub-Delivery", std::string(delivery)}};
  if (signature) headers.emplace_back("X-Hub-Signature-256", *signature);
  return Fetch("POST", "/hooks/github", headers, body);
}

absl::StatusOr<int64_t> Cluster::Push(const std::string& body, const std::string& delivery,
                                      const std::string& secret) {
  auto r = PostGithub(body, delivery, GithubSignature(secret, body));
  if (!r.ok()) return r.status();
  auto o = ParseObject(r->body);
  if (r->status != 202 || !o || JsonString(*o, "status") != "queued" ||
      !o->if_contains("delivery") || !o->at("delivery").is_int64()) {
    return absl::InternalError(absl::StrCat("POST /hooks/github: expected 202 queued, got HTTP ",
                                            r->status, " ", r->body));
  }
  return o->at("delivery").as_int64();
}

absl::Status Cluster::WaitUntil(std::string_view what,
                                const std::function<bool(std::string&)>& done,
                                absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string seen;
  while (true) {
    if (done(seen)) return absl::OkStatus();
    if (absl::Now() >= deadline) break;
    absl::SleepFor(kPoll);
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "timed out after ", absl::FormatDuration(timeout), " waiting for ", std::string(what),
      "\nlast seen: ", seen.empty() ? "(nothing)" : seen, "\n", LogTails()));
}

absl::StatusOr<int64_t> Cluster::WaitForPipelineOf(int64_t delivery_id) {
  int64_t id = 0;
  absl::Status s =
      WaitUntil(absl::StrCat("the pipeline of delivery ", delivery_id), [&](std::string& seen) {
        auto rows =
            Query(absl::StrCat("SELECT id FROM pipelines WHERE delivery_id = ", delivery_id));
        if (!rows.ok()) {
          seen = std::string(rows.status().message());
          return false;
        }
        if (rows->empty() || !(*rows)[0][0]) {
          seen = "no pipeline row yet";
          return false;
        }
        id = std::stoll(*(*rows)[0][0]);
        return true;
      });
  if (!s.ok()) return s;
  return id;
}

absl::StatusOr<json::object> Cluster::WaitForPipelineDone(int64_t pipeline_id,
                                                          absl::Duration timeout) {
  json::object out;
  absl::Status s = WaitUntil(
      absl::StrCat("pipeline ", pipeline_id, " to finish"),
      [&](std::string& seen) {
        auto p = ApiObject("GET", absl::StrCat("/api/v1/pipelines/", pipeline_id));
        if (!p.ok()) {
          seen = std::string(p.status().message());
          return false;
        }
        seen = json::serialize(*p);
        if (JsonString(*p, "state") == "running") return false;
        out = std::move(*p);
        return true;
      },
      timeout);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<json::object> Cluster::WaitForJobState(int64_t pipeline_id, const std::string& job,
                                                      const std::string& state) {
  json::object out;
  absl::Status s =
      WaitUntil(absl::StrCat("job '", job, "' of pipeline ", pipeline_id, " to be ", state),
                [&](std::string& seen) {
                  auto p = ApiObject("GET", absl::StrCat("/api/v1/pipelines/", pipeline_id));
                  if (!p.ok()) {
                    seen = std::string(p.status().message());
                    return false;
                  }
                  seen = json::serialize(*p);
                  const json::object* j = FindJob(*p, job);
                  if (j == nullptr || JsonString(*j, "state") != state) return false;
                  out = std::move(*p);
                  return true;
                });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::string> Cluster::JobLog(int64_t job_id) {
  auto r = Api("GET", absl::StrCat("/api/v1/jobs/", job_id, "/log"));
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return absl::InternalError(
        absl::StrCat("GET /api/v1/jobs/", job_id, "/log: HTTP ", r->status, " ", r->body));
  }
  return r->body;
}

absl::StatusOr<std::vector<std::vector<std::optional<std::string>>>> Cluster::Query(
    const std::string& sql) {
  try {
    pqxx::connection c(db_.dsn());
    pqxx::nontransaction tx(c);
    pqxx::result res = tx.exec(sql);
    std::vector<std::vector<std::optional<std::string>>> rows;
    for (const auto& row : res) {
      std::vector<std::optional<std::string>> values;
      for (const auto& field : row) {
        values.push_back(field.is_null() ? std::nullopt
                                         : std::optional<std::string>(field.c_str()));
      }
      rows.push_back(std::move(values));
    }
    return rows;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("SQL failed: ", sql, ": ", e.what()));
  }
}

absl::StatusOr<int64_t> Cluster::QueryInt(const std::string& sql) {
  auto rows = Query(sql);
  if (!rows.ok()) return rows.status();
  if (rows->empty() || (*rows)[0].empty() || !(*rows)[0][0]) {
    return absl::InternalError(absl::StrCat("SQL returned no value: ", sql));
  }
  return std::stoll(*(*rows)[0][0]);
}

absl::StatusOr<CommandResult> Cluster::RunCli(const std::vector<std::string>& args,
                                              const std::string& cwd, std::string_view stdin_data) {
  std::vector<std::string> argv = {Binary("cli/assay"), "--server", http_url()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, cwd.empty() ? dir_ : cwd, {{"ASSAY_TOKEN", kAdminToken}}, stdin_data,
                    absl::Seconds(60));
}

std::string Cluster::LogTails() const {
  std::string out;
  for (const auto& s : old_servers_) {
    absl::StrAppend(&out, "--- ", s->log_path(), " (tail) ---\n", s->LogTail(), "\n");
  }
  if (server_) {
    absl::StrAppend(&out, "--- ", server_->log_path(), " (tail) ---\n", server_->LogTail(), "\n");
  }
  for (const auto& r : replicas_) {
    absl::StrAppend(&out, "--- ", r.process->log_path(), " (tail) ---\n", r.process->LogTail(),
                    "\n");
  }
  for (const auto& [name, p] : agents_) {
    absl::StrAppend(&out, "--- ", p->log_path(), " (tail) ---\n", p->LogTail(), "\n");
  }
  return out;
}

const json::object* FindJob(const json::object& pipeline, std::string_view name) {
  const json::value* jobs = pipeline.if_contains("jobs");
  if (jobs == nullptr || !jobs->is_array()) return nullptr;
  for (const json::value& j : jobs->as_array()) {
    if (j.is_object() && JsonString(j.as_object(), "name") == name) return &j.as_object();
  }
  return nullptr;
}

std::string JsonString(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return "";
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_int64()) return std::to_string(v->as_int64());
  if (v->is_uint64()) return std::to_string(v->as_uint64());
  return "";
}

}  // namespace assay::testing
