// assay-server: flags → ServerOptions → AssayServer, until SIGINT/SIGTERM.
#include <algorithm>
#include <csignal>
#include <iostream>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "common/base/config.h"
#include "common/base/log.h"
#include "common/base/signals.h"
#include "server/secrets/rotate_key.h"
#include "server/server.h"

int main(int argc, char** argv) {
  // Debian's Abseil checks every lock for deadlock cycles (a debug aid); at 10,000 agent
  // streams that costs ~10 MiB and CPU. Lock order is kept by design instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (argc >= 2 && std::string_view(argv[1]) == "rotate-key") {
    // assay-server rotate-key --data-dir D --database-url U (server/secrets/rotate_key.h).
    const std::vector<assay::OptionSpec> rotate_specs = {
        {"data-dir", "", "the server's data directory (its secret keys)", true},
        {"database-url", "", "PostgreSQL connection string", true},
    };
    auto rcfg = assay::Config::Parse(argc - 1, argv + 1, rotate_specs, "assay-server rotate-key");
    if (!rcfg.ok()) {
      bool help = rcfg.status().code() == absl::StatusCode::kCancelled;
      std::cerr << (help ? "" : "assay-server rotate-key: ") << rcfg.status().message() << "\n";
      return help ? 0 : 2;
    }
    auto rotated = assay::RunRotateKey(rcfg->Get("data-dir"), rcfg->Get("database-url"));
    if (!rotated.ok()) {
      std::cerr << "assay-server rotate-key: " << rotated.status().message() << "\n";
      return 1;
    }
    std::cout << "rotated from key " << rotated->old_id << " to key " << rotated->new_id
              << ": re-sealed " << rotated->resealed << " value(s)\n";
    return 0;
  }
  using assay::DurationIn;
  using assay::IntIn;
  // Every value is checked against its rule by Config::Parse (common/base/config.h).
  const std::vector<assay::OptionSpec> specs = {
      {"http-listen", "127.0.0.1:8080", "HTTP address (API, webhooks, metrics)", false, false,
       assay::HostPort()},
      {"grpc-listen", "127.0.0.1:9090", "gRPC address for agents", false, false, assay::HostPort()},
      {"database-url", "", "PostgreSQL connection string", true},
      {"data-dir", "", "directory for repository mirrors and the secret key", true},
      {"admin-token",
       "",
       "bearer token for /api/v1 (at least 32 characters)",
       true,
       false,
       {},
       /*secret=*/true},
      {"agent-token",
       "",
       "shared token agents may present instead of their own credential; only with "
       "--allow-shared-agent-token",
       false,
       false,
       {},
       /*secret=*/true},
      // Agent access (issue 8): enrollment is the default; the shared token and plaintext gRPC
      // are opt-ins for trusted networks.
      {"allow-shared-agent-token", "",
       "accept --agent-token from any agent (trusted networks only; it lets an agent claim any "
       "unenrolled name and labels)",
       false, true},
      {"grpc-insecure", "", "serve agents plaintext gRPC (trusted networks only)", false, true},
      {"tls-cert", "",
       "PEM certificate (chain) of the agent gRPC listener (default: created under "
       "DATA_DIR/tls with its own CA)"},
      {"tls-key", "", "PEM private key of --tls-cert"},
      {"tls-client-ca", "",
       "PEM CA that agents' client certificates must be signed by (mutual TLS; default: none)"},
      {"tls-hostnames", "",
       "comma-separated extra DNS names or IPs for the generated server certificate"},
      {"lease", "25s",
       "an agent silent this long is lost (found by a sweep each second); its jobs are retried "
       "per their retry policy",
       false, false, DurationIn(absl::Seconds(1), absl::Hours(24))},
      {"reconnect-grace", "5s",
       "when an agent's stream ends, its jobs wait this long for it to reconnect (at most "
       "--lease)",
       false, false, DurationIn(absl::ZeroDuration(), absl::Hours(24))},
      {"heartbeat-interval", "5s", "how often agents send heartbeats", false, false,
       DurationIn(absl::Milliseconds(100), absl::Hours(1))},
      {"schedule-interval", "15s", "how often to look for due on.schedule entries", false, false,
       DurationIn(absl::Seconds(1), absl::Hours(24))},
      {"db-acquire-timeout", "10s",
       "a request that finds all pooled database connections in use fails after this wait", false,
       false, DurationIn(absl::Milliseconds(1), absl::Hours(1))},
      {"db-connect-timeout", "10s", "PostgreSQL connect timeout (unless the URL sets one)", false,
       false, DurationIn(absl::Seconds(1), absl::Hours(1))},
      {"db-statement-timeout", "60s",
       "PostgreSQL statement_timeout of the server's connections, 0s for none (unless the URL's "
       "options set one)",
       false, false, DurationIn(absl::ZeroDuration(), absl::Hours(24))},
      {"body-limit-mb", "25", "largest accepted HTTP request body, in MiB", false, false,
       IntIn(1, 4096)},
      {"job-log-limit-mb", "100",
       "log bytes stored per job attempt, in MiB; the rest is dropped after a truncation marker",
       false, false, IntIn(1, 1024 * 1024)},
      {"log-followers", "64",
       "clients that may follow live job logs (GET /log?follow=1) at once on this server", false,
       false, IntIn(1, 100000)},
      {"artifact-store", "dir", "where artifact chunks live: dir (DATA_DIR/artifacts) or s3", false,
       false, assay::OneOf({"dir", "s3"})},
      {"s3-endpoint", "", "S3-compatible endpoint for --artifact-store s3 (https://HOST[:PORT])"},
      {"s3-bucket", "", "bucket (empty: the endpoint names it, virtual-hosted style)"},
      {"s3-region", "us-east-1", "region the S3 requests are signed for"},
      {"s3-access-key", "", "S3 access key id", false, false, {}, /*secret=*/true},
      {"s3-secret-key", "", "S3 secret access key", false, false, {}, /*secret=*/true},
      {"artifact-expire", "720h", "how long artifacts live when the job sets no expire_in", false,
       false, DurationIn(absl::Minutes(1), absl::Hours(24 * 3650))},
      {"artifact-sweep-interval", "5m", "how often expired artifacts are deleted", false, false,
       DurationIn(absl::Seconds(1), absl::Hours(24))},
      {"cache-retention", "168h", "cache entries unused this long are deleted", false, false,
       DurationIn(absl::Minutes(1), absl::Hours(24 * 3650))},
      {"log-level", "info", "debug, info, warn or error", false, false,
       assay::OneOf({"debug", "info", "warn", "error"})},
      {"public-url", "", "this server's address as users reach it (commit status links)"},
      {"commit-status-ca-file", "", "PEM file of extra CAs trusted for https forge APIs"},
      {"commit-status-attempts", "6", "tries per commit status (5xx, 429, network errors)", false,
       false, IntIn(1, 100)},
      {"commit-status-backoff", "1s", "wait before the first commit status retry (doubles)", false,
       false, DurationIn(absl::Milliseconds(1), absl::Hours(1))},
      {"allow-local-repos", "false",
       "accept file:// and absolute-path clone URLs (single-team or test servers only: any admin "
       "can then read any repository on this host)",
       false, true},
      {"allow-private-hosts", "",
       "forge API hosts allowed to resolve to loopback, link-local or private addresses (and to "
       "use plain http): comma-separated host names, addresses and CIDR blocks, or *"},
      {"otlp-endpoint", "",
       "an OpenTelemetry collector's OTLP/HTTP traces URL (http(s)://HOST:4318/v1/traces): "
       "finished pipelines and deployments are sent there as traces; empty: none"},
      {"otlp-headers",
       "",
       "headers for the collector, KEY=VALUE,... (values percent-encoded), e.g. an API key",
       false,
       false,
       {},
       /*secret=*/true},
      {"otlp-interval", "5s", "how often finished pipelines and deployments are looked for", false,
       false, DurationIn(absl::Milliseconds(100), absl::Hours(1))},
      {"kubernetes-api", "",
       "the Kubernetes API server that environments with a kubernetes target deploy to "
       "(https://HOST:6443; in a pod: https://kubernetes.default.svc); empty: none"},
      {"kubernetes-token-file", "",
       "a file holding the bearer token for --kubernetes-api, read at each call (in a pod: "
       "/var/run/secrets/kubernetes.io/serviceaccount/token)"},
      {"kubernetes-ca-file", "",
       "the PEM CA of --kubernetes-api (in a pod: "
       "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt); empty: the system's CAs"},
      {"deploy-hooks", "",
       "a directory of programs (owned by the operator) that environments may name as command "
       "targets and job metrics (docs/deployments.md); empty: none may"},
      // HTTP hardening and webhook replays (docs/forges.md, docs/security.md).
      {"http-body-timeout", "60s",
       "a request body must arrive whole within this time of its header (one deadline, not "
       "per read)",
       false, false, DurationIn(absl::Milliseconds(100), absl::Hours(1))},
      {"http-max-connections", "1024",
       "open HTTP connections beyond this are answered 503 and closed", false, false,
       IntIn(1, 1000000)},
      {"http-handler-queue", "256",
       "HTTP requests waiting for a handler thread beyond this are answered 503 (Retry-After)",
       false, false, IntIn(1, 1000000)},
      {"metrics-token",
       "",
       "when set, GET /metrics requires 'Authorization: Bearer <token>' (secret: set "
       "ASSAY_METRICS_TOKEN, --metrics-token-file or put it in the --config file, never on the "
       "command line)",
       false,
       false,
       {},
       /*secret=*/true},
      {"auth-failures-per-minute", "20",
       "failed authentications (API, metrics) per client address per minute before 429", false,
       false, IntIn(1, 1000000)},
      // Users and access (issue 11, docs/access.md).
      {"anonymous-read", "false",
       "answer read-only API calls (and the dashboard's pages) without a credential: a public "
       "dashboard; secrets, users, tokens and the audit log stay private",
       false, true},
      {"session-ttl", "12h", "how long a dashboard login lasts", false, false,
       DurationIn(absl::Minutes(5), absl::Hours(24 * 30))},
      {"insecure-cookies", "false",
       "session cookies without Secure: only for a plain-http server reached by a host name "
       "other than localhost or 127.0.0.1 (browsers keep Secure cookies there anyway)",
       false, true},
      {"web-dir", "",
       "the dashboard's built files (web/dist); default: ../share/assay/web beside the binary, "
       "or web/dist of the source tree it was built in"},
      {"password-cost", "15",
       "scrypt cost of new password hashes, as log2(N): 15 takes 32 MiB and about 0.1 s; lower "
       "only for tests",
       false, false, IntIn(10, 20)},
      {"webhook-dedupe-window", "24h",
       "a signed webhook body seen again for the same repository within this window is a "
       "duplicate, whatever its delivery id (0s: off)",
       false, false, DurationIn(absl::ZeroDuration(), absl::Hours(24 * 30))},
  };
  auto cfg = assay::Config::Parse(argc, argv, specs, "assay-server");
  if (!cfg.ok()) {
    bool help = cfg.status().code() == absl::StatusCode::kCancelled;
    std::cerr << (help ? "" : "assay-server: ") << cfg.status().message() << "\n";
    return help ? 0 : 2;
  }
  // No child (git) inherits a secret from the environment.
  assay::UnsetSecretEnvironment(specs);
  const std::string& level = cfg->Get("log-level");  // one of the four (checked above)
  assay::SetLogLevel(level == "debug"   ? assay::LogLevel::kDebug
                     : level == "warn"  ? assay::LogLevel::kWarn
                     : level == "error" ? assay::LogLevel::kError
                                        : assay::LogLevel::kInfo);
  assay::ServerOptions o;
  o.http_listen = cfg->Get("http-listen");
  o.grpc_listen = cfg->Get("grpc-listen");
  o.database_url = cfg->Get("database-url");
  o.data_dir = cfg->Get("data-dir");
  o.admin_token = cfg->Get("admin-token");
  o.agent_token = cfg->Get("agent-token");
  o.allow_shared_agent_token = cfg->GetBool("allow-shared-agent-token");
  o.grpc_insecure = cfg->GetBool("grpc-insecure");
  o.tls_cert = cfg->Get("tls-cert");
  o.tls_key = cfg->Get("tls-key");
  o.tls_client_ca = cfg->Get("tls-client-ca");
  o.tls_hostnames = cfg->GetList("tls-hostnames");
  auto lease = cfg->GetDuration("lease");
  auto hb = cfg->GetDuration("heartbeat-interval");
  auto grace = cfg->GetDuration("reconnect-grace");
  auto limit = cfg->GetInt("body-limit-mb");
  auto schedule_interval = cfg->GetDuration("schedule-interval");
  auto cs_attempts = cfg->GetInt("commit-status-attempts");
  auto cs_backoff = cfg->GetDuration("commit-status-backoff");
  auto db_acquire = cfg->GetDuration("db-acquire-timeout");
  auto db_connect = cfg->GetDuration("db-connect-timeout");
  auto db_statement = cfg->GetDuration("db-statement-timeout");
  auto job_log_limit = cfg->GetInt("job-log-limit-mb");
  for (const absl::Status& s :
       {lease.status(), hb.status(), grace.status(), limit.status(), schedule_interval.status(),
        cs_attempts.status(), cs_backoff.status(), db_acquire.status(), db_connect.status(),
        db_statement.status(), job_log_limit.status()}) {
    if (!s.ok()) {
      std::cerr << "assay-server: " << s.message() << "\n";
      return 2;
    }
  }
  o.lease = *lease;
  o.heartbeat_interval = *hb;
  o.reconnect_grace = std::min(*grace, *lease);
  o.schedule_interval = *schedule_interval;
  o.body_limit = static_cast<size_t>(*limit) * 1024 * 1024;
  o.artifact_store = cfg->Get("artifact-store");
  o.s3_endpoint = cfg->Get("s3-endpoint");
  o.s3_bucket = cfg->Get("s3-bucket");
  o.s3_region = cfg->Get("s3-region");
  o.s3_access_key = cfg->Get("s3-access-key");
  o.s3_secret_key = cfg->Get("s3-secret-key");
  {
    auto expire = cfg->GetDuration("artifact-expire");
    auto sweep = cfg->GetDuration("artifact-sweep-interval");
    if (!expire.ok() || !sweep.ok()) {
      std::cerr << "assay-server: " << (expire.ok() ? sweep.status() : expire.status()).message()
                << "\n";
      return 2;
    }
    o.artifact_expire = *expire;
    o.artifact_sweep_interval = *sweep;
    auto retention = cfg->GetDuration("cache-retention");
    if (!retention.ok()) {
      std::cerr << "assay-server: " << retention.status().message() << "\n";
      return 2;
    }
    o.cache_retention = *retention;
  }
  o.public_url = cfg->Get("public-url");
  o.commit_status_ca_file = cfg->Get("commit-status-ca-file");
  o.commit_status_attempts = static_cast<int>(*cs_attempts);
  o.commit_status_backoff = *cs_backoff;
  o.allow_local_repos = cfg->GetBool("allow-local-repos");
  o.allow_private_hosts = cfg->Get("allow-private-hosts");
  o.deploy_hooks_dir = cfg->Get("deploy-hooks");
  o.kubernetes_api = cfg->Get("kubernetes-api");
  o.kubernetes_token_file = cfg->Get("kubernetes-token-file");
  o.kubernetes_ca_file = cfg->Get("kubernetes-ca-file");
  o.otlp_endpoint = cfg->Get("otlp-endpoint");
  o.otlp_headers = cfg->Get("otlp-headers");
  {
    auto every = cfg->GetDuration("otlp-interval");
    if (!every.ok()) {
      std::cerr << "assay-server: " << every.status().message() << "\n";
      return 2;
    }
    o.otlp_interval = *every;
  }
  o.db_acquire_timeout = *db_acquire;
  o.db_connect_timeout = *db_connect;
  o.db_statement_timeout = *db_statement;
  o.job_log_limit_bytes = static_cast<int64_t>(*job_log_limit) << 20;
  if (auto followers = cfg->GetInt("log-followers"); followers.ok()) {
    o.log_followers = static_cast<int>(*followers);
  } else {
    std::cerr << "assay-server: " << followers.status().message() << "\n";
    return 2;
  }
  {
    auto body_timeout = cfg->GetDuration("http-body-timeout");
    auto max_connections = cfg->GetInt("http-max-connections");
    auto handler_queue = cfg->GetInt("http-handler-queue");
    auto auth_failures = cfg->GetInt("auth-failures-per-minute");
    auto dedupe = cfg->GetDuration("webhook-dedupe-window");
    for (const absl::Status& s :
         {body_timeout.status(), max_connections.status(), handler_queue.status(),
          auth_failures.status(), dedupe.status()}) {
      if (!s.ok()) {
        std::cerr << "assay-server: " << s.message() << "\n";
        return 2;
      }
    }
    o.http_body_timeout = *body_timeout;
    o.http_max_connections = static_cast<int>(*max_connections);
    o.http_max_queued = static_cast<int>(*handler_queue);
    o.auth_failures_per_minute = static_cast<int>(*auth_failures);
    o.webhook_dedupe_window = *dedupe;
    o.metrics_token = cfg->Get("metrics-token");
    auto session_ttl = cfg->GetDuration("session-ttl");
    if (!session_ttl.ok()) {
      std::cerr << "assay-server: " << session_ttl.status().message() << "\n";
      return 2;
    }
    o.session_ttl = *session_ttl;
    auto password_cost = cfg->GetInt("password-cost");
    if (!password_cost.ok()) {
      std::cerr << "assay-server: " << password_cost.status().message() << "\n";
      return 2;
    }
    o.password_log2_n = static_cast<int>(*password_cost);
    o.anonymous_read = cfg->GetBool("anonymous-read");
    o.web_dir = cfg->Get("web-dir");
    o.secure_cookies = !cfg->GetBool("insecure-cookies");
  }

  // Before any thread starts, so that every thread inherits the mask.
  const sigset_t set = assay::BlockStopSignals();

  assay::AssayServer server(o);
  if (absl::Status s = server.Start(); !s.ok()) {
    std::cerr << "assay-server: " << s.ToString() << "\n";
    return 1;
  }
  int sig = assay::WaitForStopSignal(set);
  assay::LogInfo("server", "signal ", sig, ": shutting down");
  server.Stop();
  return 0;
}
