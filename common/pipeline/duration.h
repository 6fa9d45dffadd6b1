#pragma once
// Durations as written in pipeline files: "90", "90s", "10m", "1h", "1h30m", "2h5m10s".

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace assay {

// Parses `s` into a whole number of seconds.
//
// Grammar: either a bare non-negative integer (seconds), or one to three
// `<digits><unit>` groups with units `h`, `m`, `s` in that order, each at most once.
// No spaces, signs or fractions. The result must be > 0 and fit in int64.
//
// Errors (all kInvalidArgument, message names the input in double quotes):
//   invalid duration "10x": expected a number followed by s, m or h (e.g. 30s, 10m, 1h30m)
//   invalid duration "30m1h": units must appear in the order h, m, s, each at most once
//   invalid duration "0s": must be greater than zero
//   invalid duration "99999999999999999999s": too large
absl::StatusOr<int64_t> ParseDurationSeconds(std::string_view s);

}  // namespace assay
