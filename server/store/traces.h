#pragma once
// What the OTLP exporter (server/trace/otlp_exporter.h) sends: finished pipelines with their
// jobs and attempts, and finished deployments with their events, claimed a batch at a time
// under row locks (SKIP LOCKED: replicas share the work) and marked exported only when the
// collector took them, in the same transaction.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/db.h"

namespace assay::store {

struct AttemptTrace {
  int attempt = 0;
  std::string agent, state, message;
  absl::Time assigned_at;
  std::optional<absl::Time> started_at, finished_at;
  std::optional<int> exit_code;
};

struct JobTrace {
  int64_t id = 0;
  std::string name, state, message;
  absl::Time created_at;
  std::optional<absl::Time> queued_at, started_at, finished_at;
  std::vector<AttemptTrace> attempts;
};

struct PipelineTrace {
  int64_t id = 0;
  std::string repo, event, ref, commit_sha, state, message;
  absl::Time created_at, finished_at;
  std::vector<JobTrace> jobs;
};

struct DeploymentEventTrace {
  absl::Time at;
  int step = 0;
  std::string kind, message;
};

struct DeploymentTrace {
  int64_t id = 0;
  std::string repo, environment, state, message, created_by, strategy_kind;
  std::string model, image;  // one of them
  std::optional<int> version;
  std::optional<int64_t> pipeline_id, rollback_of;
  absl::Time created_at, finished_at;
  std::optional<absl::Time> started_at;
  std::vector<DeploymentEventTrace> events;  // the first kMaxTraceEvents
  int64_t events_dropped = 0;
};

inline constexpr int kMaxTraceEvents = 1000;
inline constexpr int kMaxTraceJobs = 2000;  // per pipeline; attempts of the first ones only

class TraceStore {
 public:
  explicit TraceStore(Db* db) : db_(db) {}

  // Takes what finished before now - max_age and was never exported as exported without
  // sending it (a collector configured late does not get the whole history); how many.
  absl::StatusOr<int64_t> SkipOld(absl::Duration max_age);

  // Locks up to `limit` finished pipelines not exported yet (oldest first) and calls `send`
  // with them; when it returns OK they are marked exported. Returns how many were sent (0: none
  // due). `send`'s error rolls back and is returned.
  using PipelineSender = std::function<absl::Status(const std::vector<PipelineTrace>&)>;
  absl::StatusOr<int> ExportPipelines(int limit, const PipelineSender& send);

  using DeploymentSender = std::function<absl::Status(const std::vector<DeploymentTrace>&)>;
  absl::StatusOr<int> ExportDeployments(int limit, const DeploymentSender& send);

 private:
  Db* db_;
};

}  // namespace assay::store
