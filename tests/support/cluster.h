#pragma once
// One end-to-end test's world: a temp dir, a fresh PostgreSQL database, a real assay-server on free
// 127.0.0.1 ports and any number of real assay-agent processes, plus helpers to drive them (REST
// API, signed GitHub webhooks, the `assay` CLI, direct SQL for assertions) and bounded waits whose
// failure message carries the tails of every process's log.
//
// Not thread-safe: use a Cluster from the test's main thread (its processes die with that thread,
// see process.h). Nothing here uses Catch2; failures come back as absl::Status so the test decides
// how to report them.

#include <boost/json.hpp>
#include <csignal>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/net/http_client.h"
#include "common/proc/subprocess.h"
#include "tests/support/process.h"
#include "tests/support/test_db.h"

namespace assay::testing {

// At least 32 characters: the server refuses shorter admin tokens.
inline constexpr char kAdminToken[] = "e2e-admin-token-0123456789abcdef0123";
inline constexpr char kAgentToken[] = "e2e-agent-token-4567";

struct ClusterOptions {
  // The build directory holding server/assay-server, agent/assay-agent and cli/assay (tests pass
  // their ASSAY_BINARY_DIR).
  std::string binary_dir;
  // Extra assay-server flags, e.g. {"--lease", "2s", "--heartbeat-interval", "300ms"}.
  std::vector<std::string> server_flags;
  // Whether the server and agents get --allow-local-repos (the tests' repositories are
  // file:// URLs; off to test that such URLs are refused).
  bool allow_local_repos = true;
  // Every agent's --kill-grace.
  std::string kill_grace = "1s";
  // The maintenance DSN of the PostgreSQL server to make the test database on; empty: the one
  // named by ASSAY_TEST_PG_DSN (test_db.h). The faults tier passes its own PgServer's.
  std::string admin_dsn;
  // true: the server runs with the shared agent token over plaintext gRPC
  // (--allow-shared-agent-token --grpc-insecure) and every agent gets --token and
  // --grpc-insecure, as on a trusted network. false: no shared token and TLS (the server's
  // generated CA, server_ca_path()): agents must enroll, with the flags the test gives them.
  bool shared_token_agents = true;
  // Every agent's --executors (issue 9); "host" keeps the steps on the host as before the
  // sandbox existed. A test's extra_flags may give its own (the later flag wins).
  std::string executors = "host";
};

class Cluster {
 public:
  // Creates the temp dir (mkdtemp) and an empty database (the server migrates it at start). Throws
  // std::runtime_error when either cannot be made.
  explicit Cluster(ClusterOptions options);
  // Stops the agents, then the server (SIGTERM, then SIGKILL), drops the database and removes the
  // temp dir (kept when ASSAY_E2E_KEEP=1, for debugging).
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& dsn() const { return db_.dsn(); }
  std::string http_url() const;      // http://127.0.0.1:PORT
  std::string grpc_address() const;  // 127.0.0.1:PORT
  // The CA the server created for its gRPC TLS certificate (after the first StartServer).
  std::string server_ca_path() const { return dir_ + "/server-data/tls/ca.pem"; }

  // Starts assay-server and waits (bounded) until GET /healthz answers 200. The first start picks
  // free ports (retrying with new ones if the server cannot bind); later starts (a restart after
  // StopServer) reuse the same ports, database and data dir. Each start logs to its own file,
  // server-N.log. kFailedPrecondition if a server is running already; kUnavailable (with the log
  // tail) if it exits or never becomes healthy.
  absl::Status StartServer();
  // Flags for the next StartServer, after the options' (for paths under dir()).
  void AddServerFlags(const std::vector<std::string>& flags) {
    options_.server_flags.insert(options_.server_flags.end(), flags.begin(), flags.end());
  }
  // Sends `sig` to the server and waits (bounded) for it to exit; SIGKILL if it does not.
  absl::Status StopServer(int sig = SIGTERM);
  Process* server() { return server_.get(); }

  // Another assay-server on the same database (a replica): new free ports, its own data dir
  // with a copy of the first server's secret key (replicas must share it), the same flags.
  // Waits until it is healthy. Returns its index (0 for the first replica).
  absl::StatusOr<int> StartReplica();
  std::string replica_http_url(int i) const;
  std::string replica_grpc_address(int i) const;

  // Starts `assay-agent --name NAME` against this server with its own work dir under dir(), 1 slot
  // unless `extra_flags` says otherwise (later flags win). The token comes in ASSAY_TOKEN, never
  // argv; `extra_env` is added to its environment. Run as root, the agent gets the explicit
  // `--job-user root` (tests that check the job user pass their own, which wins). Does not wait
  // for it to connect: see WaitForAgents.
  absl::StatusOr<Process*> StartAgent(
      const std::string& name, const std::vector<std::string>& extra_flags = {},
      const std::vector<std::pair<std::string, std::string>>& extra_env = {});
  // Waits until /healthz reports exactly `n` connected agents.
  absl::Status WaitForAgents(int n);

  // HTTP against the server; `path` starts with '/'. A non-2xx status is not an error here.
  absl::StatusOr<HttpClientResponse> Fetch(
      std::string_view method, std::string_view path,
      const std::vector<std::pair<std::string, std::string>>& headers = {},
      std::string_view body = {});
  // Fetch with `Authorization: Bearer <admin token>`.
  absl::StatusOr<HttpClientResponse> Api(std::string_view method, std::string_view path,
                                         std::string_view body = {});
  // Api, then: kInternal unless the status is 2xx and the body a JSON object.
  absl::StatusOr<boost::json::object> ApiObject(std::string_view method, std::string_view path,
                                                std::string_view body = {});

  // POST /api/v1/repos; kInternal unless it answers 201.
  absl::Status AddRepo(const std::string& name, const std::string& clone_url,
                       const std::string& webhook_secret);

  // A minimal GitHub push payload.
  static std::string PushPayload(const std::string& clone_url, const std::string& full_name,
                                 const std::string& after_sha,
                                 const std::string& ref = "refs/heads/main");
  // "sha256=<hex HMAC-SHA256(secret, body)>", the X-Hub-Signature-256 value.
  static std::string GithubSignature(std::string_view secret, std::string_view body);
  // POST /hooks/github with X-GitHub-Event, X-GitHub-Delivery and, when given, X-Hub-Signature-256.
  absl::StatusOr<HttpClientResponse> PostGithub(std::string_view body, std::string_view delivery,
                                                const std::optional<std::string>& signature,
                                                std::string_view event = "push");
  // Sends a correctly signed push and returns the delivery row id from the 202 {"status":"queued"}
  // answer; kInternal for any other answer.
  absl::StatusOr<int64_t> Push(const std::string& body, const std::string& delivery,
                               const std::string& secret);

  // Polls `done` every 20 ms until it returns true, up to `timeout`. `done` may describe what it
  // saw in `observed`. On timeout: kDeadlineExceeded naming `what`, the last observation and the
  // tails of the server and agent logs.
  absl::Status WaitUntil(std::string_view what, const std::function<bool(std::string&)>& done,
                         absl::Duration timeout = absl::Seconds(30));
  // The id of the pipeline planned from delivery row `delivery_id`, once it exists.
  absl::StatusOr<int64_t> WaitForPipelineOf(int64_t delivery_id);
  // GET /api/v1/pipelines/{id} once its state is no longer 'running' (waiting up to `timeout`).
  absl::StatusOr<boost::json::object> WaitForPipelineDone(
      int64_t pipeline_id, absl::Duration timeout = absl::Seconds(30));
  // GET /api/v1/pipelines/{id} once job `job` is in `state`.
  absl::StatusOr<boost::json::object> WaitForJobState(int64_t pipeline_id, const std::string& job,
                                                      const std::string& state);
  // GET /api/v1/jobs/{id}/log, the exact bytes; kInternal unless 200.
  absl::StatusOr<std::string> JobLog(int64_t job_id);

  // Runs one SQL statement on the test database (a new connection each time); every value as text,
  // nullopt for NULL. kInternal with the database's message on error.
  absl::StatusOr<std::vector<std::vector<std::optional<std::string>>>> Query(
      const std::string& sql);
  // The first column of the first row as an integer (e.g. a count).
  absl::StatusOr<int64_t> QueryInt(const std::string& sql);

  // Runs `assay --server <http_url> ARGS...` with ASSAY_TOKEN=<admin> in `cwd` (default: dir()),
  // `stdin_data` on its stdin (empty: /dev/null).
  absl::StatusOr<CommandResult> RunCli(const std::vector<std::string>& args,
                                       const std::string& cwd = "",
                                       std::string_view stdin_data = {});

  // The tails of every server and agent log, labelled, for failure messages.
  std::string LogTails() const;

 private:
  absl::Status StartServerOnce();
  // The shared-token flags of a server or agent when options_.shared_token_agents.
  void AddAgentAccessFlags(std::vector<std::string>& argv, bool server) const;
  std::string Binary(const char* relative) const;

  ClusterOptions options_;
  std::string dir_;
  TestDatabase db_;
  int http_port_ = 0;
  int grpc_port_ = 0;
  int server_starts_ = 0;
  std::unique_ptr<Process> server_;
  std::vector<std::unique_ptr<Process>> old_servers_;  // stopped ones, kept for their logs
  struct Replica {
    int http_port = 0, grpc_port = 0;
    std::unique_ptr<Process> process;
  };
  std::vector<Replica> replicas_;
  std::vector<std::pair<std::string, std::unique_ptr<Process>>> agents_;  // name, process
};

// The job named `name` in a pipeline object from the API; nullptr if there is none.
const boost::json::object* FindJob(const boost::json::object& pipeline, std::string_view name);

// The string at `key` of `o`, "" when absent or not a string; numbers are printed.
std::string JsonString(const boost::json::object& o, std::string_view key);

}  // namespace assay::testing
