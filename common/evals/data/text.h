#pragma once
// Text helpers of the eval data library: UTF-8 checks, JavaScript's lowercase and number
// formatting (promptfoo runs on JavaScript, and its `icontains` and number values follow
// JavaScript's rules), and short quotes for messages. Pure functions, no I/O.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace assay::evals {

// Debian's Abseil keeps absl::string_view apart from std::string_view: the bridge, for
// absl::StrCat and friends.
inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
// On false, `*bad_offset` (when given) is the byte offset of the first bad sequence.
bool IsValidUtf8(std::string_view text, size_t* bad_offset = nullptr);

// Appends code point `cp` (at most 0x10FFFF, not a surrogate) to `out` as UTF-8.
void AppendUtf8(uint32_t cp, std::string* out);

// JavaScript's String.prototype.toLowerCase over UTF-8, for the scripts that have case:
// ASCII, Latin-1, Latin Extended-A and Additional, Greek (final sigma included: a capital
// sigma at the end of a word becomes U+03C2), Cyrillic, Armenian and fullwidth Latin. Other
// code points, and bytes that are not valid UTF-8, are copied unchanged. Why not full
// Unicode: these cover the datasets we expect; docs/eval-datasets.md lists the gap.
std::string JsToLowerCase(std::string_view text);

// Number::toString of ECMAScript (what JavaScript's String(x) prints): integers without a
// fraction ("42", "-0" prints "0"), the shortest digits that read back to `x`, exponent form
// below 1e-6 and from 1e21 ("1e+21", "1.5e-7"). NaN and infinities print "NaN", "Infinity",
// "-Infinity".
std::string JsNumberToString(double x);

// `text` cut to at most `max_bytes` on a UTF-8 boundary, with "..." appended when cut; for
// quoting model outputs in reasons and errors.
std::string Abbreviate(std::string_view text, size_t max_bytes = 200);

}  // namespace assay::evals
