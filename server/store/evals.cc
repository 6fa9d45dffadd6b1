#include "server/store/evals.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/evals/data/text.h"
#include "common/evals/eval_spec.h"

namespace assay::store {
namespace {

namespace json = boost::json;

const Query kEvalCreate{
    "eval_create",
    "INSERT INTO eval_runs (job_id, attempt, step_index, repo_id, pipeline_id, job_name, name, "
    "ref, commit_sha, trusted, model_version_id) "
    "SELECT j.id, $2, $3, p.repo_id, p.id, j.name, $4, p.ref, p.commit_sha, p.trusted, "
    // Issue 10: the version this pipeline registered (a train: step before the eval), if any.
    "(SELECT v.id FROM model_versions v WHERE v.pipeline_id = p.id ORDER BY v.id DESC LIMIT 1) "
    "FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id WHERE j.id = $1 "
    "ON CONFLICT (job_id, attempt, step_index) DO NOTHING RETURNING id"};
const Query kEvalExisting{"eval_existing",
                          "SELECT id, name, complete FROM eval_runs "
                          "WHERE job_id = $1 AND attempt = $2 AND step_index = $3 FOR UPDATE"};
const Query kEvalInsertExamples{
    "eval_insert_examples",
    "INSERT INTO eval_examples (run_id, idx, example_id, input, expected, output, error, passed, "
    "scores, latency_ms, input_tokens, output_tokens, answered, passes) "
    "SELECT $1, e.idx, e.example_id, e.input, e.expected, e.output, e.error, e.passed, "
    "e.scores::jsonb, e.latency_ms, e.input_tokens, e.output_tokens, e.answered, e.passes "
    "FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], "
    "$8::boolean[], $9::text[], $10::float8[], $11::bigint[], $12::bigint[], $13::int[], "
    "$14::int[]) AS e(idx, example_id, input, expected, output, error, passed, scores, "
    "latency_ms, input_tokens, output_tokens, answered, passes) "
    "ON CONFLICT (run_id, idx) DO NOTHING"};
const Query kEvalCountBelow{"eval_count_below",
                            "SELECT count(*) FROM eval_examples WHERE run_id = $1 AND idx < $2"};
const Query kEvalCountAll{"eval_count_all", "SELECT count(*) FROM eval_examples WHERE run_id = $1"};
const Query kEvalBaselineOk{"eval_baseline_ok",
                            "SELECT 1 FROM eval_runs WHERE id = $1 AND repo_id = $2 AND name = $3 "
                            "AND complete"};
const Query kEvalComplete{
    "eval_complete",
    "UPDATE eval_runs SET complete = true, finished_at = now(), passed = $2, dataset_path = $3, "
    "dataset_sha256 = $4, repeat = $5, examples = $6, error = $7, report = $8::jsonb, "
    "baseline_run_id = NULLIF($9, 0) WHERE id = $1"};
const Query kEvalBaseline{
    "eval_baseline",
    "SELECT id, commit_sha FROM eval_runs WHERE repo_id = $1 AND name = $2 AND ref = $3 "
    "AND complete AND passed AND trusted ORDER BY id DESC LIMIT 1"};
// `vs: "@ALIAS"`: the last passed run of the eval on the version ALIAS points at, of the model
// whose version this pipeline registered.
const Query kEvalBaselineAlias{
    "eval_baseline_alias",
    "SELECT r.id, r.commit_sha FROM eval_runs r JOIN model_versions v ON v.id = "
    "r.model_version_id JOIN model_aliases a ON a.model_id = v.model_id AND a.version = "
    "v.version WHERE r.repo_id = $1 AND r.name = $2 AND a.alias = $3 AND v.model_id = "
    "(SELECT model_id FROM model_versions WHERE pipeline_id = $4 ORDER BY id DESC LIMIT 1) "
    "AND r.complete AND r.passed AND r.trusted ORDER BY r.id DESC LIMIT 1"};
const Query kEvalBaselineScores{"eval_baseline_scores",
                                "SELECT example_id, scores::text FROM eval_examples "
                                "WHERE run_id = $1 ORDER BY idx"};
// The columns RunOf reads, in its order.
#define ASSAY_EVAL_RUN_COLUMNS                                                               \
  "id, job_id, attempt, step_index, repo_id, pipeline_id, job_name, name, ref, commit_sha, " \
  "trusted, complete, passed, dataset_path, dataset_sha256, repeat, examples, error, "       \
  "report::text, COALESCE(baseline_run_id, 0), "                                             \
  "(extract(epoch from created_at) * 1000000)::bigint, "                                     \
  "(extract(epoch from finished_at) * 1000000)::bigint, "                                    \
  "(SELECT m.name FROM model_versions v JOIN models m ON m.id = v.model_id "                 \
  "WHERE v.id = model_version_id), "                                                         \
  "(SELECT version FROM model_versions WHERE id = model_version_id)"
const Query kEvalGet{"eval_get", "SELECT " ASSAY_EVAL_RUN_COLUMNS " FROM eval_runs WHERE id = $1"};
const Query kEvalList{"eval_list",
                      "SELECT " ASSAY_EVAL_RUN_COLUMNS
                      " FROM eval_runs WHERE ($1 = 0 OR repo_id = $1) AND ($2 = 0 OR job_id = $2) "
                      "AND ($3 = '' OR name = $3) AND ($4 = '' OR ref = 'refs/heads/' || $4) "
                      "AND ($5 = 0 OR id < $5) AND ($7 = 0 OR model_version_id = $7) "
                      "ORDER BY id DESC LIMIT $6"};
const Query kEvalExamples{
    "eval_examples",
    "SELECT idx, example_id, input, expected, output, error, passed, scores::text, latency_ms, "
    "input_tokens, output_tokens, answered, passes FROM eval_examples WHERE run_id = $1 "
    "ORDER BY idx"};

std::string ScoresJson(const EvalScores& scores) {
  json::object o;
  for (const auto& [k, v] : scores) o[k] = v;
  return json::serialize(o);
}

EvalScores ScoresFrom(const std::string& text) {
  EvalScores out;
  json::value v = json::parse(text);
  for (const auto& [k, s] : v.as_object()) out.emplace_back(std::string(k), s.to_number<double>());
  return out;
}

absl::Status CheckExample(const EvalExampleRow& e) {
  auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("example ", e.index, ": ", std::string(what)));
  };
  if (e.index < 0 || e.index >= kMaxEvalExamples) return bad("index out of range");
  if (e.example_id.empty() || e.example_id.size() > kMaxEvalExampleId) {
    return bad(absl::StrCat("example_id must be 1 to ", kMaxEvalExampleId, " bytes"));
  }
  for (const std::string* t : {&e.input, &e.expected, &e.output, &e.error}) {
    if (t->size() > kMaxEvalText) {
      return bad(absl::StrCat("a text is longer than ", kMaxEvalText, " bytes"));
    }
  }
  for (const std::string* t : {&e.example_id, &e.input, &e.expected, &e.output, &e.error}) {
    if (t->find('\0') != std::string::npos || !evals::IsValidUtf8(*t)) {
      return bad("a text holds a NUL byte or is not UTF-8");
    }
  }
  if (e.scores.size() > kMaxEvalScores) return bad("too many scores");
  for (const auto& [name, v] : e.scores) {
    // A metric an eval computes, a JUnit ingest's, or an lm-eval ingest's TASK/METRIC[,FILTER]
    // (1 to 250 bytes of UTF-8 without control characters).
    const bool ingested = name.find('/') != std::string::npos && name.size() <= 250 &&
                          evals::IsValidUtf8(name) &&
                          std::none_of(name.begin(), name.end(),
                                       [](char c) { return static_cast<unsigned char>(c) < 0x20; });
    if (!evals::KnownMetric(name) && !evals::JunitMetric(name) && !ingested) {
      return bad(absl::StrCat("unknown metric '", absl::CHexEscape(name.substr(0, 100)), "'"));
    }
    if (!std::isfinite(v)) return bad(absl::StrCat("score of ", name, " is not finite"));
  }
  if (!std::isfinite(e.latency_ms) || e.latency_ms < 0 || e.input_tokens < 0 ||
      e.output_tokens < 0 || e.answered < 0 || e.passes < 0 || e.passes > e.answered) {
    return bad("latency, tokens or counts out of range");
  }
  return absl::OkStatus();
}

EvalRun RunOf(const pqxx::row& r) {
  EvalRun e;
  e.id = r[0].as<int64_t>();
  e.job_id = r[1].as<int64_t>();
  e.attempt = r[2].as<int>();
  e.step_index = r[3].as<int>();
  e.repo_id = r[4].as<int64_t>();
  e.pipeline_id = r[5].as<int64_t>();
  e.job_name = r[6].as<std::string>();
  e.name = r[7].as<std::string>();
  e.ref = r[8].as<std::string>();
  e.commit_sha = r[9].as<std::string>();
  e.trusted = r[10].as<bool>();
  e.complete = r[11].as<bool>();
  if (!r[12].is_null()) e.passed = r[12].as<bool>();
  e.dataset_path = r[13].as<std::string>();
  e.dataset_sha256 = r[14].as<std::string>();
  e.repeat = r[15].as<int>();
  e.examples = r[16].as<int>();
  e.error = r[17].as<std::string>();
  e.report_json = r[18].as<std::string>();
  e.baseline_run_id = r[19].as<int64_t>();
  e.created_at = absl::FromUnixMicros(r[20].as<int64_t>());
  if (!r[21].is_null()) e.finished_at = absl::FromUnixMicros(r[21].as<int64_t>());
  if (!r[22].is_null()) e.model = r[22].as<std::string>();
  if (!r[23].is_null()) e.model_version = r[23].as<int>();
  return e;
}

std::string PgBoolArray(const std::vector<bool>& v) {
  std::string s = "{";
  for (size_t i = 0; i < v.size(); ++i) absl::StrAppend(&s, i > 0 ? "," : "", v[i] ? "t" : "f");
  return s + "}";
}

template <typename T>
std::string PgNumberArray(const std::vector<T>& v) {
  std::string s = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if constexpr (std::is_floating_point_v<T>) {
      absl::StrAppend(&s, i > 0 ? "," : "", absl::StrFormat("%.17g", v[i]));
    } else {
      absl::StrAppend(&s, i > 0 ? "," : "", v[i]);
    }
  }
  return s + "}";
}

}  // namespace

absl::StatusOr<int64_t> EvalStore::Report(const LiveAttempt& a, int step_index,
                                          const std::string& name,
                                          const std::vector<EvalExampleRow>& examples,
                                          const std::optional<EvalSummaryRow>& summary) {
  if (step_index < 0 || step_index > kMaxEvalStepIndex) {
    return absl::InvalidArgumentError(absl::StrCat("step_index ", step_index, " out of range"));
  }
  if (name.empty() || name.size() > 128 || !evals::IsValidUtf8(name)) {
    return absl::InvalidArgumentError("name must be 1 to 128 bytes of UTF-8");
  }
  if (examples.size() > kMaxEvalPieceExamples) {
    return absl::InvalidArgumentError(absl::StrCat("a piece of ", examples.size(),
                                                   " examples, more than ", kMaxEvalPieceExamples));
  }
  for (const EvalExampleRow& e : examples) {
    if (absl::Status s = CheckExample(e); !s.ok()) return s;
  }
  if (summary.has_value()) {
    const EvalSummaryRow& s = *summary;
    if (s.examples < 0 || s.examples > kMaxEvalExamples || s.repeat < 1 || s.repeat > 1000) {
      return absl::InvalidArgumentError("summary: examples or repeat out of range");
    }
    if (s.report_json.size() > kMaxEvalReportJson) {
      return absl::InvalidArgumentError(
          absl::StrCat("summary: report_json is longer than ", kMaxEvalReportJson, " bytes"));
    }
    boost::system::error_code ec;
    json::value report = json::parse(s.report_json, ec);
    if (ec || !report.is_object()) {
      return absl::InvalidArgumentError("summary: report_json is not a JSON object");
    }
    for (const std::string* t : {&s.dataset_path, &s.dataset_sha256, &s.error}) {
      if (t->size() > kMaxEvalText || !evals::IsValidUtf8(*t)) {
        return absl::InvalidArgumentError("summary: a text is too long or not UTF-8");
      }
    }
  }
  int64_t id = 0;
  absl::Status st = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto created = Exec(tx, c, kEvalCreate, {a.job_id, a.attempt, step_index, name});
    if (created.empty()) {
      auto existing = Exec(tx, c, kEvalExisting, {a.job_id, a.attempt, step_index});
      if (existing.empty()) return absl::NotFoundError(absl::StrCat("no job ", a.job_id));
      id = existing[0][0].as<int64_t>();
      if (existing[0][1].as<std::string>() != name) {
        return absl::InvalidArgumentError(absl::StrCat("step ", step_index, " reported eval '",
                                                       existing[0][1].as<std::string>(),
                                                       "' before, not '", name, "'"));
      }
      if (existing[0][2].as<bool>()) return absl::OkStatus();  // complete: a replay
    } else {
      id = created[0][0].as<int64_t>();
    }
    if (!examples.empty()) {
      std::vector<int> idx, answered, passes;
      std::vector<std::string> ids, inputs, expected, outputs, errors, scores;
      std::vector<bool> passed;
      std::vector<double> latency;
      std::vector<int64_t> in_tokens, out_tokens;
      for (const EvalExampleRow& e : examples) {
        idx.push_back(e.index);
        ids.push_back(e.example_id);
        inputs.push_back(e.input);
        expected.push_back(e.expected);
        outputs.push_back(e.output);
        errors.push_back(e.error);
        passed.push_back(e.passed);
        scores.push_back(ScoresJson(e.scores));
        latency.push_back(e.latency_ms);
        in_tokens.push_back(e.input_tokens);
        out_tokens.push_back(e.output_tokens);
        answered.push_back(e.answered);
        passes.push_back(e.passes);
      }
      Exec(tx, c, kEvalInsertExamples,
           {id, PgNumberArray(idx), ToPgTextArray(ids), ToPgTextArray(inputs),
            ToPgTextArray(expected), ToPgTextArray(outputs), ToPgTextArray(errors),
            PgBoolArray(passed), ToPgTextArray(scores), PgNumberArray(latency),
            PgNumberArray(in_tokens), PgNumberArray(out_tokens), PgNumberArray(answered),
            PgNumberArray(passes)});
    }
    if (!summary.has_value()) return absl::OkStatus();
    const EvalSummaryRow& s = *summary;
    const int64_t below = Exec(tx, c, kEvalCountBelow, {id, s.examples})[0][0].as<int64_t>();
    const int64_t all = Exec(tx, c, kEvalCountAll, {id})[0][0].as<int64_t>();
    if (below != s.examples || all != s.examples) {
      return absl::FailedPreconditionError(
          absl::StrCat(below, " of ", s.examples, " examples were reported",
                       all != below ? absl::StrCat(", and ", all - below, " beyond them") : ""));
    }
    if (s.baseline_run_id != 0 &&
        Exec(tx, c, kEvalBaselineOk, {s.baseline_run_id, a.repo_id, name}).empty()) {
      return absl::InvalidArgumentError(absl::StrCat("baseline_run_id ", s.baseline_run_id,
                                                     " is no complete run of eval '", name,
                                                     "' in this repository"));
    }
    Exec(tx, c, kEvalComplete,
         {id, s.passed, s.dataset_path, s.dataset_sha256, s.repeat, s.examples, s.error,
          s.report_json, s.baseline_run_id});
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return id;
}

absl::StatusOr<std::optional<EvalBaselineRows>> EvalStore::Baseline(int64_t repo_id,
                                                                    const std::string& name,
                                                                    const std::string& vs,
                                                                    int64_t pipeline_id) {
  std::optional<EvalBaselineRows> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.reset();
    auto run = !vs.empty() && vs[0] == '@'
                   ? Exec(tx, c, kEvalBaselineAlias, {repo_id, name, vs.substr(1), pipeline_id})
                   : Exec(tx, c, kEvalBaseline, {repo_id, name, "refs/heads/" + vs});
    if (run.empty()) return absl::OkStatus();
    EvalBaselineRows b;
    b.run_id = run[0][0].as<int64_t>();
    b.commit_sha = run[0][1].as<std::string>();
    for (const auto& r : Exec(tx, c, kEvalBaselineScores, {b.run_id})) {
      b.examples.emplace_back(r[0].as<std::string>(), ScoresFrom(r[1].as<std::string>()));
    }
    out = std::move(b);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<EvalRun>> EvalStore::Get(int64_t id) {
  std::optional<EvalRun> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.reset();
    auto r = Exec(tx, c, kEvalGet, {id});
    if (!r.empty()) out = RunOf(r[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<EvalRun>> EvalStore::List(const EvalFilter& f) {
  std::vector<EvalRun> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& r : Exec(tx, c, kEvalList,
                              {f.repo_id, f.job_id, f.name, f.branch, f.before_id,
                               std::clamp(f.limit, 1, 500), f.model_version_id})) {
      out.push_back(RunOf(r));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<EvalExampleRow>> EvalStore::Examples(int64_t run_id) {
  std::vector<EvalExampleRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& r : Exec(tx, c, kEvalExamples, {run_id})) {
      EvalExampleRow e;
      e.index = r[0].as<int>();
      e.example_id = r[1].as<std::string>();
      e.input = r[2].as<std::string>();
      e.expected = r[3].as<std::string>();
      e.output = r[4].as<std::string>();
      e.error = r[5].as<std::string>();
      e.passed = r[6].as<bool>();
      e.scores = ScoresFrom(r[7].as<std::string>());
      e.latency_ms = r[8].as<double>();
      e.input_tokens = r[9].as<int64_t>();
      e.output_tokens = r[10].as<int64_t>();
      e.answered = r[11].as<int>();
      e.passes = r[12].as<int>();
      out.push_back(std::move(e));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace assay::store
