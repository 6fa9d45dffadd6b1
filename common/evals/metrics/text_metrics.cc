// Normalisation, exact match, edit similarity, token estimate and cost (text_metrics.h).
#include "common/evals/metrics/text_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common/evals/metrics/unicode.h"

namespace assay::evals {
namespace {

using internal::IsPunct;
using internal::IsSpace;

bool IsArticle(std::u32string_view w) {
  const auto lower = [](char32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; };
  std::u32string l;
  for (char32_t c : w) l.push_back(lower(c));
  return l == U"a" || l == U"an" || l == U"the";
}

std::u32string RemoveArticles(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (IsSpace(s[i]) || IsPunct(s[i])) {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i;
    while (j < s.size() && !IsSpace(s[j]) && !IsPunct(s[j])) ++j;
    const std::u32string_view word = std::u32string_view(s).substr(i, j - i);
    if (IsArticle(word)) {
      out.push_back(U' ');
    } else {
      out.append(word);
    }
    i = j;
  }
  return out;
}

}  // namespace

std::string Normalize(std::string_view text, const NormalizeOptions& options) {
  if (!options.lowercase && !options.strip && !options.collapse_whitespace &&
      !options.remove_punctuation && !options.remove_articles) {
    return std::string(text);
  }
  std::u32string s = internal::DecodeUtf8(text);
  if (options.lowercase) s = internal::Lowercase(s);
  if (options.remove_punctuation) {
    s.erase(std::remove_if(s.begin(), s.end(), IsPunct), s.end());
  }
  if (options.remove_articles) s = RemoveArticles(s);
  if (options.collapse_whitespace) {
    std::u32string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      if (!IsSpace(s[i])) {
        out.push_back(s[i]);
      } else if (i == 0 || !IsSpace(s[i - 1])) {
        out.push_back(U' ');
      }
    }
    s = std::move(out);
  }
  if (options.strip) {
    size_t b = 0, e = s.size();
    while (b < e && IsSpace(s[b])) ++b;
    while (e > b && IsSpace(s[e - 1])) --e;
    s = s.substr(b, e - b);
  }
  return internal::EncodeUtf8(s);
}

bool ExactMatch(std::string_view output, std::string_view expected,
                const NormalizeOptions& options) {
  return Normalize(output, options) == Normalize(expected, options);
}

double EditSimilarity(std::string_view a, std::string_view b) {
  std::u32string x = internal::DecodeUtf8(a);
  std::u32string y = internal::DecodeUtf8(b);
  if (x.size() > kMaxEditCodePoints) x.resize(kMaxEditCodePoints);
  if (y.size() > kMaxEditCodePoints) y.resize(kMaxEditCodePoints);
  const size_t longest = std::max(x.size(), y.size());
  if (longest == 0) return 1.0;
  // A common prefix and suffix cost nothing; only the middle needs the quadratic table.
  size_t pre = 0;
  while (pre < x.size() && pre < y.size() && x[pre] == y[pre]) ++pre;
  size_t suf = 0;
  while (suf < x.size() - pre && suf < y.size() - pre &&
         x[x.size() - 1 - suf] == y[y.size() - 1 - suf]) {
    ++suf;
  }
  const std::u32string_view u = std::u32string_view(x).substr(pre, x.size() - pre - suf);
  const std::u32string_view v = std::u32string_view(y).substr(pre, y.size() - pre - suf);
  std::vector<int32_t> prev(v.size() + 1), cur(v.size() + 1);
  for (size_t j = 0; j <= v.size(); ++j) prev[j] = static_cast<int32_t>(j);
  for (size_t i = 1; i <= u.size(); ++i) {
    cur[0] = static_cast<int32_t>(i);
    for (size_t j = 1; j <= v.size(); ++j) {
      const int32_t sub = prev[j - 1] + (u[i - 1] == v[j - 1] ? 0 : 1);
      cur[j] = std::min({sub, prev[j] + 1, cur[j - 1] + 1});
    }
    std::swap(prev, cur);
  }
  const double distance = prev[v.size()];
  return 1.0 - distance / static_cast<double>(longest);
}

int64_t EstimateTokens(std::string_view text) {
  const auto points = static_cast<int64_t>(internal::CountCodePoints(text));
  return (points + 3) / 4;
}

double Cost(int64_t input_tokens, int64_t output_tokens, const Price& price) {
  const double in = static_cast<double>(std::max<int64_t>(input_tokens, 0));
  const double out = static_cast<double>(std::max<int64_t>(output_tokens, 0));
  return in * price.input_per_mtok / 1e6 + out * price.output_per_mtok / 1e6;
}

}  // namespace assay::evals
