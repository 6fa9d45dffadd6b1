#pragma once
// Environments and deployments (migration 0027, docs/deployments.md). The API creates
// deployments, approves them and asks for pause, resume, promote and abort (Request); only the
// deployment controller (server/deploy/controller.h) changes a deployment's progress, one tick
// at a time under a lease, every write of a tick fenced on that lease. *db must outlive it.
//
// Errors: kInvalidArgument, kNotFound ("environment 'production' of repository 3 not found",
// "deployment 9 not found"), kFailedPrecondition (another deployment holds the environment; a
// request the deployment's state does not take), kPermissionDenied (a branch the environment
// does not take; an approval by the deployment's creator), and the database's.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/db.h"

namespace assay::store {

struct Environment {
  int64_t id = 0, repo_id = 0;
  std::string repo, name;
  std::vector<std::string> branches;
  int required_approvals = 0;
  std::string target_json = "{}", analysis_json = "{}";
  std::string alias;
  std::optional<std::string> live_json;  // what serves it now
  std::optional<int64_t> active_deployment;
  absl::Time created_at, updated_at;
};

struct EnvironmentPut {
  int64_t repo_id = 0;
  std::string name;
  std::vector<std::string> branches;
  int required_approvals = 0;
  std::string target_json, analysis_json = "{}";
  std::string alias;  // "" → the name
  absl::Time now;
};

struct Deployment {
  int64_t id = 0, environment_id = 0, repo_id = 0;
  std::string environment, repo;
  std::string state;
  std::string model;  // "" for a service
  std::optional<int> version;
  std::string image;                // "" for a model
  std::string servers_json = "[]";  // [{"name", "address"}]
  std::string ref;
  std::string strategy_json = "{}";
  std::optional<std::string> previous_json;
  std::optional<int> alias_previous;
  bool alias_moved = false;
  int step = 0, weight = 0;
  std::optional<absl::Time> step_started_at;
  std::string runs_json = "{}";
  std::optional<absl::Time> watch_until;
  std::string message, created_by;
  std::optional<int64_t> pipeline_id, job_id, superseded_by, rollback_of;
  std::optional<absl::Time> next_at;
  std::optional<std::string> requested_json;
  absl::Time created_at;
  std::optional<absl::Time> started_at, finished_at;
  int approvals = 0;
  std::vector<std::string> approvers;
};

struct NewDeployment {
  int64_t repo_id = 0;
  std::string environment;
  std::string model;
  std::optional<int> version;  // with model: resolved already
  std::string image;
  std::string servers_json;
  std::string ref;
  std::string strategy_json;
  std::string created_by;
  std::optional<int64_t> pipeline_id, job_id, rollback_of;
  int job_attempt = 0;     // with job_id
  bool supersede = false;  // end a paused or waiting deployment of the environment first
  absl::Time now;
};

struct DeploymentEvent {
  int64_t id = 0;
  int64_t deployment_id = 0;
  absl::Time at;
  int step = 0;
  std::string kind, message;
  std::optional<std::string> data_json;
};

struct DeploymentFilter {
  std::optional<int64_t> repo_id;
  std::string environment;          // with repo_id
  std::optional<int64_t> before;    // ids below (keyset)
  std::vector<std::string> states;  // any of; empty: all
  int limit = 50;
};

// What one controller tick decided, written in one transaction fenced on the lease.
struct TickUpdate {
  std::string state;
  int step = 0, weight = 0;
  std::optional<absl::Time> step_started_at;
  std::string runs_json = "{}";
  std::optional<absl::Time> watch_until;
  std::string message;
  std::optional<absl::Time> next_at;         // nullopt: nothing due (paused, or ended)
  std::optional<std::string> previous_json;  // set once, when the deployment starts
  bool started = false;                      // sets started_at
  bool finished = false;                     // sets finished_at
  bool clear_request = false;
  std::vector<DeploymentEvent> events;
  // The environment's live value to set (promotion, rollback).
  std::optional<std::string> live_json;
  // Registry: move the environment's alias to the deployment's version (promotion), or put it
  // back where it was (rollback): only when it still points at this deployment's version.
  enum class Alias { kNone, kMove, kRestore } alias = Alias::kNone;
  // An audit row as the system ("rollback deployment 9 of production: ..."); "" none.
  std::string audit_action, audit_detail;
};

class DeploymentStore {
 public:
  explicit DeploymentStore(Db* db) : db_(db) {}

  absl::StatusOr<Environment> PutEnvironment(const EnvironmentPut& e);
  absl::StatusOr<Environment> GetEnvironment(int64_t repo_id, const std::string& name);
  absl::StatusOr<std::vector<Environment>> ListEnvironments(int64_t repo_id);
  // kFailedPrecondition while a deployment holds it.
  absl::Status DeleteEnvironment(int64_t repo_id, const std::string& name);

  // Checks the environment's branches, the one-at-a-time rule (kFailedPrecondition naming the
  // deployment that holds it, unless `supersede` and it is paused or waiting for approval: it
  // ends as superseded), and starts it (progressing) unless it needs approvals.
  absl::StatusOr<Deployment> Create(const NewDeployment& d);
  absl::StatusOr<Deployment> Get(int64_t id);
  absl::StatusOr<std::vector<Deployment>> List(const DeploymentFilter& f);
  // Events with id > after, oldest first, at most `limit`.
  absl::StatusOr<std::vector<DeploymentEvent>> Events(int64_t id, int64_t after, int limit);
  // The deployment made by attempt `attempt` of job `job_id` (a `deploy:` step), if any.
  absl::StatusOr<std::optional<Deployment>> ForJob(int64_t job_id, int attempt);

  // An approval by `approver` (kPermissionDenied for the creator; a second one by the same
  // approver changes nothing). Enough approvals start it.
  absl::StatusOr<Deployment> Approve(int64_t id, const std::string& approver, absl::Time now);
  // Asks the controller to pause, resume, promote (optionally "full"), or abort. Only the
  // controller acts on it. kFailedPrecondition when the state does not take it.
  absl::StatusOr<Deployment> Request(int64_t id, const std::string& action, bool full,
                                     const std::string& by, const std::string& reason,
                                     absl::Time now);

  // Controller: takes the next due deployment (or one with a request) whose lease is free or
  // has run out, for `lease`. nullopt when none.
  absl::StatusOr<std::optional<Deployment>> Claim(const std::string& owner, absl::Time now,
                                                  absl::Duration lease);
  // Writes a tick's outcome if `owner` still holds the lease and the deployment is still in
  // `from_state` (the state the tick began from: a newer deployment may have superseded it or
  // ended its watch meanwhile), and releases the lease. False when either changed (nothing
  // written).
  absl::StatusOr<bool> Commit(int64_t id, const std::string& owner, const std::string& from_state,
                              const TickUpdate& u, absl::Time now);
  // Releases the lease without changing anything, after `retry_in` (a tick that failed on the
  // database or a target error it retries).
  absl::Status Release(int64_t id, const std::string& owner, absl::Time next_at);

  // A `deploy:` step of a job: its JSON (jobs.spec), the pipeline and its ref and trust.
  struct DeployStep {
    std::string spec_json;
    int64_t pipeline_id = 0, repo_id = 0;
    std::string ref;  // refs/heads/main, refs/tags/v1, ...
    bool trusted = false;
  };
  // kInvalidArgument when step `step_index` of job `job_id` is not a deploy step.
  absl::StatusOr<DeployStep> DeployStepOf(int64_t job_id, int step_index);

  // Drift's reference (issue 12): a feature's values in the eval examples of `model`'s version
  // `version` (the newest 10,000): prompt_length is an example's input tokens, output_length
  // its output tokens; kInvalidArgument for another feature; empty when it has none.
  absl::StatusOr<std::vector<double>> EvalFeature(const std::string& model, int version,
                                                  const std::string& feature);

  // (environment, state) → count of deployments not ended, for the active gauge.
  absl::StatusOr<std::vector<std::pair<std::pair<std::string, std::string>, int64_t>>>
  ActiveCounts();

 private:
  Db* db_;
};

// The states in which a deployment holds its environment.
bool DeploymentActive(std::string_view state);

}  // namespace assay::store
