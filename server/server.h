#pragma once
// assay-server wired together: PostgreSQL pool and migrations, the HTTP API and webhooks,
// the gRPC agent service, the planner and the dispatcher. main.cpp only parses flags.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace assay {

// Why 32: a token an operator made up is guessable; 32 characters of `openssl rand -hex 16`
// is not, and the limit makes a short one an error at start instead of a risk in production.
inline constexpr size_t kMinAdminTokenLength = 32;

struct ServerOptions {
  std::string http_listen = "127.0.0.1:8080";
  std::string grpc_listen = "127.0.0.1:9090";
  std::string database_url;
  std::string data_dir;
  std::string admin_token;  // at least kMinAdminTokenLength characters
  std::string agent_token;
  // Agent access (issue 8). Agents enroll and present their own credentials; the shared
  // agent_token is accepted only with allow_shared_agent_token (trusted networks). gRPC is
  // TLS unless grpc_insecure: the operator's tls_cert/tls_key, or a CA and certificate created
  // under data_dir/tls (server/agents/server_tls.h) naming tls_hostnames too. tls_client_ca:
  // agents must also present a client certificate signed by it (mutual TLS).
  bool allow_shared_agent_token = false;
  bool grpc_insecure = false;
  std::string tls_cert, tls_key, tls_client_ca;
  std::vector<std::string> tls_hostnames;
  absl::Duration lease = absl::Seconds(25);
  absl::Duration reconnect_grace = absl::Seconds(5);
  absl::Duration heartbeat_interval = absl::Seconds(5);
  absl::Duration sweep_interval = absl::Seconds(1);
  absl::Duration schedule_interval = absl::Seconds(15);  // the schedule loop's polling interval
  int planner_workers = 4;                               // repositories fetched and planned at once
  // How long POST /api/v1/repos/{id}/pipelines waits for its plan before answering 503.
  absl::Duration manual_wait = absl::Seconds(20);
  size_t body_limit = 25 * 1024 * 1024;
  // HTTP hardening (http::ServerOptions): the total time a request body may take, open
  // connections, requests waiting for a handler thread.
  absl::Duration http_body_timeout = absl::Seconds(60);
  int http_max_connections = 1024;
  int http_max_queued = 256;
  // Non-empty: GET /metrics requires "Authorization: Bearer <metrics_token>".
  std::string metrics_token;
  // Failed authentications allowed per client address per minute before 429.
  int auth_failures_per_minute = 20;
  // Users and access (issue 11): see ApiDeps.
  bool anonymous_read = false;
  absl::Duration session_ttl = absl::Hours(12);
  bool secure_cookies = true;
  int password_log2_n = 15;  // scrypt cost; lower only in tests
  // The dashboard's built files (web/dist); empty: web::DefaultWebDir().
  std::string web_dir;
  // A signed webhook body seen again for the same repository within this window is a
  // duplicate whatever its delivery id (zero: off).
  absl::Duration webhook_dedupe_window = absl::Hours(24);
  int db_pool_size = 8;
  // The pool's bounds (store::DbOptions): waiting for a free connection, connecting, and
  // PostgreSQL's statement_timeout (zero: none). Values the database URL sets itself win.
  absl::Duration db_acquire_timeout = absl::Seconds(10);
  absl::Duration db_connect_timeout = absl::Seconds(10);
  absl::Duration db_statement_timeout = absl::Seconds(60);
  // Commit statuses: the server's address as forges' users reach it, for target_url (empty:
  // none); a PEM file of extra CAs trusted for https forges; attempts and first backoff.
  std::string public_url;
  std::string commit_status_ca_file;
  int commit_status_attempts = 6;
  absl::Duration commit_status_backoff = absl::Seconds(1);
  // Log bytes stored per job attempt; past it a truncation marker (--job-log-limit-mb).
  int64_t job_log_limit_bytes = int64_t{100} << 20;
  // Clients following live logs at once (--log-followers); more get 503.
  int log_followers = 64;
  // Issue 8: file:// and absolute-path clone URLs are accepted (and fetched) only with
  // allow_local_repos; forge API hosts that resolve to non-public addresses, and plain http://
  // to them, only when allow_private_hosts (an AddressPolicy spec: hosts, CIDRs or "*") lists
  // them.
  bool allow_local_repos = false;
  std::string allow_private_hosts;
  // Artifacts (issue 9, docs/artifacts.md): where chunks live — "dir" (DATA_DIR/artifacts) or
  // "s3" (an S3-compatible bucket; keys are secret options); how long artifacts live when the
  // job's file says nothing; the sweeper's interval.
  std::string artifact_store = "dir";
  std::string s3_endpoint, s3_bucket, s3_region = "us-east-1", s3_access_key, s3_secret_key;
  absl::Duration artifact_expire = absl::Hours(24 * 30);
  absl::Duration artifact_sweep_interval = absl::Minutes(5);
  // Issue 12: the directory of programs environments may name as command targets and job
  // metrics (docs/deployments.md "Deploy hooks"); empty: none.
  std::string deploy_hooks_dir;
  // Issue 12: the Kubernetes API server of kubernetes targets, its token file and CA.
  std::string kubernetes_api, kubernetes_token_file, kubernetes_ca_file;
  // Issue 12: traces of finished pipelines and deployments to an OTLP/HTTP collector
  // (server/trace/otlp_exporter.h); empty endpoint: none. Headers "K=V,..." (a secret).
  std::string otlp_endpoint, otlp_headers;
  absl::Duration otlp_interval = absl::Seconds(5);
  // Issue 9, caches (docs/caches.md): entries unused this long are deleted by the sweeper.
  absl::Duration cache_retention = absl::Hours(7 * 24);
};

class AssayServer {
 public:
  explicit AssayServer(ServerOptions opts);
  ~AssayServer();
  // Connects to PostgreSQL, applies migrations, opens both ports and starts working.
  absl::Status Start();
  void Stop();
  int http_port() const;
  int grpc_port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads the 32-byte key that seals secrets at rest from `path`, creating it (mode 0600)
// with random bytes when it does not exist.
absl::StatusOr<std::string> LoadOrCreateSecretKey(const std::string& path);

}  // namespace assay
