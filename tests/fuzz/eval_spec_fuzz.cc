// Fuzzes the agent's reader of an eval step's JSON (common/evals/eval_spec.h), which arrives in
// an Assignment. Contract: never a crash or an exception out of it; an accepted spec is within
// its limits, has exactly one of model.command and model.url, and round-trips through
// EvalSpecToJson unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/evals/eval_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<assay::evals::EvalSpec> spec = assay::evals::EvalSpecFromJson(text);
  if (!spec.ok()) return 0;
  if (spec->concurrency < 1 || spec->concurrency > assay::evals::kMaxEvalConcurrency ||
      spec->repeat < 1 || spec->repeat > assay::evals::kMaxEvalRepeat || spec->retries < 0 ||
      spec->retries > assay::evals::kMaxEvalRetries || spec->timeout_ms < 1) {
    std::abort();
  }
  if (spec->model.command.empty() == spec->model.url.empty()) std::abort();
  absl::StatusOr<assay::evals::EvalSpec> again =
      assay::evals::EvalSpecFromJson(assay::evals::EvalSpecToJson(*spec));
  if (!again.ok()) std::abort();
  // NaN never equals itself: compare only specs without NaN numbers.
  const bool nan = spec->price_input_per_mtok != spec->price_input_per_mtok ||
                   spec->price_output_per_mtok != spec->price_output_per_mtok;
  if (!nan && !(*again == *spec)) {
    bool gate_nan = false;
    for (const auto& g : spec->gates) gate_nan = gate_nan || g.confidence != g.confidence;
    if (!gate_nan) std::abort();
  }
  return 0;
}
