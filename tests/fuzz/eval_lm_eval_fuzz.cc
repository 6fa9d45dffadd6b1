// Fuzzes the lm-evaluation-harness results reader (common/evals/data/ingest.h), which reads
// a file a job wrote. Contract: never a crash; errors are kInvalidArgument; an accepted
// metric has a non-empty task and metric name.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/evals/data/ingest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace assay::evals;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<IngestedMetric>> r = ParseLmEvalResults(text, "fuzz.json");
  if (!r.ok()) {
    if (r.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  for (const IngestedMetric& m : *r) {
    if (m.metric.empty()) std::abort();
  }
  return 0;
}
