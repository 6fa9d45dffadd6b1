#include "server/store/schedules.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "common/pipeline/cron.h"

namespace assay::store {
namespace {

#define SCHEDULE_COLUMNS "id, repo_id, cron, branch, " ASSAY_EPOCH_US("next_run_at")

// Why NO KEY UPDATE: it serializes two replacements, yet does not block the key-share lock that
// inserting a pipeline takes on its repo (a scheduled pipeline's insert holds its schedule's
// row lock, which Replace's DELETE waits for: FOR UPDATE here would deadlock with it).
const Query kLockRepo{"schedule_lock_repo", "SELECT id FROM repos WHERE id = $1 FOR NO KEY UPDATE"};
const Query kListSchedules{
    "schedule_list", "SELECT " SCHEDULE_COLUMNS " FROM schedules WHERE repo_id = $1 ORDER BY id"};
const Query kInsertSchedule{
    "schedule_insert",
    "INSERT INTO schedules (repo_id, cron, branch, next_run_at) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (repo_id, cron, branch) DO NOTHING"};
const Query kDeleteSchedule{"schedule_delete", "DELETE FROM schedules WHERE id = $1"};
const Query kDueSchedules{"schedule_due", "SELECT " SCHEDULE_COLUMNS
                                          " FROM schedules WHERE next_run_at <= $1 "
                                          "ORDER BY next_run_at, id"};
const Query kClaimSchedule{
    "schedule_claim",
    "UPDATE schedules SET next_run_at = $3 WHERE id = $1 AND next_run_at = $2 RETURNING id"};

ScheduleRow FromRow(const pqxx::row& r) {
  ScheduleRow s;
  s.id = r[0].as<int64_t>();
  s.repo_id = r[1].as<int64_t>();
  s.cron = r[2].as<std::string>();
  s.branch = r[3].as<std::string>();
  s.next_run_at = ToTime(r[4]);
  return s;
}

}  // namespace

absl::Status ScheduleStore::Replace(int64_t repo_id, const std::vector<ScheduleEntry>& entries) {
  const absl::Time now = clock_->Now();
  std::vector<std::pair<ScheduleEntry, absl::Time>> wanted;
  for (const ScheduleEntry& e : entries) {
    absl::StatusOr<CronSchedule> cron = CronSchedule::Parse(e.cron);
    if (!cron.ok()) return cron.status();
    wanted.emplace_back(ScheduleEntry{cron->text(), e.branch}, cron->Next(now));
  }
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    // Why lock the repo: two plans of the same repo must not interleave their replacements.
    if (Exec(tx, c, kLockRepo, {repo_id}).empty()) {
      return absl::NotFoundError(absl::StrCat("repository ", repo_id, " does not exist"));
    }
    for (const auto& r : Exec(tx, c, kListSchedules, {repo_id})) {
      ScheduleRow row = FromRow(r);
      bool keep = false;
      for (const auto& [e, next] : wanted)
        keep = keep || (e.cron == row.cron && e.branch == row.branch);
      if (!keep) Exec(tx, c, kDeleteSchedule, {row.id});
    }
    for (const auto& [e, next] : wanted) {
      Exec(tx, c, kInsertSchedule, {repo_id, e.cron, e.branch, next});
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<ScheduleRow>> ScheduleStore::List(int64_t repo_id) {
  std::vector<ScheduleRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kListSchedules, {repo_id})) out.push_back(FromRow(r));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<ScheduleRow>> ScheduleStore::Due(absl::Time now) {
  std::vector<ScheduleRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kDueSchedules, {now})) out.push_back(FromRow(r));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<bool> ScheduleStore::Claim(int64_t id, absl::Time expected, absl::Time next) {
  bool claimed = false;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    claimed = !Exec(tx, c, kClaimSchedule, {id, expected, next}).empty();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return claimed;
}

}  // namespace assay::store
