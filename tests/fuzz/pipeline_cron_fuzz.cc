// Fuzzes five-field cron schedules. Contract: Parse returns a Status or a schedule, and Next
// finds a minute for every schedule Parse accepts (it promises one always exists).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/time/time.h"
#include "common/pipeline/cron.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cron = assay::CronSchedule::Parse(text);
  if (cron.ok()) (void)cron->Next(absl::FromUnixSeconds(1767225600));  // 2026-01-01 00:00 UTC
  return 0;
}
