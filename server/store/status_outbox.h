#pragma once
// The commit-status outbox (migration 0004): pipelines whose state differs from the state last
// reported (pipelines.status_reported). *db must outlive the store.
//
// Why an outbox and not a call at each transition: pipelines start and finish in several places
// (planner, dispatcher, agent results, cancel) and on several server replicas; the database is the
// one place that sees every transition, and FOR UPDATE SKIP LOCKED lets each replica claim
// disjoint rows so that every transition is handed to exactly one replica's notifier.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/db.h"

namespace assay::store {

// One pipeline state to report, with what the repository says about where to report it.
struct DueStatus {
  int64_t pipeline_id = 0;
  std::string state;  // the pipeline's state: running, succeeded, failed, canceled, error
  std::string commit_sha;
  std::string repo_name, provider;
  std::string api_url, token_sealed, repository, context;  // api_url empty: reporting is off
};

class StatusOutbox {
 public:
  explicit StatusOutbox(Db* db) : db_(db) {}
  // Claims up to `limit` due pipelines (oldest first, skipping rows another transaction has
  // locked), marks each one's current state as reported and returns them, in one transaction.
  // Pipelines of repositories with reporting off are marked too (and returned with an empty
  // api_url), so that turning reporting on later does not report old transitions.
  absl::StatusOr<std::vector<DueStatus>> Claim(int limit);

 private:
  Db* db_;
};

}  // namespace assay::store
