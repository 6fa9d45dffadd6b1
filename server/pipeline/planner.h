#pragma once
// Turns accepted push and pull-request deliveries, due schedules and manual requests into
// pipelines: fetch the commit into the repo's bare mirror, read .assay.yml at that commit,
// validate it, and write the pipeline with all its jobs in one transaction. A file that cannot
// run gives a pipeline in state 'error' whose message names the file, line and key (a manual
// request gets the error instead, and nothing is written). A delivery left unplanned by a crash
// is planned again at start.
//
// Threads: the slow part (git fetch, up to git's 10-minute limit) runs on the planner's own
// workers (RepoLanes), never on the caller's: `workers` repositories are planned at once, and
// the work of one repository (deliveries, manual requests, schedule slots) runs one at a time in
// the order it was handed in, so a repository's deliveries are planned in arrival order.
//
// A push to the repository's default branch also replaces the repository's schedules with the
// on.schedule entries of that commit's file. With the repo's cancel_superseded set, a new push
// pipeline cancels the older running push pipelines of its branch (the store's NOTIFY
// assay_cancel tells their agents to stop).

#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/crypto/sealed.h"
#include "common/git/git.h"
#include "common/pipeline/plan.h"
#include "common/pipeline/spec.h"
#include "server/pipeline/repo_lanes.h"
#include "server/store/deliveries.h"
#include "server/store/pipelines.h"
#include "server/store/repos.h"
#include "server/store/schedules.h"

namespace assay {

inline constexpr const char* kPipelineFile = ".assay.yml";

struct PlannerDeps {
  store::DeliveryStore* deliveries;
  store::PipelineStore* pipelines;
  store::RepoStore* repos;
  std::string mirrors_dir;          // bare mirrors live in <mirrors_dir>/<repo id>.git
  std::function<void()> on_queued;  // called after a pipeline with runnable jobs is written
  store::ScheduleStore* schedules = nullptr;  // null: on.schedule entries are not recorded
  int workers = 4;                            // repositories planned at once
  // How long PlanManual waits for its turn and its fetch before giving up (writing nothing).
  absl::Duration manual_wait = absl::Seconds(20);
  // A delivery whose commit cannot be fetched for a reason that may pass (the forge is down,
  // this server's disk is full) is tried again, with backoff, until it is this old; then it
  // becomes an error pipeline naming the cause. A commit that does not exist fails at once.
  absl::Duration fetch_retry_window = absl::Minutes(10);
  // Issue 8: whether mirrors may fetch file:// and absolute-path remotes (--allow-local-repos),
  // and the key that opens repos' sealed clone credentials.
  bool allow_local_repos = false;
  KeyRing secret_key;
};

class Planner {
 public:
  explicit Planner(PlannerDeps deps);  // everything in deps must outlive the Planner
  ~Planner();
  void Start();
  // Finishes the work in hand (a delivery waiting to retry gives up at once and stays
  // 'received'), answers queued manual and schedule requests with kUnavailable, leaves queued
  // deliveries 'received' (planned at the next start), then stops. Idempotent.
  void Stop();
  // Plans the delivery on a worker, after every delivery of its repository enqueued before it.
  // Transient failures (database) are retried with a backoff (1 s doubling to 30 s) until they
  // pass or the planner stops. Any other failure, an exception included (none escapes a
  // worker), ends the delivery 'failed' with its message, so that no start plans it again. Only
  // between Start() and Stop(); otherwise the delivery stays 'received' for the next start.
  void Enqueue(int64_t delivery_id);
  // Plans one delivery on the caller's thread; returns the pipeline id, or 0 when the delivery
  // plans nothing (e.g. a branch deletion). kUnavailable for transient failures (database).
  absl::StatusOr<int64_t> PlanDelivery(int64_t delivery_id);

  // A manual pipeline of `branch` (default: the repo's default branch) at its current head,
  // with `inputs` checked against on.manual.inputs (ResolveManualInputs). Planned on a worker in
  // the repository's turn; the caller waits at most manual_wait. Writes nothing on error:
  // kNotFound (repo, branch), kInvalidArgument (branch name, no file, invalid file, no
  // on.manual: ".assay.yml at commit C has no on.manual trigger", inputs), kUnavailable (fetch,
  // database, planner not running, or "planning a manual pipeline of repository N did not
  // finish within 20s ...": then nothing is written later either). Returns the pipeline id.
  // Needs Start().
  absl::StatusOr<int64_t> PlanManual(int64_t repo_id, const std::optional<std::string>& branch,
                                     const std::map<std::string, std::string>& inputs);

  // Issue 11, re-run: a new pipeline of pipeline `pipeline_id`'s commit, ref, event, inputs
  // and trust, planned from .assay.yml at that commit (whatever its triggers say; a pull
  // request's source branch comes from its delivery), with rerun_of = pipeline_id. It does not
  // cancel superseded pipelines. Waits and fails as PlanManual does (kNotFound: no such
  // pipeline; kInvalidArgument: the file at that commit cannot be planned). Needs Start().
  absl::StatusOr<int64_t> PlanRerun(int64_t pipeline_id);

  // The pipeline of schedule `s` for its due slot s.next_run_at: the head of the schedule's
  // branch (default: the repo's default branch), event "schedule". The slot is claimed in the
  // transaction that writes the pipeline (the schedule's next_run_at moves to `next_run`), so a
  // slot is claimed exactly when its pipeline is written. Returns the pipeline id; 0 when this
  // caller planned nothing: the slot is no longer due (another caller claimed it, or the
  // schedule changed), or the branch does not exist (the slot is then claimed with no pipeline
  // and a warning). On any other error (fetch, database) nothing is claimed: the slot stays due
  // and the next pass tries again.
  absl::StatusOr<int64_t> PlanSchedule(const store::ScheduleRow& s, absl::Time next_run);
  // PlanSchedule on a worker, in the repository's turn. The future is always fulfilled
  // (kUnavailable when the planner is not running or stops first). Needs Start().
  std::future<absl::StatusOr<int64_t>> SubmitSchedule(const store::ScheduleRow& s,
                                                      absl::Time next_run);

 private:
  struct ManualCall;
  // Work for CallOnLane: gets may_write(), which says at the last moment whether it may write.
  using LaneWork = std::function<absl::StatusOr<int64_t>(const std::function<bool()>&)>;
  // Runs `work` on a worker in repository `repo_id`'s turn; waits at most manual_wait for it
  // unless it has begun writing (then to the end). `what` names it in errors.
  absl::StatusOr<int64_t> CallOnLane(int64_t repo_id, const std::string& what,
                                     const LaneWork& work);
  absl::StatusOr<int64_t> PlanRerunNow(const store::PipelineRow& row,
                                       const std::function<bool()>& may_write);
  // Routes an enqueued delivery to its repository's lane (on the intake lane, so in order).
  void Route(int64_t delivery_id);
  // Plans a routed delivery, retrying transient failures.
  void PlanQueued(const std::shared_ptr<const store::Delivery>& d);
  absl::StatusOr<int64_t> PlanLoadedDelivery(const store::Delivery& d);
  // PlanManual's work on a worker; writes only if `may_write()` says yes at the last moment.
  absl::StatusOr<int64_t> PlanManualNow(int64_t repo_id, const std::optional<std::string>& branch,
                                        const std::map<std::string, std::string>& inputs,
                                        const std::function<bool()>& may_write);
  GitMirror* MirrorFor(const store::Repo& repo);
  // Plans the jobs of `spec` under `ctx` into `p` (or sets p.error), writes the pipeline and
  // does what follows a new pipeline (queue, supersede). Returns the pipeline id (0: a
  // schedule slot no longer due, nothing written).
  absl::StatusOr<int64_t> Write(store::NewPipeline& p, const store::Repo& repo,
                                const PipelineSpec* spec, const ExprContext& ctx);
  // Replaces the repo's schedules with spec's on.schedule (none when spec is null).
  absl::Status RecordSchedules(const store::Repo& repo, const PipelineSpec* spec);

  PlannerDeps deps_;
  absl::Mutex mirrors_mu_;
  std::map<int64_t, std::unique_ptr<GitMirror>> mirrors_ ABSL_GUARDED_BY(mirrors_mu_);
  RepoLanes lanes_;  // last: its workers stop before the members they use go away
};

// What every job of a pipeline gets besides its own spec.
struct PipelineContext {
  // A manual pipeline's inputs; each job's env gets InputEnvName(name) = value (the job's own
  // env wins on a clash).
  std::map<std::string, std::string> inputs;
  bool trusted = true;  // false is written into spec_json as "trusted": false
};

// The job rows for a planned pipeline (spec_json carries steps, env, timeout and the matrix
// combination); a job whose `if` was false is written as skipped.
std::vector<store::NewJob> JobsFromPlan(const std::vector<PlannedJob>& plan,
                                        const PipelineContext& context = {});

// What an untrusted pipeline's API answer says about it (its "notes"): where it runs and which
// of its file's settings JobsFromPlan ignores (priority: 0; cancel_in_progress: false; timeout:
// at most the default 60m; concurrency group G becomes "untrusted:G").
std::vector<std::string> UntrustedNotes();

// The pull_request type (opened, synchronize, reopened, closed) of a forge's action word:
// GitLab's open/reopen/update and Gitea's synchronized are mapped; others pass through.
std::string PullRequestType(const std::string& forge_action);

}  // namespace assay
