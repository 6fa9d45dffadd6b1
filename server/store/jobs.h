#pragma once
// The job lifecycle as seen from agents: claim with a lease and a fencing token, start,
// log, heartbeat, finish; and the sweep that rescues jobs of lost agents. Every write from
// an agent is checked against the attempt token. *db and *clock must outlive the store.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/store/db.h"

namespace assay::store {

struct ClaimedJob {
  int64_t job_id = 0;
  int64_t pipeline_id = 0;
  int attempt = 0;
  std::string attempt_token, job_name, spec_json, clone_url, commit_sha, ref;
  absl::Time queued_at;
};

enum class Fence {
  kOk,         // written
  kDuplicate,  // already written before (a resend); nothing changed
  kStale,      // the token is not the job's live attempt; nothing changed
};

struct ResultReport {
  int64_t job_id = 0;
  std::string attempt_token;
  std::string state;  // succeeded, failed, timed_out, canceled, error
  std::optional<int> exit_code;
  std::string message;
  // As reported by the agent; InfinitePast when it did not say (the server's clock is used).
  absl::Time started_at = absl::InfinitePast(), finished_at = absl::InfinitePast();
};

struct FinishOutcome {
  Fence fence = Fence::kOk;
  int queued = 0;  // dependents that became ready
  absl::Duration duration;  // run time as reported, for the histogram
};

struct HeldAttempt {
  int64_t job_id = 0;
  std::string attempt_token;
};

class JobStore {
 public:
  JobStore(Db* db, const Clock* clock) : db_(db), clock_(clock) {}

  // Claims the best queued job whose labels the agent carries, in one statement
  // (FOR UPDATE SKIP LOCKED), with a new attempt, a fresh token and a lease of `lease`.
  // nullopt when nothing fits.
  absl::StatusOr<std::optional<ClaimedJob>> Claim(int64_t agent_id,
                                                  const std::vector<std::string>& labels,
                                                  absl::Duration lease);
  absl::StatusOr<Fence> MarkRunning(int64_t job_id, std::string_view token);
  // The agent refused the job: the attempt is closed as 'rejected' and the job queued again.
  absl::StatusOr<Fence> Reject(int64_t job_id, std::string_view token, std::string_view reason);
  // Stores one log chunk of the attempt that `token` names (kStale if the token is not the
  // job's current attempt; kDuplicate for a chunk already stored).
  absl::StatusOr<Fence> AppendLog(int64_t job_id, std::string_view token, int64_t seq,
                                  std::string_view data);
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
  // The bytes of the job's log: the latest attempt that has any chunk, in seq order.
  absl::StatusOr<std::string> ReadLog(int64_t job_id);
  absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> CountByState();
  // Unplanned deliveries + unfinished jobs; 0 means the server is idle.
  absl::StatusOr<int64_t> ActiveWork();

 private:
  absl::StatusOr<int> RequeueLost(const std::string& where_agent,
                                  const std::vector<HeldAttempt>* keep, int64_t agent_id);
  Db* db_;
  const Clock* clock_;
};

}  // namespace assay::store
