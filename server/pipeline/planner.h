#pragma once
// Turns accepted push deliveries into pipelines: fetch the commit into the repo's bare
// mirror, read .assay.yml at that commit, validate it, and write the pipeline with all its
// jobs in one transaction. A file that cannot run gives a pipeline in state 'error' whose
// message names the file, line and key. Deliveries are planned in arrival order by one
// worker thread; a delivery left unplanned by a crash is planned again at start.

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/git.h"
#include "common/pipeline_plan.h"
#include "common/pipeline_spec.h"
#include "server/store/deliveries.h"
#include "server/store/pipelines.h"
#include "server/store/repos.h"

namespace assay {

inline constexpr const char* kPipelineFile = ".assay.yml";

struct PlannerDeps {
  store::DeliveryStore* deliveries;
  store::PipelineStore* pipelines;
  store::RepoStore* repos;
  std::string mirrors_dir;           // bare mirrors live in <mirrors_dir>/<repo id>.git
  std::function<void()> on_queued;   // called after a pipeline with runnable jobs is written
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

 private:
  void Loop();
  GitMirror* MirrorFor(const store::Repo& repo);

  PlannerDeps deps_;
  absl::Mutex mu_;
  std::deque<int64_t> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex mirrors_mu_;
  std::map<int64_t, std::unique_ptr<GitMirror>> mirrors_ ABSL_GUARDED_BY(mirrors_mu_);
  std::thread thread_;
};

// The first key of a valid spec that the server does not act on yet, as
// "FILE:LINE: KEY: parsed and valid, but this server does not act on it yet"; "" when none.
std::string UnsupportedFeature(const PipelineSpec& spec);

// The job rows for a planned pipeline (spec_json carries steps, env, timeout and the matrix
// combination); a job whose `if` was false is written as skipped.
std::vector<store::NewJob> JobsFromPlan(const std::vector<PlannedJob>& plan);

}  // namespace assay
