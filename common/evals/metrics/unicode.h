#pragma once
// Internal to assay_eval_metrics: the few Unicode operations the metrics need, on code points
// (std::u32string), without ICU. Not a public interface; text_metrics.h documents what each
// metric does with them.

#include <cstddef>
#include <string>
#include <string_view>

namespace assay::evals::internal {

// Decodes UTF-8 strictly (no overlong forms, no surrogates, nothing above U+10FFFF). Each
// byte that does not start a valid sequence becomes one code point 0xDC00 + byte (Python's
// "surrogateescape"), so invalid input never throws, never merges with valid text, and
// EncodeUtf8 gives the original bytes back.
std::u32string DecodeUtf8(std::string_view text);

// The inverse of DecodeUtf8: 0xDC80..0xDCFF become the single byte they escape; other
// surrogates and values above U+10FFFF become U+FFFD.
std::string EncodeUtf8(std::u32string_view text);

// The number of code points DecodeUtf8 would return, without allocating.
size_t CountCodePoints(std::string_view text);

// `text` cut to at most `max_bytes` bytes, at a code point boundary (a cut never splits a
// valid UTF-8 sequence).
std::string_view TruncateUtf8(std::string_view text, size_t max_bytes);

// Python's str.isspace() set, which str.split() and str.strip() use: U+0009..U+000D,
// U+001C..U+001F, U+0020, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F,
// U+205F, U+3000.
bool IsSpace(char32_t c);

// Lowercases as documented for NormalizeOptions::lowercase (text_metrics.h): Python's
// str.lower() (lowercase_table.inc), including U+0130 -> "i" + U+0307 and a final-sigma rule.
std::u32string Lowercase(std::u32string_view text);

// ASCII punctuation (Python's string.punctuation).
bool IsAsciiPunct(char32_t c);

// The punctuation NormalizeOptions::remove_punctuation removes (text_metrics.h).
bool IsPunct(char32_t c);

}  // namespace assay::evals::internal
