#include "common/pipeline/duration.h"

#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace assay {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

absl::Status DurationError(std::string_view s, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid duration \"", std::string(s), "\": ", std::string(why)));
}

absl::Status SyntaxError(std::string_view s) {
  return DurationError(s, "expected a number followed by s, m or h (e.g. 30s, 10m, 1h30m)");
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

absl::StatusOr<int64_t> ParseDurationSeconds(std::string_view s) {
  if (s.empty()) return SyntaxError(s);
  int64_t total = 0;
  bool overflow = false;
  // Index into "hms" of the smallest unit used so far; -1 before any unit.
  int last_unit = -1;
  size_t i = 0;
  while (i < s.size()) {
    if (!IsDigit(s[i])) return SyntaxError(s);
    int64_t number = 0;
    while (i < s.size() && IsDigit(s[i])) {
      const int digit = s[i] - '0';
      if (number > (kMax - digit) / 10) {
        overflow = true;
      } else {
        number = number * 10 + digit;
      }
      ++i;
    }
    int64_t unit_seconds = 1;
    if (i == s.size()) {
      // A bare number is seconds, but only on its own: "1h30" is ambiguous.
      if (last_unit != -1) return SyntaxError(s);
    } else {
      const std::string_view kUnits = "hms";
      const size_t unit = kUnits.find(s[i]);
      if (unit == std::string_view::npos) return SyntaxError(s);
      if (static_cast<int>(unit) <= last_unit) {
        return DurationError(s, "units must appear in the order h, m, s, each at most once");
      }
      last_unit = static_cast<int>(unit);
      unit_seconds = unit == 0 ? 3600 : unit == 1 ? 60 : 1;
      ++i;
    }
    if (overflow || number > kMax / unit_seconds || total > kMax - number * unit_seconds) {
      overflow = true;
      continue;  // Keep scanning so that a syntax error still wins over "too large".
    }
    total += number * unit_seconds;
  }
  if (overflow) return DurationError(s, "too large");
  if (total == 0) return DurationError(s, "must be greater than zero");
  return total;
}

}  // namespace assay
