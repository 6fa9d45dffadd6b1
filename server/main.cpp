// assay-server: flags → ServerOptions → AssayServer, until SIGINT/SIGTERM.
#include <algorithm>
#include <csignal>
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "common/base/config.h"
#include "common/base/log.h"
#include "common/base/signals.h"
#include "server/server.h"

int main(int argc, char** argv) {
  // Debian's Abseil checks every lock for deadlock cycles (a debug aid); at 10,000 agent
  // streams that costs ~10 MiB and CPU. Lock order is kept by design instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  using assay::DurationIn;
  using assay::IntIn;
  // Every value is checked against its rule by Config::Parse (common/base/config.h).
  const std::vector<assay::OptionSpec> specs = {
      {"http-listen", "127.0.0.1:8080", "HTTP address (API, webhooks, metrics)", false, false,
       assay::HostPort()},
      {"grpc-listen", "127.0.0.1:9090", "gRPC address for agents", false, false, assay::HostPort()},
      {"database-url", "", "PostgreSQL connection string", true},
      {"data-dir", "", "directory for repository mirrors and the secret key", true},
      {"admin-token", "", "bearer token for /api/v1", true},
      {"agent-token", "",
       "shared token agents may present instead of their own credential; only with "
       "--allow-shared-agent-token (give it as ASSAY_AGENT_TOKEN or in the config file)"},
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
      {"log-level", "info", "debug, info, warn or error", false, false,
       assay::OneOf({"debug", "info", "warn", "error"})},
      {"public-url", "", "this server's address as users reach it (commit status links)"},
      {"commit-status-ca-file", "", "PEM file of extra CAs trusted for https forge APIs"},
      {"commit-status-attempts", "6", "tries per commit status (5xx, 429, network errors)", false,
       false, IntIn(1, 100)},
      {"commit-status-backoff", "1s", "wait before the first commit status retry (doubles)", false,
       false, DurationIn(absl::Milliseconds(1), absl::Hours(1))},
  };
  auto cfg = assay::Config::Parse(argc, argv, specs, "assay-server");
  if (!cfg.ok()) {
    bool help = cfg.status().code() == absl::StatusCode::kCancelled;
    std::cerr << (help ? "" : "assay-server: ") << cfg.status().message() << "\n";
    return help ? 0 : 2;
  }
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
  for (const absl::Status& s :
       {lease.status(), hb.status(), grace.status(), limit.status(), schedule_interval.status(),
        cs_attempts.status(), cs_backoff.status(), db_acquire.status(), db_connect.status(),
        db_statement.status()}) {
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
  o.public_url = cfg->Get("public-url");
  o.commit_status_ca_file = cfg->Get("commit-status-ca-file");
  o.commit_status_attempts = static_cast<int>(*cs_attempts);
  o.commit_status_backoff = *cs_backoff;
  o.db_acquire_timeout = *db_acquire;
  o.db_connect_timeout = *db_connect;
  o.db_statement_timeout = *db_statement;

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
