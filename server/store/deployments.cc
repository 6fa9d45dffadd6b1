#include "server/store/deployments.h"

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/pipeline/glob.h"
#include "common/registry/model_input.h"
#include "server/store/models.h"

namespace assay::store {
namespace {

namespace json = boost::json;

#define ENV_COLUMNS \
  "e.id, e.repo_id, r.name, e.name, e.branches, e.required_approvals, e.target::text, "        \
  "e.analysis::text, e.alias, e.live::text, " ASSAY_EPOCH_US("e.created_at") ", " ASSAY_EPOCH_US( \
      "e.updated_at") ", (SELECT a.id FROM deployments a WHERE a.environment_id = e.id AND "   \
                      "a.state IN ('pending_approval', 'progressing', 'paused', 'watching'))"

const Query kEnvUpsert{
    "env_upsert",
    "INSERT INTO environments (repo_id, name, branches, required_approvals, target, analysis, "
    "alias, created_at, updated_at) VALUES ($1, $2, $3::text[], $4, $5::jsonb, $6::jsonb, $7, $8, "
    "$8) ON CONFLICT (repo_id, name) DO UPDATE SET branches = EXCLUDED.branches, "
    "required_approvals = EXCLUDED.required_approvals, target = EXCLUDED.target, analysis = "
    "EXCLUDED.analysis, alias = EXCLUDED.alias, updated_at = EXCLUDED.updated_at"};
const Query kEnvGet{"env_get", "SELECT " ENV_COLUMNS
                               " FROM environments e JOIN repos r ON r.id = e.repo_id "
                               "WHERE e.repo_id = $1 AND e.name = $2"};
const Query kEnvGetLock{"env_get_lock",
                        "SELECT e.id FROM environments e WHERE e.repo_id = $1 "
                        "AND e.name = $2 FOR UPDATE"};
const Query kEnvList{"env_list", "SELECT " ENV_COLUMNS
                                 " FROM environments e JOIN repos r ON r.id = e.repo_id "
                                 "WHERE e.repo_id = $1 ORDER BY e.name"};
const Query kEnvDelete{"env_delete", "DELETE FROM environments WHERE id = $1"};
const Query kRepoExists{"deploy_repo_exists", "SELECT 1 FROM repos WHERE id = $1"};

#define DEPLOY_COLUMNS \
  "d.id, d.environment_id, d.repo_id, e.name, r.name, d.state, d.model, d.version, d.image, "  \
  "d.servers::text, d.ref, d.strategy::text, d.previous::text, d.alias_previous, "             \
  "d.alias_moved, d.step, d.weight, " ASSAY_EPOCH_US("d.step_started_at") ", d.runs::text, "    \
  ASSAY_EPOCH_US("d.watch_until") ", d.message, d.created_by, d.pipeline_id, d.job_id, "        \
  "d.superseded_by, d.rollback_of, " ASSAY_EPOCH_US("d.next_at") ", d.requested::text, "        \
  ASSAY_EPOCH_US("d.created_at") ", " ASSAY_EPOCH_US("d.started_at") ", " ASSAY_EPOCH_US(       \
      "d.finished_at") ", (SELECT coalesce(array_agg(p.approver ORDER BY p.at), '{}') FROM "   \
                       "deployment_approvals p WHERE p.deployment_id = d.id)"
#define DEPLOY_FROM                                                                            \
  " FROM deployments d JOIN environments e ON e.id = d.environment_id JOIN repos r ON r.id = " \
  "d.repo_id "

const Query kDeployGet{"deploy_get", "SELECT " DEPLOY_COLUMNS DEPLOY_FROM "WHERE d.id = $1"};
const Query kDeployGetLock{"deploy_get_lock",
                           "SELECT state, created_by FROM deployments WHERE id = $1 FOR UPDATE"};
const Query kDeployForJob{"deploy_for_job", "SELECT " DEPLOY_COLUMNS DEPLOY_FROM
                                            "WHERE d.job_id = $1 AND d.job_attempt = $2"};
const Query kDeployList{
    "deploy_list",
    "SELECT " DEPLOY_COLUMNS DEPLOY_FROM
    "WHERE ($1::bigint IS NULL OR d.repo_id = $1) AND ($2 = '' OR e.name = $2) AND "
    "($3::bigint IS NULL OR d.id < $3) AND (cardinality($4::text[]) = 0 OR d.state = "
    "ANY($4::text[])) ORDER BY d.id DESC LIMIT $5"};
const Query kDeployActiveOf{
    "deploy_active_of",
    "SELECT id, state, step FROM deployments WHERE environment_id = $1 AND state IN "
    "('pending_approval', 'progressing', 'paused', 'watching') FOR UPDATE"};
const Query kDeploySupersede{
    "deploy_supersede",
    "UPDATE deployments SET state = 'superseded', finished_at = $2, next_at = NULL, requested = "
    "NULL, message = $3 WHERE id = $1"};
const Query kDeployEndWatch{
    "deploy_end_watch",
    "UPDATE deployments SET state = 'succeeded', finished_at = $2, next_at = NULL, message = $3 "
    "WHERE id = $1"};
const Query kDeploySetSuperseded{"deploy_set_superseded",
                                 "UPDATE deployments SET superseded_by = $2 WHERE id = $1"};
const Query kDeployInsert{
    "deploy_insert",
    "INSERT INTO deployments (environment_id, repo_id, state, model, version, image, servers, "
    "ref, strategy, created_by, pipeline_id, job_id, rollback_of, next_at, created_at, "
    "job_attempt) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9::jsonb, $10, $11, $12, $13, "
    "$14, $15, $16) RETURNING id"};
const Query kEventInsert{
    "deploy_event_insert",
    "INSERT INTO deployment_events (deployment_id, at, step, kind, message, data) VALUES "
    "($1, $2, $3, $4, $5, $6::jsonb)"};
const Query kEvents{"deploy_events",
                    "SELECT id, deployment_id, " ASSAY_EPOCH_US("at") ", step, kind, message, "
                    "data::text FROM deployment_events WHERE deployment_id = $1 AND id > $2 "
                    "ORDER BY id LIMIT $3"};
const Query kApprove{"deploy_approve",
                     "INSERT INTO deployment_approvals (deployment_id, approver, at) VALUES "
                     "($1, $2, $3) ON CONFLICT DO NOTHING"};
const Query kApprovalsNeeded{
    "deploy_approvals_needed",
    "SELECT e.required_approvals, (SELECT count(*) FROM deployment_approvals p WHERE "
    "p.deployment_id = d.id) FROM deployments d JOIN environments e ON e.id = d.environment_id "
    "WHERE d.id = $1"};
const Query kStart{"deploy_start",
                   "UPDATE deployments SET state = 'progressing', next_at = $2 WHERE id = $1"};
const Query kRequest{"deploy_request",
                     "UPDATE deployments SET requested = $2::jsonb, next_at = $3 WHERE id = $1"};
const Query kClaim{
    "deploy_claim",
    "UPDATE deployments SET lease_owner = $1, lease_until = $3 WHERE id = (SELECT id FROM "
    "deployments WHERE (state IN ('progressing', 'watching') OR requested IS NOT NULL) AND "
    "next_at <= $2 AND (lease_until IS NULL OR lease_until < $2) ORDER BY next_at LIMIT 1 FOR "
    "UPDATE SKIP LOCKED) RETURNING id"};
const Query kCommit{
    "deploy_commit",
    "UPDATE deployments SET state = $3, step = $4, weight = $5, step_started_at = $6, runs = "
    "$7::jsonb, watch_until = $8, message = $9, next_at = $10, previous = coalesce($11::jsonb, "
    "previous), started_at = CASE WHEN $12 THEN coalesce(started_at, $14) ELSE started_at END, "
    "finished_at = CASE WHEN $13 THEN $14 ELSE finished_at END, requested = CASE WHEN $15 THEN "
    "NULL ELSE requested END, lease_owner = NULL, lease_until = NULL WHERE id = $1 AND "
    "lease_owner = $2 AND state = $16 RETURNING environment_id, model, version, alias_moved, "
    "alias_previous"};
const Query kRelease{"deploy_release",
                     "UPDATE deployments SET lease_owner = NULL, lease_until = NULL, next_at = $3 "
                     "WHERE id = $1 AND lease_owner = $2"};
const Query kSetLive{"deploy_env_set_live",
                     "UPDATE environments SET live = $2::jsonb, updated_at = $3 WHERE id = $1 "
                     "RETURNING alias, name"};
const Query kEnvAlias{"deploy_env_alias", "SELECT alias, name FROM environments WHERE id = $1"};
const Query kAliasMoved{
    "deploy_alias_moved",
    "UPDATE deployments SET alias_moved = $2, alias_previous = $3 WHERE id = $1"};
const Query kAuditSystem{
    "deploy_audit_system",
    "INSERT INTO audit_log (at, actor, actor_kind, action, status, detail) VALUES ($1, "
    "'deployment-controller', 'system', $2, 200, $3)"};
const Query kActiveCounts{
    "deploy_active_counts",
    "SELECT e.name, d.state, count(*) FROM deployments d JOIN environments e ON e.id = "
    "d.environment_id WHERE d.state IN ('pending_approval', 'progressing', 'paused', 'watching') "
    "GROUP BY 1, 2"};

const Query kDeployStepOf{
    "deploy_step_of",
    "SELECT (j.spec->'steps'->($2::int))->'deploy', j.pipeline_id, p.repo_id, p.ref, p.trusted "
    "FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id WHERE j.id = $1"};
const Query kEvalFeature{
    "deploy_eval_feature",
    "SELECT CASE WHEN $3 = 'prompt_length' THEN x.input_tokens ELSE x.output_tokens END FROM "
    "eval_examples x JOIN eval_runs r ON r.id = x.run_id JOIN model_versions v ON v.id = "
    "r.model_version_id JOIN models m ON m.id = v.model_id WHERE m.name = $1 AND v.version = $2 "
    "AND x.error = '' ORDER BY x.run_id DESC, x.idx LIMIT 10000"};

std::optional<absl::Time> OptTime(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return ToTime(f);
}

std::optional<std::string> OptText(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<std::string>();
}

Environment EnvOf(const pqxx::row& r) {
  Environment e;
  e.id = r[0].as<int64_t>();
  e.repo_id = r[1].as<int64_t>();
  e.repo = r[2].as<std::string>();
  e.name = r[3].as<std::string>();
  e.branches = FromPgTextArray(r[4]);
  e.required_approvals = r[5].as<int>();
  e.target_json = r[6].as<std::string>();
  e.analysis_json = r[7].as<std::string>();
  e.alias = r[8].as<std::string>();
  e.live_json = OptText(r[9]);
  e.created_at = ToTime(r[10]);
  e.updated_at = ToTime(r[11]);
  if (!r[12].is_null()) e.active_deployment = r[12].as<int64_t>();
  return e;
}

Deployment DeployOf(const pqxx::row& r) {
  Deployment d;
  d.id = r[0].as<int64_t>();
  d.environment_id = r[1].as<int64_t>();
  d.repo_id = r[2].as<int64_t>();
  d.environment = r[3].as<std::string>();
  d.repo = r[4].as<std::string>();
  d.state = r[5].as<std::string>();
  d.model = r[6].is_null() ? "" : r[6].as<std::string>();
  if (!r[7].is_null()) d.version = r[7].as<int>();
  d.image = r[8].is_null() ? "" : r[8].as<std::string>();
  d.servers_json = r[9].as<std::string>();
  d.ref = r[10].as<std::string>();
  d.strategy_json = r[11].as<std::string>();
  d.previous_json = OptText(r[12]);
  if (!r[13].is_null()) d.alias_previous = r[13].as<int>();
  d.alias_moved = r[14].as<bool>();
  d.step = r[15].as<int>();
  d.weight = r[16].as<int>();
  d.step_started_at = OptTime(r[17]);
  d.runs_json = r[18].as<std::string>();
  d.watch_until = OptTime(r[19]);
  d.message = r[20].as<std::string>();
  d.created_by = r[21].as<std::string>();
  if (!r[22].is_null()) d.pipeline_id = r[22].as<int64_t>();
  if (!r[23].is_null()) d.job_id = r[23].as<int64_t>();
  if (!r[24].is_null()) d.superseded_by = r[24].as<int64_t>();
  if (!r[25].is_null()) d.rollback_of = r[25].as<int64_t>();
  d.next_at = OptTime(r[26]);
  d.requested_json = OptText(r[27]);
  d.created_at = ToTime(r[28]);
  d.started_at = OptTime(r[29]);
  d.finished_at = OptTime(r[30]);
  d.approvers = FromPgTextArray(r[31]);
  d.approvals = static_cast<int>(d.approvers.size());
  return d;
}

absl::Status NoDeployment(int64_t id) {
  return absl::NotFoundError(absl::StrCat("deployment ", id, " not found"));
}

absl::StatusOr<Deployment> GetIn(pqxx::work& tx, Connection& c, int64_t id) {
  auto res = Exec(tx, c, kDeployGet, {id});
  if (res.empty()) return NoDeployment(id);
  return DeployOf(res[0]);
}

void Event(pqxx::work& tx, Connection& c, int64_t id, absl::Time at, int step,
           const std::string& kind, const std::string& message,
           const std::optional<std::string>& data = std::nullopt) {
  std::string m = message.size() > 4000 ? message.substr(0, 4000) : message;
  Exec(tx, c, kEventInsert, {id, at, step, kind, m, Param::Opt(data)});
}

}  // namespace

bool DeploymentActive(std::string_view state) {
  return state == "pending_approval" || state == "progressing" || state == "paused" ||
         state == "watching";
}

absl::StatusOr<Environment> DeploymentStore::PutEnvironment(const EnvironmentPut& e) {
  Environment out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    if (Exec(tx, c, kRepoExists, {e.repo_id}).empty()) {
      return absl::NotFoundError(absl::StrCat("repository ", e.repo_id, " not found"));
    }
    Exec(tx, c, kEnvUpsert,
         {e.repo_id, e.name, ToPgTextArray(e.branches), e.required_approvals, e.target_json,
          e.analysis_json, e.alias.empty() ? e.name : e.alias, e.now});
    auto res = Exec(tx, c, kEnvGet, {e.repo_id, e.name});
    out = EnvOf(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<Environment> DeploymentStore::GetEnvironment(int64_t repo_id,
                                                            const std::string& name) {
  Environment out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto res = Exec(tx, c, kEnvGet, {repo_id, name});
    if (res.empty()) {
      return absl::NotFoundError(
          absl::StrCat("environment '", name, "' of repository ", repo_id, " not found"));
    }
    out = EnvOf(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<Environment>> DeploymentStore::ListEnvironments(int64_t repo_id) {
  std::vector<Environment> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    out.clear();
    if (Exec(tx, c, kRepoExists, {repo_id}).empty()) {
      return absl::NotFoundError(absl::StrCat("repository ", repo_id, " not found"));
    }
    for (const auto& r : Exec(tx, c, kEnvList, {repo_id})) out.push_back(EnvOf(r));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status DeploymentStore::DeleteEnvironment(int64_t repo_id, const std::string& name) {
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto id = Exec(tx, c, kEnvGetLock, {repo_id, name});
    if (id.empty()) {
      return absl::NotFoundError(
          absl::StrCat("environment '", name, "' of repository ", repo_id, " not found"));
    }
    auto active = Exec(tx, c, kDeployActiveOf, {id[0][0].as<int64_t>()});
    if (!active.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("environment '", name, "' has deployment ", active[0][0].as<int64_t>(), " (",
                       active[0][1].as<std::string>(), "); abort it first"));
    }
    Exec(tx, c, kEnvDelete, {id[0][0].as<int64_t>()});
    return absl::OkStatus();
  });
}

absl::StatusOr<Deployment> DeploymentStore::Create(const NewDeployment& d) {
  Deployment out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    // The environment's row is the lock that serializes its deployments.
    auto env_id = Exec(tx, c, kEnvGetLock, {d.repo_id, d.environment});
    if (env_id.empty()) {
      return absl::NotFoundError(absl::StrCat("environment '", d.environment, "' of repository ",
                                              d.repo_id, " not found"));
    }
    const int64_t eid = env_id[0][0].as<int64_t>();
    auto env = EnvOf(Exec(tx, c, kEnvGet, {d.repo_id, d.environment})[0]);
    if (!env.branches.empty() && !MatchesFilters(env.branches, d.ref)) {
      return absl::PermissionDeniedError(
          absl::StrCat("environment '", d.environment, "' takes deployments from branches ",
                       absl::StrJoin(env.branches, ", "), " only; this one is from ",
                       d.ref.empty() ? "no branch" : absl::StrCat("'", d.ref, "'")));
    }
    std::optional<int64_t> superseded;
    auto active = Exec(tx, c, kDeployActiveOf, {eid});
    if (!active.empty()) {
      const int64_t other = active[0][0].as<int64_t>();
      const std::string state = active[0][1].as<std::string>();
      if (state == "watching") {
        // A promoted deployment still under watch: the new one ends its watch.
        Exec(tx, c, kDeployEndWatch,
             {other, d.now, absl::StrCat("watch ended early by a newer deployment")});
        Event(tx, c, other, d.now, active[0][2].as<int>(), "watch_ended",
              "the watch ended early: a newer deployment began");
      } else if (d.supersede && (state == "paused" || state == "pending_approval")) {
        Exec(tx, c, kDeploySupersede, {other, d.now, "superseded by a newer deployment"});
        superseded = other;
      } else {
        return absl::FailedPreconditionError(absl::StrCat(
            "environment '", d.environment, "' has deployment ", other, " (", state,
            state == "paused" || state == "pending_approval"
                ? "); ask for \"supersede\": true to end it, or abort it"
                : "); pause or abort it first: one deployment per environment at a time"));
      }
    }
    const bool waits = env.required_approvals > 0;
    auto id = Exec(tx, c, kDeployInsert,
                   {eid, d.repo_id, waits ? "pending_approval" : "progressing",
                    d.model.empty() ? Param::Null() : Param(d.model), Param::Opt(d.version),
                    d.image.empty() ? Param::Null() : Param(d.image), d.servers_json, d.ref,
                    d.strategy_json, d.created_by, Param::Opt(d.pipeline_id), Param::Opt(d.job_id),
                    Param::Opt(d.rollback_of), waits ? Param::Null() : Param(d.now), d.now,
                    d.job_id ? Param(d.job_attempt) : Param::Null()})[0][0]
                  .as<int64_t>();
    if (superseded) {
      Exec(tx, c, kDeploySetSuperseded, {*superseded, id});
      Event(tx, c, *superseded, d.now, 0, "superseded",
            absl::StrCat("superseded by deployment ", id, " (asked by ", d.created_by, ")"));
    }
    Event(tx, c, id, d.now, 0, "created",
          absl::StrCat("created by ", d.created_by,
                       waits ? absl::StrCat("; waits for ", env.required_approvals, " approval(s)")
                             : std::string()));
    auto got = GetIn(tx, c, id);
    if (!got.ok()) return got.status();
    out = *std::move(got);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<Deployment> DeploymentStore::Get(int64_t id) {
  Deployment out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto got = GetIn(tx, c, id);
    if (!got.ok()) return got.status();
    out = *std::move(got);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<Deployment>> DeploymentStore::ForJob(int64_t job_id, int attempt) {
  std::optional<Deployment> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto res = Exec(tx, c, kDeployForJob, {job_id, attempt});
    out.reset();
    if (!res.empty()) out = DeployOf(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<Deployment>> DeploymentStore::List(const DeploymentFilter& f) {
  std::vector<Deployment> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    out.clear();
    for (const auto& r : Exec(tx, c, kDeployList,
                              {Param::Opt(f.repo_id), f.environment, Param::Opt(f.before),
                               ToPgTextArray(f.states), f.limit})) {
      out.push_back(DeployOf(r));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<DeploymentEvent>> DeploymentStore::Events(int64_t id, int64_t after,
                                                                     int limit) {
  std::vector<DeploymentEvent> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    out.clear();
    if (Exec(tx, c, kDeployGet, {id}).empty()) return NoDeployment(id);
    for (const auto& r : Exec(tx, c, kEvents, {id, after, limit})) {
      DeploymentEvent e;
      e.id = r[0].as<int64_t>();
      e.deployment_id = r[1].as<int64_t>();
      e.at = ToTime(r[2]);
      e.step = r[3].as<int>();
      e.kind = r[4].as<std::string>();
      e.message = r[5].as<std::string>();
      e.data_json = OptText(r[6]);
      out.push_back(std::move(e));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<Deployment> DeploymentStore::Approve(int64_t id, const std::string& approver,
                                                    absl::Time now) {
  Deployment out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto row = Exec(tx, c, kDeployGetLock, {id});
    if (row.empty()) return NoDeployment(id);
    const std::string state = row[0][0].as<std::string>();
    if (state != "pending_approval") {
      return absl::FailedPreconditionError(
          absl::StrCat("deployment ", id, " is ", state, "; it does not wait for approval"));
    }
    if (row[0][1].as<std::string>() == approver) {
      return absl::PermissionDeniedError(absl::StrCat("deployment ", id, " was asked for by ",
                                                      approver, ", who cannot approve it too"));
    }
    if (Exec(tx, c, kApprove, {id, approver, now}).affected_rows() > 0) {
      Event(tx, c, id, now, 0, "approved", absl::StrCat("approved by ", approver));
    }
    auto need = Exec(tx, c, kApprovalsNeeded, {id});
    if (need[0][1].as<int64_t>() >= need[0][0].as<int64_t>()) {
      Exec(tx, c, kStart, {id, now});
      Event(tx, c, id, now, 0, "approvals_met",
            absl::StrCat(need[0][1].as<int64_t>(), " of ", need[0][0].as<int64_t>(),
                         " approval(s); it starts"));
    }
    auto got = GetIn(tx, c, id);
    if (!got.ok()) return got.status();
    out = *std::move(got);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<Deployment> DeploymentStore::Request(int64_t id, const std::string& action,
                                                    bool full, const std::string& by,
                                                    const std::string& reason, absl::Time now) {
  Deployment out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto row = Exec(tx, c, kDeployGetLock, {id});
    if (row.empty()) return NoDeployment(id);
    const std::string state = row[0][0].as<std::string>();
    auto refuse = [&] {
      return absl::FailedPreconditionError(
          absl::StrCat("deployment ", id, " is ", state, "; it cannot be asked to ", action));
    };
    if (action == "pause") {
      if (state != "progressing") return refuse();
    } else if (action == "resume") {
      if (state != "paused") return refuse();
    } else if (action == "promote") {
      if (state != "progressing" && state != "paused") return refuse();
    } else if (action == "abort") {
      if (!DeploymentActive(state)) return refuse();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown action '", action, "' (expected pause, resume, promote, abort)"));
    }
    json::object r{{"action", action}, {"by", by}, {"reason", reason}, {"full", full}};
    Exec(tx, c, kRequest, {id, json::serialize(r), now});
    Event(tx, c, id, now, 0, "requested",
          absl::StrCat(action, full ? " (full)" : "", " asked by ", by,
                       reason.empty() ? "" : absl::StrCat(": ", reason)));
    auto got = GetIn(tx, c, id);
    if (!got.ok()) return got.status();
    out = *std::move(got);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<Deployment>> DeploymentStore::Claim(const std::string& owner,
                                                                 absl::Time now,
                                                                 absl::Duration lease) {
  std::optional<Deployment> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    out.reset();
    auto res = Exec(tx, c, kClaim, {owner, now, now + lease});
    if (res.empty()) return absl::OkStatus();
    auto got = GetIn(tx, c, res[0][0].as<int64_t>());
    if (!got.ok()) return got.status();
    out = *std::move(got);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<bool> DeploymentStore::Commit(int64_t id, const std::string& owner,
                                             const std::string& from_state, const TickUpdate& u,
                                             absl::Time now) {
  bool written = false;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    written = false;
    auto res = Exec(
        tx, c, kCommit,
        {id, owner, u.state, u.step, u.weight, Param::Opt(u.step_started_at), u.runs_json,
         Param::Opt(u.watch_until), u.message.substr(0, 4000), Param::Opt(u.next_at),
         Param::Opt(u.previous_json), u.started, u.finished, now, u.clear_request, from_state});
    if (res.empty()) return absl::OkStatus();  // the lease was lost: nothing is written
    const int64_t env_id = res[0][0].as<int64_t>();
    const std::string model = res[0][1].is_null() ? "" : res[0][1].as<std::string>();
    const int version = res[0][2].is_null() ? 0 : res[0][2].as<int>();
    const bool alias_moved = res[0][3].as<bool>();
    std::optional<int> alias_previous;
    if (!res[0][4].is_null()) alias_previous = res[0][4].as<int>();
    for (const DeploymentEvent& e : u.events) {
      Event(tx, c, id, e.at, e.step, e.kind, e.message, e.data_json);
    }
    auto env = Exec(tx, c, kEnvAlias, {env_id});
    const std::string alias = env[0][0].as<std::string>();
    const std::string env_name = env[0][1].as<std::string>();
    if (u.live_json) Exec(tx, c, kSetLive, {env_id, *u.live_json, now});
    AliasChange who;
    who.principal = absl::StrCat("deployment ", id);
    who.now = now;
    if (!model.empty() && u.alias == TickUpdate::Alias::kMove && !alias_moved) {
      who.reason = absl::StrCat("deployment ", id, " promoted version ", version, " to ", env_name);
      auto before = AliasVersionIn(tx, c, model, alias);
      if (!before.ok()) return before.status();
      registry::VersionRef to;
      to.version = version;
      auto moved = SetAliasIn(tx, c, model, alias, to, who);
      if (!moved.ok()) return moved.status();
      Exec(tx, c, kAliasMoved, {id, true, Param::Opt(*before)});
      Event(tx, c, id, now, u.step, "alias",
            absl::StrCat("alias '", alias, "' of ", model, " moved to version ", version,
                         *before ? absl::StrCat(" from ", **before) : std::string()));
    } else if (!model.empty() && u.alias == TickUpdate::Alias::kRestore && alias_moved) {
      who.reason = absl::StrCat("deployment ", id, " rolled back: ", u.message);
      if (who.reason.size() > 1000) who.reason.resize(1000);
      auto now_at = AliasVersionIn(tx, c, model, alias);
      if (!now_at.ok()) return now_at.status();
      if (*now_at != version) {
        Event(tx, c, id, now, u.step, "alias",
              absl::StrCat("alias '", alias, "' of ", model,
                           " was moved by someone else since; left where it is"));
      } else if (alias_previous) {
        registry::VersionRef to;
        to.version = *alias_previous;
        auto moved = SetAliasIn(tx, c, model, alias, to, who);
        if (!moved.ok()) return moved.status();
        Event(tx, c, id, now, u.step, "alias",
              absl::StrCat("alias '", alias, "' of ", model, " moved back to version ",
                           *alias_previous));
      } else {
        auto gone = DeleteAliasIn(tx, c, model, alias, who);
        if (!gone.ok()) return gone.status();
        Event(tx, c, id, now, u.step, "alias",
              absl::StrCat("alias '", alias, "' of ", model,
                           " removed: it was not set before this deployment"));
      }
      Exec(tx, c, kAliasMoved, {id, false, Param::Opt(alias_previous)});
    }
    if (!u.audit_action.empty()) {
      Exec(tx, c, kAuditSystem, {now, u.audit_action, u.audit_detail.substr(0, 4000)});
    }
    written = true;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return written;
}

absl::Status DeploymentStore::Release(int64_t id, const std::string& owner, absl::Time next_at) {
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    Exec(tx, c, kRelease, {id, owner, next_at});
    return absl::OkStatus();
  });
}

absl::StatusOr<DeploymentStore::DeployStep> DeploymentStore::DeployStepOf(int64_t job_id,
                                                                          int step_index) {
  DeployStep out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto r = Exec(tx, c, kDeployStepOf, {job_id, step_index});
    if (r.empty() || r[0][0].is_null()) {
      return absl::InvalidArgumentError(
          absl::StrCat("step ", step_index, " of job ", job_id, " is not a deploy step"));
    }
    out.spec_json = r[0][0].as<std::string>();
    out.pipeline_id = r[0][1].as<int64_t>();
    out.repo_id = r[0][2].as<int64_t>();
    out.ref = r[0][3].as<std::string>();
    out.trusted = r[0][4].as<bool>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<double>> DeploymentStore::EvalFeature(const std::string& model,
                                                                 int version,
                                                                 const std::string& feature) {
  if (feature != "prompt_length" && feature != "output_length") {
    return absl::InvalidArgumentError(absl::StrCat(
        "eval examples give prompt_length and output_length only, not '", feature, "'"));
  }
  std::vector<double> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    out.clear();
    for (const auto& r : Exec(tx, c, kEvalFeature, {model, version, feature})) {
      out.push_back(static_cast<double>(r[0].as<int64_t>()));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<std::pair<std::pair<std::string, std::string>, int64_t>>>
DeploymentStore::ActiveCounts() {
  std::vector<std::pair<std::pair<std::string, std::string>, int64_t>> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    out.clear();
    for (const auto& r : Exec(tx, c, kActiveCounts)) {
      out.push_back({{r[0].as<std::string>(), r[1].as<std::string>()}, r[2].as<int64_t>()});
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace assay::store
