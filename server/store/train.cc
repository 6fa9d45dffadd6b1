#include "server/store/train.h"

#include <boost/json.hpp>
#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/base/number_text.h"
#include "common/evals/data/text.h"
#include "common/evals/train_spec.h"
#include "common/pipeline/expr.h"
#include "server/store/models.h"

namespace assay::store {
namespace {

const Query kTrainStepSpec{"train_step_spec",
                           "SELECT (spec->'steps'->($2::int))->'train' FROM jobs WHERE id = $1"};
const Query kTrainCountPoints{
    "train_count_points",
    "SELECT count(*) FROM train_metrics WHERE job_id = $1 AND step_index = $2 AND attempt = $3"};
const Query kTrainInsertPoints{
    "train_insert_points",
    "INSERT INTO train_metrics (job_id, step_index, name, step, attempt, value, at) "
    "SELECT $1, $2, x.n, x.s, $3, x.v, to_timestamp(x.t / 1000000.0) "
    "FROM unnest($4::text[], $5::bigint[], $6::float8[], $7::bigint[]) AS x(n, s, v, t) "
    "ON CONFLICT DO NOTHING"};
const Query kCheckpointInsert{
    "train_checkpoint_insert",
    "INSERT INTO train_checkpoints (job_id, step_index, step, attempt, files, bytes, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job_id, step_index, step) DO NOTHING "
    "RETURNING id"};
const Query kCheckpointInsertFiles{
    "train_checkpoint_insert_files",
    "INSERT INTO train_checkpoint_files (checkpoint_id, path, size, mode, sha256, chunks) "
    "SELECT $1, f.path, f.size, f.mode, f.sha256, "
    "CASE WHEN f.chunks = '' THEN '{}'::text[] ELSE string_to_array(f.chunks, ',') END "
    "FROM unnest($2::text[], $3::bigint[], $4::int[], $5::text[], $6::text[]) "
    "AS f(path, size, mode, sha256, chunks)"};
const Query kCheckpointInsertRefs{"train_checkpoint_insert_refs",
                                  "INSERT INTO train_checkpoint_chunk_refs (checkpoint_id, sha256) "
                                  "SELECT DISTINCT $1::bigint, c FROM unnest($2::text[]) AS c"};
const Query kCheckpointPrune{
    "train_checkpoint_prune",
    "DELETE FROM train_checkpoints WHERE job_id = $1 AND step_index = $2 AND id NOT IN "
    "(SELECT id FROM train_checkpoints WHERE job_id = $1 AND step_index = $2 "
    "ORDER BY step DESC LIMIT $3)"};
const Query kCheckpointNewest{
    "train_checkpoint_newest",
    "SELECT id, step, attempt FROM train_checkpoints WHERE job_id = $1 AND step_index = $2 "
    "ORDER BY step DESC, id DESC LIMIT 1"};
const Query kCheckpointRecordRead{
    "train_checkpoint_record_read",
    "INSERT INTO train_checkpoint_reads (job_id, checkpoint_id) VALUES ($1, $2) "
    "ON CONFLICT DO NOTHING"};
const Query kCheckpointFiles{"train_checkpoint_files",
                             "SELECT path, size, mode, sha256, chunks FROM train_checkpoint_files "
                             "WHERE checkpoint_id = $1 ORDER BY path COLLATE \"C\""};
const Query kCheckpointChunksReadBy{
    "train_checkpoint_chunks_read_by",
    "SELECT DISTINCT r.sha256 FROM train_checkpoint_reads cr "
    "JOIN train_checkpoint_chunk_refs r ON r.checkpoint_id = cr.checkpoint_id "
    "WHERE cr.job_id = $1 AND r.sha256 = ANY($2::text[])"};
const Query kTrainRunUpsert{
    "train_run_upsert",
    "INSERT INTO train_runs (job_id, attempt, step_index, datasets, resumed_from, created_at) "
    "VALUES ($1, $2, $3, $4::jsonb, $5, $6) ON CONFLICT (job_id, attempt, step_index) "
    "DO UPDATE SET datasets = excluded.datasets, resumed_from = excluded.resumed_from"};
const Query kJobTrainSpec{"train_job_spec",
                          "SELECT j.attempt, (j.spec->'steps')::text, p.trusted, "
                          "j.spec->'sweep'->>'name', j.spec->'sweep'->>'trial' FROM jobs j "
                          "JOIN pipelines p ON p.id = j.pipeline_id WHERE j.id = $1"};
const Query kTrainFinalMetrics{
    "train_final_metrics",
    "SELECT DISTINCT ON (name) name, value FROM train_metrics WHERE job_id = $1 "
    "AND step_index = $2 ORDER BY name, step DESC, attempt DESC"};
const Query kTrainRunDatasets{
    "train_run_datasets",
    "SELECT datasets::text FROM train_runs WHERE job_id = $1 AND attempt = $2 AND step_index = $3"};
const Query kTrainRunVersion{
    "train_run_version",
    "INSERT INTO train_runs (job_id, attempt, step_index, model_version_id, created_at) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id, attempt, step_index) "
    "DO UPDATE SET model_version_id = excluded.model_version_id"};
const Query kTrainPointsOf{
    "train_points_of",
    "SELECT step_index, name, step, attempt, value, (extract(epoch from at) * 1000000)::bigint "
    "FROM train_metrics WHERE job_id = $1 ORDER BY step_index, name, step, attempt"};
const Query kTrainRunsOf{
    "train_runs_of",
    "SELECT t.step_index, t.attempt, t.resumed_from, v.version, t.datasets::text "
    "FROM train_runs t LEFT JOIN model_versions v ON v.id = t.model_version_id "
    "WHERE t.job_id = $1 ORDER BY t.step_index, t.attempt"};
const Query kPromoteStep{
    "train_promote_step",
    "SELECT (j.spec->'steps'->($2::int))->'promote', j.spec->'steps'->($2::int)->>'name', "
    "j.pipeline_id, p.ref, p.event, p.trusted FROM jobs j JOIN pipelines p ON p.id = "
    "j.pipeline_id WHERE j.id = $1"};
const Query kPipelineEvals{
    "train_pipeline_evals",
    "SELECT name, bool_and(coalesce(passed, false)) FROM eval_runs WHERE pipeline_id = $1 AND "
    "complete GROUP BY name"};
const Query kPipelineVersion{
    "train_pipeline_version",
    "SELECT v.version FROM model_versions v JOIN models m ON m.id = v.model_id "
    "WHERE m.name = $1 AND v.pipeline_id = $2 ORDER BY v.version DESC LIMIT 1"};
const Query kTrainLatestCheckpoints{
    "train_latest_checkpoints",
    "SELECT step_index, max(step) FROM train_checkpoints WHERE job_id = $1 GROUP BY step_index"};
const Query kTrainDeleteFinishedCheckpoints{
    "train_delete_finished_checkpoints",
    "DELETE FROM train_checkpoints WHERE id IN (SELECT t.id FROM train_checkpoints t "
    "JOIN jobs j ON j.id = t.job_id WHERE j.state NOT IN ('pending', 'queued', 'assigned', "
    "'running') AND coalesce(j.finished_at, t.created_at) < $1 LIMIT $2 FOR UPDATE OF t "
    "SKIP LOCKED)"};

bool GoodSeriesName(const std::string& name) {
  if (name.empty() || name.size() > kMaxTrainSeriesNameBytes) return false;
  if (!evals::IsValidUtf8(name)) return false;  // PostgreSQL text is UTF-8
  for (unsigned char ch : name) {
    if (ch < 0x20 || ch == 0x7f) return false;
  }
  return true;
}

// The train steps of a jobs.spec steps array: (index, spec).
std::vector<std::pair<int, evals::TrainSpec>> TrainSteps(const std::string& steps_json) {
  std::vector<std::pair<int, evals::TrainSpec>> out;
  boost::json::value steps = boost::json::parse(steps_json);
  int i = 0;
  for (const boost::json::value& s : steps.as_array()) {
    if (const boost::json::value* t = s.as_object().if_contains("train")) {
      auto spec = evals::TrainSpecFromJson(boost::json::serialize(*t));
      if (spec.ok()) out.emplace_back(i, *std::move(spec));
    }
    ++i;
  }
  return out;
}

}  // namespace

std::string CheckpointDirOf(int step_index) {
  return absl::StrCat(".assay/train/", step_index, "/checkpoints");
}

absl::Status RegisterTrainedModels(pqxx::work& tx, Connection& c, int64_t job_id, absl::Time now,
                                   bool sweep_best) {
  auto job = Exec(tx, c, kJobTrainSpec, {job_id});
  if (job.empty() || job[0][1].is_null()) return absl::OkStatus();
  // A fork's pull request trains, but never writes into the registry (docs/train.md).
  if (!job[0][2].as<bool>()) return absl::OkStatus();
  // A sweep registers its best trial only, once every trial ended (ConcludeSweeps).
  const bool trial = !job[0][3].is_null();
  if (trial && !sweep_best) return absl::OkStatus();
  const int attempt = job[0][0].as<int>();
  for (const auto& [index, spec] : TrainSteps(job[0][1].as<std::string>())) {
    if (!spec.register_model) continue;
    RegisterVersionRequest req;
    req.model = spec.model;
    req.job_id = job_id;
    req.path = spec.model_dir + "/";
    req.params_json = spec.params_json;
    boost::json::object metrics;
    for (const auto& r : Exec(tx, c, kTrainFinalMetrics, {job_id, index})) {
      metrics[r[0].as<std::string>()] = r[1].as<double>();
    }
    req.metrics_json = boost::json::serialize(metrics);
    if (auto d = Exec(tx, c, kTrainRunDatasets, {job_id, attempt, index}); !d.empty()) {
      auto parsed = registry::ParseDatasets(boost::json::parse(d[0][0].as<std::string>()));
      if (parsed.ok()) req.datasets = *std::move(parsed);
    }
    if (!spec.parent.empty()) {
      auto parent = registry::ParseVersionRef(spec.parent);
      if (!parent.ok()) return parent.status();
      req.parent = *parent;
    }
    req.tags = {{"source", "train"}, {"train_step", spec.name}};
    if (trial) {
      req.tags["sweep"] = job[0][3].as<std::string>();
      req.tags["sweep_trial"] = job[0][4].as<std::string>();
    }
    req.now = now;
    // Why a savepoint: a registration that fails half-way (the model row made, the version
    // refused) must leave nothing, while the job's own update in `tx` stays.
    tx.exec0("SAVEPOINT assay_train_register");
    absl::StatusOr<ModelVersion> v = absl::InternalError("not run");
    try {
      v = RegisterVersion(tx, c, req);
    } catch (const std::exception& e) {
      v = absl::InternalError(e.what());
    }
    if (!v.ok()) {
      tx.exec0("ROLLBACK TO SAVEPOINT assay_train_register");
      return absl::FailedPreconditionError(absl::StrCat("step \"", spec.name,
                                                        "\": cannot register model '", spec.model,
                                                        "': ", v.status().message()));
    }
    tx.exec0("RELEASE SAVEPOINT assay_train_register");
    Exec(tx, c, kTrainRunVersion, {job_id, attempt, index, v->id, now});
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> TrainStore::TrainStepOf(int64_t job_id, int step_index) {
  std::string out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kTrainStepSpec, {job_id, step_index});
    if (r.empty() || r[0][0].is_null()) {
      return absl::InvalidArgumentError(
          absl::StrCat("step ", step_index, " of job ", job_id, " is not a train step"));
    }
    out = r[0][0].as<std::string>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<int> TrainStore::AddPoints(int64_t job_id, int attempt, int step_index,
                                          const std::vector<TrainPoint>& points) {
  if (points.size() > kMaxTrainPointsPerCall) {
    return absl::InvalidArgumentError(absl::StrCat("ReportTrainMetrics: ", points.size(),
                                                   " points; at most ", kMaxTrainPointsPerCall));
  }
  std::vector<std::string> names, steps, values, times;
  for (size_t i = 0; i < points.size(); ++i) {
    const TrainPoint& p = points[i];
    if (!GoodSeriesName(p.name) || p.step < 0 || !std::isfinite(p.value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ReportTrainMetrics: point ", i,
          ": a name of 1 to 128 bytes without control characters, a step >= 0 and a finite "
          "value are required"));
    }
    names.push_back(p.name);
    steps.push_back(absl::StrCat(p.step));
    values.push_back(ShortestDouble(p.value));  // exact: no digits lost
    times.push_back(absl::StrCat(absl::ToUnixMicros(p.at)));
  }
  int stored = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    const int64_t have =
        Exec(tx, c, kTrainCountPoints, {job_id, step_index, attempt})[0][0].as<int64_t>();
    if (have + static_cast<int64_t>(points.size()) > kMaxTrainPointsPerAttempt) {
      return absl::ResourceExhaustedError(
          absl::StrCat("train step ", step_index, " of job ", job_id, " has ", have,
                       " metric points; at most ", kMaxTrainPointsPerAttempt, " per attempt"));
    }
    stored =
        static_cast<int>(Exec(tx, c, kTrainInsertPoints,
                              {job_id, step_index, attempt, ToPgTextArray(names),
                               ToPgTextArray(steps), ToPgTextArray(values), ToPgTextArray(times)})
                             .affected_rows());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return stored;
}

absl::StatusOr<bool> TrainStore::CommitCheckpoint(int64_t job_id, int attempt, int step_index,
                                                  int64_t step,
                                                  const std::vector<ArtifactFileRow>& files,
                                                  absl::Time now) {
  const std::string dir = CheckpointDirOf(step_index) + "/";
  if (step < 0) return absl::InvalidArgumentError("CommitCheckpoint: step must be >= 0");
  if (files.empty()) return absl::InvalidArgumentError("CommitCheckpoint: no files");
  for (const auto& f : files) {
    if (f.path.compare(0, dir.size(), dir) != 0 || f.path.size() == dir.size()) {
      return absl::InvalidArgumentError(absl::StrCat("CommitCheckpoint: path '",
                                                     absl::CEscape(f.path.substr(0, 200)),
                                                     "' is not under ", dir));
    }
  }
  const ManifestColumns m = ManifestColumnsOf(files);
  bool saved = false;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    saved = false;
    if (absl::Status st = RequireChunksStored(tx, c, files, m.chunks); !st.ok()) return st;
    auto inserted =
        Exec(tx, c, kCheckpointInsert,
             {job_id, step_index, step, attempt, static_cast<int64_t>(files.size()), m.bytes, now});
    if (inserted.empty()) return absl::OkStatus();
    const int64_t id = inserted[0][0].as<int64_t>();
    Exec(tx, c, kCheckpointInsertFiles,
         {id, ToPgTextArray(m.paths), ToPgTextArray(m.sizes), ToPgTextArray(m.modes),
          ToPgTextArray(m.hashes), ToPgTextArray(m.chunk_lists)});
    Exec(tx, c, kCheckpointInsertRefs, {id, ToPgTextArray(m.chunks)});
    Exec(tx, c, kCheckpointPrune, {job_id, step_index, kCheckpointsKept});
    saved = true;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return saved;
}

absl::StatusOr<std::optional<TrainCheckpoint>> TrainStore::RestoreCheckpoint(int64_t job_id,
                                                                             int step_index) {
  std::optional<TrainCheckpoint> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.reset();
    auto r = Exec(tx, c, kCheckpointNewest, {job_id, step_index});
    if (r.empty()) return absl::OkStatus();
    TrainCheckpoint cp;
    cp.id = r[0][0].as<int64_t>();
    cp.step = r[0][1].as<int64_t>();
    cp.attempt = r[0][2].as<int>();
    cp.step_index = step_index;
    Exec(tx, c, kCheckpointRecordRead, {job_id, cp.id});
    for (const auto& r : Exec(tx, c, kCheckpointFiles, {cp.id})) cp.files.push_back(FileOf(r));
    out = std::move(cp);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<std::string>> TrainStore::ChunksReadBy(
    int64_t job_id, const std::vector<std::string>& chunks) {
  std::vector<std::string> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& r : Exec(tx, c, kCheckpointChunksReadBy, {job_id, ToPgTextArray(chunks)})) {
      out.push_back(r[0].as<std::string>());
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status TrainStore::ReportRun(int64_t job_id, int attempt, int step_index,
                                   const std::vector<registry::DatasetDigest>& datasets,
                                   std::optional<int64_t> resumed_from, absl::Time now) {
  const std::string json = registry::DatasetsJson(datasets);
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    Exec(tx, c, kTrainRunUpsert,
         {job_id, attempt, step_index, json, Param::Opt(resumed_from), now});
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<TrainRunView>> TrainStore::RunsOf(int64_t job_id, int max_points) {
  std::vector<TrainRunView> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    auto job = Exec(tx, c, kJobTrainSpec, {job_id});
    if (job.empty()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    std::map<int, size_t> at;
    if (!job[0][1].is_null()) {
      for (const auto& [index, spec] : TrainSteps(job[0][1].as<std::string>())) {
        TrainRunView v;
        v.step_index = index;
        v.name = spec.name;
        v.model = spec.register_model ? spec.model : "";
        at[index] = out.size();
        out.push_back(std::move(v));
      }
    }
    for (const auto& r : Exec(tx, c, kTrainPointsOf, {job_id})) {
      auto it = at.find(r[0].as<int>());
      if (it == at.end()) continue;
      TrainPoint p;
      p.name = r[1].as<std::string>();
      p.step = r[2].as<int64_t>();
      p.attempt = r[3].as<int>();
      p.value = r[4].as<double>();
      p.at = absl::FromUnixMicros(r[5].as<int64_t>());
      out[it->second].series[p.name].push_back(std::move(p));
    }
    for (TrainRunView& v : out) {
      for (auto& [name, points] : v.series) {
        if (points.size() > static_cast<size_t>(max_points)) {
          points.erase(points.begin(), points.end() - max_points);
        }
      }
    }
    for (const auto& r : Exec(tx, c, kTrainRunsOf, {job_id})) {
      auto it = at.find(r[0].as<int>());
      if (it == at.end()) continue;
      TrainRunView& v = out[it->second];
      std::optional<int64_t> resumed;
      if (!r[2].is_null()) resumed = r[2].as<int64_t>();
      v.attempts.emplace_back(r[1].as<int>(), resumed);
      if (!r[3].is_null()) v.model_version = r[3].as<int>();
      v.datasets_json = r[4].as<std::string>();
    }
    for (const auto& r : Exec(tx, c, kTrainLatestCheckpoints, {job_id})) {
      auto it = at.find(r[0].as<int>());
      if (it != at.end()) out[it->second].latest_checkpoint_step = r[1].as<int64_t>();
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<PromoteOutcome> TrainStore::Promote(int64_t job_id, int step_index,
                                                   ModelStore& models, absl::Time now) {
  evals::PromoteSpec spec;
  std::string step_name;
  int64_t pipeline_id = 0;
  ExprContext ctx;
  std::string version_text;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kPromoteStep, {job_id, step_index});
    if (r.empty() || r[0][0].is_null()) {
      return absl::InvalidArgumentError(
          absl::StrCat("step ", step_index, " of job ", job_id, " is not a promote step"));
    }
    auto parsed = evals::PromoteSpecFromJson(r[0][0].as<std::string>());
    if (!parsed.ok()) return parsed.status();
    spec = *std::move(parsed);
    step_name = r[0][1].is_null() ? "" : r[0][1].as<std::string>();
    pipeline_id = r[0][2].as<int64_t>();
    const std::string ref = r[0][3].as<std::string>();
    if (ref.rfind("refs/heads/", 0) == 0) ctx.branch = ref.substr(11);
    if (ref.rfind("refs/tags/", 0) == 0) ctx.tag = ref.substr(10);
    ctx.event = r[0][4].as<std::string>();
    if (!r[0][5].as<bool>()) {
      return absl::PermissionDeniedError(
          "a fork's pull request (an untrusted pipeline) cannot move model aliases");
    }
    for (const auto& e : Exec(tx, c, kPipelineEvals, {pipeline_id})) {
      ctx.evals[e[0].as<std::string>()] = e[1].as<bool>();
    }
    if (spec.version.empty()) {
      auto v = Exec(tx, c, kPipelineVersion, {spec.model, pipeline_id});
      if (v.empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat("pipeline ", pipeline_id, " registered no version of model '", spec.model,
                         "' (a train: step registers one; or give version:)"));
      }
      version_text = absl::StrCat(v[0][0].as<int>());
    } else {
      version_text = spec.version;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  PromoteOutcome out;
  if (!spec.condition.empty()) {
    auto expr = Expr::Parse(spec.condition, ExprOptions{.allow_evals = true});
    if (!expr.ok()) return expr.status();
    if (!expr->Evaluate(ctx)) {
      out.message = absl::StrCat("not promoted: ", spec.model, "@", spec.alias, " stays; `",
                                 spec.condition, "` is false");
      return out;
    }
  }
  auto ref = registry::ParseVersionRef(version_text);
  if (!ref.ok()) return ref.status();
  AliasChange who;
  who.principal = absl::StrCat("pipeline ", pipeline_id, " job ", job_id);
  who.reason = absl::StrCat("promote step '", step_name, "'",
                            spec.condition.empty() ? "" : ": if " + spec.condition);
  who.now = now;
  auto moved = models.SetAlias(spec.model, spec.alias, *ref, who);
  if (!moved.ok()) return moved.status();
  out.promoted = true;
  out.version = moved->version;
  out.previous = moved->previous;
  out.changed = moved->changed;
  out.message =
      moved->changed
          ? absl::StrCat(
                "promoted: ", spec.model, "@", spec.alias, " -> version ", moved->version,
                moved->previous ? absl::StrCat(" (was ", *moved->previous, ")")
                                : std::string(" (new alias)"),
                spec.condition.empty() ? "" : absl::StrCat("; `", spec.condition, "` is true"))
          : absl::StrCat("promoted: ", spec.model, "@", spec.alias, " already points at version ",
                         moved->version);
  return out;
}

absl::StatusOr<int> TrainStore::DeleteFinishedCheckpoints(absl::Time before, int batch) {
  int n = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    n = static_cast<int>(
        Exec(tx, c, kTrainDeleteFinishedCheckpoints, {before, batch}).affected_rows());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return n;
}

}  // namespace assay::store
