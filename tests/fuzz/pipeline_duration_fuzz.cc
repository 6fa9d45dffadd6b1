// Fuzzes durations ("1h30m"). Contract: a Status or a positive number of seconds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/pipeline/duration.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto seconds = assay::ParseDurationSeconds(text);
  if (seconds.ok() && *seconds <= 0) std::abort();
  return 0;
}
