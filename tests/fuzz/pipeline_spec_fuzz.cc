// Fuzzes the .assay.yml parser and linter with any file content. Contract: a Status (or a list
// of SpecErrors), never a crash; and the two agree on whether the file is valid. A valid file
// is also planned (matrix and sweep expansion), which must not crash either.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/pipeline/plan.h"
#include "common/pipeline/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = assay::ParsePipelineSpec(text);
  auto errors = assay::LintPipelineSpec(text);
  if (spec.ok() != errors.empty()) std::abort();
  if (spec.ok()) {
    (void)assay::TopologicalOrder(*spec);
    (void)assay::PlanJobs(*spec, assay::ExprContext{});
  }
  return 0;
}
