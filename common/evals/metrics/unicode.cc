#include "common/evals/metrics/unicode.h"

#include <cstdint>

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

bool InRange(char32_t c, char32_t lo, char32_t hi) { return c >= lo && c <= hi; }

// Pairs where the upper case letter has the given parity and the lower case one follows it.
char32_t Pair(char32_t c, char32_t lo, char32_t hi, bool upper_even) {
  if (!InRange(c, lo, hi)) return 0;
  return ((c % 2 == 0) == upper_even) ? c + 1 : c;
}

// The simple lowercase of c for the blocks that Lowercase documents; c itself elsewhere.
char32_t LowerOne(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  if (InRange(c, 0xC0, 0xDE) && c != 0xD7) return c + 32;
  if (c < 0x100) return c;
  if (c < 0x180) {
    if (c <= 0x12F) return Pair(c, 0x100, 0x12F, true);
    if (InRange(c, 0x132, 0x137)) return Pair(c, 0x132, 0x137, true);
    if (InRange(c, 0x139, 0x148)) return Pair(c, 0x139, 0x148, false);
    if (InRange(c, 0x14A, 0x177)) return Pair(c, 0x14A, 0x177, true);
    if (c == 0x178) return 0xFF;
    if (InRange(c, 0x179, 0x17E)) return Pair(c, 0x179, 0x17E, false);
    return c;
  }
  if (c < 0x250) {
    switch (c) {
      case 0x1C4:
      case 0x1C5: return 0x1C6;
      case 0x1C7:
      case 0x1C8: return 0x1C9;
      case 0x1CA:
      case 0x1CB: return 0x1CC;
      case 0x1F1:
      case 0x1F2: return 0x1F3;
      default: break;
    }
    if (InRange(c, 0x1CD, 0x1DC)) return Pair(c, 0x1CD, 0x1DC, false);
    if (InRange(c, 0x1DE, 0x1EF)) return Pair(c, 0x1DE, 0x1EF, true);
    if (InRange(c, 0x1F8, 0x21F)) return Pair(c, 0x1F8, 0x21F, true);
    if (InRange(c, 0x222, 0x233)) return Pair(c, 0x222, 0x233, true);
    return c;
  }
  if (InRange(c, 0x370, 0x3FF)) {
    if (c == 0x386) return 0x3AC;
    if (InRange(c, 0x388, 0x38A)) return c + 37;
    if (c == 0x38C) return 0x3CC;
    if (InRange(c, 0x38E, 0x38F)) return c + 63;
    if (InRange(c, 0x391, 0x3A1) || InRange(c, 0x3A3, 0x3AB)) return c + 32;
    if (InRange(c, 0x3D8, 0x3EF)) return Pair(c, 0x3D8, 0x3EF, true);
    return c;
  }
  if (InRange(c, 0x400, 0x52F)) {
    if (c <= 0x40F) return c + 80;
    if (c <= 0x42F) return c + 32;
    if (InRange(c, 0x460, 0x481)) return Pair(c, 0x460, 0x481, true);
    if (InRange(c, 0x48A, 0x4BF)) return Pair(c, 0x48A, 0x4BF, true);
    if (c == 0x4C0) return 0x4CF;
    if (InRange(c, 0x4C1, 0x4CE)) return Pair(c, 0x4C1, 0x4CE, false);
    if (InRange(c, 0x4D0, 0x52F)) return Pair(c, 0x4D0, 0x52F, true);
    return c;
  }
  if (InRange(c, 0x531, 0x556)) return c + 48;
  if (InRange(c, 0x10A0, 0x10C5)) return c + 7264;
  if (InRange(c, 0x1E00, 0x1E95)) return Pair(c, 0x1E00, 0x1E95, true);
  if (c == 0x1E9E) return 0xDF;
  if (InRange(c, 0x1EA0, 0x1EFF)) return Pair(c, 0x1EA0, 0x1EFF, true);
  if (c == 0x2126) return 0x3C9;
  if (c == 0x212A) return 'k';
  if (c == 0x212B) return 0xE5;
  if (InRange(c, 0x2160, 0x216F)) return c + 16;
  if (InRange(c, 0x24B6, 0x24CF)) return c + 26;
  if (InRange(c, 0xFF21, 0xFF3A)) return c + 32;
  return c;
}

// A letter that has case, for the final-sigma rule: one that LowerOne changes or that is
// the lowercase of one it changes (approximated by the blocks LowerOne knows).
bool IsCased(char32_t c) {
  if (LowerOne(c) != c) return true;
  if ((c >= 'a' && c <= 'z') || InRange(c, 0xDF, 0xFF)) return c != 0xF7;
  return InRange(c, 0x100, 0x24F) || InRange(c, 0x3AC, 0x3FF) || InRange(c, 0x430, 0x52F) ||
         InRange(c, 0x561, 0x586) || InRange(c, 0x1E00, 0x1EFF);
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
    if (c == 0x3A3) {  // Σ: final sigma after a cased letter unless one follows.
      const bool after_cased = i > 0 && IsCased(text[i - 1]);
      const bool before_cased = i + 1 < text.size() && IsCased(text[i + 1]);
      out.push_back(after_cased && !before_cased ? 0x3C2 : 0x3C3);
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
