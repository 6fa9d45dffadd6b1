#include "agent/agent.h"

#include <fcntl.h>
#include <ftw.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "agent/artifacts.h"
#include "agent/cache.h"
#include "agent/deploy_step.h"
#include "agent/eval_report.h"
#include "agent/eval_step.h"
#include "agent/executor_choice.h"
#include "agent/image_build.h"
#include "agent/job_scope.h"
#include "agent/job_secrets.h"
#include "agent/lifecycle.h"
#include "agent/train_step.h"
#include "common/base/log.h"
#include "common/base/version.h"
#include "common/crypto/agent_secret.h"
#include "common/crypto/crypto.h"
#include "common/git/lfs.h"

namespace assay {

double SystemMemoryGb() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  long long kib = 0;
  while (in >> key) {
    if (key == "MemTotal:" && (in >> kib)) return static_cast<double>(kib) * 1024.0 / 1e9;
    std::getline(in, key);
  }
  return 0;
}
namespace {

// Issue 11: bounds of the step marks a result carries (the server refuses more).
constexpr size_t kMaxStepMarks = 1000;
constexpr size_t kMaxStepMarkName = 200;

v1::JobOutcome OutcomeOf(JobRunOutcome o) {
  switch (o) {
    case JobRunOutcome::kSucceeded: return v1::JOB_OUTCOME_SUCCEEDED;
    case JobRunOutcome::kFailed: return v1::JOB_OUTCOME_FAILED;
    case JobRunOutcome::kTimedOut: return v1::JOB_OUTCOME_TIMED_OUT;
    case JobRunOutcome::kCanceled: return v1::JOB_OUTCOME_CANCELED;
    case JobRunOutcome::kError: return v1::JOB_OUTCOME_ERROR;
  }
  return v1::JOB_OUTCOME_ERROR;
}

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

// nftw gives its callback no context; ChownTree runs under this mutex.
absl::Mutex chown_mu;
uid_t chown_uid ABSL_GUARDED_BY(chown_mu) = 0;
gid_t chown_gid ABSL_GUARDED_BY(chown_mu) = 0;
int chown_errno ABSL_GUARDED_BY(chown_mu) = 0;

int ChownEntry(const char* path, const struct stat*, int,
               struct FTW*) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (lchown(path, chown_uid, chown_gid) != 0 && chown_errno == 0) chown_errno = errno;
  return 0;
}

// Gives the tree at `dir` (not following symlinks) to uid:gid.
absl::Status ChownTree(const std::string& dir, uid_t uid, gid_t gid) {
  absl::MutexLock l(&chown_mu);
  chown_uid = uid;
  chown_gid = gid;
  chown_errno = 0;
  if (nftw(dir.c_str(), ChownEntry, 32, FTW_PHYS) != 0 || chown_errno != 0) {
    return absl::InternalError(absl::StrCat("cannot give workspace ", dir, " to uid ", uid, ": ",
                                            strerror(chown_errno != 0 ? chown_errno : errno)));
  }
  return absl::OkStatus();
}

// Why: a registered worktree's git dir leads into the shared cache (its objects, refs and
// config are the cache's own), so a job's `git replace` or `git config` would change what later
// jobs check out, or break the cache. Turns the workspace's `.git` link (written by
// GitMirror::AddWorktree) into a repository of its own that borrows the cache's objects
// through objects/info/alternates: whatever the job's git writes (objects, replace refs,
// config, hooks) lands in the workspace and goes with it. The registration is removed.
// Git LFS (common/git/lfs.h): the real files in place of the pointers, fetched into the
// mirror's LFS store (this agent's cache) when missing, within the job's timeout. The
// workspace's git gets git-lfs's filter so `git status` sees them unchanged. Says in the job's
// log what it did; an error reads "Git LFS: <why>".
absl::Status CheckoutWorkspaceLfs(GitMirror& cache, const v1::Assignment& a, const std::string& ws,
                                  bool allow_local,
                                  const std::function<void(std::string_view)>& log) {
  const absl::Duration timeout =
      a.timeout_s() > 0 ? absl::Seconds(a.timeout_s()) : absl::Minutes(60);
  absl::StatusOr<LfsCheckoutStats> stats =
      CheckoutLfs(cache, a.commit_sha(), ws, ws + "/.git/index", allow_local, timeout);
  if (!stats.ok()) {
    return absl::Status(stats.status().code(), absl::StrCat("Git LFS: ", stats.status().message()));
  }
  if (stats->files == 0) return absl::OkStatus();
  std::ofstream config(ws + "/.git/config", std::ios::app);
  config << kLfsFilterConfig;
  config.close();
  if (!config)
    return absl::InternalError(absl::StrCat("Git LFS: cannot write ", ws, "/.git/config"));
  log(absl::StrFormat("assay: Git LFS: %d file%s, %.1f MiB (%d fetched, the rest from the cache)\n",
                      stats->files, stats->files == 1 ? "" : "s",
                      static_cast<double>(stats->bytes) / (1 << 20), stats->fetched));
  return absl::OkStatus();
}

absl::Status DetachWorkspaceGit(const std::string& ws, const std::string& mirror) {
  namespace fs = std::filesystem;
  std::ifstream in(ws + "/.git");
  std::string line;
  std::getline(in, line);
  absl::string_view text = line;
  if (!absl::ConsumePrefix(&text, "gitdir: ")) {
    return absl::InternalError(absl::StrCat("workspace ", ws, " has no .git link"));
  }
  const fs::path reg = fs::path(std::string(text)).lexically_normal();
  std::error_code ec;
  const fs::path cache = fs::weakly_canonical(fs::path(mirror), ec);
  if (ec || reg.parent_path() != cache / "worktrees") {
    return absl::InternalError(absl::StrCat("workspace ", ws, ": unexpected git dir ", text));
  }
  std::ifstream head_in(reg / "HEAD");
  std::string head;
  std::getline(head_in, head);
  const fs::path tmp = fs::path(ws) / ".git.assay-tmp";
  auto write = [](const fs::path& p, const std::string& content) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << content;
    f.close();
    return static_cast<bool>(f);
  };
  fs::create_directories(tmp / "objects" / "info", ec);
  if (!ec) fs::create_directories(tmp / "refs" / "heads", ec);
  if (!ec) fs::create_directories(tmp / "refs" / "tags", ec);
  if (ec || !write(tmp / "HEAD", head + "\n") ||
      !write(tmp / "config",
             "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n") ||
      !write(tmp / "objects" / "info" / "alternates", (cache / "objects").string() + "\n")) {
    return absl::InternalError(absl::StrCat("cannot write ", tmp.string()));
  }
  fs::rename(reg / "index", tmp / "index", ec);
  if (ec) {  // another file system
    ec.clear();
    fs::copy_file(reg / "index", tmp / "index", ec);
  }
  if (!ec) fs::remove(fs::path(ws) / ".git", ec);
  if (!ec) fs::rename(tmp, fs::path(ws) / ".git", ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot detach ", ws, "/.git: ", ec.message()));
  fs::remove_all(reg, ec);  // only a leftover if this fails: nothing reads it any more
  return absl::OkStatus();
}

// Whether `user` can enter `dir`, tried for real: a shell as that user does `cd DIR`.
absl::Status CheckUserCanEnter(const JobIdentity& user, const std::string& dir) {
  SpawnOptions o;
  o.path = "/bin/sh";
  o.argv = {"/bin/sh", "-c", "cd \"$0\"", dir};
  o.set_identity = true;
  o.uid = user.uid;
  o.gid = user.gid;
  o.groups = user.groups;
  o.env = {"PATH=/usr/bin:/bin"};
  absl::StatusOr<pid_t> pid = SpawnProcess(o);
  if (!pid.ok()) return pid.status();
  ExitInfo exit = WaitForExit(*pid);
  if (exit.exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the job user (uid ", user.uid, ") cannot enter ", dir,
        ": every directory above it must be searchable (x) by that user, e.g. chmod 711"));
  }
  return absl::OkStatus();
}

}  // namespace

Agent::Agent(AgentOptions opts) : opts_(std::move(opts)) {
  grpc::ChannelArguments args;
  // Why keepalives: notice a vanished server (no RST) within seconds, not TCP's minutes.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // Why 64 MiB: an artifact chunk is up to 4 MiB, and a manifest of 100,000 files (the limit
  // per job) takes some 20 MiB (artifacts.h). gRPC's default is 4 MiB.
  args.SetMaxReceiveMessageSize(64 << 20);
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (opts_.grpc_insecure) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions so;
    so.pem_root_certs = opts_.server_ca_pem;  // empty: gRPC's default (system) roots
    so.pem_private_key = opts_.client_key_pem;
    so.pem_cert_chain = opts_.client_cert_pem;
    creds = grpc::SslCredentials(so);
  }
  channel_ = grpc::CreateCustomChannel(opts_.server, creds, args);
  stub_ = v1::AgentService::NewStub(channel_);
  if (!opts_.gpus.empty()) {
    gpu_usage_ = std::make_unique<GpuUsageSampler>(
        [file = opts_.gpu_inventory_file]() {
          return file.empty() ? DiscoverGpus() : LoadGpuInventoryFile(file);
        },
        opts_.gpu_sample_interval);
  }
}

Agent::~Agent() {
  Shutdown();
  absl::MutexLock l(&mu_);
  for (auto& [id, j] : jobs_) {
    if (j->thread.joinable()) j->thread.detach();
  }
  for (auto& t : finished_threads_) {
    if (t.first.joinable()) t.first.detach();
  }
}

void Agent::Shutdown() {
  absl::MutexLock l(&mu_);
  shutdown_ = true;
  for (auto& [id, j] : jobs_) j->cancel->Cancel();
  if (ctx_ != nullptr) ctx_->TryCancel();
}

void Agent::WriteLocked(const v1::AgentMessage& m) {
  if (writer_ != nullptr) writer_->Push(m);
}

GitMirror* Agent::CacheFor(const v1::Assignment& a) {
  const std::string& clone_url = a.clone_url();
  absl::MutexLock l(&cache_mu_);
  auto& m = caches_[clone_url];
  if (m == nullptr) {
    GitMirror::Options options;
    options.allow_local = opts_.allow_local_repos;
    m = std::make_unique<GitMirror>(
        absl::StrCat(opts_.work_dir, "/cache/", HexEncode(Sha256(clone_url)).substr(0, 16), ".git"),
        clone_url, std::move(options));
  }
  // The newest credential the server sent; an empty one leaves the URL's own (legacy rows).
  if (!a.clone_username().empty() || !a.clone_password().empty()) {
    m->SetCredential(a.clone_username(), a.clone_password());
  }
  return m.get();
}

std::optional<std::string> Agent::LocalLfsObject(const std::string& sha256, uint64_t size) {
  // Why every repository's store: a model's weights committed with LFS to one repository are
  // often the artifact of a job of another. The copy is checked against the hash anyway.
  absl::MutexLock l(&cache_mu_);
  for (const auto& [url, mirror] : caches_) {
    const std::string path = mirror->LfsObjectPath(sha256);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        static_cast<uint64_t>(st.st_size) == size) {
      return path;
    }
  }
  return std::nullopt;
}

absl::Status Agent::Run() {
  if (opts_.slots < 1) return absl::InvalidArgumentError("--slots must be at least 1");
  std::error_code ec;
  std::filesystem::create_directories(opts_.work_dir + "/cache", ec);
  if (!ec) std::filesystem::create_directories(opts_.work_dir + "/jobs", ec);
  if (!ec) std::filesystem::create_directories(opts_.work_dir + "/spool", ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create work dir ", opts_.work_dir, ": ", ec.message()));
  }
  if (opts_.job_user.has_value()) {
    // The job user may pass through (x) but not list or write: it reaches its own workspace
    // under jobs/ and, through its .git, reads the cache's objects; it cannot change the cache.
    for (const std::string& d :
         {opts_.work_dir, opts_.work_dir + "/cache", opts_.work_dir + "/jobs"}) {
      if (chown(d.c_str(), geteuid(), getegid()) != 0 || chmod(d.c_str(), 0711) != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot restrict ", d, " to the agent's user: ", strerror(errno)));
      }
    }
    absl::Status enter = CheckUserCanEnter(*opts_.job_user, opts_.work_dir + "/jobs");
    if (!enter.ok()) return absl::InvalidArgumentError(enter.message());
  }
  if (int stale = JobSecrets::RemoveStale(opts_.work_dir + "/jobs"); stale > 0) {
    LogInfo("agent", "removed the secret files of ", stale, " job(s) of an agent that died");
  }
  if (int stale = JobScope::CleanStale(); stale > 0) {
    LogInfo("agent", "removed ", stale, " job cgroup(s) of agents that died");
  }
  // A new process holds no job: any workspace or spool file is a dead agent's leftover.
  if (int left = RemoveLeftovers(opts_.work_dir); left > 0) {
    LogInfo("agent", "removed ", left,
            " leftover workspace(s) and spool file(s) of an earlier run");
  }
  {
    auto chunks = LocalChunkCache::Open(opts_.work_dir + "/chunk-cache",
                                        static_cast<uint64_t>(opts_.cache_budget_gb * 1e9));
    if (!chunks.ok()) return chunks.status();
    chunk_cache_ = *std::move(chunks);
    chunk_cache_->Evict();  // a smaller budget than the last run's
  }
  std::thread lifecycle([this] { LifecycleLoop(); });
  std::mt19937 rng(std::random_device{}());
  absl::Duration backoff = opts_.reconnect_min;
  // Who this agent is: settled before the first stream, retried while the server is away.
  while (true) {
    absl::Status cred = EnsureCredential();
    if (cred.ok()) break;
    if (cred.code() != absl::StatusCode::kUnavailable) {
      Shutdown();
      lifecycle.join();
      return cred;
    }
    absl::Duration wait = backoff * std::uniform_real_distribution<double>(0.5, 1.0)(rng);
    LogWarn("agent", cred.message(), "; trying again in ", absl::FormatDuration(wait));
    absl::MutexLock l(&mu_);
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutdown_; };
    if (mu_.AwaitWithTimeout(absl::Condition(&stop), wait)) break;
    backoff = std::min(backoff * 2, opts_.reconnect_max);
  }
  backoff = opts_.reconnect_min;
  while (true) {
    {
      absl::MutexLock l(&mu_);
      if (shutdown_) break;
    }
    bool fatal = false;
    bool welcomed = ServeOnce(&fatal);
    if (fatal) {
      Shutdown();
      lifecycle.join();
      return absl::UnauthenticatedError("the server refused this agent (see above)");
    }
    {
      absl::MutexLock l(&mu_);
      if (shutdown_) break;
    }
    if (welcomed) backoff = opts_.reconnect_min;
    // Full jitter keeps a fleet of agents from reconnecting in lockstep after a restart.
    absl::Duration wait = backoff * std::uniform_real_distribution<double>(0.5, 1.0)(rng);
    LogInfo("agent", "disconnected; reconnecting in ", absl::FormatDuration(wait));
    {
      absl::MutexLock l(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutdown_; };
      mu_.AwaitWithTimeout(absl::Condition(&stop), wait);
    }
    backoff = std::min(backoff * 2, opts_.reconnect_max);
  }
  // Let running jobs wind down (they were canceled) so their results are not lost silently.
  std::vector<std::thread> threads;
  {
    absl::MutexLock l(&mu_);
    for (auto& [id, j] : jobs_) threads.push_back(std::move(j->thread));
    for (auto& t : finished_threads_) threads.push_back(std::move(t.first));
    finished_threads_.clear();
  }
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
  lifecycle.join();
  return absl::OkStatus();
}

std::string Agent::CredentialPath() const { return opts_.work_dir + "/agent.credential"; }

absl::Status Agent::EnsureCredential() {
  const std::string path = CredentialPath();
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if ((st.st_mode & 0077) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat(path,
                       " is readable by other users; chmod 600 it (or revoke the agent and enroll "
                       "it again: another user may have copied it)"));
    }
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto cred = ParseAgentSecret(text, AgentSecretKind::kCredential);
    if (!cred.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", cred.status().message()));
    }
    if (!opts_.enroll_token.empty()) {
      LogInfo("agent", "already enrolled (", path, "); the enrollment token was not used");
    }
    bearer_ = *cred;
    return absl::OkStatus();
  }
  if (opts_.enroll_token.empty()) {
    if (opts_.token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "no credential in ", path,
          ": give an enrollment token (--enroll-token-file or ASSAY_ENROLL_TOKEN) to enroll"));
    }
    bearer_ = opts_.token;  // the shared token (trusted networks)
    return absl::OkStatus();
  }
  auto token = ParseAgentSecret(opts_.enroll_token, AgentSecretKind::kEnrollmentToken);
  if (!token.ok()) return token.status();
  if (!AwaitChannel()) return absl::UnavailableError("cannot enroll: the server is unreachable");
  v1::EnrollRequest req;
  req.set_enrollment_token(*token);
  req.set_name(opts_.name);
  v1::EnrollResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::Status s = stub_->Enroll(&ctx, req, &resp);
  if (!s.ok()) {
    std::string msg = absl::StrCat("enrollment refused by the server: ", s.error_message());
    switch (s.error_code()) {
      case grpc::StatusCode::PERMISSION_DENIED: return absl::PermissionDeniedError(msg);
      case grpc::StatusCode::INVALID_ARGUMENT: return absl::InvalidArgumentError(msg);
      case grpc::StatusCode::ALREADY_EXISTS: return absl::AlreadyExistsError(msg);
      case grpc::StatusCode::UNIMPLEMENTED: return absl::UnimplementedError(msg);
      default: return absl::UnavailableError(absl::StrCat("enrolling failed: ", s.error_message()));
    }
  }
  auto cred = ParseAgentSecret(resp.credential(), AgentSecretKind::kCredential);
  if (!cred.ok()) return absl::InternalError("the server sent a malformed credential");
  // Why a temporary file and rename: a crash leaves either no credential or the whole one,
  // and the file is never readable by others, not even for a moment.
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno)));
  }
  const std::string data = *cred + "\n";
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot write ", path));
  }
  LogInfo("agent", "enrolled as agent ", resp.name(), " (", resp.agent_id(),
          "); credential stored in ", path, "; allowed labels: ",
          resp.allowed_labels_size() == 0 ? "none" : absl::StrJoin(resp.allowed_labels(), ","));
  bearer_ = *cred;
  return absl::OkStatus();
}

bool Agent::AwaitChannel() {
  const absl::Time deadline = absl::Now() + opts_.connect_timeout;
  while (true) {
    grpc_connectivity_state state = channel_->GetState(/*try_to_connect=*/true);
    if (state == GRPC_CHANNEL_READY) return true;
    {
      absl::MutexLock l(&mu_);
      if (shutdown_) return false;
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      LogWarn("agent", "cannot connect to the server at ", opts_.server, " within ",
              absl::FormatDuration(opts_.connect_timeout),
              opts_.grpc_insecure
                  ? " (plaintext gRPC: is the server up, and does it run --grpc-insecure?)"
                  : " (TLS: is the server up, and is its certificate signed by the CA given "
                    "as --server-ca and issued for this address? a wrong CA fails here)");
      return false;
    }
    // Slices of at most a second, so that Shutdown is noticed.
    channel_->WaitForStateChange(state,
                                 absl::ToChronoTime(std::min(deadline, now + absl::Seconds(1))));
  }
}

bool Agent::ServeOnce(bool* fatal) {
  if (!AwaitChannel()) return false;
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + bearer_);
  // Why wait_for_ready: while the server restarts, the call waits for the channel to connect
  // (gRPC's own short reconnect backoff) instead of failing at once and sleeping our backoff.
  ctx.set_wait_for_ready(true);
  std::unique_ptr<Stream> stream = stub_->Connect(&ctx);
  {
    absl::MutexLock l(&mu_);
    if (shutdown_) return false;
    ctx_ = &ctx;
  }
  v1::AgentMessage hello_msg;
  {
    absl::MutexLock l(&mu_);
    auto* h = hello_msg.mutable_hello();
    h->set_name(opts_.name);
    for (const auto& l : opts_.labels) h->add_labels(l);
    h->set_cpu_slots(static_cast<uint32_t>(opts_.slots));
    h->set_memory_gb(opts_.memory_gb);
    h->set_version(kVersion);
    h->set_accept_untrusted(opts_.accept_untrusted);
    sent_state_ = OwnStateLocked();
    h->set_not_accepting(!sent_state_.empty());
    h->set_not_accepting_reason(sent_state_);
    for (const std::string& e : opts_.executors) h->add_executors(e);
    for (const auto& g : opts_.gpus) {
      auto* gpu = h->add_gpus();
      gpu->set_index(g.index);
      gpu->set_uuid(g.uuid);
      gpu->set_name(g.name);
      gpu->set_memory_mb(g.memory_total_mb);
    }
    for (const auto& [id, j] : jobs_) {
      auto* held = h->add_held_jobs();
      held->set_job_id(id);
      held->set_attempt_token(j->assignment.attempt_token());
      held->set_finished(j->finished);
    }
  }
  v1::ServerMessage in;
  bool welcomed = false;
  std::thread heartbeat;
  std::unique_ptr<StreamWriter> writer;
  std::thread replay;
  if (stream->Write(hello_msg) && stream->Read(&in) && in.has_welcome()) {
    welcomed = true;
    writer = std::make_unique<StreamWriter>(
        [s = stream.get()](const v1::AgentMessage& m) { return s->Write(m); },
        [&ctx] {
          // Why end the stream: one that has not taken 1,024 messages or 16 MiB is stuck;
          // the reconnect resends every unacknowledged log chunk and result.
          LogWarn("agent", "the server is not taking messages (send queue full); reconnecting");
          ctx.TryCancel();
        });
    const auto& w = in.welcome();
    LogInfo("agent", "connected to ", opts_.server, " as agent ", w.agent_id());
    {
      absl::MutexLock l(&mu_);
      for (const auto& s : w.stale_jobs()) {
        auto it = jobs_.find(s.job_id());
        if (it != jobs_.end()) {
          LogWarn("agent", "job ", s.job_id(), " is no longer ours; stopping it");
          it->second->cancel->Cancel();
          it->second->unacked_logs->Clear();
        }
      }
      stream_ = stream.get();
      writer_ = writer.get();
      // What the server may not have (unacknowledged chunks, then results) goes out first.
      for (auto& [id, j] : jobs_) {
        j->replaying = true;
        j->sent_upto = 0;
        j->result_sent = false;
      }
    }
    absl::Duration interval = absl::Milliseconds(w.heartbeat_interval_ms());
    if (interval < absl::Milliseconds(100)) interval = absl::Seconds(5);
    heartbeat = std::thread([this, s = stream.get(), interval] { HeartbeatLoop(s, interval); });
    // Why a thread: a backlog (it may be large, spilled to disk while disconnected) goes out
    // as the stream takes it, while this thread reads the acks that let the server go on.
    replay = std::thread([this, s = stream.get(), w = writer.get()] { Replay(s, w); });
    while (stream->Read(&in)) {
      if (in.has_assignment()) {
        OnAssignment(in.assignment());
      } else if (in.has_cancel()) {
        absl::MutexLock l2(&mu_);
        auto it = jobs_.find(in.cancel().job_id());
        if (it != jobs_.end() &&
            it->second->assignment.attempt_token() == in.cancel().attempt_token()) {
          LogInfo("agent", "job ", in.cancel().job_id(), " canceled: ", in.cancel().reason());
          it->second->cancel->Cancel();
        }
      } else if (in.has_ack()) {
        OnAck(in.ack());
      } else if (in.has_drain()) {
        OnDrain(in.drain());
      }
    }
  }
  {
    absl::MutexLock l(&mu_);
    stream_ = nullptr;
    writer_ = nullptr;
    ctx_ = nullptr;
  }
  if (heartbeat.joinable()) heartbeat.join();
  if (writer != nullptr) writer->Close();  // wakes a replay waiting for room
  if (replay.joinable()) replay.join();
  // The stream has ended (the reader saw it), so a write in progress returns and the writer's
  // thread joins; what it had not written is resent on the next connection.
  writer.reset();
  grpc::Status st = stream->Finish();
  if (st.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
      st.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    LogError("agent", "server refused this agent: ", st.error_message());
    *fatal = true;
  } else if (!st.ok()) {
    LogWarn("agent", "stream ended: ", st.error_message());
  }
  return welcomed;
}

void Agent::HeartbeatLoop(Stream* stream, absl::Duration interval) {
  absl::MutexLock l(&mu_);
  while (stream_ == stream && !shutdown_) {
    auto gone = [this, stream]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stream_ != stream || shutdown_; };
    if (mu_.AwaitWithTimeout(absl::Condition(&gone), interval)) break;
    v1::AgentMessage m;
    for (const auto& [id, j] : jobs_) {
      if (j->finished) continue;
      auto* r = m.mutable_heartbeat()->add_running();
      r->set_job_id(id);
      r->set_attempt_token(j->assignment.attempt_token());
    }
    if (!m.has_heartbeat()) m.mutable_heartbeat();
    if (gpu_usage_ != nullptr) {
      for (const GpuInfo& g : gpu_usage_->Latest()) {
        auto* u = m.mutable_heartbeat()->add_gpus();
        u->set_index(g.index);
        u->set_utilization_pct(g.utilization_pct);
        u->set_memory_used_mb(g.memory_used_mb);
      }
    }
    WriteLocked(m);
  }
}

void Agent::OnAssignment(const v1::Assignment& a) {
  CheckDisk();  // the floor is checked before taking a job, not only periodically
  absl::MutexLock l(&mu_);
  // Join the threads of acknowledged jobs that have returned (never wait here: a thread may
  // still be deleting its workspace).
  for (auto it = finished_threads_.begin(); it != finished_threads_.end();) {
    if (it->second->load()) {
      it->first.join();
      it = finished_threads_.erase(it);
    } else {
      ++it;
    }
  }
  int running = 0;
  for (const auto& [id, j] : jobs_) running += j->finished ? 0 : 1;
  v1::AgentMessage reply;
  const std::string refusal = RefusalLocked();
  // Why here too: the server sends untrusted jobs only to agents that can isolate them; an
  // agent checks again rather than trust that (defence in depth).
  const std::string refused = RefuseReason(opts_.executors, a.untrusted());
  if (jobs_.count(a.job_id()) || running >= opts_.slots || shutdown_ || !refusal.empty() ||
      !refused.empty()) {
    auto* r = reply.mutable_rejected();
    r->set_job_id(a.job_id());
    r->set_attempt_token(a.attempt_token());
    r->set_reason(!refused.empty()   ? refused
                  : !refusal.empty() ? refusal
                  : shutdown_        ? "agent is shutting down"
                                     : "no free slot");
    WriteLocked(reply);
    return;
  }
  auto job = std::make_unique<Job>();
  job->assignment = a;
  job->unacked_logs = std::make_unique<LogSpool>(
      absl::StrCat(opts_.work_dir, "/spool/job-", a.job_id(), "-", a.attempt(), ".log"),
      opts_.log_memory_bytes);
  job->cancel = std::make_unique<CancelFlag>();
  Job* raw = job.get();
  jobs_[a.job_id()] = std::move(job);
  auto* acc = reply.mutable_accepted();
  acc->set_job_id(a.job_id());
  acc->set_attempt_token(a.attempt_token());
  WriteLocked(reply);
  raw->thread = std::thread([this, id = a.job_id()] { RunJob(id); });
}

void Agent::OnAck(const v1::Ack& ack) {
  absl::MutexLock l(&mu_);
  auto it = jobs_.find(ack.job_id());
  if (it == jobs_.end() || it->second->assignment.attempt_token() != ack.attempt_token()) return;
  Job& j = *it->second;
  if (ack.refused()) {
    LogWarn("agent", "server refused reports for job ", ack.job_id(), ": attempt is stale");
    j.cancel->Cancel();
    j.unacked_logs->Clear();
  } else if (ack.log_seq() > 0) {
    j.unacked_logs->AckUpTo(ack.log_seq());
  }
  if ((ack.result_recorded() || ack.refused()) && j.finished) {
    // Why keep the thread: it may still be returning from RunJob; join it later.
    finished_threads_.emplace_back(std::move(j.thread), j.exited);
    jobs_.erase(it);
  }
}

void Agent::EmitLog(int64_t job_id, std::string_view bytes) {
  absl::MutexLock l(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  Job& j = *it->second;
  uint64_t seq = j.next_seq++;
  j.log_bytes += bytes.size();
  const int64_t read_us = absl::ToUnixMicros(absl::Now());
  absl::Status spooled = j.unacked_logs->Append(seq, bytes, read_us);
  if (!spooled.ok()) {
    LogWarn("agent", "job ", job_id,
            ": spilling its log to disk failed (kept in memory): ", spooled.ToString());
  }
  // While a replay runs, it sends this chunk in its turn.
  if (writer_ == nullptr || j.replaying) return;
  WriteLocked(LogMessage(job_id, j, seq, std::string(bytes), read_us));
  j.sent_upto = seq;
}

v1::AgentMessage Agent::LogMessage(int64_t id, const Job& j, uint64_t seq, std::string data,
                                   int64_t read_unix_us) {
  v1::AgentMessage m;
  auto* c = m.mutable_log();
  c->set_job_id(id);
  c->set_attempt_token(j.assignment.attempt_token());
  c->set_seq(seq);
  c->set_data(std::move(data));
  c->set_read_unix_us(read_unix_us);
  return m;
}

void Agent::Replay(Stream* stream, StreamWriter* writer) {
  while (writer->WaitForRoom()) {
    absl::MutexLock l(&mu_);
    if (stream_ != stream) return;
    bool pushed = false;
    for (auto& [id, j] : jobs_) {
      if (!j->replaying) continue;
      auto next = j->unacked_logs->Next(j->sent_upto);
      if (!next.ok()) {
        // The spill file is gone or unreadable: those chunks cannot be sent again.
        LogError("agent", "job ", id, ": ", next.status().ToString(), "; its log has a gap");
        j->unacked_logs->Clear();
        next = std::optional<std::pair<uint64_t, std::string>>();
      }
      if (next->has_value()) {
        const uint64_t seq = (*next)->first;
        WriteLocked(
            LogMessage(id, *j, seq, std::move((*next)->second), j->unacked_logs->ReadTimeOf(seq)));
        j->sent_upto = (*next)->first;
        pushed = true;
        break;  // one message per wait for room
      }
      j->sent_upto = j->next_seq - 1;
      j->replaying = false;
      if (j->finished && !j->result_sent) {
        v1::AgentMessage m;
        *m.mutable_result() = j->result;
        WriteLocked(m);
        j->result_sent = true;
      }
    }
    if (!pushed) return;  // every job caught up: live messages go straight out again
  }
}

namespace {

// Issue 10: the driver of each eval step (agent/eval_step.h). Its log lines are masked with the
// job's secrets by a masker of their own: JobSecrets' masker belongs to the job's thread.
void AttachEvalDrivers(const v1::Assignment& a, const std::string& ws,
                       const std::optional<JobIdentity>& user, const JobLogFn& log,
                       v1::AgentService::StubInterface* stub, const std::string& bearer,
                       JobRunRequest& req) {
  std::vector<std::string> values;
  auto secrets = std::make_shared<std::map<std::string, std::string>>();
  for (const v1::JobSecret& s : a.secrets()) {
    if (!s.withheld().empty()) continue;
    values.push_back(s.value());
    (*secrets)[s.name()] = s.value();
  }
  auto masker = std::make_shared<const SecretMasker>(values);
  for (int i = 0; i < a.steps_size() && i < static_cast<int>(req.steps.size()); ++i) {
    if (a.steps(i).eval_json().empty()) continue;
    absl::StatusOr<evals::EvalSpec> spec = evals::EvalSpecFromJson(a.steps(i).eval_json());
    if (!spec.ok()) {
      auto driver = std::make_shared<StepDriver>();
      driver->start = [status = spec.status()]() -> absl::StatusOr<std::string> { return status; };
      req.steps[i].driver = std::move(driver);
      continue;
    }
    EvalStepContext ctx;
    ctx.workspace = ws;
    ctx.user = user;
    ctx.log = [log, masker](std::string_view text) { log(masker->MaskAll(text)); };
    ctx.secret = [secrets](const std::string& name) -> std::optional<std::string> {
      auto it = secrets->find(name);
      if (it == secrets->end()) return std::nullopt;
      return it->second;
    };
    const EvalCallTarget target{stub, bearer, a.job_id(), a.attempt_token(), i};
    ctx.baseline = [target](const std::string& name, const std::string& vs) {
      return FetchEvalBaseline(target, name, vs);
    };
    ctx.record = [target](const EvalReport& report) {
      return SendEvalReport(target, report).status();
    };
    req.steps[i].driver = MakeEvalDriver(*std::move(spec), std::move(ctx));
  }
}

// Issue 10: the driver of each `train:` step (agent/train_step.h).
void AttachTrainDrivers(const v1::Assignment& a, const std::string& ws,
                        const std::optional<JobIdentity>& user, const JobLogFn& log,
                        v1::AgentService::StubInterface* stub, const std::string& bearer,
                        LocalChunkCache* chunks, JobRunRequest& req) {
  std::vector<std::string> values;
  for (const v1::JobSecret& s : a.secrets()) {
    if (s.withheld().empty()) values.push_back(s.value());
  }
  // Lines of the metrics file are quoted in warnings: masked like the job's output.
  auto masker = std::make_shared<const SecretMasker>(values);
  for (int i = 0; i < a.steps_size() && i < static_cast<int>(req.steps.size()); ++i) {
    // A `promote:` or `deploy:` step: the server does the work; the driver only talks to it.
    const bool deploy = !a.steps(i).deploy_json().empty();
    if (deploy || !a.steps(i).promote_json().empty()) {
      TrainStepContext ctx;
      ctx.step_index = i;
      ctx.log = log;
      ctx.stub = stub;
      ctx.bearer = bearer;
      ctx.assignment = a;
      req.steps[i].driver =
          deploy ? MakeDeployDriver(std::move(ctx)) : MakePromoteDriver(std::move(ctx));
      continue;
    }
    if (a.steps(i).train_json().empty()) continue;
    absl::StatusOr<evals::TrainSpec> spec = evals::TrainSpecFromJson(a.steps(i).train_json());
    if (!spec.ok()) {
      auto driver = std::make_shared<StepDriver>();
      driver->start = [status = spec.status()]() -> absl::StatusOr<std::string> { return status; };
      req.steps[i].driver = std::move(driver);
      continue;
    }
    TrainStepContext ctx;
    ctx.workspace = ws;
    ctx.step_index = i;
    ctx.user = user;
    ctx.log = [log, masker](std::string_view text) { log(masker->MaskAll(text)); };
    ctx.stub = stub;
    ctx.bearer = bearer;
    ctx.assignment = a;
    ctx.chunks = chunks;
    req.steps[i].driver = MakeTrainDriver(*std::move(spec), std::move(ctx));
  }
}

}  // namespace

void Agent::RunJob(int64_t job_id) {
  v1::Assignment a;
  CancelFlag* cancel = nullptr;
  std::shared_ptr<std::atomic<bool>> exited;
  {
    absl::MutexLock l(&mu_);
    a = jobs_.at(job_id)->assignment;
    cancel = jobs_.at(job_id)->cancel.get();
    exited = jobs_.at(job_id)->exited;
  }
  int64_t started = NowMs();
  std::string ws = absl::StrCat(opts_.work_dir, "/jobs/job-", a.job_id(), "-", a.attempt());
  JobRunResult res;
  std::vector<v1::BuiltImage> pushed;  // by build_image steps (issue 9)
  GitMirror* cache = CacheFor(a);
  absl::Status checkout = cache->EnsureCommit(a.commit_sha());
  if (checkout.ok()) checkout = cache->AddWorktree(a.commit_sha(), ws);
  if (checkout.ok()) checkout = DetachWorkspaceGit(ws, cache->dir());
  if (checkout.ok() && !a.skip_lfs()) {
    checkout = CheckoutWorkspaceLfs(*cache, a, ws, opts_.allow_local_repos,
                                    [this, job_id](std::string_view s) { EmitLog(job_id, s); });
  }
  if (checkout.ok() && opts_.job_user.has_value()) {
    // The job's .git borrows the cache's objects (0755/0444 as git makes them): the job user
    // may pass through the cache (x) to read them, but not list it, nor read its config.
    const std::string config = cache->dir() + "/config";
    if (chmod(cache->dir().c_str(), 0711) != 0 || chmod(config.c_str(), 0600) != 0) {
      checkout = absl::InternalError(
          absl::StrCat("cannot restrict the cache ", cache->dir(), ": ", strerror(errno)));
    }
  }
  if (checkout.ok() && opts_.job_user.has_value()) {
    // Why after the checkout: the tree (and its .git) is written by the agent; then it is the
    // job's alone. The cache stays the agent's: the job's git reads its objects, never writes.
    checkout = ChownTree(ws, opts_.job_user->uid, opts_.job_user->gid);
    if (checkout.ok() && chmod(ws.c_str(), 0700) != 0) {
      checkout = absl::InternalError(absl::StrCat("chmod 700 ", ws, ": ", strerror(errno)));
    }
  }
  const JobLogFn log = [this, job_id](std::string_view out) { EmitLog(job_id, out); };
  ArtifactClient artifacts(stub_.get(), bearer_, a.job_id(), a.attempt_token());
  absl::Status needs = checkout.ok()
                           ? DownloadJobArtifacts(artifacts, a, ws, opts_.job_user, *cancel, log,
                                                  [this](const std::string& sha256, uint64_t size) {
                                                    return LocalLfsObject(sha256, size);
                                                  })
                           : absl::OkStatus();
  JobCacheState job_cache;  // issue 9: restored before the steps, saved after success
  if (checkout.ok() && needs.ok()) {
    auto restored = RestoreJobCache(stub_.get(), bearer_, a, ws, opts_.job_user, chunk_cache_.get(),
                                    *cancel, log);
    if (restored.ok()) job_cache = *std::move(restored);
    needs = restored.status();
  }
  if (!checkout.ok()) {
    res.outcome = JobRunOutcome::kError;
    res.exit_code = -1;
    res.message =
        absl::StrCat("checkout of ", a.commit_sha(), " failed: ", std::string(checkout.message()));
    EmitLog(job_id, absl::StrCat("assay: ", res.message, "\n"));
  } else if (!needs.ok()) {
    res.outcome = JobRunOutcome::kError;
    res.exit_code = -1;
    res.message = std::string(needs.message());
    EmitLog(job_id, absl::StrCat("assay: ", res.message, "\n"));
  } else {
    JobRunRequest req;
    for (const auto& s : a.steps()) req.steps.push_back({s.name(), s.run(), {}});
    // Issue 9: build_image steps run on this machine (agent/image_build.h).
    auto builds = std::make_unique<ImageBuilds>(
        a, ws, ws + ".build",
        FindImageBuildTool(opts_.container_runtime,
                           getenv("PATH") != nullptr ? getenv("PATH") : "/usr/bin:/bin"));
    for (int i = 0; i < a.steps_size(); ++i) {
      if (!a.steps(i).has_build_image()) continue;
      req.steps[i].command = [b = builds.get(), i] { return b->Command(i); };
    }
    req.workdir = ws;
    req.env = {{"CI", "true"},
               {"ASSAY", "true"},
               {"ASSAY_JOB_ID", std::to_string(a.job_id())},
               {"ASSAY_JOB_NAME", a.job_name()},
               {"ASSAY_PIPELINE_ID", std::to_string(a.pipeline_id())},
               {"ASSAY_ATTEMPT", std::to_string(a.attempt())},
               {"ASSAY_COMMIT_SHA", a.commit_sha()},
               {"ASSAY_REF", a.ref()},
               {"ASSAY_AGENT_NAME", opts_.name},
               {"ASSAY_WORKSPACE", ws}};
    for (const auto& [k, v] : a.env()) req.env.emplace_back(k, v);
    req.timeout = a.timeout_s() > 0 ? absl::Seconds(a.timeout_s()) : absl::InfiniteDuration();
    req.kill_grace = opts_.kill_grace;
    req.user = opts_.job_user;
    // Issue 9: the job's secrets (agent/job_secrets.h); its output is masked before it leaves.
    JobSecrets secrets;
    absl::Status delivered =
        secrets.Prepare(a, ws + ".secrets", req.user ? &*req.user : nullptr, &req.env, log);
    if (!delivered.ok()) {
      res.outcome = JobRunOutcome::kError;
      res.exit_code = -1;
      res.message = std::string(delivered.message());
      EmitLog(job_id, absl::StrCat("assay: ", res.message, "\n"));
    } else {
      AttachEvalDrivers(a, ws, opts_.job_user, log, stub_.get(), bearer_, req);
      AttachTrainDrivers(a, ws, opts_.job_user, log, stub_.get(), bearer_, chunk_cache_.get(), req);
      // Where the steps run (docs/executors.md): a container for a job with an image, else the
      // sandbox or the host, as this agent's --executors allow.
      std::unique_ptr<ContainerExecutor> container = ContainerExecutorFor(
          a, opts_.container_runtime, opts_.name, opts_.work_dir, opts_.job_user, ws + ".secrets");
      absl::StatusOr<std::unique_ptr<Executor>> process;
      if (container == nullptr) {
        process = MakeJobExecutor({opts_.executors, opts_.bwrap_path, opts_.work_dir,
                                   cache->dir() + "/objects", ws + ".secrets", a.untrusted(),
                                   a.network()});
      }
      if (container == nullptr && !process.ok()) {
        res = {JobRunOutcome::kError, -1, std::string(process.status().message())};
        EmitLog(job_id, absl::StrCat("assay: ", res.message, "\n"));
      } else {
        req.executor = container != nullptr ? container.get() : process->get();
        // Issue 11: where each step begins in the log. The masker holds back a partial line;
        // flushed first, the previous step's bytes are all counted before the mark.
        req.on_step_start = [this, job_id, &secrets, &log, &req](size_t i) {
          secrets.Flush(log);
          absl::MutexLock l(&mu_);
          Job& j = *jobs_.at(job_id);
          if (j.step_marks.size() >= kMaxStepMarks) return;
          v1::StepMark& m = j.step_marks.emplace_back();
          m.set_index(static_cast<int32_t>(i));
          m.set_name(req.steps[i].name.substr(0, kMaxStepMarkName));
          m.set_log_offset(j.log_bytes);
          m.set_started_unix_ms(NowMs());
        };
        res = assay::RunJob(req, *cancel,
                            [&secrets, &log](std::string_view out) { secrets.Output(out, log); });
        secrets.Flush(log);
        pushed = builds->Pushed();
        // A build_image step that failed says why in the job's message, not only in its log
        // (the registry's refusal, the builder's error, the refused input).
        if (res.outcome == JobRunOutcome::kFailed && res.failed_step >= 0 &&
            res.failed_step < a.steps_size() && a.steps(res.failed_step).has_build_image()) {
          const std::string why = builds->FailureReason(static_cast<size_t>(res.failed_step));
          if (!why.empty()) res.message = secrets.MaskText(absl::StrCat(res.message, ": ", why));
        }
        UploadJobArtifacts(artifacts, a, ws, opts_.job_user, *cancel, log, &res);
        SaveJobCache(artifacts, stub_.get(), a, ws, opts_.job_user, chunk_cache_.get(), job_cache,
                     *cancel, log, res);
      }
    }
  }
  bool stopped_by_agent = false;
  if (res.outcome == JobRunOutcome::kCanceled) {
    std::string why;
    {
      absl::MutexLock l(&mu_);
      why = jobs_.at(job_id)->cancel_reason;
    }
    if (!why.empty()) {  // canceled by the agent's own lifecycle: say why, in the log too
      stopped_by_agent = true;
      res.message = why;
      EmitLog(job_id, absl::StrCat("assay: ", why, "\n"));
    }
  }
  {
    absl::MutexLock l(&mu_);
    Job& j = *jobs_.at(job_id);
    j.result.set_job_id(job_id);
    j.result.set_attempt_token(a.attempt_token());
    // Why not CANCELED: nobody canceled the job; the server requeues it (issue 9, lifecycle).
    j.result.set_outcome(stopped_by_agent ? v1::JOB_OUTCOME_AGENT_STOPPED : OutcomeOf(res.outcome));
    j.result.set_exit_code(res.exit_code);
    j.result.set_message(res.message);
    j.result.set_last_log_seq(j.next_seq - 1);
    j.result.set_started_unix_ms(started);
    j.result.set_finished_unix_ms(NowMs());
    for (v1::BuiltImage& image : pushed) *j.result.add_images() = std::move(image);
    for (const v1::StepMark& m : j.step_marks) *j.result.add_steps() = m;
    j.finished = true;
    if (writer_ != nullptr && !j.replaying) {
      v1::AgentMessage m;
      *m.mutable_result() = j.result;
      WriteLocked(m);
      j.result_sent = true;
    }
  }
  // Why after the result: deleting a large tree is slow and the server need not wait for it.
  absl::Status removed = cache->RemoveWorktree(ws);
  // Why a second try: a job may leave directories it made unwritable (chmod -w), which the
  // first removal cannot empty.
  if (!removed.ok()) removed = RemoveTree(ws);
  if (!removed.ok()) {
    // The job's result stands; the tree stays on disk until someone removes it.
    LogWarn("agent", "job ", job_id, ": removing its workspace ", ws,
            " failed: ", removed.ToString());
  }
  exited->store(true);
}

}  // namespace assay
