#pragma once
// Turns accepted push and pull-request deliveries, due schedules and manual requests into
// pipelines: fetch the commit into the repo's bare mirror, read .assay.yml at that commit,
// validate it, and write the pipeline with all its jobs in one transaction. A file that cannot
// run gives a pipeline in state 'error' whose message names the file, line and key (a manual
// request gets the error instead, and nothing is written). Deliveries are planned in arrival
// order by one worker thread; a delivery left unplanned by a crash is planned again at start.
//
// A push to the repository's default branch also replaces the repository's schedules with the
// on.schedule entries of that commit's file. With the repo's cancel_superseded set, a new push
// pipeline cancels the older running push pipelines of its branch (the store's NOTIFY
// assay_cancel tells their agents to stop).

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/git/git.h"
#include "common/pipeline/plan.h"
#include "common/pipeline/spec.h"
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
  std::string mirrors_dir;           // bare mirrors live in <mirrors_dir>/<repo id>.git
  std::function<void()> on_queued;   // called after a pipeline with runnable jobs is written
  store::ScheduleStore* schedules = nullptr;  // null: on.schedule entries are not recorded
};

class Planner {
 public:
  explicit Planner(PlannerDeps deps);  // everything in deps must outlive the Planner
  ~Planner();
  void Start();
  void Stop();  // finishes the delivery in hand, then stops; idempotent
  void Enqueue(int64_t delivery_id);
  // Plans one delivery synchronously; returns the pipeline id, or 0 when the delivery plans
  // nothing (e.g. a branch deletion). kUnavailable for transient failures (database).
  absl::StatusOr<int64_t> PlanDelivery(int64_t delivery_id);

  // A manual pipeline of `branch` (default: the repo's default branch) at its current head,
  // with `inputs` checked against on.manual.inputs (ResolveManualInputs). Writes nothing on
  // error: kNotFound (repo, branch), kInvalidArgument (branch name, no file, invalid file, no
  // on.manual: ".assay.yml at commit C has no on.manual trigger", inputs), kUnavailable (fetch,
  // database). Returns the pipeline id.
  absl::StatusOr<int64_t> PlanManual(int64_t repo_id, const std::optional<std::string>& branch,
                                     const std::map<std::string, std::string>& inputs);

  // The pipeline of schedule `s` for its slot `slot` (already claimed by the caller): the head
  // of the schedule's branch (default: the repo's default branch), event "schedule". At most one
  // pipeline per (schedule, slot); returns its id, or an error when no commit can be found.
  absl::StatusOr<int64_t> PlanSchedule(const store::ScheduleRow& s, absl::Time slot);

 private:
  void Loop();
  GitMirror* MirrorFor(const store::Repo& repo);
  // Plans the jobs of `spec` under `ctx` into `p` (or sets p.error), writes the pipeline and
  // does what follows a new pipeline (queue, supersede). Returns the pipeline id.
  absl::StatusOr<int64_t> Write(store::NewPipeline& p, const store::Repo& repo,
                                const PipelineSpec* spec, const ExprContext& ctx);
  // Replaces the repo's schedules with spec's on.schedule (none when spec is null).
  absl::Status RecordSchedules(const store::Repo& repo, const PipelineSpec* spec);

  PlannerDeps deps_;
  absl::Mutex mu_;
  std::deque<int64_t> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex mirrors_mu_;
  std::map<int64_t, std::unique_ptr<GitMirror>> mirrors_ ABSL_GUARDED_BY(mirrors_mu_);
  std::thread thread_;
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

// The pull_request type (opened, synchronize, reopened, closed) of a forge's action word:
// GitLab's open/reopen/update and Gitea's synchronized are mapped; others pass through.
std::string PullRequestType(const std::string& forge_action);

}  // namespace assay
