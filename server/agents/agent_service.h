#pragma once
// The gRPC side of the agent protocol (proto/assay/v1/agent.proto). Each Connect stream is a
// callback reactor; it only translates messages and hands them, one at a time and in order,
// to a blocking worker pool where the stores and the Dispatcher do the work. When a stream
// ends, its session ends on that pool too, after its last message: assignments that were
// never written go back to the queue, and the agent goes offline and its leases shrink to the
// reconnect grace — these two only while no newer Hello of the agent has replaced the
// session (AgentStore's generation).
//
// Who an agent is (issue 8): a stream presents either the agent's own credential (from the
// Enroll RPC; the Hello must then name that agent and announce only labels its enrollment
// allowed) or, only where the server allows it, the shared agent token. Every report names an
// attempt token, and an attempt given to another agent is refused. Revoking or disabling an
// agent closes its streams on this server at once (CloseAgent) and on the others within
// `access_check_interval`.

#include <grpcpp/grpcpp.h>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "assay/v1/agent.grpc.pb.h"
#include "server/artifacts/artifact_service.h"
#include "server/artifacts/cache_service.h"
#include "server/logs/ingest_masks.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "server/store/agent_credentials.h"
#include "server/store/agents.h"
#include "server/store/deployments.h"
#include "server/store/evals.h"
#include "server/store/jobs.h"
#include "server/store/train.h"

namespace assay {

struct AgentServiceDeps {
  store::AgentStore* agents;
  store::JobStore* jobs;
  Dispatcher* dispatcher;
  Metrics* metrics;
  std::string agent_token;  // compared in constant time with the stream's bearer token
  absl::Duration heartbeat_interval = absl::Seconds(5);
  int worker_threads = 4;
  // A stream that ends while the server runs leaves its jobs this long to reconnect.
  absl::Duration reconnect_grace = absl::Seconds(5);
  // The log quota of one attempt (--job-log-limit-mb): past it, one truncation marker is
  // stored and later chunks are acknowledged and dropped (store::JobStore::AppendLog).
  int64_t job_log_limit_bytes = store::kDefaultLogQuotaBytes;
  // A log chunk with more data than this ends the stream (INVALID_ARGUMENT); agents send at
  // most 256 KiB per chunk (64 KiB before issue 9's ingest work).
  size_t max_log_chunk_bytes = 1 << 20;
  // Log chunks read from one stream while earlier ones are stored are stored together, in one
  // transaction (one commit), up to this many chunks and bytes; past either, the stream is not
  // read until the batch is taken. Why: a commit per chunk (a WAL flush each) bounded ingest
  // below 50 MB/s; a batch adds no wait (nothing is held back for a timer).
  size_t max_log_batch_chunks = 256;
  size_t max_log_batch_bytes = 8 << 20;
  // Each stream's outbound queue (welcome, assignments, cancels, acks not yet written) holds
  // at most this many messages and serialized bytes. Why: an agent that stops reading would
  // otherwise grow it without limit (an ack per message it sends). When a message does not
  // fit, the stream ends with RESOURCE_EXHAUSTED; the queued assignments go back to the queue
  // and the agent reconnects and resends what was not acknowledged.
  size_t max_outbound_messages = 1024;
  size_t max_outbound_bytes = 16 << 20;
  // Enrollment and per-agent credentials; null: only the shared token (tests of other parts).
  store::AgentCredentialStore* credentials = nullptr;
  // The shared `agent_token` is accepted only when this is set (--allow-shared-agent-token).
  bool allow_shared_token = true;
  // How often the streams open here are checked against revocations made on other servers.
  absl::Duration access_check_interval = absl::Seconds(2);
  // The artifact RPCs (server/agents/artifact_rpc.cc); null: they answer UNIMPLEMENTED.
  artifacts::ArtifactService* artifacts = nullptr;
  // The cache RPCs (server/agents/cache_rpc.cc, issue 9); null: they answer UNIMPLEMENTED.
  artifacts::CacheService* caches = nullptr;
  // The eval RPCs (server/agents/eval_rpc.cc, issue 10); null: they answer UNIMPLEMENTED.
  // Authorization goes through `artifacts` (the attempt token), which they need too.
  store::EvalStore* evals = nullptr;
  // The training RPCs (server/agents/train_rpc.cc, issue 10); null: UNIMPLEMENTED. Through
  // `artifacts` too (authorization, file checks).
  store::TrainStore* train = nullptr;
  // The registry a `promote:` step moves aliases in (Promote); null: UNIMPLEMENTED.
  store::ModelStore* models = nullptr;
  // Issue 12, `deploy:` steps (StartDeployment, FollowDeployment; deploy_rpc.cc); null:
  // UNIMPLEMENTED. wake_deployments: the deployment controller looks for due work now.
  store::DeploymentStore* deployments = nullptr;
  std::function<void()> wake_deployments;
};

class AgentServiceImpl final : public v1::AgentService::CallbackService {
 public:
  // Everything in `deps` must outlive this service.
  explicit AgentServiceImpl(AgentServiceDeps deps);
  ~AgentServiceImpl() override;

  grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>* Connect(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* ctx,
                                   const v1::EnrollRequest* request,
                                   v1::EnrollResponse* response) override;

  // Artifacts (artifact_rpc.cc). Each call presents Connect's authorization (an agent
  // credential, or the shared token where allowed: UNAUTHENTICATED otherwise) and the job's
  // live attempt token (PERMISSION_DENIED otherwise); the work runs on the worker pool.
  grpc::ServerUnaryReactor* ArtifactChunksMissing(grpc::CallbackServerContext* ctx,
                                                  const v1::ChunksMissingRequest* request,
                                                  v1::ChunksMissingResponse* response) override;
  grpc::ServerReadReactor<v1::ChunkUpload>* UploadChunks(
      grpc::CallbackServerContext* ctx, v1::UploadChunksResponse* response) override;
  grpc::ServerUnaryReactor* CommitArtifacts(grpc::CallbackServerContext* ctx,
                                            const v1::CommitArtifactsRequest* request,
                                            v1::CommitArtifactsResponse* response) override;
  grpc::ServerUnaryReactor* GetArtifactManifest(grpc::CallbackServerContext* ctx,
                                                const v1::ArtifactManifestRequest* request,
                                                v1::ArtifactManifest* response) override;
  grpc::ServerWriteReactor<v1::ChunkData>* DownloadChunks(
      grpc::CallbackServerContext* ctx, const v1::DownloadChunksRequest* request) override;
  // Caches (cache_rpc.cc): the same authorization as the artifact RPCs.
  grpc::ServerUnaryReactor* CacheRestore(grpc::CallbackServerContext* ctx,
                                         const v1::CacheRestoreRequest* request,
                                         v1::CacheRestoreResponse* response) override;
  grpc::ServerUnaryReactor* CacheCommit(grpc::CallbackServerContext* ctx,
                                        const v1::CacheCommitRequest* request,
                                        v1::CacheCommitResponse* response) override;
  grpc::ServerUnaryReactor* ReportEval(grpc::CallbackServerContext* ctx,
                                       const v1::EvalReportPiece* request,
                                       v1::EvalReportAck* response) override;
  grpc::ServerUnaryReactor* EvalBaseline(grpc::CallbackServerContext* ctx,
                                         const v1::EvalBaselineRequest* request,
                                         v1::EvalBaselineResponse* response) override;
  // Issue 10, training (train_rpc.cc).
  grpc::ServerUnaryReactor* ReportTrainMetrics(grpc::CallbackServerContext* ctx,
                                               const v1::TrainMetricsRequest* request,
                                               v1::TrainMetricsResponse* response) override;
  grpc::ServerUnaryReactor* CommitCheckpoint(grpc::CallbackServerContext* ctx,
                                             const v1::CheckpointCommitRequest* request,
                                             v1::CheckpointCommitResponse* response) override;
  grpc::ServerUnaryReactor* RestoreCheckpoint(grpc::CallbackServerContext* ctx,
                                              const v1::CheckpointRestoreRequest* request,
                                              v1::CheckpointRestoreResponse* response) override;
  grpc::ServerUnaryReactor* ReportTrainRun(grpc::CallbackServerContext* ctx,
                                           const v1::TrainRunReport* request,
                                           v1::TrainRunAck* response) override;
  grpc::ServerUnaryReactor* Promote(grpc::CallbackServerContext* ctx,
                                    const v1::PromoteRequest* request,
                                    v1::PromoteResponse* response) override;
  grpc::ServerUnaryReactor* StartDeployment(grpc::CallbackServerContext* ctx,
                                            const v1::DeploymentRequest* request,
                                            v1::DeploymentProgress* response) override;
  grpc::ServerUnaryReactor* FollowDeployment(grpc::CallbackServerContext* ctx,
                                             const v1::DeploymentRequest* request,
                                             v1::DeploymentProgress* response) override;

  // Who a call's `authorization` metadata stands for: the agent id of a valid credential,
  // nullopt for the shared token (any agent). Blocking (database): on the pool only.
  absl::StatusOr<std::optional<int64_t>> CallerOf(const std::string& authorization);

  // Ends every stream of `agent_id` open on this server with `status` (revoke, disable).
  void CloseAgent(int64_t agent_id, const grpc::Status& status);
  // Sessions register how to close them once their Hello is accepted, and unregister as
  // they end. `key` identifies the session.
  void RegisterSession(int64_t agent_id, const void* key,
                       std::function<void(const grpc::Status&)> close,
                       std::function<void(const store::AgentDrain&)> drain = nullptr);
  void UnregisterSession(int64_t agent_id, const void* key);

  // Issue 9, lifecycle: reads the drain state of the agents with streams open here (all, or
  // those in `only`) and tells each session, which tells its agent and the dispatcher when it
  // changed. Blocking (PostgreSQL): call it from the pool or a thread of its own. Called after
  // a drain or resume through this server's API, on the 'assay_agent_drain' notification of
  // another server's, and every access_check_interval in case a notification was lost.
  void RefreshDrains(const std::vector<int64_t>& only = {});

  const AgentServiceDeps& deps() const { return deps_; }
  // The secret values of the attempts whose assignments streams here sent (masked again in
  // their log chunks at ingest; server/logs/ingest_masks.h).
  IngestMasks& ingest_masks() { return ingest_masks_; }
  // Runs `task` on the worker pool. Why under mu_: a session's last task (SessionEnded) takes
  // mu_ too, so once every session has ended no thread is still inside a post to the pool, and
  // the pool may be destroyed (TSan saw a gRPC thread still signalling the pool's condition
  // variable while a test destroyed it).
  template <typename Task>
  void Post(Task&& task) {
    absl::MutexLock l(&mu_);
    boost::asio::post(pool_, std::forward<Task>(task));
  }

  // Streams whose session has fully ended (its end handling done), for tests and logs.
  int64_t sessions_ended();
  // Waits until at least `n` sessions have ended; false after `timeout`.
  bool AwaitSessionsEnded(int64_t n, absl::Duration timeout);
  void SessionEnded();  // called by a session as its last act
  // The most messages any stream's outbound queue has held at once (for tests and logs).
  size_t peak_outbound_messages() const { return peak_outbound_.load(); }
  void NoteOutbound(size_t n) {
    size_t seen = peak_outbound_.load();
    while (n > seen && !peak_outbound_.compare_exchange_weak(seen, n)) {
    }
  }

 private:
  void AccessCheckLoop();

  AgentServiceDeps deps_;
  IngestMasks ingest_masks_;  // before pool_: its tasks use it
  boost::asio::thread_pool pool_;
  absl::Mutex mu_;
  int64_t sessions_ended_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<size_t> peak_outbound_{0};
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::pair<int64_t, const void*>, std::function<void(const grpc::Status&)>> open_
      ABSL_GUARDED_BY(mu_);
  std::map<std::pair<int64_t, const void*>, std::function<void(const store::AgentDrain&)>> drain_
      ABSL_GUARDED_BY(mu_);
  std::thread access_check_;
};

}  // namespace assay
