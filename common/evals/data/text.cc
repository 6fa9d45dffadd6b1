#include "common/evals/data/text.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace assay::evals {
namespace {

// Decodes one UTF-8 sequence at text[i]; returns its length (0 when malformed) and the code
// point in *cp.
size_t DecodeUtf8(std::string_view text, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const size_t left = text.size() - i;
  const unsigned char c = b(0);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t len;
  uint32_t v;
  uint32_t min;
  if ((c & 0xE0) == 0xC0) {
    len = 2, v = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, v = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (left < len) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(k) & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return len;
}

// Even code point = capital, the next odd one = small (or the other way round when
// `odd_upper`), within [lo, hi].
bool PairLower(uint32_t cp, uint32_t lo, uint32_t hi, bool odd_upper, uint32_t* out) {
  if (cp < lo || cp > hi) return false;
  const bool upper = odd_upper ? (cp % 2 == 1) : (cp % 2 == 0);
  *out = upper ? cp + 1 : cp;
  return true;
}

// The simple lowercase of `cp` in the covered scripts (U+0130 and capital sigma are handled by
// the caller); `cp` itself elsewhere.
uint32_t LowerOf(uint32_t cp) {
  uint32_t out;
  if (cp >= 'A' && cp <= 'Z') return cp + 0x20;
  if (cp < 0xC0) return cp;
  if (cp <= 0xDE) return cp == 0xD7 ? cp : cp + 0x20;
  if (cp == 0x178) return 0xFF;
  if (PairLower(cp, 0x100, 0x137, false, &out)) return out;
  if (PairLower(cp, 0x139, 0x148, true, &out)) return out;
  if (PairLower(cp, 0x14A, 0x177, false, &out)) return out;
  if (PairLower(cp, 0x179, 0x17E, true, &out)) return out;
  if (cp == 0x386) return 0x3AC;
  if (cp >= 0x388 && cp <= 0x38A) return cp + 37;
  if (cp == 0x38C) return 0x3CC;
  if (cp == 0x38E || cp == 0x38F) return cp + 63;
  if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) return cp + 0x20;
  if (cp >= 0x400 && cp <= 0x40F) return cp + 0x50;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 0x20;
  if (PairLower(cp, 0x460, 0x481, false, &out)) return out;
  if (PairLower(cp, 0x48A, 0x4BF, false, &out)) return out;
  if (cp == 0x4C0) return 0x4CF;
  if (PairLower(cp, 0x4C1, 0x4CE, true, &out)) return out;
  if (PairLower(cp, 0x4D0, 0x52F, false, &out)) return out;
  if (cp >= 0x531 && cp <= 0x556) return cp + 0x30;
  if (PairLower(cp, 0x1E00, 0x1E95, false, &out)) return out;
  if (cp == 0x1E9E) return 0xDF;
  if (PairLower(cp, 0x1EA0, 0x1EFF, false, &out)) return out;
  if (cp >= 0xFF21 && cp <= 0xFF3A) return cp + 0x20;
  return cp;
}

// "Cased" for the final-sigma rule, within the covered scripts.
bool IsCased(uint32_t cp) {
  if ((cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z')) return true;
  if (cp >= 0xC0 && cp <= 0x24F) return cp != 0xD7 && cp != 0xF7;
  return (cp >= 0x370 && cp <= 0x3FF) || (cp >= 0x400 && cp <= 0x52F) ||
         (cp >= 0x531 && cp <= 0x587) || (cp >= 0x1E00 && cp <= 0x1EFF);
}

}  // namespace

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsValidUtf8(std::string_view text, size_t* bad_offset) {
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    const size_t n = DecodeUtf8(text, i, &cp);
    if (n == 0) {
      if (bad_offset != nullptr) *bad_offset = i;
      return false;
    }
    i += n;
  }
  return true;
}

std::string JsToLowerCase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  uint32_t prev = 0;  // The previous code point (0 at the start or after a bad byte).
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    const size_t n = DecodeUtf8(text, i, &cp);
    if (n == 0) {
      out.push_back(text[i]);
      prev = 0;
      ++i;
      continue;
    }
    if (cp == 0x130) {  // Capital I with dot: "i" and a combining dot above.
      out.append("i\xCC\x87");
    } else if (cp == 0x3A3) {  // Capital sigma: final form at the end of a word.
      uint32_t next = 0;
      const bool has_next = i + n < text.size() && DecodeUtf8(text, i + n, &next) != 0;
      const bool final_form = IsCased(prev) && !(has_next && IsCased(next));
      AppendUtf8(final_form ? 0x3C2 : 0x3C3, &out);
    } else {
      AppendUtf8(LowerOf(cp), &out);
    }
    prev = cp;
    i += n;
  }
  return out;
}

std::string JsNumberToString(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
  if (x == 0) return "0";
  std::string sign = x < 0 ? "-" : "";
  const double a = std::fabs(x);
  // The shortest %e form that reads back to the same double: its digits and exponent.
  std::string e;
  for (int p = 1; p <= 17; ++p) {
    e = absl::StrFormat("%.*e", p - 1, a);
    if (std::strtod(e.c_str(), nullptr) == a) break;
  }
  const size_t epos = e.find('e');
  std::string digits;
  for (size_t i = 0; i < epos; ++i) {
    if (e[i] != '.') digits.push_back(e[i]);
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  const int exp10 = std::atoi(e.c_str() + epos + 1);
  const int k = static_cast<int>(digits.size());
  const int n = exp10 + 1;  // The decimal point sits after n digits.
  if (k <= n && n <= 21) return absl::StrCat(sign, digits, std::string(n - k, '0'));
  if (0 < n && n <= 21) return absl::StrCat(sign, digits.substr(0, n), ".", digits.substr(n));
  if (-6 < n && n <= 0) return absl::StrCat(sign, "0.", std::string(-n, '0'), digits);
  const std::string mantissa =
      k == 1 ? digits : absl::StrCat(digits.substr(0, 1), ".", digits.substr(1));
  return absl::StrCat(sign, mantissa, "e", n - 1 >= 0 ? "+" : "-", std::abs(n - 1));
}

std::string Abbreviate(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t cut = max_bytes;
  // Back up over continuation bytes so a multi-byte character is not split.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(Av(text.substr(0, cut)), "...");
}

}  // namespace assay::evals
