#pragma once
// The commit-status outbox (migrations 0004, 0006): pipeline states queued for the forge by a
// trigger on every pipeline insert and state change, sent at least once and in order per
// (repository, commit). *db must outlive the store.
//
// Why an outbox and not a call at each transition: pipelines start and finish in several places
// (planner, dispatcher, agent results, cancel) and on several server replicas; the database is
// the one place that sees every transition.
//
// The protocol (one commit at a time, so per commit there is one sender):
//   Claim    leases commits with queued states whose lease is free or has run out (a stopped
//            or crashed reporter's), and returns each one's newest queued state; older queued
//            states of the commit are superseded (deleted, never sent).
//   Renew    before every attempt: extends the lease; says whether it is still held and
//            whether a newer state was queued meanwhile (then do not send this one).
//   Complete after the forge accepted the status, or refused it for good: records it as the
//            commit's newest delivered state and frees the commit. A state queued later that
//            is older than a delivered one (a transaction that committed late) is never sent.
//   Release  gives the lease back unsent (shutdown), so another reporter need not wait for it
//            to run out.
// Times are the database's (now()), so replicas' clocks need not agree.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/db.h"

namespace assay::store {

// One pipeline state to report, under a lease, with what the repository says about where to
// report it.
struct DueStatus {
  int64_t outbox_id = 0;  // the queued state's row
  int64_t lease_token = 0;
  int64_t repo_id = 0;
  int64_t pipeline_id = 0;
  std::string state;  // the pipeline's state: running, succeeded, failed, canceled, error
  std::string commit_sha;
  std::string repo_name, provider;
  std::string api_url, token_sealed, repository, context;  // api_url empty: reporting is off
};

enum class LeaseCheck {
  kHeld,        // renewed: send it
  kSuperseded,  // still held, but a newer state is queued: Complete without sending
  kLost,        // another reporter holds the commit now (this lease ran out): do nothing
};

class StatusOutbox {
 public:
  // `lease`: how long a claim lasts without renewal; longer than one request to the forge.
  explicit StatusOutbox(Db* db, absl::Duration lease = absl::Seconds(60))
      : db_(db), lease_(lease) {}
  // Claims up to `limit` commits (skipping rows another transaction has locked), in one
  // transaction. States of repositories whose reporting was turned off since they were queued
  // come back with an empty api_url: Complete them unsent.
  absl::StatusOr<std::vector<DueStatus>> Claim(int limit);
  absl::StatusOr<LeaseCheck> Renew(const DueStatus& due);
  // false when the lease was lost (another reporter claimed the commit; it sends again).
  absl::StatusOr<bool> Complete(const DueStatus& due);
  absl::Status Release(const DueStatus& due);

 private:
  Db* db_;
  const absl::Duration lease_;
};

}  // namespace assay::store
