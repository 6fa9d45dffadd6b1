#include "server/store/traces.h"

#include <map>

#include "absl/strings/str_cat.h"

namespace assay::store {
namespace {

#define US(col) ASSAY_EPOCH_US(col)

const Query kSkipOldPipelines{
    "trace_skip_old_pipelines",
    "UPDATE pipelines SET traced_at = finished_at WHERE id IN (SELECT id FROM pipelines "
    "WHERE finished_at IS NOT NULL AND traced_at IS DISTINCT FROM finished_at AND "
    "finished_at < now() - $1::float8 * interval '1 millisecond' LIMIT 10000 "
    "FOR UPDATE SKIP LOCKED)"};
const Query kSkipOldDeployments{
    "trace_skip_old_deployments",
    "UPDATE deployments SET traced_at = finished_at WHERE id IN (SELECT id FROM deployments "
    "WHERE finished_at IS NOT NULL AND traced_at IS DISTINCT FROM finished_at AND "
    "finished_at < now() - $1::float8 * interval '1 millisecond' LIMIT 10000 "
    "FOR UPDATE SKIP LOCKED)"};
const Query kDuePipelines{
    "trace_due_pipelines",
    "SELECT p.id, r.name, p.event, p.ref, p.commit_sha, p.state, coalesce(p.message, ''), " US(
        "p.created_at") ", " US("p.finished_at") " FROM pipelines p JOIN repos r ON r.id = "
                                                 "p.repo_id "
                                                 "WHERE p.finished_at IS NOT NULL AND "
                                                 "p.traced_at IS DISTINCT FROM p.finished_at "
                                                 "ORDER BY p.finished_at LIMIT $1 "
                                                 "FOR UPDATE OF p SKIP LOCKED"};
const Query kPipelineJobs{
    "trace_pipeline_jobs",
    "SELECT id, name, state, coalesce(message, ''), " US("created_at") ", " US(
        "queued_at") ", " US("started_at") ", " US("finished_at") " FROM jobs WHERE pipeline_id = "
                                                                   "$1 ORDER BY id LIMIT $2"};
const Query kJobAttempts{
    "trace_job_attempts",
    "SELECT a.job_id, a.attempt, ag.name, a.state, coalesce(a.message, ''), " US(
        "a.assigned_at") ", " US("a.started_at") ", " US("a.finished_at") ", a.exit_code "
                                                                           "FROM job_attempts a "
                                                                           "JOIN agents ag ON "
                                                                           "ag.id = a.agent_id "
                                                                           "WHERE a.job_id = "
                                                                           "ANY($1::bigint[]) "
                                                                           "ORDER BY a.job_id, "
                                                                           "a.attempt"};
const Query kMarkPipeline{"trace_mark_pipeline",
                          "UPDATE pipelines SET traced_at = finished_at WHERE id = $1"};
const Query kDueDeployments{
    "trace_due_deployments",
    "SELECT d.id, r.name, e.name, d.state, d.message, d.created_by, "
    "coalesce((SELECT k FROM jsonb_object_keys(d.strategy) k LIMIT 1), ''), "
    "coalesce(d.model, ''), coalesce(d.image, ''), d.version, d.pipeline_id, d.rollback_of, " US(
        "d.created_at") ", " US("d.finished_at") ", " US(
        "d.started_at") " FROM deployments d JOIN environments e ON e.id = d.environment_id "
                        "JOIN repos r ON r.id = d.repo_id "
                        "WHERE d.finished_at IS NOT NULL AND "
                        "d.traced_at IS DISTINCT FROM d.finished_at "
                        "ORDER BY d.finished_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED"};
const Query kDeploymentEvents{
    "trace_deployment_events",
    "SELECT " US("at") ", step, kind, message, count(*) OVER () FROM deployment_events "
                       "WHERE deployment_id = $1 ORDER BY id LIMIT $2"};
const Query kMarkDeployment{"trace_mark_deployment",
                            "UPDATE deployments SET traced_at = finished_at WHERE id = $1"};

std::optional<absl::Time> OptTime(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return ToTime(f);
}

}  // namespace

absl::StatusOr<int64_t> TraceStore::SkipOld(absl::Duration max_age) {
  int64_t n = 0;
  const std::string ms = absl::StrCat(absl::ToDoubleMilliseconds(max_age));
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    n = static_cast<int64_t>(Exec(tx, c, kSkipOldPipelines, {ms}).affected_rows()) +
        static_cast<int64_t>(Exec(tx, c, kSkipOldDeployments, {ms}).affected_rows());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return n;
}

absl::StatusOr<int> TraceStore::ExportPipelines(int limit, const PipelineSender& send) {
  int sent = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    std::vector<PipelineTrace> batch;
    for (const auto& row : Exec(tx, c, kDuePipelines, {limit})) {
      PipelineTrace p;
      p.id = row[0].as<int64_t>();
      p.repo = row[1].as<std::string>();
      p.event = row[2].as<std::string>();
      p.ref = row[3].as<std::string>();
      p.commit_sha = row[4].as<std::string>();
      p.state = row[5].as<std::string>();
      p.message = row[6].as<std::string>();
      p.created_at = ToTime(row[7]);
      p.finished_at = ToTime(row[8]);
      batch.push_back(std::move(p));
    }
    if (batch.empty()) return absl::OkStatus();
    for (PipelineTrace& p : batch) {
      std::map<int64_t, size_t> at;
      std::vector<int64_t> ids;
      for (const auto& row : Exec(tx, c, kPipelineJobs, {p.id, kMaxTraceJobs})) {
        JobTrace j;
        j.id = row[0].as<int64_t>();
        j.name = row[1].as<std::string>();
        j.state = row[2].as<std::string>();
        j.message = row[3].as<std::string>();
        j.created_at = ToTime(row[4]);
        j.queued_at = OptTime(row[5]);
        j.started_at = OptTime(row[6]);
        j.finished_at = OptTime(row[7]);
        at[j.id] = p.jobs.size();
        ids.push_back(j.id);
        p.jobs.push_back(std::move(j));
      }
      if (ids.empty()) continue;
      for (const auto& row : Exec(tx, c, kJobAttempts, {ToPgArray(ids)})) {
        AttemptTrace a;
        a.attempt = row[1].as<int>();
        a.agent = row[2].as<std::string>();
        a.state = row[3].as<std::string>();
        a.message = row[4].as<std::string>();
        a.assigned_at = ToTime(row[5]);
        a.started_at = OptTime(row[6]);
        a.finished_at = OptTime(row[7]);
        if (!row[8].is_null()) a.exit_code = row[8].as<int>();
        p.jobs[at[row[0].as<int64_t>()]].attempts.push_back(std::move(a));
      }
    }
    if (absl::Status sent_ok = send(batch); !sent_ok.ok()) return sent_ok;
    for (const PipelineTrace& p : batch) Exec(tx, c, kMarkPipeline, {p.id});
    sent = static_cast<int>(batch.size());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return sent;
}

absl::StatusOr<int> TraceStore::ExportDeployments(int limit, const DeploymentSender& send) {
  int sent = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    std::vector<DeploymentTrace> batch;
    for (const auto& row : Exec(tx, c, kDueDeployments, {limit})) {
      DeploymentTrace d;
      d.id = row[0].as<int64_t>();
      d.repo = row[1].as<std::string>();
      d.environment = row[2].as<std::string>();
      d.state = row[3].as<std::string>();
      d.message = row[4].as<std::string>();
      d.created_by = row[5].as<std::string>();
      d.strategy_kind = row[6].as<std::string>();
      d.model = row[7].as<std::string>();
      d.image = row[8].as<std::string>();
      if (!row[9].is_null()) d.version = row[9].as<int>();
      if (!row[10].is_null()) d.pipeline_id = row[10].as<int64_t>();
      if (!row[11].is_null()) d.rollback_of = row[11].as<int64_t>();
      d.created_at = ToTime(row[12]);
      d.finished_at = ToTime(row[13]);
      d.started_at = OptTime(row[14]);
      batch.push_back(std::move(d));
    }
    if (batch.empty()) return absl::OkStatus();
    for (DeploymentTrace& d : batch) {
      for (const auto& row : Exec(tx, c, kDeploymentEvents, {d.id, kMaxTraceEvents})) {
        d.events.push_back(
            {ToTime(row[0]), row[1].as<int>(), row[2].as<std::string>(), row[3].as<std::string>()});
        d.events_dropped = row[4].as<int64_t>() - kMaxTraceEvents;
      }
      if (d.events_dropped < 0) d.events_dropped = 0;
    }
    if (absl::Status sent_ok = send(batch); !sent_ok.ok()) return sent_ok;
    for (const DeploymentTrace& d : batch) Exec(tx, c, kMarkDeployment, {d.id});
    sent = static_cast<int>(batch.size());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return sent;
}

}  // namespace assay::store
