#pragma once
// One measurement of a deployment analysis metric (docs/deployments.md "Analysis"): ask the
// provider (a Prometheus instant query, or a web endpoint's JSON), then judge the values with
// the metric's conditions (common/deploy/condition.h, Argo Rollouts' rules: no data is
// inconclusive, never a pass).

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/deploy/condition.h"
#include "common/deploy/spec.h"
#include "server/deploy/hooks.h"

namespace assay {
class AddressPolicy;
}

namespace assay::deploy {

struct Measurement {
  Phase phase = Phase::kError;
  std::vector<double> values;  // what the provider gave (empty: no data, or an error)
  std::string message;         // why: the condition and value, or the provider's error
  // Drift and the canary judge: how the value came about ("psi 0.412 over 10 bins; reference
  // 200 values, current 500"; "canary larger: p 0.0003, effect (rank-biserial) 0.41, ...").
  std::string detail;
};

// The reference sample of a drift metric whose reference is "model_version": the feature's
// values in the eval examples of the deployment's model version.
using ReferenceFn = std::function<absl::StatusOr<std::vector<double>>(const std::string& feature)>;

// The minimum sample sizes below which drift and the judge give no data (inconclusive): a
// handful of requests says nothing about a distribution.
inline constexpr size_t kMinDriftSample = 20;
inline constexpr size_t kMinJudgeSample = 8;

// What measuring needs besides the metric: where the server may connect (the server's
// --allow-private-hosts; null: anywhere), the time one request may take, the drift reference of
// the deployed model version (null: none), and the deploy hooks job metrics run (null: none).
struct Providers {
  const AddressPolicy* policy = nullptr;
  absl::Duration timeout = absl::Seconds(10);
  ReferenceFn reference;
  const Hooks* hooks = nullptr;
};

// The values of `metric` now: kUnavailable / kDeadlineExceeded naming the provider's address
// when it cannot be reached; kInvalidArgument with Prometheus's own error for a bad query;
// kFailedPrecondition for an answer that is not what the provider should give, or a job whose
// program is missing. At most 10,000 values are kept. A job metric's value is 1 when its
// program exits 0, else 0 (with its exit and last line of output in `detail`); it runs under
// the metric's own timeout.
absl::StatusOr<std::vector<double>> Fetch(const MetricSpec& metric, const Placeholders& p,
                                          const Providers& providers,
                                          std::string* detail = nullptr);

// Fetch and judge: an error of the provider is a kError measurement with its message.
Measurement Measure(const MetricSpec& metric, const Placeholders& p, const Providers& providers);

// A features endpoint's answer: the numeric feature's values, or (categorical) its counts.
struct FeatureSample {
  std::vector<double> values;
  std::map<std::string, double> counts;
};
absl::StatusOr<FeatureSample> ParseFeatures(std::string_view body, const std::string& feature,
                                            bool categorical);

// The values in a Prometheus /api/v1/query answer (vector or scalar; "NaN", "+Inf" kept as
// such). Exposed for tests.
absl::StatusOr<std::vector<double>> ParsePrometheusAnswer(int http_status, std::string_view body);
// The number or array of numbers at `path` ("a.b.0.c") in `body`. Exposed for tests.
absl::StatusOr<std::vector<double>> ParseWebAnswer(std::string_view body, std::string_view path);

// Percent-encodes `s` for a URL query value.
std::string QueryEscape(std::string_view s);

}  // namespace assay::deploy
