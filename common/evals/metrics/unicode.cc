#include "common/evals/metrics/unicode.h"

#include <algorithm>
#include <cstdint>
#include <iterator>

namespace assay::evals::internal {
namespace {

constexpr char32_t kEscapeBase = 0xDC00;

// The length of the valid UTF-8 sequence at text[i] and its code point, or 0 when the bytes
// there do not form one.
size_t DecodeOne(std::string_view text, size_t i, char32_t* out) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const auto cont = [&](size_t k) { return i + k < text.size() && (b(k) & 0xC0) == 0x80; };
  const unsigned char b0 = b(0);
  if (b0 < 0x80) {
    *out = b0;
    return 1;
  }
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (!cont(1)) return 0;
    *out = (char32_t{b0} & 0x1F) << 6 | (b(1) & 0x3F);
    return 2;
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    const char32_t c = (char32_t{b0} & 0x0F) << 12 | (char32_t{b(1)} & 0x3F) << 6 | (b(2) & 0x3F);
    if (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *out = c;
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const char32_t c = (char32_t{b0} & 0x07) << 18 | (char32_t{b(1)} & 0x3F) << 12 |
                       (char32_t{b(2)} & 0x3F) << 6 | (b(3) & 0x3F);
    if (c < 0x10000 || c > 0x10FFFF) return 0;
    *out = c;
    return 4;
  }
  return 0;
}

#include "common/evals/metrics/lowercase_table.inc"

// Python's str.lower() of c where that is one code point; c itself elsewhere.
char32_t LowerOne(char32_t c) {
  const LowerRun* end = std::end(kLowerRuns);
  const LowerRun* it = std::upper_bound(std::begin(kLowerRuns), end, c,
                                        [](char32_t v, const LowerRun& r) { return v < r.first; });
  if (it == std::begin(kLowerRuns)) return c;
  --it;
  if (c > it->last || (c - it->first) % it->stride != 0) return c;
  return static_cast<char32_t>(static_cast<int64_t>(c) + it->delta);
}

bool InRanges(char32_t c, const CodePointRange* begin, const CodePointRange* end) {
  const CodePointRange* it = std::upper_bound(
      begin, end, c, [](char32_t v, const CodePointRange& r) { return v < r.first; });
  return it != begin && c <= (it - 1)->last;
}

bool IsCased(char32_t c) { return InRanges(c, std::begin(kCasedRanges), std::end(kCasedRanges)); }

bool IsCaseIgnorable(char32_t c) {
  return InRanges(c, std::begin(kCaseIgnorableRanges), std::end(kCaseIgnorableRanges));
}

// Python's handle_capital_sigma: Σ at text[i] is final when a cased code point precedes it
// and none follows it, skipping case-ignorable code points both ways. Linear overall: each
// run of case-ignorables is scanned by at most the two sigmas around it.
bool IsFinalSigma(std::u32string_view text, size_t i) {
  size_t j = i;
  while (j > 0 && IsCaseIgnorable(text[j - 1])) --j;
  if (j == 0 || !IsCased(text[j - 1])) return false;
  size_t k = i + 1;
  while (k < text.size() && IsCaseIgnorable(text[k])) ++k;
  return k == text.size() || !IsCased(text[k]);
}

}  // namespace

std::u32string DecodeUtf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    char32_t c = 0;
    const size_t n = DecodeOne(text, i, &c);
    if (n == 0) {
      out.push_back(kEscapeBase + static_cast<unsigned char>(text[i]));
      ++i;
    } else {
      out.push_back(c);
      i += n;
    }
  }
  return out;
}

std::string EncodeUtf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    if (c >= 0xDC80 && c <= 0xDCFF) {
      out.push_back(static_cast<char>(c - kEscapeBase));
      continue;
    }
    if ((c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) c = 0xFFFD;
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (c >> 12)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (c >> 18)));
      out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

size_t CountCodePoints(std::string_view text) {
  size_t count = 0;
  size_t i = 0;
  while (i < text.size()) {
    char32_t c = 0;
    const size_t n = DecodeOne(text, i, &c);
    i += n == 0 ? 1 : n;
    ++count;
  }
  return count;
}

std::string_view TruncateUtf8(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t i = 0;
  while (i < max_bytes) {
    char32_t c = 0;
    size_t n = DecodeOne(text, i, &c);
    if (n == 0) n = 1;
    if (i + n > max_bytes) break;
    i += n;
  }
  return text.substr(0, i);
}

bool IsSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

std::u32string Lowercase(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t c = text[i];
    if (c == 0x130) {  // İ: Python's full lowercase mapping, "i" + COMBINING DOT ABOVE.
      out.push_back('i');
      out.push_back(0x307);
      continue;
    }
    if (c == 0x3A3) {
      out.push_back(IsFinalSigma(text, i) ? 0x3C2 : 0x3C3);
      continue;
    }
    out.push_back(LowerOne(c));
  }
  return out;
}

bool IsAsciiPunct(char32_t c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
         (c >= 0x7B && c <= 0x7E);
}

bool IsPunct(char32_t c) {
  if (IsAsciiPunct(c)) return true;
  switch (c) {
    case 0xA1:
    case 0xA7:
    case 0xAB:
    case 0xB6:
    case 0xB7:
    case 0xBB:
    case 0xBF: return true;
    default: break;
  }
  return (c >= 0x2010 && c <= 0x2027) || (c >= 0x2030 && c <= 0x205E) ||
         (c >= 0x3001 && c <= 0x3003) || (c >= 0x3008 && c <= 0x3011);
}

}  // namespace assay::evals::internal
