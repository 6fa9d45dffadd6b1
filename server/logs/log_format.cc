#include "server/logs/log_format.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"

namespace assay::logs {

std::string Stamp(int64_t unix_us) {
  const absl::Time t = absl::FromUnixMicros(unix_us);
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ ", t, absl::UTCTimeZone());
}

std::string StampLines(const store::LogSlice& slice) {
  const std::string& d = slice.data;
  std::string out;
  out.reserve(d.size() + d.size() / 8);
  size_t mark = 0;
  auto time_at = [&](int64_t offset) {
    while (mark + 1 < slice.marks.size() && slice.marks[mark + 1].offset <= offset) ++mark;
    return slice.marks.empty() ? 0 : slice.marks[mark].unix_us;
  };
  bool at_start = slice.line_start;
  size_t i = 0;
  // Why remember the last stamp: the lines of one mark share it (hundreds per chunk), and
  // formatting a time is most of the cost of a stamped read.
  int64_t last_us = -1;
  std::string last_stamp;
  while (i < d.size()) {
    if (at_start) {
      const int64_t us = time_at(slice.offset + static_cast<int64_t>(i));
      if (us != last_us) {
        last_us = us;
        last_stamp = Stamp(us);
      }
      out += last_stamp;
    }
    const size_t nl = d.find('\n', i);
    const size_t end = nl == std::string::npos ? d.size() : nl + 1;
    out.append(d, i, end - i);
    at_start = nl != std::string::npos;
    i = end;
  }
  return out;
}

absl::StatusOr<ByteRange> ParseRange(std::string_view header, int64_t size) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("header 'Range' ", std::string(why)));
  };
  if (header.size() > 200) return bad("is longer than 200 bytes");
  absl::string_view h(header.data(), header.size());
  h = absl::StripAsciiWhitespace(h);
  if (!absl::ConsumePrefix(&h, "bytes=")) return bad("must start with 'bytes='");
  if (h.find(',') != absl::string_view::npos) return bad("must name one range, not several");
  const size_t dash = h.find('-');
  if (dash == absl::string_view::npos) return bad("must be 'bytes=first-last'");
  absl::string_view a = absl::StripAsciiWhitespace(h.substr(0, dash));
  absl::string_view b = absl::StripAsciiWhitespace(h.substr(dash + 1));
  auto number = [](absl::string_view s, int64_t* v) {
    if (s.empty() || s.size() > 18) return false;
    for (char ch : s) {
      if (ch < '0' || ch > '9') return false;
    }
    return absl::SimpleAtoi(s, v);
  };
  ByteRange r;
  if (a.empty()) {  // suffix: the last n bytes
    int64_t n = 0;
    if (!number(b, &n)) return bad("must be 'bytes=first-last'");
    if (n == 0 || size == 0) return absl::OutOfRangeError("the range asks for no bytes");
    r.first = std::max<int64_t>(0, size - n);
    r.last = size - 1;
    return r;
  }
  if (!number(a, &r.first)) return bad("must be 'bytes=first-last'");
  if (b.empty()) {
    r.last = size - 1;
  } else {
    if (!number(b, &r.last)) return bad("must be 'bytes=first-last'");
    if (r.last < r.first) return bad("has last < first");
    r.last = std::min(r.last, size - 1);
  }
  if (r.first >= size) {
    return absl::OutOfRangeError(
        absl::StrCat("the range starts at or past the end (", size, " bytes)"));
  }
  return r;
}

}  // namespace assay::logs
