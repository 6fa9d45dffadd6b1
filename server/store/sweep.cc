#include "server/store/sweep.h"

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/base/number_text.h"
#include "common/pipeline/sweep.h"
#include "server/store/pipelines.h"
#include "server/store/train.h"

namespace assay::store {
namespace {

namespace json = boost::json;

const Query kSweepOfLive{"sweep_of_live",
                         "SELECT pipeline_id, (spec->'sweep')::text, attempt FROM jobs "
                         "WHERE id = $1 AND attempt_token = $2 AND state IN ('assigned', "
                         "'running') AND spec ? 'sweep'"};
const Query kSweepNewest{"sweep_newest_point",
                         "SELECT step, value FROM train_metrics WHERE job_id = $1 AND attempt = $2 "
                         "AND name = $3 ORDER BY step DESC LIMIT 1"};
// Each other trial's value at `s`: its current attempt's point at the greatest step <= s,
// among trials whose current attempt reached s.
const Query kSweepOthersAt{
    "sweep_others_at",
    "SELECT DISTINCT ON (t.job_id) t.value FROM jobs j JOIN train_metrics t ON t.job_id = j.id "
    "AND t.attempt = j.attempt WHERE j.pipeline_id = $1 AND j.id <> $2 AND j.spec ? 'sweep' AND "
    "j.spec->'sweep'->>'name' = $3 AND t.name = $4 AND t.step <= $5 AND EXISTS (SELECT 1 FROM "
    "train_metrics u WHERE u.job_id = j.id AND u.attempt = j.attempt AND u.name = $4 AND "
    "u.step >= $5) ORDER BY t.job_id, t.step DESC"};
const Query kSweepStopJob{
    "sweep_stop_job",
    "UPDATE jobs SET state = 'succeeded', finished_at = $3, message = $4, lease_expires_at = NULL "
    "WHERE id = $1 AND attempt_token = $2 AND state IN ('assigned', 'running') "
    "RETURNING agent_id, attempt"};
const Query kSweepStopAttempt{
    "sweep_stop_attempt",
    "UPDATE job_attempts SET state = 'succeeded', finished_at = $3, message = $4 "
    "WHERE job_id = $1 AND attempt = $2 AND state IN ('assigned', 'running')"};
const Query kSweepStopInsert{"sweep_stop_insert",
                             "INSERT INTO sweep_stops (job_id, step, value, median, others, at) "
                             "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"};
const Query kSweepsEnded{
    "sweeps_ended",
    "SELECT s.name, s.metric, s.maximize, s.canceled FROM (SELECT j.spec->'sweep'->>'name' AS "
    "name, min(j.spec->'sweep'->>'metric') AS metric, bool_or(j.spec->'sweep'->>'goal' = "
    "'maximize') AS maximize, bool_or(j.state = 'canceled') AS canceled, bool_and(j.state NOT "
    "IN ('pending', 'queued', 'assigned', 'running')) AS ended FROM jobs j WHERE j.pipeline_id = "
    "$1 AND j.spec ? 'sweep' GROUP BY 1) s WHERE s.ended AND NOT EXISTS (SELECT 1 FROM "
    "sweep_outcomes o WHERE o.pipeline_id = $1 AND o.name = s.name)"};
const Query kSweepBest{
    "sweep_best",
    "SELECT j.id, (j.spec->'sweep'->>'trial')::int AS trial, m.value, j.attempt_token FROM jobs j "
    "JOIN LATERAL (SELECT t.value FROM train_metrics t WHERE t.job_id = j.id AND t.name = $3 "
    "ORDER BY t.step DESC, t.attempt DESC LIMIT 1) m ON true WHERE j.pipeline_id = $1 AND "
    "j.spec ? 'sweep' AND j.spec->'sweep'->>'name' = $2 AND j.state = 'succeeded' AND NOT EXISTS "
    "(SELECT 1 FROM sweep_stops s WHERE s.job_id = j.id) "
    "ORDER BY CASE WHEN $4 THEN -m.value ELSE m.value END, trial LIMIT 1"};
const Query kSweepBestVersion{"sweep_best_version",
                              "SELECT model_version_id FROM train_runs WHERE job_id = $1 AND "
                              "model_version_id IS NOT NULL ORDER BY attempt DESC LIMIT 1"};
const Query kSweepFailBest{
    "sweep_fail_best",
    "WITH j AS (UPDATE jobs SET state = 'failed', exit_code = coalesce(exit_code, 1), "
    "message = $2 WHERE id = $1 RETURNING id, attempt) "
    "UPDATE job_attempts a SET state = 'failed', exit_code = coalesce(a.exit_code, 1), "
    "message = $2 FROM j WHERE a.job_id = j.id AND a.attempt = j.attempt"};
const Query kSweepOutcomeInsert{
    "sweep_outcome_insert",
    "INSERT INTO sweep_outcomes (pipeline_id, name, best_job_id, value, model_version_id, "
    "message, at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"};
const Query kSweepPipelineExists{"sweep_pipeline_exists", "SELECT 1 FROM pipelines WHERE id = $1"};
const Query kSweepTrialsOf{
    "sweep_trials_of",
    "SELECT j.id, j.name, j.state, coalesce(j.message, ''), (j.spec->'sweep')::text, m.step, "
    "m.value, EXISTS (SELECT 1 FROM sweep_stops s WHERE s.job_id = j.id) FROM jobs j "
    "LEFT JOIN LATERAL (SELECT t.step, t.value FROM train_metrics t WHERE t.job_id = j.id AND "
    "t.name = j.spec->'sweep'->>'metric' ORDER BY t.step DESC, t.attempt DESC LIMIT 1) m ON true "
    "WHERE j.pipeline_id = $1 AND j.spec ? 'sweep' ORDER BY j.id"};
const Query kSweepOutcomesOf{
    "sweep_outcomes_of",
    "SELECT o.name, o.best_job_id, o.value, v.version, coalesce(mo.name, ''), o.message "
    "FROM sweep_outcomes o LEFT JOIN model_versions v ON v.id = o.model_version_id "
    "LEFT JOIN models mo ON mo.id = v.model_id WHERE o.pipeline_id = $1"};

std::string Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

int64_t Int(const json::object& o, std::string_view key, int64_t fallback) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_int64() ? v->as_int64() : fallback;
}

}  // namespace

bool ConcludeSweeps(pqxx::work& tx, Connection& c, int64_t pipeline_id, absl::Time now) {
  bool failed_any = false;
  for (const auto& r : Exec(tx, c, kSweepsEnded, {pipeline_id})) {
    const std::string name = r[0].as<std::string>();
    const std::string metric = r[1].as<std::string>();
    const bool maximize = r[2].as<bool>();
    if (r[3].as<bool>()) {
      Exec(tx, c, kSweepOutcomeInsert,
           {pipeline_id, name, Param::Null(), Param::Null(), Param::Null(),
            "a trial was canceled: no best trial is chosen and nothing is registered", now});
      continue;
    }
    auto best = Exec(tx, c, kSweepBest, {pipeline_id, name, metric, maximize});
    if (best.empty()) {
      Exec(tx, c, kSweepOutcomeInsert,
           {pipeline_id, name, Param::Null(), Param::Null(), Param::Null(),
            absl::StrCat("no trial succeeded with a value of '", metric,
                         "' (stopped trials do not count)"),
            now});
      continue;
    }
    const int64_t job_id = best[0][0].as<int64_t>();
    const int trial = best[0][1].as<int>();
    const double value = best[0][2].as<double>();
    std::string message;
    std::optional<int64_t> version;
    if (absl::Status reg = RegisterTrainedModels(tx, c, job_id, now, /*sweep_best=*/true);
        !reg.ok()) {
      message = absl::StrCat("sweep '", name, "': the best trial (", trial,
                             ") could not be registered: ", reg.message());
      Exec(tx, c, kSweepFailBest, {job_id, message});
      failed_any = true;
    } else if (auto v = Exec(tx, c, kSweepBestVersion, {job_id}); !v.empty()) {
      version = v[0][0].as<int64_t>();
    }
    Exec(tx, c, kSweepOutcomeInsert,
         {pipeline_id, name, job_id, ShortestDouble(value), Param::Opt(version), message, now});
  }
  return failed_any;
}

absl::StatusOr<std::string> JudgeTrial(Db& db, int64_t job_id, const std::string& attempt_token,
                                       absl::Time now) {
  std::string out;
  absl::Status s = InTransaction(db, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    auto live = Exec(tx, c, kSweepOfLive, {job_id, attempt_token});
    if (live.empty() || live[0][1].is_null()) return absl::OkStatus();
    const json::value sweep_value = json::parse(live[0][1].as<std::string>());
    if (!sweep_value.is_object()) return absl::OkStatus();
    const json::object& sweep = sweep_value.as_object();
    const json::value* stop = sweep.if_contains("early_stop");
    if (stop == nullptr || !stop->is_object()) return absl::OkStatus();
    const int64_t pipeline_id = live[0][0].as<int64_t>();
    LockPipeline(tx, c, pipeline_id);
    live = Exec(tx, c, kSweepOfLive, {job_id, attempt_token});  // again, under the lock
    if (live.empty()) return absl::OkStatus();
    const int attempt = live[0][2].as<int>();
    const std::string name = Str(sweep, "name"), metric = Str(sweep, "metric");
    const bool maximize = Str(sweep, "goal") == "maximize";
    const int64_t min_trials = Int(stop->as_object(), "min_trials", 3);
    const int64_t warmup = Int(stop->as_object(), "warmup_steps", 0);
    auto newest = Exec(tx, c, kSweepNewest, {job_id, attempt, metric});
    if (newest.empty()) return absl::OkStatus();
    const int64_t step = newest[0][0].as<int64_t>();
    const double value = newest[0][1].as<double>();
    if (step < warmup) return absl::OkStatus();
    std::vector<double> others;
    for (const auto& r : Exec(tx, c, kSweepOthersAt, {pipeline_id, job_id, name, metric, step})) {
      others.push_back(r[0].as<double>());
    }
    if (others.empty() || static_cast<int64_t>(others.size()) < min_trials) {
      return absl::OkStatus();
    }
    const double median = Median(others);
    if (maximize ? !(value < median) : !(value > median)) return absl::OkStatus();
    const std::string message = absl::StrCat(
        "stopped early: ", metric, " ", ShortestDouble(value), " at step ", step, " is ",
        maximize ? "below" : "above", " the median ", ShortestDouble(median), " of ", others.size(),
        " other trial", others.size() == 1 ? "" : "s", " at that step");
    auto stopped = Exec(tx, c, kSweepStopJob, {job_id, attempt_token, now, message});
    if (stopped.empty()) return absl::OkStatus();
    Exec(tx, c, kSweepStopAttempt, {job_id, stopped[0][1].as<int>(), now, message});
    Exec(tx, c, kSweepStopInsert,
         {job_id, step, ShortestDouble(value), ShortestDouble(median),
          static_cast<int64_t>(others.size()), now});
    NotifyCancel(tx, c, {CanceledAttempt{job_id, stopped[0][0].as<int64_t>(), attempt_token}});
    AdvancePipeline(tx, c, pipeline_id, now);
    out = message;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<SweepView>> SweepsOf(Db& db, int64_t pipeline_id) {
  std::vector<SweepView> out;
  absl::Status s = InTransaction(db, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    if (Exec(tx, c, kSweepPipelineExists, {pipeline_id}).empty()) {
      return absl::NotFoundError(absl::StrCat("pipeline ", pipeline_id, " does not exist"));
    }
    for (const auto& r : Exec(tx, c, kSweepTrialsOf, {pipeline_id})) {
      const json::value sv = json::parse(r[4].as<std::string>());
      if (!sv.is_object()) continue;
      const json::object& sweep = sv.as_object();
      const std::string name = Str(sweep, "name");
      auto it =
          std::find_if(out.begin(), out.end(), [&](const SweepView& v) { return v.name == name; });
      if (it == out.end()) {
        SweepView v;
        v.name = name;
        v.method = Str(sweep, "method");
        v.metric = Str(sweep, "metric");
        v.goal = Str(sweep, "goal");
        v.trials = static_cast<int>(Int(sweep, "trials", 0));
        out.push_back(std::move(v));
        it = out.end() - 1;
      }
      SweepTrialView t;
      t.job_id = r[0].as<int64_t>();
      t.name = r[1].as<std::string>();
      t.state = r[2].as<std::string>();
      t.message = r[3].as<std::string>();
      t.trial = static_cast<int>(Int(sweep, "trial", 0));
      if (const json::value* p = sweep.if_contains("params")) t.params_json = json::serialize(*p);
      if (!r[5].is_null()) t.step = r[5].as<int64_t>();
      if (!r[6].is_null()) t.value = r[6].as<double>();
      t.stopped_early = r[7].as<bool>();
      it->trial_views.push_back(std::move(t));
    }
    for (const auto& r : Exec(tx, c, kSweepOutcomesOf, {pipeline_id})) {
      const std::string name = r[0].as<std::string>();
      for (SweepView& v : out) {
        if (v.name != name) continue;
        v.concluded = true;
        if (!r[1].is_null()) v.best_job_id = r[1].as<int64_t>();
        if (!r[2].is_null()) v.best_value = r[2].as<double>();
        if (!r[3].is_null()) v.model_version = r[3].as<int>();
        v.model = r[4].as<std::string>();
        v.message = r[5].as<std::string>();
        for (SweepTrialView& t : v.trial_views) t.best = v.best_job_id == t.job_id;
      }
    }
    for (SweepView& v : out) {
      std::sort(v.trial_views.begin(), v.trial_views.end(),
                [](const SweepTrialView& a, const SweepTrialView& b) { return a.trial < b.trial; });
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace assay::store
