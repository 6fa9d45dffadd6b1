#pragma once
// An `eval:` step as the pipeline linter validated it (issue 10, docs/evals.md), and its JSON
// form: the planner stores it in jobs.spec, the dispatcher hands it to the agent in
// Step.eval_json, the agent runs it. The JSON is ours (never user-written), but the agent
// still parses it strictly: a field of the wrong type is an error, not a default.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/evals/example.h"

namespace assay::evals {

// Limits of the keys (each is a lint error naming its key).
inline constexpr int kMaxEvalConcurrency = 256;
inline constexpr int kMaxEvalRetries = 10;
inline constexpr int kMaxEvalRepeat = 100;
inline constexpr size_t kMaxInlineTests = 1000;
inline constexpr size_t kMaxEvalGates = 32;

// The model under test: exactly one of `command` (a process speaking JSONL on stdin/stdout,
// run by the job's executor) and `url` (an OpenAI-shaped HTTP endpoint).
struct EvalModelSpec {
  std::string command;
  std::string url;             // http://host:port/v1/chat/completions or /v1/completions
  std::string api;             // "chat" or "completions"; derived from url's path when empty
  std::string name;            // the request's "model" field; empty: not sent
  std::string serve;           // with url: a command the step runs (host executor) serving it
  std::string api_key_secret;  // with url: a secret of the job sent as "Authorization: Bearer"

  bool operator==(const EvalModelSpec&) const = default;
};

// One gate on a metric. Absolute bounds and a relative one against a baseline run.
struct EvalGate {
  std::string metric;
  std::optional<double> min, max;
  std::optional<double> max_drop;  // worse than the baseline by more than this fails...
  std::string vs;                  // ...baseline: a branch's last successful run, or
                                   // "production" (the registry's production model, later)
  double confidence = 0.95;        // ...and only when a paired bootstrap says it is real

  bool operator==(const EvalGate&) const = default;
};

// LLM-as-judge (the `judge` metric): an OpenAI-shaped chat endpoint grades each answer against
// a rubric with a score in [0, 1] (docs/evals.md "LLM-as-judge").
struct EvalJudgeSpec {
  std::string url;             // http(s)://.../v1/chat/completions
  std::string model;           // the request's "model"; "" not sent
  std::string rubric;          // the rubric's text, or
  std::string rubric_file;     // a workspace file holding it
  std::string api_key_secret;  // a secret of the job sent as "Authorization: Bearer"
  double threshold = 0.5;      // an example passes the judge at this score or above

  bool operator==(const EvalJudgeSpec&) const = default;
};

struct EvalNormalize {
  bool lowercase = false;
  bool strip = true;
  bool collapse_whitespace = false;
  bool remove_punctuation = false;

  bool operator==(const EvalNormalize&) const = default;
};

struct EvalSpec {
  std::string name;            // the eval's name (baselines match on it); default: the step's name
  std::string dataset;         // JSONL file relative to the workspace; or
  std::vector<Example> tests;  // inline promptfoo-style tests (one of the two)
  std::string prompt;          // template file relative to the workspace; empty: the input as is
  EvalModelSpec model;
  int concurrency = 4;
  int64_t timeout_ms = 60'000;       // per request
  int retries = 1;                   // further attempts of a request that failed or timed out
  int repeat = 1;                    // runs of each example
  std::vector<std::string> metrics;  // names (KnownMetric); assertions are scored when present
  std::string regex;                 // the `regex` metric's pattern
  EvalNormalize normalize;           // exact_match's normalisation
  double price_input_per_mtok = 0;   // USD per million tokens, for cost_usd
  double price_output_per_mtok = 0;
  std::vector<EvalGate> gates;
  std::optional<EvalJudgeSpec> judge;  // set with the `judge` metric
  // Set (instead of a dataset and a model): the results an earlier step's test suite wrote,
  // read and gated (docs/evals.md "Ingest"): "junit" (JUnit XML) or "lm_eval"
  // (lm-evaluation-harness results_*.json); `ingest_path` a workspace-relative file or glob.
  std::string ingest_format;
  std::string ingest_path;

  bool operator==(const EvalSpec&) const = default;
};

// The metrics of a JUnit ingest: tests, passed, failures, errors, skipped, pass_rate, time_s.
bool JunitMetric(std::string_view name, bool* higher_is_better = nullptr);

// Whether `name` is a metric an eval computes; `higher_is_better` says its direction.
bool KnownMetric(std::string_view name, bool* higher_is_better = nullptr);
// The direction of any metric a gate can name: a known one, a JUnit ingest's, or an
// lm-evaluation-harness "task/metric[,filter]" (lower is better for perplexities and
// bits_per_byte, higher for the rest).
bool HigherIsBetter(std::string_view name);

// Every known metric name, for error messages.
const std::vector<std::string_view>& KnownMetricNames();

std::string EvalSpecToJson(const EvalSpec& spec);
absl::StatusOr<EvalSpec> EvalSpecFromJson(std::string_view json);

}  // namespace assay::evals
