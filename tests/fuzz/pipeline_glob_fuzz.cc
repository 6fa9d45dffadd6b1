// Fuzzes glob patterns: the input is "pattern\ntext" (no newline: the input is both).
// Contract: GlobMatch answers for any pattern, valid or not, and never crashes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/pipeline/glob.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nl = in.find('\n');
  const std::string_view pattern = in.substr(0, nl);
  const std::string_view text = nl == std::string_view::npos ? in : in.substr(nl + 1);
  (void)assay::ValidateGlob(pattern);
  (void)assay::GlobMatch(pattern, text);
  (void)assay::MatchesFilters({std::string(pattern), "!" + std::string(pattern)}, text);
  return 0;
}
