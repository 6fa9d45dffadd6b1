#pragma once
// Pipelines and their jobs. A pipeline and all its jobs are written in one transaction;
// every later change of a pipeline's jobs happens under its row lock (see AdvancePipeline).
// *db and *clock must outlive the store.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "server/store/db.h"

namespace assay::store {

struct NewJob {
  std::string name;
  std::vector<std::string> needs;  // names of jobs in the same pipeline
  std::string spec_json;           // {"steps":[{"name","run"}],"env":{..},"timeout_s":N}
  std::vector<std::string> labels;
  int max_attempts = 2;
  int priority = 0;                      // higher is claimed first
  std::string skip_reason;               // non-empty: written as 'skipped' with this message
  std::string requirements_json = "{}";  // see migrations/0002_scheduling.sql
  std::vector<std::string> retry_on = {"agent_lost"};
  bool allow_failure = false;
  std::string concurrency_group;  // "" when none; the key is "<repo id>:<group>"
  bool cancel_in_progress = false;
  std::string base_name;  // matrix expansions share it (with max_parallel); "" = name
  int max_parallel = 0;   // 0: no limit
};

struct NewPipeline {
  int64_t repo_id = 0;
  std::optional<int64_t> delivery_id;
  std::string event, ref, commit_sha;
  std::vector<NewJob> jobs;  // empty together with a non-empty error → state 'error'
  std::string error;
  bool trusted = true;  // false: code from a fork's pull request; never gets secrets
  std::optional<int64_t> pr_number;
  std::string inputs_json;  // a manual pipeline's inputs (JSON object); "" = none
  // A scheduled pipeline: its schedule and slot. At most one pipeline per (schedule, slot).
  std::optional<int64_t> schedule_id;
  std::optional<absl::Time> scheduled_for;
  // With schedule_id and scheduled_for: Create claims the slot in its own transaction, moving
  // the schedule's next_run_at from scheduled_for to this. When next_run_at is no longer
  // scheduled_for (another caller claimed the slot, or the schedule was replaced or removed),
  // nothing is written and Create returns 0.
  std::optional<absl::Time> claim_next_run;
  std::optional<int64_t> rerun_of;            // issue 11: the pipeline this one re-runs
  std::string commit_author, commit_message;  // "" when unknown
};

struct JobRow {
  int64_t id = 0;
  int64_t pipeline_id = 0;
  std::string name, state, agent, message;
  int attempt = 0;
  std::optional<int> exit_code;
  absl::Time created_at, queued_at, started_at, finished_at;  // InfinitePast when unset
  std::vector<std::string> needs;
  std::vector<std::string> labels;
  std::string requirements_json;
  std::vector<uint32_t> gpu_indices;  // of the live or last attempt
  bool allow_failure = false;
  int max_attempts = 1;
  std::string concurrency_key;
  std::string parallel_key;
  int max_parallel = 0;
  int64_t repo_id = 0;
  int priority = 0;
  std::string repo;  // filled by ListWaiting only
};

struct PipelineRow {
  int64_t id = 0;
  int64_t repo_id = 0;
  std::string repo, event, ref, commit_sha, state, message;
  absl::Time created_at, finished_at;
  bool trusted = true;
  std::optional<int64_t> pr_number;
  std::string inputs_json;                    // "" when the pipeline has no inputs
  absl::Time scheduled_for;                   // InfinitePast unless scheduled
  std::optional<int64_t> rerun_of;            // issue 11: the pipeline this one re-runs
  std::optional<int64_t> delivery_id;         // the webhook delivery it was planned from
  std::string commit_author, commit_message;  // "" when unknown
  std::vector<JobRow> jobs;                   // filled by Get only
};

// A job that was live on an agent when its pipeline was canceled.
struct CanceledAttempt {
  int64_t job_id = 0;
  int64_t agent_id = 0;
  std::string attempt_token;
};

class PipelineStore {
 public:
  PipelineStore(Db* db, const Clock* clock) : db_(db), clock_(clock) {}
  // Writes the pipeline, its jobs and their needs, and marks the delivery (if any) processed.
  // Returns the pipeline id. If the delivery (or the schedule slot) already has a pipeline,
  // returns that one's id. 0 when p.claim_next_run is set and the slot is no longer due.
  absl::StatusOr<int64_t> Create(const NewPipeline& p);
  absl::StatusOr<std::vector<PipelineRow>> List(std::optional<std::string> repo, int limit);
  // Issue 11: newest first, each set field filtering (ref is the full ref, refs/heads/main),
  // from ids below `before_id` (a keyset cursor: 0 from the newest), at most `limit`.
  struct Filter {
    std::optional<std::string> repo;
    std::optional<std::string> ref;
    std::optional<std::string> state;
    std::optional<std::string> event;
    int64_t before_id = 0;
    int limit = 50;
  };
  absl::StatusOr<std::vector<PipelineRow>> List(const Filter& f);
  absl::StatusOr<PipelineRow> Get(int64_t id);
  absl::StatusOr<JobRow> GetJob(int64_t id);
  // Jobs not yet placed (queued, then pending), in the order the scheduler offers them
  // within one repository: priority, then age.
  absl::StatusOr<std::vector<JobRow>> ListWaiting(int limit);
  // Cancels every unfinished job; returns the attempts that agents must be told to stop.
  // kFailedPrecondition when the pipeline has already finished.
  absl::StatusOr<std::vector<CanceledAttempt>> Cancel(int64_t id);
  // Cancels one unfinished job (its dependents are then skipped); returns its live attempt,
  // if any. kNotFound / kFailedPrecondition ("job N has already finished (STATE)").
  absl::StatusOr<std::vector<CanceledAttempt>> CancelJob(int64_t job_id);
  // Issue 11, retry: runs a finished job again (succeeded, failed, timed out, errored or
  // canceled) with a fresh set of its planned attempts. The jobs downstream of it that never
  // ran because of it (skipped as blocked, or canceled before they started) become pending
  // again, and a finished pipeline is running again. Returns how many jobs became pending.
  // kNotFound; kFailedPrecondition when the job has not finished, was skipped, or needs a job
  // that did not succeed (the message names each: "needs jobs that did not succeed: build
  // (failed); retry those first").
  absl::StatusOr<int> RetryJob(int64_t job_id);
  // Retries, as RetryJob does, every job of a finished pipeline that failed, timed out,
  // errored or was canceled (like GitLab's pipeline "Retry"); a retried job whose needs are
  // retried too waits for them. kFailedPrecondition while it runs, or when it has no such job.
  absl::StatusOr<int> RetryPipeline(int64_t pipeline_id);
  // For cancel_superseded: cancels every running push pipeline of `repo_id` on `ref` older than
  // `newer_id` (jobs' and pipelines' message "superseded by pipeline NEWER_ID"); returns the
  // attempts that agents must be told to stop, and the canceled pipelines' ids in *canceled.
  absl::StatusOr<std::vector<CanceledAttempt>> CancelSuperseded(int64_t repo_id,
                                                                const std::string& ref,
                                                                int64_t newer_id,
                                                                std::vector<int64_t>* canceled);

 private:
  Db* db_;
  const Clock* clock_;
};

// Inside a transaction that holds the pipeline's row lock (LockPipeline): skips pending jobs
// whose needs can no longer succeed, queues pending jobs whose needs all succeeded, and
// finishes the pipeline when no job is left unfinished. Returns how many jobs were queued.
// A failed, timed-out or errored job with allow_failure counts as succeeded for its
// dependents and for the pipeline's state. Sends NOTIFY assay_jobs when it queued any.
// `may_block`: false when the only change since the last advance is a job that succeeded
// (nothing can have become blocked, so the skip pass is not run).
int AdvancePipeline(pqxx::work& tx, Connection& c, int64_t pipeline_id, absl::Time now,
                    bool may_block = true);
// NOTIFY assay_cancel "<agent id> <job id> <token>" per attempt (delivered at commit), so that
// whichever server holds the agent's stream tells it to stop.
void NotifyCancel(pqxx::work& tx, Connection& c, const std::vector<CanceledAttempt>& attempts);
void LockPipeline(pqxx::work& tx, Connection& c, int64_t pipeline_id);

}  // namespace assay::store
