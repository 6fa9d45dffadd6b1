#pragma once
// The job lifecycle as seen from agents: claim with a lease and a fencing token, start,
// log, heartbeat, finish; and the sweep that rescues jobs of lost agents. Every write from
// an agent is checked against the attempt token. *db and *clock must outlive the store.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "server/store/agents.h"
#include "server/store/db.h"
#include "server/store/job_images.h"

namespace assay::store {

struct ClaimedJob {
  int64_t job_id = 0;
  int64_t pipeline_id = 0;
  int64_t agent_id = 0;
  int64_t repo_id = 0;
  int attempt = 0;
  std::string attempt_token, job_name, spec_json, clone_url, commit_sha, ref;
  std::string clone_credential_sealed;  // the repo's sealed clone credential; empty: none
  absl::Time queued_at;
  std::vector<uint32_t> gpu_indices;
  bool untrusted = false;  // requirements "untrusted": sent in the Assignment (issue 9)
};

// A queued job as the dispatcher sees it.
struct QueuedJobRow {
  int64_t job_id = 0;
  int64_t repo_id = 0;
  int priority = 0;
  absl::Time queued_at;
  std::vector<std::string> labels;
  std::string requirements_json;  // jobs.requirements
  std::string concurrency_key;    // "" when none
  std::string parallel_key;       // "" when no max_parallel
  int max_parallel = 0;
  int64_t last_agent_id = 0;  // 0: first attempt
};

// What the dispatcher needs to order and place queued jobs.
struct QueueSnapshot {
  std::vector<QueuedJobRow> jobs;  // per repository at most `per_repo`, in order
  // Read only when the snapshot can use them: running_per_repo when `jobs` spans two or more
  // repositories, the group fields when some job in `jobs` has a group or max_parallel.
  std::map<int64_t, int> running_per_repo;  // assigned or running jobs per repository
  std::set<std::string> held_groups;        // concurrency keys with a live job
  std::map<std::string, int> running_per_parallel_key;
};

// A coarse filter the dispatcher passes so that jobs no connected agent could take do not
// fill the snapshot (head-of-line blocking): gpus <= max_gpus, cpus <= max_cpus, labels ⊆
// any_labels.
struct QueueFilter {
  int per_repo = 100;
  int max_cpus = 1024;
  int max_gpus = 0;
  std::vector<std::string> any_labels;
  bool untrusted = true;  // false: leave out jobs of untrusted pipelines (no agent takes them)
  // Executors (issue 9; requirements "executor", "untrusted"): false leaves out the jobs that
  // need what no agent offers: `container` a container job, `process` any other job (sandbox
  // or host); an untrusted one needs `untrusted_container` or `untrusted_sandbox` (offered by
  // an agent that accepts untrusted jobs; never host).
  bool container = true;
  bool process = true;
  bool untrusted_container = true;
  bool untrusted_sandbox = true;
};

struct ClaimRequest {
  int64_t job_id = 0;
  int64_t agent_id = 0;
  std::vector<uint32_t> gpu_indices;
  bool grouped = false;  // the job has a concurrency group or a max_parallel
};

struct ClaimBatchResult {
  std::vector<ClaimedJob> claimed;  // committed claims, also when `status` is not OK
  absl::Status status;              // the first failed transaction's error
};

struct LiveUsage {
  int64_t job_id = 0;
  int64_t pipeline_id = 0;
  int64_t agent_id = 0;
  std::vector<std::string> labels;
  std::string requirements_json;
  std::vector<uint32_t> gpu_indices;
  std::string concurrency_key, parallel_key;
};

// A live attempt of an agent and what it holds (to rebuild capacity after a reconnect).
struct LiveJob {
  int64_t job_id = 0;
  std::string attempt_token;
  std::vector<std::string> labels;
  std::string requirements_json;
  std::vector<uint32_t> gpu_indices;
};

enum class Fence {
  kOk,         // written
  kDuplicate,  // already written before (a resend); nothing changed
  kStale,      // the token is not the job's live attempt; nothing changed
  kDropped,    // a log chunk past the attempt's log quota: accepted, not stored
};

// The log quota of one attempt when the server is not told otherwise (--job-log-limit-mb).
inline constexpr int64_t kDefaultLogQuotaBytes = int64_t{100} << 20;

// The line stored in place of the rest of a log past its quota of `quota_bytes`.
std::string LogTruncationMarker(int64_t quota_bytes);

// One read-time mark of a stored log row (log_chunks.marks): 12 bytes, `offset` (uint32) then
// `unix_us` (int64), little-endian.
std::string LogMark(uint32_t offset, int64_t unix_us);

// One log chunk for JobStore::AppendLogs; the views must outlive the call.
struct LogAppend {
  int64_t job_id = 0;
  std::string_view token;
  int64_t seq = 0;
  std::string_view data;
  int64_t read_unix_us = 0;  // 0: unknown (the store's clock is used)
};

struct ResultReport {
  int64_t job_id = 0;
  std::string attempt_token;
  // succeeded, failed, timed_out, canceled, error; or kAgentStopped: the agent stopped the
  // job itself (drain timeout): recorded like a lost agent (Finish).
  std::string state;
  std::optional<int> exit_code;
  std::string message;
  // As reported by the agent; InfinitePast when it did not say (the server's clock is used).
  absl::Time started_at = absl::InfinitePast(), finished_at = absl::InfinitePast();
  // Issue 9: what its build_image steps pushed, checked (job_images.h), in push order.
  std::vector<JobImage> images;
  // Issue 11: the attempt's step marks as a JSON array, checked by the caller; "" none.
  std::string steps_json;
};

// ResultReport.state of a job the agent stopped itself (issue 9, lifecycle).
inline constexpr char kAgentStopped[] = "agent_stopped";

struct FinishOutcome {
  Fence fence = Fence::kOk;
  int queued = 0;           // dependents that became ready
  bool retried = false;     // the job's retry policy queued it again
  absl::Duration duration;  // run time as reported, for the histogram
};

struct HeldAttempt {
  int64_t job_id = 0;
  std::string attempt_token;
};

class JobStore {
 public:
  JobStore(Db* db, const Clock* clock) : db_(db), clock_(clock) {}

  // The queued jobs that `filter` lets through, at most filter.per_repo per repository in
  // (priority DESC, queued_at, id) order, with the running counts fair share needs.
  absl::StatusOr<QueueSnapshot> Queue(const QueueFilter& filter);
  // Claims each requested job that is still queued (FOR UPDATE SKIP LOCKED: a job another
  // server took meanwhile is left out) for its agent, with a new attempt, a fresh token, its
  // GPU indices and a lease of `lease`. Jobs without a concurrency group or max_parallel are
  // claimed in one transaction; the others one transaction each, under a transaction-scoped
  // advisory lock on their group, and only while the group has room. The transactions commit
  // one by one: when one fails, the result holds every claim committed before it (the
  // caller must hand those out or release them) and its error; the requests from the failed
  // one on were not claimed and stay queued.
  ClaimBatchResult ClaimBatch(const std::vector<ClaimRequest>& batch, absl::Duration lease);
  absl::StatusOr<std::vector<LiveJob>> LiveJobsOf(int64_t agent_id);
  // Every live attempt (any agent, any server): what it holds and which groups it occupies.
  absl::StatusOr<std::vector<LiveUsage>> LiveUsageAll();
  // The stream of `session` ended while the server runs: if `session` is still the agent's
  // current one (checked in the same statement, under the agent row's lock, so a concurrent
  // Hello either comes after and renews the leases or makes this a no-op), its live attempts
  // keep their lease only until now + grace (a reconnect within it renews them). Returns the
  // number of leases shortened; 0 when a newer session exists.
  absl::StatusOr<int> ShortenLeases(const AgentSession& session, absl::Duration grace);
  absl::StatusOr<Fence> MarkRunning(int64_t job_id, std::string_view token);
  // The agent refused the job (or the server could not hand it over): the attempt is closed
  // as 'rejected' and the job queued again. A rejected attempt does not count against the
  // retry policy (max_attempts grows by one).
  absl::StatusOr<Fence> Reject(int64_t job_id, std::string_view token, std::string_view reason);
  // A claim that never reached its agent (the server could not send the assignment): closed
  // and queued again at once like Reject (not counted against the retry policy), with `why`
  // as the attempt's message.
  absl::StatusOr<Fence> Unassign(int64_t job_id, std::string_view token, std::string_view why);
  // Stores one log chunk of the attempt that `token` names (kStale if the token is not the
  // job's current attempt; kDuplicate for a chunk already stored). An attempt stores at most
  // `quota_bytes` bytes of chunk data: the chunk that crosses the quota is stored cut to what
  // fits, followed by LogTruncationMarker(quota_bytes); it and every later new chunk of the
  // attempt return kDropped (nothing more is stored; the caller still acknowledges them, so
  // the agent does not resend). Counted per attempt, under the attempt row's lock.
  // `read_unix_us`: when the agent read the bytes (0: unknown; the store's clock is used).
  // Each stored chunk records its byte offset in the attempt's log and notifies 'assay_logs'
  // (payload: the job id) for followers.
  absl::StatusOr<Fence> AppendLog(int64_t job_id, std::string_view token, int64_t seq,
                                  std::string_view data,
                                  int64_t quota_bytes = kDefaultLogQuotaBytes,
                                  int64_t read_unix_us = 0);
  // AppendLog for several chunks (any jobs) in one transaction, in order: their fences in
  // the same order, exactly as one AppendLog call per chunk would give (kInvalidArgument, and
  // nothing stored, when a seq is < 1). Why: one commit (one WAL flush) for a run of chunks,
  // and a chunk that follows the contiguous log costs one INSERT; the attempt row is locked,
  // counted and notified once per attempt. kUnavailable etc. as InTransaction: then nothing
  // of the batch is stored.
  absl::StatusOr<std::vector<Fence>> AppendLogs(const std::vector<LogAppend>& chunks,
                                                int64_t quota_bytes = kDefaultLogQuotaBytes);
  // Records the attempt's result (kStale: not the live token; kDuplicate: already recorded).
  // A kAgentStopped result ends the attempt 'lost' with its message, as an expired lease
  // does: the job is queued again when its retry policy allows agent_lost (retried), else it
  // fails with that message.
  absl::StatusOr<FinishOutcome> Finish(const ResultReport& r);
  // Extends the leases of the named live attempts; returns those that are not live any more.
  absl::StatusOr<std::vector<HeldAttempt>> Heartbeat(const std::vector<HeldAttempt>& held,
                                                     absl::Duration lease);
  // Live attempts of `agent_id` that are not in `held`: the agent does not know them (an
  // assignment lost with a broken stream). They are treated like expired leases.
  absl::StatusOr<int> ReleaseUnheld(int64_t agent_id, const std::vector<HeldAttempt>& held);
  // Jobs whose lease expired before now: the attempt becomes 'lost'; the job is queued again
  // while attempts remain, else it fails. Returns the number of jobs handled.
  absl::StatusOr<int> ExpireLeases();
  // The bytes of the job's log: the latest attempt that has any chunk, in seq order. Holds
  // the whole log in memory: for tests and small logs; GET /log streams it with LogStore.
  absl::StatusOr<std::string> ReadLog(int64_t job_id);
  // Issue 11: the step marks (JSON array) of the attempt whose log GET /log shows; "" none.
  absl::StatusOr<std::string> StepsOf(int64_t job_id);
  absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> CountByState();
  // Unplanned deliveries + unfinished jobs; 0 means the server is idle.
  absl::StatusOr<int64_t> ActiveWork();

 private:
  absl::StatusOr<Fence> CloseUnrun(int64_t job_id, std::string_view token,
                                   const std::string& message);
  absl::StatusOr<int> RequeueLost(const std::string& where_agent,
                                  const std::vector<HeldAttempt>* keep, int64_t agent_id);
  Db* db_;
  const Clock* clock_;
};

}  // namespace assay::store
