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

  bool operator==(const EvalSpec&) const = default;
};

// Whether `name` is a metric an eval computes; `higher_is_better` says its direction.
bool KnownMetric(std::string_view name, bool* higher_is_better = nullptr);
// Every known metric name, for error messages.
const std::vector<std::string_view>& KnownMetricNames();

std::string EvalSpecToJson(const EvalSpec& spec);
absl::StatusOr<EvalSpec> EvalSpecFromJson(std::string_view json);

}  // namespace assay::evals
