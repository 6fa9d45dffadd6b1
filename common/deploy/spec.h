#pragma once
// What a deployment asks for (docs/deployments.md): its strategy (canary, blue-green, rolling)
// and its analyses, as the API's JSON body and a `deploy:` step of .assay.yml give them, and
// the steps a strategy comes down to, which the server's deployment controller carries out one
// at a time. Pure; no I/O.
//
// Every error is kInvalidArgument naming the field by its path, e.g.
//   "strategy.canary.steps[2].weight: must be an integer from 0 to 100"
//   "analysis.metrics[0].success_condition: column 8: expected a value, got end of expression"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/deploy/condition.h"

namespace assay::deploy {

// Limits on what one deployment may ask for.
inline constexpr int kMaxSteps = 100;
inline constexpr int kMaxMetrics = 20;
inline constexpr int kMaxServers = 64;
inline constexpr size_t kMaxQueryBytes = 4096;
inline constexpr size_t kMaxUrlBytes = 2048;

// Where a metric's measurements come from.
enum class ProviderKind {
  kPrometheus,   // an instant PromQL query: one value per series of the answer
  kWeb,          // GET a URL answering JSON: the number (or array of numbers) at json_path
  kDrift,        // a feature's live distribution against a reference: PSI, KS or JS
  kMannWhitney,  // canary against baseline samples (Kayenta's judge): the one-sided p-value
  kJob,          // a program of the server's deploy hooks: 1 when it exits 0, else 0
};

// Where a sample of a feature comes from: a features endpoint (docs/llm-metrics.md, "Features")
// answering {"features": {NAME: [numbers]}, "categorical": {NAME: {category: count}}}.
struct SampleSource {
  std::string url;      // may hold placeholders
  std::string feature;  // [A-Za-z0-9_.-]{1,64}
};

enum class DriftMethod { kPsi, kKs, kJs };

struct MetricSpec {
  std::string name;  // [A-Za-z0-9_.-]{1,64}, unique within its analysis
  ProviderKind provider = ProviderKind::kPrometheus;
  // kPrometheus: the server's base URL (http://host:port) and the query. kWeb: the URL and a
  // dotted path into the answer ("data.error_rate", "items.0.value"; "" the whole answer).
  // Both may hold {{version}}, {{previous_version}}, {{environment}} and {{deployment}}, which
  // are replaced when measured.
  std::string address, query;
  std::string url, json_path;
  // kDrift: `current` (the new version's live samples) against `reference`: another source, or
  // (reference_model_version) the eval examples of the deployed model version (prompt_length:
  // their input tokens, output_length: their output tokens). The measurement is the PSI (bins
  // cut at the reference's quantiles), the KS two-sample p-value, or the Jensen-Shannon
  // divergence of a categorical feature. Default condition: PSI < 0.2, p >= 0.05, JS < 0.1.
  // kMannWhitney: `current` is the canary and `reference` the baseline; the measurement is
  // the p-value that the canary is larger (direction "increase": latency, errors) or smaller
  // ("decrease": a judge score) than the baseline. Default condition: result >= 0.05.
  SampleSource current, reference;
  // kJob: the program and its arguments (which may hold placeholders), and its time limit (at
  // most kMaxHookTimeout: the controller waits for it). Default condition: result == 1.
  std::vector<std::string> command;
  absl::Duration job_timeout = absl::Seconds(30);
  bool reference_model_version = false;
  DriftMethod method = DriftMethod::kPsi;
  int bins = 10;
  bool increase_is_bad = true;
  absl::Duration interval = absl::Seconds(30);
  absl::Duration initial_delay = absl::ZeroDuration();
  // Measurements to take; 0 (allowed only in a background analysis): until the deployment
  // ends.
  int count = 1;
  std::optional<Condition> success, failure;
  // The analysis fails when more measurements fail than failure_limit; it is inconclusive
  // (the deployment pauses) when more are inconclusive than inconclusive_limit; it errors
  // (the deployment pauses, naming the cause) after more consecutive errors than
  // consecutive_error_limit.
  int failure_limit = 0;
  int inconclusive_limit = 0;
  int consecutive_error_limit = 4;
};

struct AnalysisSpec {
  std::vector<MetricSpec> metrics;
  bool empty() const { return metrics.empty(); }
};

// One step the controller carries out.
struct Step {
  enum class Kind {
    kWeight,    // send `weight` percent of traffic to the new version
    kPause,     // wait `duration`, or (no duration) until resumed or promoted by hand
    kAnalysis,  // run `analysis` to its end: failed rolls back, inconclusive or error pauses
  };
  Kind kind = Kind::kWeight;
  int weight = 0;
  std::optional<absl::Duration> duration;
  AnalysisSpec analysis;
};

enum class StrategyKind { kCanary, kBlueGreen, kRolling };

struct Strategy {
  StrategyKind kind = StrategyKind::kCanary;
  // The steps, as the user wrote them (canary) or as the strategy makes them (blue-green:
  // weight 0, pre-promotion analysis, a pause unless auto_promote, weight 100, post-promotion
  // analysis; rolling: one weight step per batch, each followed by `pause` when given). The
  // controller adds nothing after them but the end: weight 100 if not reached, then promotion.
  std::vector<Step> steps;
  // Runs alongside every step from the first weight above 0 until promotion (canary and
  // rolling's `analysis`).
  AnalysisSpec background;
  // After promotion the old version's servers keep their place (drained, weight 0) this long
  // before they are removed from the target: blue-green's scale_down_delay (default 30s).
  absl::Duration scale_down_delay = absl::ZeroDuration();
  // Rolling: how many old servers may be drained before the new batch is up (0: the new batch
  // first). Informational for targets that start nothing themselves.
  int max_unavailable = 0;
};

// A service image by digest, as a deployment names one: NAME@sha256:<64 lowercase hex>, under
// 512 bytes, the name printable ASCII without spaces, quotes or backslashes.
bool ImageByDigest(std::string_view image);

// Programs of the server's --deploy-hooks directory (server/deploy/hooks.h): a command target
// and a job metric name one by its file name, never a path.
inline constexpr int kMaxHookArgs = 32;
inline constexpr size_t kMaxHookArgBytes = 1024;
inline constexpr absl::Duration kMaxHookTimeout = absl::Seconds(60);
// 1 to 64 of [A-Za-z0-9_.-], not starting with '.'.
bool ValidHookName(std::string_view name);
// ["name", "arg", ...]: at most kMaxHookArgs arguments of at most kMaxHookArgBytes each, no
// control characters. kInvalidArgument naming `path` ("target.command") and what is wrong.
absl::StatusOr<std::vector<std::string>> ParseHookCommand(const boost::json::value& v,
                                                          std::string_view path);

// Parses `strategy` ({"canary": {...}} | {"blue_green": {...}} | {"rolling": {...}}).
// `path` prefixes field names in errors ("strategy").
absl::StatusOr<Strategy> ParseStrategy(const boost::json::value& strategy, std::string_view path);
// Parses {"metrics": [...]}.
absl::StatusOr<AnalysisSpec> ParseAnalysis(const boost::json::value& analysis,
                                           std::string_view path);
// "30s" or a number of seconds: kInvalidArgument "PATH: ..." otherwise. Within [min, 30 days].
absl::StatusOr<absl::Duration> ParseDurationField(const boost::json::value& v,
                                                  std::string_view path,
                                                  absl::Duration min = absl::Seconds(1));

// Replaces {{version}}, {{previous_version}}, {{environment}} and {{deployment}} in `text`.
struct Placeholders {
  std::string version, previous_version, environment, deployment;
};
std::string Substitute(std::string_view text, const Placeholders& p);

// Share of traffic per server for `weight` percent to the new version: HAProxy server weights
// (0 to 256) for each of `new_servers` and `old_servers` servers, so that the new ones together
// take `weight` percent of requests. A server of a side that gets traffic never gets 0.
struct ServerWeights {
  int new_each = 0, old_each = 0;
};
ServerWeights SplitWeights(int weight, int new_servers, int old_servers);

}  // namespace assay::deploy
