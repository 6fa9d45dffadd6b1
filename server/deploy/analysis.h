#pragma once
// One measurement of a deployment analysis metric (docs/deployments.md "Analysis"): ask the
// provider (a Prometheus instant query, or a web endpoint's JSON), then judge the values with
// the metric's conditions (common/deploy/condition.h, Argo Rollouts' rules: no data is
// inconclusive, never a pass).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/deploy/condition.h"
#include "common/deploy/spec.h"

namespace assay {
class AddressPolicy;
}

namespace assay::deploy {

struct Measurement {
  Phase phase = Phase::kError;
  std::vector<double> values;  // what the provider gave (empty: no data, or an error)
  std::string message;         // why: the condition and value, or the provider's error
};

// The values of `metric` now: kUnavailable / kDeadlineExceeded naming the provider's address
// when it cannot be reached; kInvalidArgument with Prometheus's own error for a bad query;
// kFailedPrecondition for an answer that is not what the provider should give. At most
// 10,000 values are kept. `timeout` bounds the request.
absl::StatusOr<std::vector<double>> Fetch(const MetricSpec& metric, const Placeholders& p,
                                          const AddressPolicy* policy, absl::Duration timeout);

// Fetch and judge: an error of the provider is a kError measurement with its message.
Measurement Measure(const MetricSpec& metric, const Placeholders& p, const AddressPolicy* policy,
                    absl::Duration timeout = absl::Seconds(10));

// The values in a Prometheus /api/v1/query answer (vector or scalar; "NaN", "+Inf" kept as
// such). Exposed for tests.
absl::StatusOr<std::vector<double>> ParsePrometheusAnswer(int http_status, std::string_view body);
// The number or array of numbers at `path` ("a.b.0.c") in `body`. Exposed for tests.
absl::StatusOr<std::vector<double>> ParseWebAnswer(std::string_view body, std::string_view path);

// Percent-encodes `s` for a URL query value.
std::string QueryEscape(std::string_view s);

}  // namespace assay::deploy
