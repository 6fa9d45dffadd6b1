// Fuzzes what GET /api/v1/jobs/{id}/log parses and formats: ParseRange on any header and log
// size, and StampLines on any slice. Contract: never a crash; an accepted range lies inside the
// log (0 <= first <= last < size); stamped output is the input with one 28-byte stamp before
// each line that begins in it.
//
// Input: bytes 0-3 the log size (little-endian, % 2^31), then the Range header up to the first
// '\n', then the slice's bytes (byte 4's low bit: the slice begins a line).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server/logs/log_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  int64_t log_size = 0;
  for (int i = 3; i >= 0; --i) log_size = (log_size << 8) | static_cast<uint8_t>(in[i]);
  log_size %= int64_t{1} << 31;
  const bool line_start = (static_cast<uint8_t>(in[4]) & 1) != 0;
  in.remove_prefix(5);
  const size_t nl = in.find('\n');
  const std::string_view header = in.substr(0, nl);
  auto r = assay::logs::ParseRange(header, log_size);
  if (r.ok() && !(0 <= r->first && r->first <= r->last && r->last < log_size)) std::abort();

  assay::store::LogSlice slice;
  slice.offset = 7;
  slice.line_start = line_start;
  slice.data = std::string(nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1));
  slice.marks = {{7, 1700000000000000}, {9, 1700000000000001}};
  const std::string out = assay::logs::StampLines(slice);
  size_t starts = 0;
  for (size_t i = 0; i < slice.data.size(); ++i) {
    if (i == 0 ? line_start : slice.data[i - 1] == '\n') ++starts;
  }
  if (out.size() != slice.data.size() + starts * assay::logs::kStampBytes) std::abort();
  return 0;
}
