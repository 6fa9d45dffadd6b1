#include "server/store/pipelines.h"

#include <map>
#include <set>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/store/sweep.h"

namespace assay::store {
namespace {

const Query kInsertPipeline{
    "pipeline_insert",
    "INSERT INTO pipelines (repo_id, delivery_id, event, ref, commit_sha, state, message, "
    "created_at, finished_at, trusted, pr_number, inputs, schedule_id, scheduled_for, rerun_of, "
    "commit_author, commit_message) VALUES ($1, $2, $3, $4, $5, $6, nullif($7, ''), $8, "
    "CASE WHEN $6 = 'running' THEN NULL ELSE $8::timestamptz END, $9, $10, "
    "nullif($11, '')::jsonb, $12, $13, $14, nullif($15, ''), nullif($16, '')) "
    "ON CONFLICT DO NOTHING RETURNING id"};
const Query kPipelineForDelivery{"pipeline_for_delivery",
                                 "SELECT id FROM pipelines WHERE delivery_id = $1"};
const Query kPipelineForSlot{
    "pipeline_for_slot", "SELECT id FROM pipelines WHERE schedule_id = $1 AND scheduled_for = $2"};
const Query kClaimScheduleSlot{
    "pipeline_claim_schedule_slot",
    "UPDATE schedules SET next_run_at = $3 WHERE id = $1 AND next_run_at = $2 RETURNING id"};
const Query kSupersededPipelines{
    "pipeline_superseded",
    "SELECT id FROM pipelines WHERE repo_id = $1 AND ref = $2 AND event = 'push' AND "
    "state = 'running' AND id < $3 ORDER BY id"};
const Query kPipelineMessage{"pipeline_set_message",
                             "UPDATE pipelines SET message = $2 WHERE id = $1"};
const Query kInsertJob{
    "job_insert",
    "INSERT INTO jobs (pipeline_id, name, state, spec, labels, max_attempts, created_at, "
    "queued_at, priority, message, finished_at, repo_id, requirements, retry_on, allow_failure, "
    "concurrency_key, parallel_key, max_parallel, planned_attempts) VALUES ($1, $2, $3, "
    "$4::jsonb, $5::text[], $6, $7, CASE WHEN $3 = 'queued' THEN $7::timestamptz END, $8, "
    "nullif($9, ''), CASE WHEN $3 = 'skipped' THEN $7::timestamptz END, $10, $11::jsonb, "
    "$12::text[], $13, nullif($14, ''), nullif($15, ''), nullif($16, 0), $6) RETURNING id"};
const Query kGroupPipelines{
    "pipeline_group_pipelines",
    "SELECT DISTINCT pipeline_id FROM jobs WHERE concurrency_key = $1 AND pipeline_id <> $2 "
    "AND state IN ('pending', 'queued', 'assigned', 'running') ORDER BY pipeline_id"};
const Query kGroupJobsOf{"pipeline_group_jobs_of",
                         "SELECT id FROM jobs WHERE concurrency_key = $1 AND pipeline_id = $2 "
                         "AND state IN ('pending', 'queued', 'assigned', 'running')"};
const Query kNotifyQueued{"pipeline_notify_queued", "SELECT pg_notify('assay_jobs', '')"};
const Query kNotifyCancel{"pipeline_notify_cancel", "SELECT pg_notify('assay_cancel', $1)"};
const Query kJobPipelineLock{"job_pipeline_id", "SELECT pipeline_id FROM jobs WHERE id = $1"};
const Query kJobState{"job_state_of", "SELECT state FROM jobs WHERE id = $1"};
const Query kCancelJobsWaiting{"jobs_cancel_waiting",
                               "UPDATE jobs SET state = 'canceled', finished_at = $2, message = $3 "
                               "WHERE id = ANY($1::bigint[]) AND state IN ('pending', 'queued')"};
const Query kCancelJobsLive{
    "jobs_cancel_live",
    "UPDATE jobs SET state = 'canceled', finished_at = $2, message = $3, "
    "lease_expires_at = NULL WHERE id = ANY($1::bigint[]) AND state IN ('assigned', 'running') "
    "RETURNING id, agent_id, attempt_token"};
const Query kCancelJobsAttempts{
    "jobs_cancel_attempts",
    "UPDATE job_attempts a SET state = 'canceled', finished_at = $2, message = $3 FROM jobs j "
    "WHERE j.id = a.job_id AND j.attempt = a.attempt AND j.id = ANY($1::bigint[]) "
    "AND a.state IN ('assigned', 'running')"};
const Query kInsertNeed{"job_need_insert",
                        "INSERT INTO job_needs (job_id, needs_job_id) VALUES ($1, $2)"};
// A delivery whose pipeline is in error (its file is invalid or hostile) ends 'failed' with
// the pipeline's message, so that it reads as what it is wherever deliveries are looked at.
const Query kDeliveryProcessed{
    "delivery_processed",
    "UPDATE webhook_deliveries SET state = CASE WHEN $2 = '' THEN 'processed' ELSE 'failed' END, "
    "message = nullif($2, ''), processed_at = now() WHERE id = $1"};
const Query kLockPipeline{"pipeline_lock", "SELECT state FROM pipelines WHERE id = $1 FOR UPDATE"};
const Query kSkipBlocked{
    "pipeline_skip_blocked",
    "UPDATE jobs j SET state = 'skipped', finished_at = $2, "
    "message = 'skipped: a job it needs did not succeed' "
    "WHERE j.pipeline_id = $1 AND j.state = 'pending' AND EXISTS ("
    "  SELECT 1 FROM job_needs n JOIN jobs d ON d.id = n.needs_job_id WHERE n.job_id = j.id"
    "  AND (d.state IN ('canceled', 'skipped') OR "
    "       (d.state IN ('failed', 'timed_out', 'error') AND NOT d.allow_failure)))"};
// Queues the ready pending jobs and finishes the pipeline when nothing is left unfinished, in
// one statement. Why one is enough: both CTEs see the snapshot from before the statement, and
// queuing a pending job leaves it unfinished either way, so the finish check's answer is the
// same before and after the queuing.
const Query kQueueReadyAndFinish{
    "pipeline_queue_ready_and_finish",
    "WITH q AS (UPDATE jobs j SET state = 'queued', queued_at = $2 "
    "  WHERE j.pipeline_id = $1 AND j.state = 'pending' AND NOT EXISTS ("
    "    SELECT 1 FROM job_needs n JOIN jobs d ON d.id = n.needs_job_id WHERE n.job_id = j.id"
    "    AND NOT (d.state = 'succeeded' OR "
    "             (d.state IN ('failed', 'timed_out', 'error') AND d.allow_failure))) "
    "  RETURNING 1), "
    "f AS (UPDATE pipelines p SET finished_at = $2, state = CASE "
    "  WHEN EXISTS (SELECT 1 FROM jobs WHERE pipeline_id = $1 AND state IN "
    "    ('failed', 'timed_out', 'error') AND NOT allow_failure) THEN 'failed' "
    "  WHEN EXISTS (SELECT 1 FROM jobs WHERE pipeline_id = $1 AND state = 'canceled') "
    "    THEN 'canceled' ELSE 'succeeded' END "
    "  WHERE p.id = $1 AND p.state = 'running' AND NOT EXISTS (SELECT 1 FROM jobs WHERE "
    "    pipeline_id = $1 AND state IN ('pending', 'queued', 'assigned', 'running')) "
    "  RETURNING 1) "
    "SELECT (SELECT count(*) FROM q), (SELECT count(*) FROM f)"};

// Issue 11, retry (RetryJobs). $1 pipeline id, $2 job ids (text[]): the finished jobs to run
// again become pending with a fresh set of planned attempts; AdvancePipeline then queues
// those whose needs succeeded.
const Query kRetryJobs{
    "pipeline_retry_jobs",
    "UPDATE jobs SET state = 'pending', queued_at = NULL, attempt_token = NULL, "
    "last_agent_id = coalesce(agent_id, last_agent_id), agent_id = NULL, gpu_indices = NULL, "
    "lease_expires_at = NULL, started_at = NULL, finished_at = NULL, exit_code = NULL, "
    "message = NULL, max_attempts = attempt + planned_attempts "
    "WHERE pipeline_id = $1 AND id = ANY($2::bigint[]) AND state IN "
    "('succeeded', 'failed', 'timed_out', 'error', 'canceled') RETURNING id"};
// The jobs downstream of $2 that never ran because of them (skipped as blocked, or canceled
// before they started) become pending again.
const Query kResetDownstream{
    "pipeline_reset_downstream",
    "WITH RECURSIVE down(id) AS ("
    "  SELECT n.job_id FROM job_needs n WHERE n.needs_job_id = ANY($2::bigint[]) "
    "  UNION SELECT n.job_id FROM job_needs n JOIN down ON n.needs_job_id = down.id) "
    "UPDATE jobs j SET state = 'pending', finished_at = NULL, message = NULL, "
    "max_attempts = j.attempt + j.planned_attempts FROM down "
    "WHERE j.id = down.id AND j.pipeline_id = $1 AND j.started_at IS NULL AND "
    "((j.state = 'skipped' AND j.message = 'skipped: a job it needs did not succeed') OR "
    " j.state = 'canceled') RETURNING j.id"};
const Query kReopenPipeline{
    "pipeline_reopen",
    "UPDATE pipelines SET state = 'running', finished_at = NULL, message = NULL "
    "WHERE id = $1 AND state <> 'running'"};
// A job's state, its pipeline's state, and the needs that block it: each need that neither
// succeeded nor failed with allow_failure, as "name (state)".
const Query kRetryCheck{
    "pipeline_retry_check",
    "SELECT j.state, coalesce(j.message, ''), p.state, coalesce((SELECT string_agg("
    "  format('%s (%s)', d.name, d.state), ', ' ORDER BY d.name) FROM job_needs n "
    "  JOIN jobs d ON d.id = n.needs_job_id WHERE n.job_id = j.id AND NOT (d.state = "
    "  'succeeded' OR (d.state IN ('failed', 'timed_out', 'error') AND d.allow_failure))), '') "
    "FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id WHERE j.id = $1"};
// The jobs of pipeline $1 that a pipeline retry runs again.
const Query kRetryableJobs{"pipeline_retryable_jobs",
                           "SELECT id FROM jobs WHERE pipeline_id = $1 AND "
                           "state IN ('failed', 'timed_out', 'error', 'canceled') ORDER BY id"};

#define PIPELINE_COLUMNS \
  "p.id, p.repo_id, r.name, p.event, p.ref, p.commit_sha, p.state, coalesce(p.message, " \
  "''), " \
  ASSAY_EPOCH_US("p.created_at") ", " ASSAY_EPOCH_US("p.finished_at") ", p.trusted, "         \
  "p.pr_number, coalesce(p.inputs::text, ''), " ASSAY_EPOCH_US("p.scheduled_for") ", "           \
  "p.rerun_of, p.delivery_id, coalesce(p.commit_author, ''), coalesce(p.commit_message, '')"

const Query kListPipelines{"pipeline_list",
                           "SELECT " PIPELINE_COLUMNS
                           " FROM pipelines p JOIN repos r ON r.id = p.repo_id "
                           "WHERE ($1::text IS NULL OR r.name = $1) ORDER BY p.id DESC "
                           "LIMIT $2"};
// Keyset pages (issue 11): the primary key walked backwards from the cursor, each filter
// applied as it goes; with a repository, its (repo_id, id DESC) index instead.
const Query kFilterPipelines{
    "pipeline_filter",
    "SELECT " PIPELINE_COLUMNS
    " FROM pipelines p JOIN repos r ON r.id = p.repo_id "
    "WHERE ($1::text IS NULL OR r.name = $1) AND ($2::text IS NULL OR p.ref = $2) AND "
    "($3::text IS NULL OR p.state = $3) AND ($4::text IS NULL OR p.event = $4) AND "
    "($5::bigint = 0 OR p.id < $5) ORDER BY p.id DESC LIMIT $6"};
const Query kGetPipeline{"pipeline_get",
                         "SELECT " PIPELINE_COLUMNS
                         " FROM pipelines p JOIN repos r ON r.id = p.repo_id WHERE p.id = $1"};

#define JOB_COLUMNS \
  "j.id, j.pipeline_id, j.name, j.state, coalesce(a.name, ''), coalesce(j.message, ''), "    \
  "j.attempt, j.exit_code, " ASSAY_EPOCH_US("j.created_at") ", " ASSAY_EPOCH_US(             \
      "j.queued_at") ", " ASSAY_EPOCH_US("j.started_at") ", " ASSAY_EPOCH_US("j.finished_at") \
  ", (SELECT coalesce(array_agg(d.name ORDER BY d.id), '{}') FROM job_needs n JOIN jobs d "   \
  "ON d.id = n.needs_job_id WHERE n.job_id = j.id), j.labels, j.requirements::text, "         \
  "coalesce(array_to_string(j.gpu_indices, ','), ''), j.allow_failure, j.max_attempts, "      \
  "coalesce(j.concurrency_key, ''), j.repo_id, coalesce(j.parallel_key, ''), "                \
  "coalesce(j.max_parallel, 0), j.priority"

const Query kJobsOfPipeline{"pipeline_jobs", "SELECT " JOB_COLUMNS
                                             " FROM jobs j LEFT JOIN agents a ON a.id = "
                                             "j.agent_id WHERE j.pipeline_id = $1 ORDER BY j.id"};
const Query kGetJob{"job_get", "SELECT " JOB_COLUMNS
                               " FROM jobs j LEFT JOIN agents a ON a.id = j.agent_id "
                               "WHERE j.id = $1"};
const Query kListWaiting{
    "job_list_waiting",
    "SELECT " JOB_COLUMNS
    ", r.name FROM jobs j LEFT JOIN agents a ON a.id = j.agent_id "
    "JOIN repos r ON r.id = j.repo_id WHERE j.state IN ('queued', 'pending') "
    "ORDER BY j.state = 'pending', j.priority DESC, j.queued_at, j.id LIMIT $1"};
const Query kCancelLive{
    "pipeline_cancel_live",
    "UPDATE jobs SET state = 'canceled', finished_at = $2, message = $3, "
    "lease_expires_at = NULL WHERE pipeline_id = $1 AND state IN ('assigned', 'running') "
    "RETURNING id, agent_id, attempt_token"};
const Query kCancelAttempts{
    "pipeline_cancel_attempts",
    "UPDATE job_attempts a SET state = 'canceled', finished_at = $2 FROM jobs j "
    "WHERE j.id = a.job_id AND j.attempt = a.attempt AND j.pipeline_id = $1 "
    "AND a.state IN ('assigned', 'running')"};
const Query kCancelWaiting{"pipeline_cancel_waiting",
                           "UPDATE jobs SET state = 'canceled', finished_at = $2, message = $3 "
                           "WHERE pipeline_id = $1 AND state IN ('pending', 'queued')"};

PipelineRow PipelineFromRow(const pqxx::row& r) {
  PipelineRow p;
  p.id = r[0].as<int64_t>();
  p.repo_id = r[1].as<int64_t>();
  p.repo = r[2].as<std::string>();
  p.event = r[3].as<std::string>();
  p.ref = r[4].as<std::string>();
  p.commit_sha = r[5].as<std::string>();
  p.state = r[6].as<std::string>();
  p.message = r[7].as<std::string>();
  p.created_at = ToTime(r[8]);
  p.finished_at = ToTime(r[9]);
  p.trusted = r[10].as<bool>();
  if (!r[11].is_null()) p.pr_number = r[11].as<int64_t>();
  p.inputs_json = r[12].as<std::string>();
  p.scheduled_for = ToTime(r[13]);
  if (!r[14].is_null()) p.rerun_of = r[14].as<int64_t>();
  if (!r[15].is_null()) p.delivery_id = r[15].as<int64_t>();
  p.commit_author = r[16].as<std::string>();
  p.commit_message = r[17].as<std::string>();
  return p;
}

JobRow JobFromRow(const pqxx::row& r) {
  JobRow j;
  j.id = r[0].as<int64_t>();
  j.pipeline_id = r[1].as<int64_t>();
  j.name = r[2].as<std::string>();
  j.state = r[3].as<std::string>();
  j.agent = r[4].as<std::string>();
  j.message = r[5].as<std::string>();
  j.attempt = r[6].as<int>();
  if (!r[7].is_null()) j.exit_code = r[7].as<int>();
  j.created_at = ToTime(r[8]);
  j.queued_at = ToTime(r[9]);
  j.started_at = ToTime(r[10]);
  j.finished_at = ToTime(r[11]);
  j.needs = FromPgTextArray(r[12]);
  j.labels = FromPgTextArray(r[13]);
  j.requirements_json = r[14].as<std::string>();
  for (absl::string_view part : absl::StrSplit(r[15].as<std::string>(), ',', absl::SkipEmpty())) {
    uint32_t v = 0;
    if (absl::SimpleAtoi(part, &v)) j.gpu_indices.push_back(v);
  }
  j.allow_failure = r[16].as<bool>();
  j.max_attempts = r[17].as<int>();
  j.concurrency_key = r[18].as<std::string>();
  j.repo_id = r[19].as<int64_t>();
  j.parallel_key = r[20].as<std::string>();
  j.max_parallel = r[21].as<int>();
  j.priority = r[22].as<int>();
  return j;
}

}  // namespace

void LockPipeline(pqxx::work& tx, Connection& c, int64_t pipeline_id) {
  Exec(tx, c, kLockPipeline, {pipeline_id});
}

int AdvancePipeline(pqxx::work& tx, Connection& c, int64_t pipeline_id, absl::Time now,
                    bool may_block) {
  // Issue 10: a sweep whose trials all ended marks its best and registers it first; a best
  // that cannot be registered is failed, which may block its dependents.
  if (ConcludeSweeps(tx, c, pipeline_id, now)) may_block = true;
  // Skipping cascades down the DAG: repeat until a pass skips nothing (depth ≤ job count).
  while (may_block && Exec(tx, c, kSkipBlocked, {pipeline_id, now}).affected_rows() > 0) {
  }
  int queued =
      static_cast<int>(Exec(tx, c, kQueueReadyAndFinish, {pipeline_id, now})[0][0].as<int64_t>());
  if (queued > 0) Exec(tx, c, kNotifyQueued);
  return queued;
}

void NotifyCancel(pqxx::work& tx, Connection& c, const std::vector<CanceledAttempt>& attempts) {
  for (const auto& a : attempts) {
    Exec(tx, c, kNotifyCancel, {absl::StrCat(a.agent_id, " ", a.job_id, " ", a.attempt_token)});
  }
}

namespace {

// Inside a transaction holding the locks of the jobs' pipelines: cancels the unfinished ones.
std::vector<CanceledAttempt> CancelJobsLocked(pqxx::work& tx, Connection& c,
                                              const std::vector<int64_t>& ids,
                                              const std::string& message, absl::Time now) {
  std::vector<std::string> id_text;
  for (int64_t id : ids) id_text.push_back(absl::StrCat(id));
  const std::string arr = ToPgTextArray(id_text);
  std::vector<CanceledAttempt> out;
  Exec(tx, c, kCancelJobsWaiting, {arr, now, message});
  for (const auto& r : Exec(tx, c, kCancelJobsLive, {arr, now, message})) {
    out.push_back({r[0].as<int64_t>(), r[1].as<int64_t>(), r[2].as<std::string>()});
  }
  Exec(tx, c, kCancelJobsAttempts, {arr, now, message});
  NotifyCancel(tx, c, out);
  return out;
}

}  // namespace

absl::StatusOr<int64_t> PipelineStore::Create(const NewPipeline& p) {
  int64_t id = 0;
  absl::Time now = clock_->Now();
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    if (p.claim_next_run && p.schedule_id && p.scheduled_for &&
        Exec(tx, c, kClaimScheduleSlot, {*p.schedule_id, *p.scheduled_for, *p.claim_next_run})
            .empty()) {
      id = 0;  // Why first: the schedule's row lock orders two callers racing for one slot.
      return absl::OkStatus();
    }
    bool error = !p.error.empty() || p.jobs.empty();
    auto res = Exec(tx, c, kInsertPipeline,
                    {p.repo_id, Param::Opt(p.delivery_id), p.event, p.ref, p.commit_sha,
                     error ? "error" : "running", p.error, now, p.trusted, Param::Opt(p.pr_number),
                     p.inputs_json, Param::Opt(p.schedule_id), Param::Opt(p.scheduled_for),
                     Param::Opt(p.rerun_of), p.commit_author, p.commit_message});
    if (res.empty()) {
      // This delivery was planned before (a replay after a crash), or another replica fired
      // this schedule slot.
      auto prior = p.delivery_id ? Exec(tx, c, kPipelineForDelivery, {*p.delivery_id})
                                 : Exec(tx, c, kPipelineForSlot,
                                        {Param::Opt(p.schedule_id), Param::Opt(p.scheduled_for)});
      if (prior.empty()) return absl::AbortedError("pipeline insert conflicted; retry");
      id = prior[0][0].as<int64_t>();
      return absl::OkStatus();
    }
    id = res[0][0].as<int64_t>();
    std::map<std::string, int64_t> ids;
    bool any_skipped = false, any_queued = false;
    for (const auto& j : p.jobs) {
      const char* state = !j.skip_reason.empty() ? "skipped"
                          : j.needs.empty()      ? "queued"
                                                 : "pending";
      const std::string group_key =
          j.concurrency_group.empty() ? "" : absl::StrCat(p.repo_id, ":", j.concurrency_group);
      const std::string parallel_key =
          j.max_parallel > 0 ? absl::StrCat(id, ":", j.base_name.empty() ? j.name : j.base_name)
                             : "";
      auto r = Exec(
          tx, c, kInsertJob,
          {id, j.name, state, j.spec_json, ToPgTextArray(j.labels), j.max_attempts, now, j.priority,
           j.skip_reason, p.repo_id, j.requirements_json, ToPgTextArray(j.retry_on),
           j.allow_failure, group_key, parallel_key, j.max_parallel});
      any_skipped |= !j.skip_reason.empty();
      any_queued |= std::string_view(state) == "queued";
      ids[j.name] = r[0][0].as<int64_t>();
    }
    // `concurrency.cancel_in_progress`: older unfinished jobs of the group are canceled
    // (pipelines locked in id order, like every multi-pipeline writer).
    std::set<std::string> cancel_groups;
    for (const auto& j : p.jobs) {
      if (j.cancel_in_progress && !j.concurrency_group.empty() && j.skip_reason.empty()) {
        cancel_groups.insert(absl::StrCat(p.repo_id, ":", j.concurrency_group));
      }
    }
    for (const std::string& key : cancel_groups) {
      for (const auto& row : Exec(tx, c, kGroupPipelines, {key, id})) {
        const int64_t other = row[0].as<int64_t>();
        LockPipeline(tx, c, other);
        std::vector<int64_t> victims;
        for (const auto& v : Exec(tx, c, kGroupJobsOf, {key, other})) {
          victims.push_back(v[0].as<int64_t>());
        }
        const std::string group = key.substr(key.find(':') + 1);
        CancelJobsLocked(tx, c, victims,
                         absl::StrCat("canceled: pipeline ", id,
                                      " started a newer job in "
                                      "concurrency group '",
                                      group, "' (cancel_in_progress)"),
                         now);
        AdvancePipeline(tx, c, other, now);
      }
    }
    if (any_queued) Exec(tx, c, kNotifyQueued);
    for (const auto& j : p.jobs) {
      for (const auto& n : j.needs) {
        auto it = ids.find(n);
        if (it == ids.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat("job '", j.name, "' needs unknown job '", n, "'"));
        }
        Exec(tx, c, kInsertNeed, {ids[j.name], it->second});
      }
    }
    // A job skipped by its `if` skips its dependents too, and may finish the pipeline.
    if (any_skipped) AdvancePipeline(tx, c, id, now);
    if (p.delivery_id) Exec(tx, c, kDeliveryProcessed, {*p.delivery_id, p.error});
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return id;
}

absl::StatusOr<std::vector<PipelineRow>> PipelineStore::List(std::optional<std::string> repo,
                                                             int limit) {
  std::vector<PipelineRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kListPipelines, {Param::Opt(repo), limit})) {
      out.push_back(PipelineFromRow(r));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<PipelineRow>> PipelineStore::List(const Filter& f) {
  std::vector<PipelineRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kFilterPipelines,
                              {Param::Opt(f.repo), Param::Opt(f.ref), Param::Opt(f.state),
                               Param::Opt(f.event), f.before_id, std::max(1, f.limit)})) {
      out.push_back(PipelineFromRow(r));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<PipelineRow> PipelineStore::Get(int64_t id) {
  std::optional<PipelineRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto res = Exec(tx, c, kGetPipeline, {id});
    if (res.empty()) return absl::OkStatus();
    out = PipelineFromRow(res[0]);
    for (const auto& r : Exec(tx, c, kJobsOfPipeline, {id})) out->jobs.push_back(JobFromRow(r));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!out) return absl::NotFoundError(absl::StrCat("pipeline ", id, " does not exist"));
  return *out;
}

absl::StatusOr<JobRow> PipelineStore::GetJob(int64_t id) {
  std::optional<JobRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto res = Exec(tx, c, kGetJob, {id});
    if (!res.empty()) out = JobFromRow(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!out) return absl::NotFoundError(absl::StrCat("job ", id, " does not exist"));
  return *out;
}

absl::StatusOr<std::vector<JobRow>> PipelineStore::ListWaiting(int limit) {
  std::vector<JobRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kListWaiting, {limit})) {
      out.push_back(JobFromRow(r));
      out.back().repo = r[23].as<std::string>();
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

namespace {

// Cancels pipeline `id`'s unfinished jobs with `message`, inside `tx`; appends the live attempts
// to *out. kNotFound / kFailedPrecondition (finished) as Cancel documents.
absl::Status CancelInTx(pqxx::work& tx, Connection& c, int64_t id, absl::Time now,
                        const std::string& message, std::vector<CanceledAttempt>* out) {
  auto lock = Exec(tx, c, kLockPipeline, {id});
  if (lock.empty()) return absl::NotFoundError(absl::StrCat("pipeline ", id, " does not exist"));
  std::string state = lock[0][0].as<std::string>();
  if (state != "running") {
    return absl::FailedPreconditionError(
        absl::StrCat("pipeline ", id, " has already finished (", state, ")"));
  }
  // Why this order: a claim does not take the pipeline lock, so canceling the queued jobs
  // first waits for a claim in flight and the later statements see its job as live. Job rows
  // before attempt rows, as MarkRunning and Reject lock them, so they cannot deadlock.
  Exec(tx, c, kCancelWaiting, {id, now, message});
  const size_t first = out->size();
  for (const auto& r : Exec(tx, c, kCancelLive, {id, now, message})) {
    out->push_back({r[0].as<int64_t>(), r[1].as<int64_t>(), r[2].as<std::string>()});
  }
  Exec(tx, c, kCancelAttempts, {id, now});
  NotifyCancel(tx, c, std::vector<CanceledAttempt>(out->begin() + first, out->end()));
  AdvancePipeline(tx, c, id, now);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<CanceledAttempt>> PipelineStore::Cancel(int64_t id) {
  std::vector<CanceledAttempt> out;
  absl::Time now = clock_->Now();
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    return CancelInTx(tx, c, id, now, "canceled by request", &out);
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<CanceledAttempt>> PipelineStore::CancelJob(int64_t job_id) {
  std::vector<CanceledAttempt> out;
  absl::Time now = clock_->Now();
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    auto p = Exec(tx, c, kJobPipelineLock, {job_id});
    if (p.empty()) return absl::NotFoundError(absl::StrCat("job ", job_id, " does not exist"));
    const int64_t pipeline_id = p[0][0].as<int64_t>();
    LockPipeline(tx, c, pipeline_id);
    const std::string state = Exec(tx, c, kJobState, {job_id})[0][0].as<std::string>();
    if (state != "pending" && state != "queued" && state != "assigned" && state != "running") {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " has already finished (", state, ")"));
    }
    out = CancelJobsLocked(tx, c, {job_id}, "canceled by request", now);
    AdvancePipeline(tx, c, pipeline_id, now);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

namespace {

// Inside a transaction that holds pipeline `pipeline_id`'s lock: runs `ids` again (see
// PipelineStore::RetryJob) and returns how many jobs became pending, the downstream ones
// included.
int RetryLocked(pqxx::work& tx, Connection& c, int64_t pipeline_id, const std::vector<int64_t>& ids,
                absl::Time now) {
  std::vector<std::string> id_text;
  for (int64_t id : ids) id_text.push_back(absl::StrCat(id));
  const std::string arr = ToPgTextArray(id_text);
  int n = static_cast<int>(Exec(tx, c, kRetryJobs, {pipeline_id, arr}).size());
  n += static_cast<int>(Exec(tx, c, kResetDownstream, {pipeline_id, arr}).size());
  Exec(tx, c, kReopenPipeline, {pipeline_id});
  AdvancePipeline(tx, c, pipeline_id, now);
  return n;
}

}  // namespace

absl::StatusOr<int> PipelineStore::RetryJob(int64_t job_id) {
  int out = 0;
  absl::Time now = clock_->Now();
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto p = Exec(tx, c, kJobPipelineLock, {job_id});
    if (p.empty()) return absl::NotFoundError(absl::StrCat("job ", job_id, " does not exist"));
    const int64_t pipeline_id = p[0][0].as<int64_t>();
    LockPipeline(tx, c, pipeline_id);
    auto r = Exec(tx, c, kRetryCheck, {job_id});
    const std::string state = r[0][0].as<std::string>();
    const std::string message = r[0][1].as<std::string>();
    const std::string pipeline_state = r[0][2].as<std::string>();
    const std::string blocked_by = r[0][3].as<std::string>();
    if (pipeline_state == "error") {
      return absl::FailedPreconditionError(
          absl::StrCat("pipeline ", pipeline_id, " is in error and has no jobs to run"));
    }
    if (state == "pending" || state == "queued" || state == "assigned" || state == "running") {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " has not finished (", state, ")"));
    }
    if (state == "skipped") {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job_id, " was skipped (", message,
          "): retry the job it needs, and it runs again after it; a job skipped by its `if` "
          "runs only in a new pipeline"));
    }
    if (!blocked_by.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job_id, " needs jobs that did not succeed: ", blocked_by, "; retry those first"));
    }
    out = RetryLocked(tx, c, pipeline_id, {job_id}, now);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<int> PipelineStore::RetryPipeline(int64_t pipeline_id) {
  int out = 0;
  absl::Time now = clock_->Now();
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto lock = Exec(tx, c, kLockPipeline, {pipeline_id});
    if (lock.empty()) {
      return absl::NotFoundError(absl::StrCat("pipeline ", pipeline_id, " does not exist"));
    }
    const std::string state = lock[0][0].as<std::string>();
    if (state == "running") {
      return absl::FailedPreconditionError(absl::StrCat(
          "pipeline ", pipeline_id, " is still running: retry single jobs, or wait for it"));
    }
    std::vector<int64_t> ids;
    for (const auto& r : Exec(tx, c, kRetryableJobs, {pipeline_id})) {
      ids.push_back(r[0].as<int64_t>());
    }
    if (ids.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("pipeline ", pipeline_id, " (", state,
                       ") has no failed or canceled job to retry; re-run it for a new pipeline"));
    }
    out = RetryLocked(tx, c, pipeline_id, ids, now);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<CanceledAttempt>> PipelineStore::CancelSuperseded(
    int64_t repo_id, const std::string& ref, int64_t newer_id, std::vector<int64_t>* canceled) {
  std::vector<CanceledAttempt> out;
  std::vector<int64_t> ids;
  absl::Time now = clock_->Now();
  const std::string message = absl::StrCat("superseded by pipeline ", newer_id);
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    ids.clear();
    for (const auto& r : Exec(tx, c, kSupersededPipelines, {repo_id, ref, newer_id})) {
      const int64_t id = r[0].as<int64_t>();
      // A pipeline that finished since the SELECT is simply left alone.
      absl::Status one = CancelInTx(tx, c, id, now, message, &out);
      if (one.code() == absl::StatusCode::kFailedPrecondition) continue;
      if (!one.ok()) return one;
      Exec(tx, c, kPipelineMessage, {id, message});
      ids.push_back(id);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (canceled != nullptr) *canceled = ids;
  return out;
}

}  // namespace assay::store
