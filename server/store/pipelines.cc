#include "server/store/pipelines.h"

#include <map>

#include "absl/strings/str_cat.h"

namespace assay::store {
namespace {

constexpr Query kInsertPipeline{
    "pipeline_insert",
    "INSERT INTO pipelines (repo_id, delivery_id, event, ref, commit_sha, state, message, "
    "created_at, finished_at, trusted, pr_number, inputs, schedule_id, scheduled_for) "
    "VALUES ($1, $2, $3, $4, $5, $6, nullif($7, ''), $8, "
    "CASE WHEN $6 = 'running' THEN NULL ELSE $8::timestamptz END, $9, $10, "
    "nullif($11, '')::jsonb, $12, $13) "
    "ON CONFLICT DO NOTHING RETURNING id"};
constexpr Query kPipelineForDelivery{"pipeline_for_delivery",
                                     "SELECT id FROM pipelines WHERE delivery_id = $1"};
constexpr Query kPipelineForSlot{
    "pipeline_for_slot",
    "SELECT id FROM pipelines WHERE schedule_id = $1 AND scheduled_for = $2"};
constexpr Query kSupersededPipelines{
    "pipeline_superseded",
    "SELECT id FROM pipelines WHERE repo_id = $1 AND ref = $2 AND event = 'push' AND "
    "state = 'running' AND id < $3 ORDER BY id"};
constexpr Query kPipelineMessage{"pipeline_set_message",
                                 "UPDATE pipelines SET message = $2 WHERE id = $1"};
constexpr Query kInsertJob{
    "job_insert",
    "INSERT INTO jobs (pipeline_id, name, state, spec, labels, max_attempts, created_at, "
    "queued_at, priority, message, finished_at) VALUES ($1, $2, $3, $4::jsonb, $5::text[], $6, "
    "$7, CASE WHEN $3 = 'queued' THEN $7::timestamptz END, $8, nullif($9, ''), "
    "CASE WHEN $3 = 'skipped' THEN $7::timestamptz END) RETURNING id"};
constexpr Query kInsertNeed{"job_need_insert",
                            "INSERT INTO job_needs (job_id, needs_job_id) VALUES ($1, $2)"};
constexpr Query kDeliveryProcessed{
    "delivery_processed",
    "UPDATE webhook_deliveries SET state = 'processed', processed_at = now() WHERE id = $1"};
constexpr Query kLockPipeline{"pipeline_lock",
                              "SELECT state FROM pipelines WHERE id = $1 FOR UPDATE"};
constexpr Query kSkipBlocked{
    "pipeline_skip_blocked",
    "UPDATE jobs j SET state = 'skipped', finished_at = $2, "
    "message = 'skipped: a job it needs did not succeed' "
    "WHERE j.pipeline_id = $1 AND j.state = 'pending' AND EXISTS ("
    "  SELECT 1 FROM job_needs n JOIN jobs d ON d.id = n.needs_job_id WHERE n.job_id = j.id"
    "  AND d.state IN ('failed', 'timed_out', 'canceled', 'skipped', 'error'))"};
constexpr Query kQueueReady{
    "pipeline_queue_ready",
    "UPDATE jobs j SET state = 'queued', queued_at = $2 "
    "WHERE j.pipeline_id = $1 AND j.state = 'pending' AND NOT EXISTS ("
    "  SELECT 1 FROM job_needs n JOIN jobs d ON d.id = n.needs_job_id WHERE n.job_id = j.id"
    "  AND d.state <> 'succeeded')"};
constexpr Query kFinishPipeline{
    "pipeline_finish",
    "UPDATE pipelines p SET finished_at = $2, state = CASE "
    "  WHEN EXISTS (SELECT 1 FROM jobs WHERE pipeline_id = $1 AND state IN "
    "    ('failed', 'timed_out', 'error')) THEN 'failed' "
    "  WHEN EXISTS (SELECT 1 FROM jobs WHERE pipeline_id = $1 AND state = 'canceled') "
    "    THEN 'canceled' ELSE 'succeeded' END "
    "WHERE p.id = $1 AND p.state = 'running' AND NOT EXISTS (SELECT 1 FROM jobs WHERE "
    "  pipeline_id = $1 AND state IN ('pending', 'queued', 'assigned', 'running'))"};

#define PIPELINE_COLUMNS                                                                  \
  "p.id, p.repo_id, r.name, p.event, p.ref, p.commit_sha, p.state, coalesce(p.message, ''), " \
  ASSAY_EPOCH_US("p.created_at") ", " ASSAY_EPOCH_US("p.finished_at") ", p.trusted, "         \
  "p.pr_number, coalesce(p.inputs::text, ''), " ASSAY_EPOCH_US("p.scheduled_for")

constexpr Query kListPipelines{"pipeline_list",
                               "SELECT " PIPELINE_COLUMNS
                               " FROM pipelines p JOIN repos r ON r.id = p.repo_id "
                               "WHERE ($1::text IS NULL OR r.name = $1) ORDER BY p.id DESC "
                               "LIMIT $2"};
constexpr Query kGetPipeline{"pipeline_get",
                             "SELECT " PIPELINE_COLUMNS
                             " FROM pipelines p JOIN repos r ON r.id = p.repo_id WHERE p.id = $1"};

#define JOB_COLUMNS                                                                          \
  "j.id, j.pipeline_id, j.name, j.state, coalesce(a.name, ''), coalesce(j.message, ''), "    \
  "j.attempt, j.exit_code, " ASSAY_EPOCH_US("j.created_at") ", " ASSAY_EPOCH_US(             \
      "j.queued_at") ", " ASSAY_EPOCH_US("j.started_at") ", " ASSAY_EPOCH_US("j.finished_at") \
  ", (SELECT coalesce(array_agg(d.name ORDER BY d.id), '{}') FROM job_needs n JOIN jobs d "   \
  "ON d.id = n.needs_job_id WHERE n.job_id = j.id)"

constexpr Query kJobsOfPipeline{"pipeline_jobs",
                                "SELECT " JOB_COLUMNS " FROM jobs j LEFT JOIN agents a ON a.id = "
                                "j.agent_id WHERE j.pipeline_id = $1 ORDER BY j.id"};
constexpr Query kGetJob{"job_get", "SELECT " JOB_COLUMNS
                                   " FROM jobs j LEFT JOIN agents a ON a.id = j.agent_id "
                                   "WHERE j.id = $1"};
constexpr Query kCancelLive{
    "pipeline_cancel_live",
    "UPDATE jobs SET state = 'canceled', finished_at = $2, message = $3, "
    "lease_expires_at = NULL WHERE pipeline_id = $1 AND state IN ('assigned', 'running') "
    "RETURNING id, agent_id, attempt_token"};
constexpr Query kCancelAttempts{
    "pipeline_cancel_attempts",
    "UPDATE job_attempts a SET state = 'canceled', finished_at = $2 FROM jobs j "
    "WHERE j.id = a.job_id AND j.attempt = a.attempt AND j.pipeline_id = $1 "
    "AND a.state IN ('assigned', 'running')"};
constexpr Query kCancelWaiting{
    "pipeline_cancel_waiting",
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
  return j;
}

}  // namespace

void LockPipeline(pqxx::work& tx, Connection& c, int64_t pipeline_id) {
  Exec(tx, c, kLockPipeline, {pipeline_id});
}

int AdvancePipeline(pqxx::work& tx, Connection& c, int64_t pipeline_id, absl::Time now) {
  // Skipping cascades down the DAG: repeat until a pass skips nothing (depth ≤ job count).
  while (Exec(tx, c, kSkipBlocked, {pipeline_id, now}).affected_rows() > 0) {
  }
  int queued = static_cast<int>(Exec(tx, c, kQueueReady, {pipeline_id, now}).affected_rows());
  Exec(tx, c, kFinishPipeline, {pipeline_id, now});
  return queued;
}

absl::StatusOr<int64_t> PipelineStore::Create(const NewPipeline& p) {
  int64_t id = 0;
  absl::Time now = clock_->Now();
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    bool error = !p.error.empty() || p.jobs.empty();
    auto res = Exec(tx, c, kInsertPipeline,
                    {p.repo_id, Param::Opt(p.delivery_id), p.event, p.ref, p.commit_sha,
                     error ? "error" : "running", p.error, now, p.trusted,
                     Param::Opt(p.pr_number), p.inputs_json, Param::Opt(p.schedule_id),
                     Param::Opt(p.scheduled_for)});
    if (res.empty()) {
      // This delivery was planned before (a replay after a crash), or another replica fired
      // this schedule slot.
      auto prior = p.delivery_id
                       ? Exec(tx, c, kPipelineForDelivery, {*p.delivery_id})
                       : Exec(tx, c, kPipelineForSlot,
                              {Param::Opt(p.schedule_id), Param::Opt(p.scheduled_for)});
      if (prior.empty()) return absl::AbortedError("pipeline insert conflicted; retry");
      id = prior[0][0].as<int64_t>();
      return absl::OkStatus();
    }
    id = res[0][0].as<int64_t>();
    std::map<std::string, int64_t> ids;
    bool any_skipped = false;
    for (const auto& j : p.jobs) {
      const char* state = !j.skip_reason.empty() ? "skipped"
                          : j.needs.empty()        ? "queued"
                                                   : "pending";
      auto r = Exec(tx, c, kInsertJob,
                    {id, j.name, state, j.spec_json, ToPgTextArray(j.labels), j.max_attempts,
                     now, j.priority, j.skip_reason});
      any_skipped |= !j.skip_reason.empty();
      ids[j.name] = r[0][0].as<int64_t>();
    }
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
    if (p.delivery_id) Exec(tx, c, kDeliveryProcessed, {*p.delivery_id});
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
  for (const auto& r : Exec(tx, c, kCancelLive, {id, now, message})) {
    out->push_back({r[0].as<int64_t>(), r[1].as<int64_t>(), r[2].as<std::string>()});
  }
  Exec(tx, c, kCancelAttempts, {id, now});
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
