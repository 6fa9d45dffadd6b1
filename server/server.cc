#include "server/server.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/base/status.h"
#include "common/crypto/crypto.h"
#include "common/net/address_policy.h"
#include "common/net/https_client.h"
#include "server/agents/agent_service.h"
#include "server/agents/server_tls.h"
#include "server/api/api.h"
#include "server/artifacts/artifact_service.h"
#include "server/artifacts/blob_store.h"
#include "server/artifacts/s3_blob_store.h"
#include "server/artifacts/sweeper.h"
#include "server/deploy/controller.h"
#include "server/events/event_hub.h"
#include "server/forge/commit_status.h"
#include "server/forge/status_reporter.h"
#include "server/logs/compactor.h"
#include "server/logs/log_followers.h"
#include "server/pipeline/schedule_loop.h"
#include "server/scheduler/wakeups.h"
#include "server/store/artifacts.h"
#include "server/store/deployments.h"
#include "server/store/evals.h"
#include "server/store/logs.h"
#include "server/store/migrations.h"
#include "server/store/models.h"
#include "server/store/traces.h"
#include "server/store/train.h"
#include "server/trace/otlp.h"
#include "server/trace/otlp_exporter.h"
#include "server/web/assets.h"

namespace assay {
namespace {

absl::StatusOr<std::pair<std::string, uint16_t>> SplitHostPort(const std::string& hp,
                                                               const char* what) {
  auto colon = hp.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(hp.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": '", hp, "' is not HOST:PORT (e.g. 127.0.0.1:8080)"));
  }
  return std::make_pair(hp.substr(0, colon), static_cast<uint16_t>(port));
}

// This replica's name ("host:pid"): the deployment controller's lease owner, the traces'
// service.instance.id.
std::string ReplicaName() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, ":", getpid());
}

}  // namespace

absl::StatusOr<std::string> LoadOrCreateSecretKey(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (in) {
    std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (key.size() != 32) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": secret key must be exactly 32 bytes, found ", key.size()));
    }
    return key;
  }
  std::string key = RandomBytes(32);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return absl::FailedPreconditionError(absl::StrCat("cannot create ", path));
  bool ok = ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok) return absl::FailedPreconditionError(absl::StrCat("cannot write ", path));
  LogInfo("server", "created secret key ", path);
  return key;
}

struct AssayServer::Impl {
  ServerOptions opts;
  std::unique_ptr<store::Db> db;
  std::unique_ptr<store::RepoStore> repos;
  std::unique_ptr<store::DeliveryStore> deliveries;
  std::unique_ptr<store::PipelineStore> pipelines;
  std::unique_ptr<store::JobStore> jobs;
  std::unique_ptr<store::AgentStore> agents;
  std::unique_ptr<store::AgentCredentialStore> credentials;
  std::unique_ptr<store::ScheduleStore> schedules;
  std::unique_ptr<store::SecretStore> secrets;   // issue 9
  std::unique_ptr<store::JobImageStore> images;  // issue 9, build_image
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<Dispatcher> dispatcher;
  std::unique_ptr<Wakeups> wakeups;
  std::unique_ptr<Planner> planner;
  std::unique_ptr<ScheduleLoop> schedule_loop;
  std::unique_ptr<artifacts::BlobStore> blobs;
  std::unique_ptr<store::ArtifactStore> artifact_store;
  std::unique_ptr<artifacts::ArtifactService> artifacts;
  std::unique_ptr<artifacts::Sweeper> artifact_sweeper;
  std::unique_ptr<store::CacheStore> cache_store;  // issue 9, caches
  std::unique_ptr<artifacts::CacheService> caches;
  std::unique_ptr<store::EvalStore> eval_store;           // issue 10, evals
  std::unique_ptr<store::TrainStore> train_store;         // issue 10, training
  std::unique_ptr<store::ModelStore> models;              // issue 10, the model registry
  std::unique_ptr<store::DeploymentStore> deployments;    // issue 12
  std::unique_ptr<deploy::Controller> deploy_controller;  // issue 12
  std::unique_ptr<store::TraceStore> trace_store;         // issue 12: OTLP traces
  std::unique_ptr<trace::OtlpExporter> otlp_exporter;     // null: no --otlp-endpoint
  AddressPolicy address_policy;  // --allow-private-hosts, for forge API requests
  std::unique_ptr<forge::CommitStatusNotifier> notifier;
  std::unique_ptr<forge::StatusReporter> status_reporter;
  std::unique_ptr<store::LogStore> logs;
  std::unique_ptr<logs::LogFollowers> log_followers;
  std::unique_ptr<events::EventHub> events;  // issue 11: GET /api/v1/events
  std::unique_ptr<web::Assets> web;          // issue 11: the dashboard
  std::unique_ptr<logs::LogCompactor> log_compactor;
  // After its users: destroyed (and so stopped) before them.
  std::unique_ptr<store::Listener> listener;
  std::unique_ptr<AgentServiceImpl> agent_service;
  std::unique_ptr<grpc::Server> grpc_server;
  std::unique_ptr<AuthLimiter> auth_limiter;
  std::unique_ptr<AuthLimiter> login_limiter;  // per username
  std::unique_ptr<store::UserStore> users;
  std::unique_ptr<http::Router> router;
  std::unique_ptr<http::Server> http_server;
  ApiDeps api;
  int grpc_port = 0;
  bool started = false;
};

AssayServer::AssayServer(ServerOptions opts) : impl_(std::make_unique<Impl>()) {
  impl_->opts = std::move(opts);
}

AssayServer::~AssayServer() { Stop(); }

absl::Status AssayServer::Start() {
  Impl& m = *impl_;
  const ServerOptions& o = m.opts;
  if (o.database_url.empty()) return absl::InvalidArgumentError("--database-url is required");
  if (o.data_dir.empty()) return absl::InvalidArgumentError("--data-dir is required");
  if (o.admin_token.size() < kMinAdminTokenLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("--admin-token must be at least ", kMinAdminTokenLength, " characters, got ",
                     o.admin_token.size(), "; make one with: openssl rand -hex 32"));
  }
  if (o.allow_shared_agent_token && o.agent_token.size() < 8) {
    return absl::InvalidArgumentError(
        "--allow-shared-agent-token needs --agent-token (at least 8 characters)");
  }
  if (!o.allow_shared_agent_token && !o.agent_token.empty()) {
    // Why refuse rather than ignore: an operator who set a shared token expects agents to
    // use it; say at start that it is off instead of refusing every agent later.
    return absl::InvalidArgumentError(
        "--agent-token is set but shared agent tokens are off: enroll agents (assay agents "
        "token create), or add --allow-shared-agent-token on a trusted network");
  }
  if (!o.public_url.empty() && !absl::StartsWithIgnoreCase(o.public_url, "http://") &&
      !absl::StartsWithIgnoreCase(o.public_url, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--public-url: '", o.public_url, "' must start with http:// or https://"));
  }
  if (!o.commit_status_ca_file.empty()) {
    absl::Status ca = CheckCaFile(o.commit_status_ca_file);
    if (!ca.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--commit-status-ca-file: ", ca.message()));
    }
  }
  if (!o.kubernetes_api.empty() && !absl::StartsWithIgnoreCase(o.kubernetes_api, "https://") &&
      !absl::StartsWithIgnoreCase(o.kubernetes_api, "http://")) {
    return absl::InvalidArgumentError(absl::StrCat("--kubernetes-api: '", o.kubernetes_api,
                                                   "' must start with https:// (or http://)"));
  }
  if (!o.kubernetes_ca_file.empty()) {
    if (absl::Status ca = CheckCaFile(o.kubernetes_ca_file); !ca.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--kubernetes-ca-file: ", ca.message()));
    }
  }
  std::vector<std::pair<std::string, std::string>> otlp_headers;
  if (!o.otlp_endpoint.empty()) {
    if (!absl::StartsWithIgnoreCase(o.otlp_endpoint, "http://") &&
        !absl::StartsWithIgnoreCase(o.otlp_endpoint, "https://")) {
      return absl::InvalidArgumentError(absl::StrCat("--otlp-endpoint: '", o.otlp_endpoint,
                                                     "' must start with http:// or https://"));
    }
    auto headers = trace::ParseHeaders(o.otlp_headers);
    if (!headers.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--otlp-headers: ", headers.status().message()));
    }
    otlp_headers = *std::move(headers);
  } else if (!o.otlp_headers.empty()) {
    return absl::InvalidArgumentError("--otlp-headers needs --otlp-endpoint");
  }
  auto address_policy = AddressPolicy::Parse(o.allow_private_hosts);
  if (!address_policy.ok()) return absl::InvalidArgumentError(address_policy.status().message());
  m.address_policy = *address_policy;
  if (o.commit_status_attempts < 1 || o.commit_status_attempts > 100) {
    return absl::InvalidArgumentError("--commit-status-attempts must be between 1 and 100");
  }
  if (o.commit_status_backoff <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--commit-status-backoff must be positive");
  }
  auto http_addr = SplitHostPort(o.http_listen, "--http-listen");
  if (!http_addr.ok()) return http_addr.status();
  auto grpc_addr = SplitHostPort(o.grpc_listen, "--grpc-listen");
  if (!grpc_addr.ok()) return grpc_addr.status();

  std::error_code ec;
  std::filesystem::create_directories(o.data_dir + "/mirrors", ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", o.data_dir, "/mirrors: ", ec.message()));
  }
  auto first_key = LoadOrCreateSecretKey(o.data_dir + "/secret.key");
  if (!first_key.ok()) return first_key.status();
  // secret.key and the keys/<id>.key that `rotate-key` made (common/crypto/sealed.h).
  auto key = KeyRing::LoadDir(o.data_dir);
  if (!key.ok()) return key.status();

  if (o.db_acquire_timeout <= absl::ZeroDuration() ||
      o.db_connect_timeout <= absl::ZeroDuration() ||
      o.db_statement_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--db-acquire-timeout and --db-connect-timeout must be positive, "
        "--db-statement-timeout at least 0s");
  }
  // Why at start: two statements sharing a name would each be prepared as the first one seen.
  ASSAY_RETURN_IF_ERROR(store::CheckQueryNames());
  store::DbOptions dbo;
  dbo.max_size = o.db_pool_size;
  dbo.acquire_timeout = o.db_acquire_timeout;
  dbo.connect_timeout = o.db_connect_timeout;
  dbo.statement_timeout = o.db_statement_timeout;
  m.db = std::make_unique<store::Db>(o.database_url, dbo);
  {
    auto conn = m.db->Acquire();
    if (!conn.ok()) return conn.status();
    auto applied = store::ApplyMigrations((*conn)->raw(), store::EmbeddedMigrations());
    if (!applied.ok()) return applied.status();
  }
  const Clock* clock = SystemClock::Get();
  m.repos = std::make_unique<store::RepoStore>(m.db.get());
  m.deliveries = std::make_unique<store::DeliveryStore>(m.db.get());
  m.pipelines = std::make_unique<store::PipelineStore>(m.db.get(), clock);
  m.jobs = std::make_unique<store::JobStore>(m.db.get(), clock);
  m.agents = std::make_unique<store::AgentStore>(m.db.get());
  m.credentials = std::make_unique<store::AgentCredentialStore>(m.db.get());
  m.schedules = std::make_unique<store::ScheduleStore>(m.db.get(), clock);
  m.metrics = std::make_unique<Metrics>();
  m.secrets = std::make_unique<store::SecretStore>(m.db.get());
  m.images = std::make_unique<store::JobImageStore>(m.db.get());
  DispatcherOptions dispatch_options{o.lease, o.sweep_interval, *key, m.secrets.get()};
  dispatch_options.images = m.images.get();
  m.dispatcher = std::make_unique<Dispatcher>(m.jobs.get(), m.metrics.get(), clock,
                                              std::move(dispatch_options));
  Dispatcher* dispatcher = m.dispatcher.get();
  forge::CommitStatusNotifier::Options no;
  no.max_attempts = o.commit_status_attempts;
  no.initial_backoff = o.commit_status_backoff;
  // At send time as at registration: the API host's addresses are checked (resolved once;
  // the connection goes to the checked addresses), plain http only to a listed host.
  TlsClientOptions tls{o.commit_status_ca_file, &m.address_policy};
  no.transport = [tls](const forge::StatusRequest& r, absl::Duration timeout) {
    return FetchHttpOrHttps(r.method, r.url, r.headers, r.body, timeout, tls);
  };
  Metrics* metrics = m.metrics.get();
  no.on_event = [metrics](const char* event) { metrics->CommitStatusEvent(event); };
  m.notifier = std::make_unique<forge::CommitStatusNotifier>(std::move(no));
  m.status_reporter = std::make_unique<forge::StatusReporter>(
      m.db.get(), m.notifier.get(), *key, forge::StatusReporterOptions{o.public_url});
  forge::StatusReporter* reporter = m.status_reporter.get();

  PlannerDeps pd{m.deliveries.get(), m.pipelines.get(), m.repos.get(), o.data_dir + "/mirrors",
                 [dispatcher, reporter] {
                   dispatcher->Kick();
                   reporter->Kick();
                 }};
  pd.schedules = m.schedules.get();
  pd.workers = o.planner_workers;
  pd.manual_wait = o.manual_wait;
  pd.allow_local_repos = o.allow_local_repos;
  pd.secret_key = *key;
  m.planner = std::make_unique<Planner>(std::move(pd));
  m.schedule_loop = std::make_unique<ScheduleLoop>(
      ScheduleLoopDeps{m.schedules.get(), m.planner.get(), clock, o.schedule_interval});

  if (o.artifact_store == "s3") {
    artifacts::S3Options so;
    so.endpoint = o.s3_endpoint;
    so.bucket = o.s3_bucket;
    so.region = o.s3_region;
    so.access_key = o.s3_access_key;
    so.secret_key = o.s3_secret_key;
    auto s3 = artifacts::S3BlobStore::Create(so);
    if (!s3.ok()) return s3.status();
    m.blobs = std::move(*s3);
  } else if (o.artifact_store == "dir") {
    auto dir = artifacts::DirBlobStore::Open(o.data_dir + "/artifacts");
    if (!dir.ok()) return dir.status();
    m.blobs = std::move(*dir);
  } else {
    return absl::InvalidArgumentError("--artifact-store must be dir or s3");
  }
  m.artifact_store = std::make_unique<store::ArtifactStore>(m.db.get());
  artifacts::ArtifactLimits al;
  al.default_expire_s = absl::ToInt64Seconds(o.artifact_expire);
  m.artifacts = std::make_unique<artifacts::ArtifactService>(m.artifact_store.get(), m.blobs.get(),
                                                             clock, al);
  m.cache_store = std::make_unique<store::CacheStore>(m.db.get());
  m.caches =
      std::make_unique<artifacts::CacheService>(m.cache_store.get(), m.artifacts.get(), clock);
  m.artifacts->SetCacheStore(m.cache_store.get());
  artifacts::SweeperOptions swo;
  swo.interval = o.artifact_sweep_interval;
  swo.cache_unused_for = o.cache_retention;
  m.artifact_sweeper =
      std::make_unique<artifacts::Sweeper>(m.artifact_store.get(), m.blobs.get(), clock, swo);
  m.artifact_sweeper->SetCaches(m.caches.get());

  AgentServiceDeps ad{m.agents.get(),
                      m.jobs.get(),
                      m.dispatcher.get(),
                      m.metrics.get(),
                      o.agent_token,
                      o.heartbeat_interval,
                      4,
                      o.reconnect_grace};
  ad.job_log_limit_bytes = o.job_log_limit_bytes;
  ad.credentials = m.credentials.get();
  ad.allow_shared_token = o.allow_shared_agent_token;
  ad.artifacts = m.artifacts.get();
  ad.caches = m.caches.get();
  m.eval_store = std::make_unique<store::EvalStore>(m.db.get());
  ad.evals = m.eval_store.get();
  m.train_store = std::make_unique<store::TrainStore>(m.db.get());
  ad.train = m.train_store.get();
  m.models = std::make_unique<store::ModelStore>(m.db.get());
  ad.models = m.models.get();
  m.deployments = std::make_unique<store::DeploymentStore>(m.db.get());
  ad.deployments = m.deployments.get();
  {
    // Made here, started with the other loops below; a `deploy:` step's deployment wakes it.
    deploy::ControllerOptions dco;
    dco.owner = ReplicaName();
    dco.hooks_dir = o.deploy_hooks_dir;
    dco.kubernetes.url = o.kubernetes_api;
    dco.kubernetes.token_file = o.kubernetes_token_file;
    dco.kubernetes.ca_file = o.kubernetes_ca_file;
    m.deploy_controller = std::make_unique<deploy::Controller>(
        m.deployments.get(), &m.address_policy, clock, m.metrics.get(), dco);
    deploy::Controller* controller = m.deploy_controller.get();
    ad.wake_deployments = [controller] { controller->Wake(); };
  }
  m.artifacts->SetTrainStore(m.train_store.get());
  m.artifact_sweeper->SetTrain(m.train_store.get());
  m.agent_service = std::make_unique<AgentServiceImpl>(ad);
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (o.grpc_insecure) {
    creds = grpc::InsecureServerCredentials();
    LogWarn("server", "agent gRPC is plaintext (--grpc-insecure): use only on a trusted network");
  } else {
    auto tls = LoadOrCreateServerTls(o.data_dir, o.tls_cert, o.tls_key, o.tls_hostnames);
    if (!tls.ok()) return tls.status();
    grpc::SslServerCredentialsOptions so;
    so.pem_key_cert_pairs.push_back({tls->private_key_pem, tls->cert_chain_pem});
    if (!o.tls_client_ca.empty()) {
      auto ca = ReadPemFile(o.tls_client_ca, "--tls-client-ca");
      if (!ca.ok()) return ca.status();
      so.pem_root_certs = *ca;
      so.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    creds = grpc::SslServerCredentials(so);
    if (!tls->ca_path.empty()) {
      LogInfo("server", "agent gRPC is TLS; agents pin the CA ", tls->ca_path, " (sha256 ",
              tls->ca_sha256, ") with --server-ca");
    }
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.grpc_listen, creds, &m.grpc_port);
  builder.RegisterService(m.agent_service.get());
  builder.SetMaxReceiveMessageSize(8 * 1024 * 1024);
  m.grpc_server = builder.BuildAndStart();
  if (m.grpc_server == nullptr || m.grpc_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", o.grpc_listen));
  }

  m.api =
      ApiDeps{m.repos.get(),   m.deliveries.get(), m.pipelines.get(), m.jobs.get(),  m.agents.get(),
              m.planner.get(), m.dispatcher.get(), m.metrics.get(),   o.admin_token, *key};
  m.api.allow_local_repos = o.allow_local_repos;
  m.api.address_policy = &m.address_policy;
  m.auth_limiter = std::make_unique<AuthLimiter>(clock, o.auth_failures_per_minute);
  m.api.auth_limiter = m.auth_limiter.get();
  m.api.metrics_token = o.metrics_token;
  // Ten failed logins a minute per username, on top of the address's limit.
  m.login_limiter = std::make_unique<AuthLimiter>(clock, 10);
  m.api.login_limiter = m.login_limiter.get();
  m.users = std::make_unique<store::UserStore>(m.db.get());
  m.api.users = m.users.get();
  m.api.anonymous_read = o.anonymous_read;
  m.api.session_ttl = o.session_ttl;
  m.api.secure_cookies = o.secure_cookies;
  m.api.password_log2_n = o.password_log2_n;
  m.api.webhook_dedupe_window = o.webhook_dedupe_window;
  m.api.credentials = m.credentials.get();
  m.api.secrets = m.secrets.get();
  m.api.images = m.images.get();
  m.logs = std::make_unique<store::LogStore>(m.db.get());
  logs::FollowOptions follow;
  follow.max_followers = o.log_followers;
  m.log_followers = std::make_unique<logs::LogFollowers>(follow);
  m.log_compactor = std::make_unique<logs::LogCompactor>(m.logs.get());
  m.api.logs = m.logs.get();
  m.api.log_followers = m.log_followers.get();
  m.events = std::make_unique<events::EventHub>();
  m.api.events = m.events.get();
  {
    const std::string dir = o.web_dir.empty() ? web::DefaultWebDir() : o.web_dir;
    if (!dir.empty()) {
      auto assets = web::LoadAssets(dir);
      // A directory named on purpose must be right; the default one is only a convenience.
      if (!assets.ok() && !o.web_dir.empty()) return assets.status();
      if (assets.ok()) {
        m.web = std::make_unique<web::Assets>(*std::move(assets));
        m.api.web = m.web.get();
        LogInfo("server", "dashboard: ", dir, " (", m.web->files.size(), " files)");
      }
    }
    if (m.web == nullptr) LogWarn("server", "no dashboard files: /ui/ says how to build them");
  }
  m.api.artifacts = m.artifact_store.get();
  m.api.caches = m.cache_store.get();
  m.api.evals = m.eval_store.get();
  m.api.train = m.train_store.get();
  m.api.models = m.models.get();
  m.api.deployments = m.deployments.get();
  m.api.deploy_hooks_dir = o.deploy_hooks_dir;
  {
    deploy::Controller* controller = m.deploy_controller.get();
    m.api.wake_deployments = [controller] { controller->Wake(); };
  }
  m.api.clock = clock;
  m.api.blobs = m.blobs.get();
  AgentServiceImpl* service = m.agent_service.get();
  m.api.close_agent = [service](int64_t agent_id, const std::string& reason) {
    service->CloseAgent(agent_id, grpc::Status(grpc::StatusCode::PERMISSION_DENIED, reason));
  };
  // Why the pool: reading the drain state blocks on PostgreSQL; the caller is an HTTP handler
  // or the listener's thread.
  m.api.refresh_agent_drain = [service](int64_t agent_id) {
    service->Post([service, agent_id] { service->RefreshDrains({agent_id}); });
  };
  m.router = std::make_unique<http::Router>();
  RegisterApi(*m.router, m.api);
  http::ServerOptions ho;
  ho.host = http_addr->first;
  ho.port = http_addr->second;
  ho.body_limit = o.body_limit;
  ho.body_timeout = o.http_body_timeout;
  ho.max_connections = o.http_max_connections;
  ho.max_queued = o.http_max_queued;
  http::Router* router = m.router.get();
  m.http_server = std::make_unique<http::Server>(
      ho, [router](http::Request& req) { return router->Dispatch(req); },
      [router](http::Request& req) { return router->Admit(req); },
      [router](http::Request& req) { return router->HasHead(req); });
  // Before the HTTP server: a webhook or manual request may arrive as soon as it listens.
  m.planner->Start();
  ASSAY_RETURN_IF_ERROR(m.http_server->Start());

  m.dispatcher->Start();
  // The listener's own connection gets the pool's keepalives and timeouts too.
  m.listener = std::make_unique<store::Listener>(m.db->dsn());
  m.wakeups = std::make_unique<Wakeups>(m.listener.get(), m.dispatcher.get(), m.agents.get());
  m.status_reporter->Listen(m.listener.get());
  // Issue 9: a drain or resume made through another server's API reaches the agent's stream
  // here at once (and within the access check interval should the notification be lost).
  m.listener->Listen("assay_agent_drain",
                     [refresh = m.api.refresh_agent_drain](const std::string& payload) {
                       int64_t id = 0;
                       if (absl::SimpleAtoi(payload, &id) && id > 0) refresh(id);
                     });
  m.log_followers->Attach(m.listener.get());
  m.events->Attach(m.listener.get());
  m.log_compactor->Attach(m.listener.get());
  m.listener->Start();
  m.log_followers->Start();
  m.events->Start();
  m.log_compactor->Start();
  m.wakeups->Start();
  m.schedule_loop->Start();
  m.status_reporter->Start();
  m.artifact_sweeper->Start();
  m.deploy_controller->Start();
  if (!o.otlp_endpoint.empty()) {
    m.trace_store = std::make_unique<store::TraceStore>(m.db.get());
    trace::OtlpExporterOptions to;
    to.endpoint = o.otlp_endpoint;
    to.headers = otlp_headers;
    to.instance = ReplicaName();
    to.interval = o.otlp_interval;
    to.ca_file = o.commit_status_ca_file;
    m.otlp_exporter =
        std::make_unique<trace::OtlpExporter>(m.trace_store.get(), m.metrics.get(), to);
    m.otlp_exporter->Start();
  }
  auto pending = m.deliveries->ListUnplanned();
  if (!pending.ok()) return pending.status();
  for (int64_t id : *pending) m.planner->Enqueue(id);
  if (!pending->empty()) {
    LogInfo("server", "re-planning ", pending->size(), " delivery(ies) accepted before a restart");
  }
  m.started = true;
  LogInfo("server", "assay-server listening: http ", ho.host, ":", m.http_server->port(), ", grpc ",
          grpc_addr->first, ":", m.grpc_port);
  return absl::OkStatus();
}

void AssayServer::Stop() {
  Impl& m = *impl_;
  // Before the HTTP server: parked followers are dropped (the HTTP server closes them).
  if (m.log_followers) m.log_followers->Stop();
  if (m.events) m.events->Stop();
  if (m.http_server) m.http_server->Stop();
  if (m.log_compactor) m.log_compactor->Stop();
  // Finish the agent streams first, so gRPC's shutdown need not wait out its deadline.
  if (m.dispatcher) m.dispatcher->CloseAll("server shutting down");
  if (m.grpc_server)
    m.grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (m.schedule_loop) m.schedule_loop->Stop();
  if (m.artifact_sweeper) m.artifact_sweeper->Stop();
  if (m.deploy_controller) m.deploy_controller->Stop();
  if (m.otlp_exporter) m.otlp_exporter->Stop();
  if (m.planner) m.planner->Stop();
  if (m.listener) m.listener->Stop();
  if (m.wakeups) m.wakeups->Stop();
  if (m.dispatcher) m.dispatcher->Stop();
  if (m.status_reporter) m.status_reporter->Stop();
  // Statuses still queued get a moment to go out; the rest are released for any replica (or
  // the next start) to send.
  if (m.notifier) m.notifier->Stop(absl::Seconds(2));
  m.grpc_server.reset();
  m.agent_service.reset();
}

int AssayServer::http_port() const { return impl_->http_server ? impl_->http_server->port() : 0; }
int AssayServer::grpc_port() const { return impl_->grpc_port; }

}  // namespace assay
