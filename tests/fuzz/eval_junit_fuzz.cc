// Fuzzes the JUnit XML reader (common/evals/data/ingest.h, xml_reader.h): a step's test report
// is whatever the job wrote. Contract: never a crash, no entity expansion (output is never
// larger than the input allows), and an accepted report's counts agree with its cases.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/evals/data/ingest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace assay::evals;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<JunitReport> r = ParseJunitXml(text, "fuzz.xml");
  if (!r.ok()) {
    if (r.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  if (r->tests != static_cast<int64_t>(r->cases.size())) std::abort();
  int64_t failures = 0, errors = 0, skipped = 0;
  size_t bytes = 0;
  for (const JunitCase& c : r->cases) {
    failures += c.status == "failed";
    errors += c.status == "error";
    skipped += c.status == "skipped";
    if (c.status != "passed" && c.status != "failed" && c.status != "error" &&
        c.status != "skipped") {
      std::abort();
    }
    if (!(c.time_s >= 0)) std::abort();
    bytes += c.name.size() + c.message.size() + c.details.size();
  }
  if (failures != r->failures || errors != r->errors || skipped != r->skipped) std::abort();
  // No expansion: a decoded character is never longer than the text that wrote it
  // ("&lt;" is 4 bytes for 1, "&#x10000;" 9 for 4), and each name, message and details comes
  // from its own part of the input. (The suite name is copied into every case: not counted.)
  if (bytes > size) std::abort();
  return 0;
}
