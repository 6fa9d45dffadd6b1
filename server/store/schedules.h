#pragma once
// The repository schedules (on.schedule of the default branch's .assay.yml) and their claiming.
// A due schedule is claimed by moving its next_run_at with a conditional UPDATE (Claim here, or
// PipelineStore::Create with claim_next_run, in the transaction that writes the slot's
// pipeline): of several loops (one per server replica) on one database, exactly one wins each
// slot.
// *db and *clock must outlive the store.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "server/store/db.h"

namespace assay::store {

struct ScheduleEntry {
  std::string cron;    // normalised five-field text (CronSchedule::text())
  std::string branch;  // "" = the repository's default branch when it fires

  bool operator==(const ScheduleEntry&) const = default;
};

struct ScheduleRow {
  int64_t id = 0;
  int64_t repo_id = 0;
  std::string cron, branch;
  absl::Time next_run_at;
};

class ScheduleStore {
 public:
  ScheduleStore(Db* db, const Clock* clock) : db_(db), clock_(clock) {}

  // Makes the repo's schedules exactly `entries` (duplicates collapse into one). An entry that
  // already exists (same cron and branch) keeps its row and next_run_at, so a push does not
  // reset a slot that is due or being caught up; a new one gets the cron's first slot after now;
  // rows for entries no longer listed are deleted. kInvalidArgument for an unparsable cron.
  absl::Status Replace(int64_t repo_id, const std::vector<ScheduleEntry>& entries);
  // The repo's schedules, by id.
  absl::StatusOr<std::vector<ScheduleRow>> List(int64_t repo_id);
  // Every schedule whose next_run_at is at or before `now`, earliest first.
  absl::StatusOr<std::vector<ScheduleRow>> Due(absl::Time now);
  // Moves next_run_at from `expected` to `next`, only if it still is `expected`. True when this
  // caller made the move (and so owns the slot `expected`). For a slot used up without a
  // pipeline; a slot with a pipeline is claimed by PipelineStore::Create.
  absl::StatusOr<bool> Claim(int64_t id, absl::Time expected, absl::Time next);

 private:
  Db* db_;
  const Clock* clock_;
};

}  // namespace assay::store
