#pragma once
// The agent: one gRPC stream to the server (reconnecting with backoff), a thread per
// running job, and the bookkeeping that makes every report survive a reconnect: log chunks
// stay buffered until acknowledged, and a finished job's result is resent until the server
// says it recorded (or refused) it — so it is recorded exactly once.

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/cache.h"
#include "agent/container_executor.h"
#include "agent/gpu_inventory.h"
#include "agent/gpu_usage.h"
#include "agent/log_spool.h"
#include "agent/step_runner.h"
#include "agent/stream_writer.h"
#include "assay/v1/agent.grpc.pb.h"
#include "common/git/git.h"

namespace assay {

struct AgentOptions {
  std::string server;  // host:port of the server's gRPC listener
  // How the agent proves who it is (issue 8), in this order: its credential, kept in
  // work_dir/agent.credential (mode 0600) once it has one; else the one-time `enroll_token`,
  // exchanged for that credential at the first start; else the shared `token` (only for
  // servers run with --allow-shared-agent-token).
  std::string token;
  std::string enroll_token;
  // The channel: TLS unless grpc_insecure. The server's certificate must chain to
  // server_ca_pem (the pinned CA; empty: the system's CAs); client_cert_pem/client_key_pem
  // are presented for mutual TLS when set.
  bool grpc_insecure = false;
  std::string server_ca_pem;
  std::string client_cert_pem, client_key_pem;
  // How long one connection attempt may take before the agent says it cannot connect (and
  // backs off and tries again).
  absl::Duration connect_timeout = absl::Seconds(10);
  std::string name;
  std::vector<std::string> labels;
  int slots = 1;              // CPU slots
  double memory_gb = 0;       // announced in Hello; 0: not said
  std::vector<GpuInfo> gpus;  // announced in Hello
  // Issue 11: where the heartbeats' GPU load comes from: this capture read again (tests), or
  // when empty, discovery (NVML, then nvidia-smi). Sampled only when `gpus` is not empty.
  std::string gpu_inventory_file;
  absl::Duration gpu_sample_interval = absl::Seconds(5);
  std::string work_dir;
  // Whether the git cache may fetch file:// and absolute-path remotes (--allow-local-repos);
  // without it such an assignment fails at checkout (issue 8).
  bool allow_local_repos = false;
  absl::Duration kill_grace = absl::Seconds(10);
  // Set: steps run as this user (the agent is root); its workspace is its own, the agent's
  // work dir, cache and token are not writable (the token not readable) by it. See job_user.h.
  std::optional<JobIdentity> job_user;
  bool accept_untrusted = false;  // announced in Hello: runs jobs of untrusted pipelines
  // Announced in Hello (issue 9): the executors jobs run in (ResolveExecutors in
  // executor_choice.h), and the bwrap that "sandbox" uses.
  std::vector<std::string> executors = {"host"};
  std::string bwrap_path;
  absl::Duration reconnect_min = absl::Milliseconds(100);
  absl::Duration reconnect_max = absl::Seconds(5);
  // Unacknowledged log bytes a job keeps in memory; beyond them its chunks wait in a file
  // under <work_dir>/spool until the server acknowledges them (--log-buffer-kb).
  size_t log_memory_bytes = 4 << 20;
  // Lifecycle (issue 9). After a stop signal (Drain), running jobs get this long to finish
  // before they are canceled (0: canceled at once; --drain-timeout).
  absl::Duration drain_timeout = absl::Minutes(10);
  // Below this much free disk (decimal GB, statvfs of work_dir; 0: off) the agent takes no
  // job, until space returns (--min-free-disk-gb). Checked before taking a job and every
  // disk_check_interval.
  double min_free_disk_gb = 1;
  absl::Duration disk_check_interval = absl::Seconds(10);
  // Issue 9, caches: the local copy of cache chunks under <work_dir>/chunk-cache keeps at most
  // this many decimal GB, least recently used removed first (--cache-budget-gb; 0: nothing is
  // kept between jobs).
  double cache_budget_gb = 10;
  // Issue 9: the runtime of the container executor (--container-runtime); unset: none, and a
  // job with an image fails with "this agent has no container runtime".
  std::optional<ContainerRuntime> container_runtime;
};

// MemTotal of /proc/meminfo in decimal GB; 0 when it cannot be read.
double SystemMemoryGb();

class Agent {
 public:
  explicit Agent(AgentOptions opts);
  ~Agent();
  // Connects and serves until Shutdown(); returns kInvalidArgument for unusable options and
  // kUnauthenticated when the server refuses the token (retrying would not help).
  absl::Status Run();
  // Cancels running jobs, delivers what it can, and makes Run() return. Thread-safe.
  void Shutdown();
  // A stop signal (`why`, e.g. "SIGTERM"). The first: the agent takes no new job (and tells
  // the server so at once), lets running jobs finish — canceling them once drain_timeout has
  // passed —, delivers their results and logs, and then Run() returns OK. The second: running
  // jobs are canceled now, their results still delivered. The third: Shutdown(). Thread-safe.
  void Drain(const std::string& why);

 private:
  struct Job {
    v1::Assignment assignment;
    std::unique_ptr<CancelFlag> cancel;
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> exited = std::make_shared<std::atomic<bool>>(false);
    uint64_t next_seq = 1;
    // Issue 11: bytes of this attempt's log so far, and where each started step began.
    uint64_t log_bytes = 0;
    std::vector<v1::StepMark> step_marks;
    std::unique_ptr<LogSpool> unacked_logs;  // what the server has not acknowledged
    // On the current stream: chunks up to sent_upto were queued for it; while `replaying`,
    // new chunks and the result wait for the replay (ServeOnce) so they go out in order.
    uint64_t sent_upto = 0;
    bool replaying = false;
    bool result_sent = false;
    bool finished = false;
    v1::JobResult result;
    std::string cancel_reason;  // set when the agent itself canceled it (lifecycle)
  };
  using Stream = grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerMessage>;

  bool ServeOnce(bool* fatal);  // one connection; true if it got as far as a Welcome
  // Waits (bounded by connect_timeout, and by Shutdown) until the channel is connected; logs
  // why not and returns false otherwise.
  bool AwaitChannel();
  // Loads the credential from the work dir, or enrolls with opts_.enroll_token and stores it.
  // kUnauthenticated/kPermissionDenied/kInvalidArgument: the server refused (retrying would
  // not help); kUnavailable: try again later.
  absl::Status EnsureCredential();
  std::string CredentialPath() const;
  void OnAssignment(const v1::Assignment& a);
  void OnAck(const v1::Ack& ack);
  void RunJob(int64_t job_id);
  void EmitLog(int64_t job_id, std::string_view bytes);
  void HeartbeatLoop(Stream* stream, absl::Duration interval);
  // After a Welcome: sends every job's unacknowledged chunks in seq order, then its result
  // if finished, paced by the writer; returns when all are out or the stream broke.
  void Replay(Stream* stream, StreamWriter* writer);
  // REQUIRES: mu_ held. A log chunk message of job `id`.
  static v1::AgentMessage LogMessage(int64_t id, const Job& j, uint64_t seq, std::string data,
                                     int64_t read_unix_us);
  // REQUIRES: mu_ held. Queues `m` for the stream's writer if connected; never blocks. A
  // message that is dropped (not connected, queue full) is one the reconnect makes good:
  // log chunks and results are resent until acknowledged, heartbeats recur.
  void WriteLocked(const v1::AgentMessage& m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The cache for the assignment's clone URL, holding its credential (if any) for the fetch.
  GitMirror* CacheFor(const v1::Assignment& a);
  // The path of a Git LFS object with this SHA-256 and size in one of this agent's repository
  // caches (those of repositories it has run jobs of since it started), for artifact downloads.
  std::optional<std::string> LocalLfsObject(const std::string& sha256, uint64_t size);

  // Lifecycle (agent/agent_lifecycle.cc). Why the agent takes no job now, in its own view
  // (a stop signal, the disk floor); "" when it takes jobs. REQUIRES: mu_ held.
  std::string OwnStateLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // REQUIRES: mu_ held. "" when a new job may be taken; else the rejection's reason.
  std::string RefusalLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // REQUIRES: mu_ held. Sends AgentState when OwnStateLocked changed since it was last sent.
  void SendStateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // REQUIRES: mu_ held. Cancels every running job, its result saying `reason`.
  void CancelAllLocked(const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks the disk floor now; updates disk_reason_ and tells the server when it changed.
  void CheckDisk();
  void OnDrain(const v1::Drain& d);
  // One thread from Run: the periodic disk check, the drain deadlines, and the end of a drain
  // (no job left to deliver: Run returns).
  void LifecycleLoop();

  const AgentOptions opts_;
  std::string bearer_;  // the secret sent as `authorization: Bearer`; set by Run
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
  std::unique_ptr<LocalChunkCache> chunk_cache_;  // issue 9, caches; opened by Run
  std::unique_ptr<GpuUsageSampler> gpu_usage_;    // issue 11; null without GPUs

  absl::Mutex mu_;
  std::map<int64_t, std::unique_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  StreamWriter* writer_ ABSL_GUARDED_BY(mu_) = nullptr;  // stream_'s writes; set with it
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  // Threads of jobs whose result was acknowledged, with their "returned" flag.
  std::vector<std::pair<std::thread, std::shared_ptr<std::atomic<bool>>>> finished_threads_
      ABSL_GUARDED_BY(mu_);
  // Lifecycle. stop_signals_: Drain calls so far; drain_why_: the first one's `why`.
  int stop_signals_ ABSL_GUARDED_BY(mu_) = 0;
  std::string drain_why_ ABSL_GUARDED_BY(mu_);
  absl::Time drain_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool drain_canceled_ ABSL_GUARDED_BY(mu_) = false;  // the drain's deadline was acted on
  // An admin's drain (ServerMessage.drain): no new job; running ones canceled at
  // server_cancel_at_.
  bool server_drained_ ABSL_GUARDED_BY(mu_) = false;
  std::string server_drain_reason_ ABSL_GUARDED_BY(mu_);
  absl::Time server_cancel_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::string disk_reason_ ABSL_GUARDED_BY(mu_);      // DiskFloorReason of the last check
  std::string sent_state_ ABSL_GUARDED_BY(mu_);       // OwnStateLocked as last told the server
  bool lifecycle_wake_ ABSL_GUARDED_BY(mu_) = false;  // something for LifecycleLoop to see

  absl::Mutex cache_mu_;
  std::map<std::string, std::unique_ptr<GitMirror>> caches_ ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace assay
