#pragma once
// How GET /api/v1/jobs/{id}/log shows a log: raw bytes, or with ?timestamps=1 each line
// prefixed with the time the agent read its first byte. No I/O.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/store/logs.h"

namespace assay::logs {

// "2026-11-30T17:45:12.123456Z " (RFC 3339, UTC, microseconds, then one space): 28 bytes.
inline constexpr size_t kStampBytes = 28;
std::string Stamp(int64_t unix_us);

// `slice`'s bytes with Stamp(time of its first byte) before each line that begins in it (a
// line begins at slice.offset when slice.line_start, and after every '\n' but the last
// byte's).
std::string StampLines(const store::LogSlice& slice);

// A parsed "Range: bytes=..." header: first..last inclusive, resolved against `size`.
struct ByteRange {
  int64_t first = 0;
  int64_t last = 0;
};
// Limits: the header is at most 200 bytes and holds one range ("bytes=a-b", "bytes=a-",
// "bytes=-n"); numbers are decimal, at most 18 digits. kInvalidArgument for anything else
// (several ranges, another unit, garbage, last < first); kOutOfRange when the range starts at
// or past `size` (or asks for the last 0 bytes): the caller answers 416.
absl::StatusOr<ByteRange> ParseRange(std::string_view header, int64_t size);

}  // namespace assay::logs
