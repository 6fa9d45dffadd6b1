// BLEU as sacreBLEU 2.x: sacrebleu/metrics/bleu.py, tokenizers/tokenizer_13a.py and
// tokenizer_re.py (mjpost/sacrebleu, Apache-2.0), ported to code points.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/evals/metrics/ref_streams.h"
#include "common/evals/metrics/text_metrics.h"
#include "common/evals/metrics/unicode.h"

namespace assay::evals {
namespace {

using internal::IsSpace;

constexpr int kOrder = 4;

void ReplaceAll(std::u32string& s, std::u32string_view from, std::u32string_view to) {
  if (s.find(from) == std::u32string::npos) return;
  std::u32string out;
  out.reserve(s.size());
  size_t at = 0;
  while (true) {
    const size_t hit = s.find(from, at);
    if (hit == std::u32string::npos) break;
    out.append(s, at, hit - at);
    out.append(to);
    at = hit + from.size();
  }
  out.append(s, at, std::u32string::npos);
  s = std::move(out);
}

bool IsDigit(char32_t c) { return c >= '0' && c <= '9'; }

// The class of tokenizer_re.py's first rule: [\{-\~\[-\` -\&\(-\+\:-\@\/].
bool IsSplitSymbol(char32_t c) {
  return (c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
         (c >= 0x28 && c <= 0x2B) || (c >= 0x3A && c <= 0x40) || c == '/';
}

bool IsPeriodComma(char32_t c) { return c == '.' || c == ','; }

// Python's re.sub for a two-character pattern (first, second) -> `emit`: the leftmost match,
// then the search resumes after it (matches never overlap).
template <typename First, typename Second, typename Emit>
std::u32string SubPairs(const std::u32string& s, First first, Second second, Emit emit) {
  std::u32string out;
  out.reserve(s.size() + s.size() / 4);
  size_t i = 0;
  while (i < s.size()) {
    if (i + 1 < s.size() && first(s[i]) && second(s[i + 1])) {
      emit(out, s[i], s[i + 1]);
      i += 2;
    } else {
      out.push_back(s[i]);
      ++i;
    }
  }
  return out;
}

// Tokenizer13a followed by TokenizerRegexp, before the final whitespace split.
std::u32string Tokenize13a(std::u32string line) {
  ReplaceAll(line, U"<skipped>", U"");
  ReplaceAll(line, U"-\n", U"");
  ReplaceAll(line, U"\n", U" ");
  if (line.find(U'&') != std::u32string::npos) {
    ReplaceAll(line, U"&quot;", U"\"");
    ReplaceAll(line, U"&amp;", U"&");
    ReplaceAll(line, U"&lt;", U"<");
    ReplaceAll(line, U"&gt;", U">");
  }
  std::u32string s;
  s.reserve(line.size() + 2);
  s.push_back(U' ');
  for (char32_t c : line) {
    if (IsSplitSymbol(c)) {
      s.push_back(U' ');
      s.push_back(c);
      s.push_back(U' ');
    } else {
      s.push_back(c);
    }
  }
  s.push_back(U' ');
  const auto not_digit = [](char32_t c) { return !IsDigit(c); };
  // ([^0-9])([\.,]) -> \1 \2
  s = SubPairs(s, not_digit, IsPeriodComma, [](std::u32string& o, char32_t a, char32_t b) {
    o.push_back(a);
    o.push_back(U' ');
    o.push_back(b);
    o.push_back(U' ');
  });
  // ([\.,])([^0-9]) -> " \1 \2"
  s = SubPairs(s, IsPeriodComma, not_digit, [](std::u32string& o, char32_t a, char32_t b) {
    o.push_back(U' ');
    o.push_back(a);
    o.push_back(U' ');
    o.push_back(b);
  });
  // ([0-9])(-) -> "\1 \2 "
  s = SubPairs(
      s, IsDigit, [](char32_t c) { return c == U'-'; },
      [](std::u32string& o, char32_t a, char32_t b) {
        o.push_back(a);
        o.push_back(U' ');
        o.push_back(b);
        o.push_back(U' ');
      });
  return s;
}

// A segment's tokens, joined by single spaces in `text`; token k is
// text[start[k], end[k]). Word n-grams are then substrings of `text`: tokens hold no
// whitespace, so equal substrings are equal token tuples.
struct Tokens {
  std::u32string text;
  std::vector<size_t> start, end;

  size_t size() const { return start.size(); }
  std::u32string_view Ngram(size_t i, size_t n) const {
    return std::u32string_view(text).substr(start[i], end[i + n - 1] - start[i]);
  }
};

Tokens Preprocess(std::string_view raw, const BleuOptions& options) {
  std::u32string s = internal::DecodeUtf8(internal::TruncateUtf8(raw, kMaxMetricTextBytes));
  if (options.lowercase) s = internal::Lowercase(s);
  while (!s.empty() && IsSpace(s.back())) s.pop_back();  // rstrip()
  if (options.tokenize == BleuTokenize::k13a) s = Tokenize13a(std::move(s));
  Tokens t;
  t.text.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && IsSpace(s[i])) ++i;
    if (i == s.size()) break;
    size_t j = i;
    while (j < s.size() && !IsSpace(s[j])) ++j;
    if (!t.text.empty()) t.text.push_back(U' ');
    t.start.push_back(t.text.size());
    t.text.append(s, i, j - i);
    t.end.push_back(t.text.size());
    i = j;
  }
  return t;
}

using NgramCounts = std::unordered_map<std::u32string_view, int64_t>;

NgramCounts CountNgrams(const Tokens& t, size_t n) {
  NgramCounts counts;
  if (t.size() < n) return counts;
  counts.reserve(t.size() - n + 1);
  for (size_t i = 0; i + n <= t.size(); ++i) ++counts[t.Ngram(i, n)];
  return counts;
}

int64_t ClosestRefLen(int64_t hyp_len, const std::vector<Tokens>& refs) {
  int64_t closest_diff = -1, closest_len = 0;
  for (const Tokens& r : refs) {
    const int64_t len = static_cast<int64_t>(r.size());
    const int64_t diff = std::llabs(hyp_len - len);
    if (closest_diff == -1 || diff < closest_diff) {
      closest_diff = diff;
      closest_len = len;
    } else if (diff == closest_diff && len < closest_len) {
      closest_len = len;
    }
  }
  return closest_len;
}

BleuStats StatsOf(const Tokens& hyp, const std::vector<Tokens>& refs) {
  BleuStats stats;
  stats.sys_len = static_cast<int64_t>(hyp.size());
  stats.ref_len = ClosestRefLen(stats.sys_len, refs);
  for (size_t n = 1; n <= kOrder; ++n) {
    if (hyp.size() < n) break;
    NgramCounts ref_max;
    for (const Tokens& r : refs) {
      for (const auto& [gram, count] : CountNgrams(r, n)) {
        int64_t& slot = ref_max[gram];
        slot = std::max(slot, count);
      }
    }
    const NgramCounts hyp_counts = CountNgrams(hyp, n);
    int64_t total = 0, correct = 0;
    for (const auto& [gram, count] : hyp_counts) {
      total += count;
      const auto it = ref_max.find(gram);
      if (it != ref_max.end()) correct += std::min(count, it->second);
    }
    stats.totals[n - 1] = total;
    stats.counts[n - 1] = correct;
  }
  return stats;
}

// sacrebleu.utils.my_log.
double MyLog(double x) { return x == 0.0 ? -9999999999.0 : std::log(x); }

}  // namespace

BleuOptions SentenceBleuOptions() {
  BleuOptions options;
  options.effective_order = true;
  return options;
}

BleuStats& BleuStats::operator+=(const BleuStats& other) {
  sys_len += other.sys_len;
  ref_len += other.ref_len;
  for (int n = 0; n < kOrder; ++n) {
    counts[n] += other.counts[n];
    totals[n] += other.totals[n];
  }
  return *this;
}

BleuStats SentenceBleuStats(std::string_view hyp, const std::vector<std::string>& refs,
                            const BleuOptions& options) {
  std::vector<Tokens> ref_tokens;
  ref_tokens.reserve(refs.size());
  for (const std::string& r : refs) ref_tokens.push_back(Preprocess(r, options));
  return StatsOf(Preprocess(hyp, options), ref_tokens);
}

std::vector<BleuStats> CorpusBleuStats(const std::vector<std::string>& hyps,
                                       const std::vector<std::vector<std::string>>& ref_streams,
                                       const BleuOptions& options) {
  return internal::PerHypothesis<BleuStats>(
      hyps, ref_streams, [&](const std::string& hyp, const std::vector<std::string>& refs) {
        return SentenceBleuStats(hyp, refs, options);
      });
}

BleuScore BleuFromStats(const std::array<int64_t, 4>& counts, const std::array<int64_t, 4>& totals,
                        int64_t sys_len, int64_t ref_len, const BleuOptions& options) {
  BleuScore result;
  result.counts = counts;
  result.totals = totals;
  result.sys_len = sys_len;
  result.ref_len = ref_len;
  // Why: a negative or non-finite value (from a pipeline file) would make the score NaN.
  const auto value_or = [&](double fallback) {
    const double v = options.smooth_value.value_or(fallback);
    return std::isfinite(v) && v >= 0 ? v : fallback;
  };
  double smooth_value = 0;
  if (options.smooth_method == BleuSmooth::kFloor) smooth_value = value_or(0.1);
  if (options.smooth_method == BleuSmooth::kAddK) smooth_value = value_or(1);

  result.bp = 1.0;
  if (sys_len < ref_len) {
    result.bp = sys_len > 0
                    ? std::exp(1.0 - static_cast<double>(ref_len) / static_cast<double>(sys_len))
                    : 0.0;
  }
  // Early stop if there are no matches (sacrebleu #141).
  if (std::all_of(counts.begin(), counts.end(), [](int64_t c) { return c == 0; })) {
    result.score = 0;
    return result;
  }
  double smooth_mteval = 1.0;
  int eff_order = kOrder;
  for (int n = 1; n <= kOrder; ++n) {
    double correct = static_cast<double>(counts[n - 1]);
    double total = static_cast<double>(totals[n - 1]);
    if (options.smooth_method == BleuSmooth::kAddK && n > 1) {
      correct += smooth_value;
      total += smooth_value;
    }
    if (total == 0) break;
    if (options.effective_order) eff_order = n;
    if (correct == 0) {
      if (options.smooth_method == BleuSmooth::kExp) {
        smooth_mteval *= 2;
        result.precisions[n - 1] = 100.0 / (smooth_mteval * total);
      } else if (options.smooth_method == BleuSmooth::kFloor) {
        result.precisions[n - 1] = 100.0 * smooth_value / total;
      }
    } else {
      result.precisions[n - 1] = 100.0 * correct / total;
    }
  }
  double sum = 0;
  for (int n = 0; n < eff_order; ++n) sum += MyLog(result.precisions[n]);
  result.score = result.bp * std::exp(sum / eff_order);
  return result;
}

BleuScore BleuFromStats(const BleuStats& stats, const BleuOptions& options) {
  return BleuFromStats(stats.counts, stats.totals, stats.sys_len, stats.ref_len, options);
}

BleuScore CorpusBleu(const std::vector<std::string>& hyps,
                     const std::vector<std::vector<std::string>>& ref_streams,
                     const BleuOptions& options) {
  BleuStats sum;
  for (const BleuStats& s : CorpusBleuStats(hyps, ref_streams, options)) sum += s;
  return BleuFromStats(sum, options);
}

BleuScore SentenceBleu(std::string_view hyp, const std::vector<std::string>& refs,
                       BleuOptions options) {
  return BleuFromStats(SentenceBleuStats(hyp, refs, options), options);
}

}  // namespace assay::evals
