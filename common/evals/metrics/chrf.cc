// chrF and chrF++ as sacreBLEU 2.x: sacrebleu/metrics/chrf.py and helpers.py
// (mjpost/sacrebleu, Apache-2.0), ported to code points.
#include <algorithm>
#include <cmath>
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

struct Orders {
  int chars;
  int words;
  int total() const { return chars + words; }
};

Orders OrdersOf(const ChrfOptions& o) {
  return {std::clamp(o.char_order, 0, 16), std::clamp(o.word_order, 0, 8)};
}

// One segment prepared for n-gram counting: the characters (whitespace removed unless kept)
// and the chrF++ words joined by single spaces (word k is words[start[k], end[k])).
struct Segment {
  std::u32string chars;
  std::u32string words;
  std::vector<size_t> start, end;

  std::u32string_view CharNgram(size_t i, size_t n) const {
    return std::u32string_view(chars).substr(i, n);
  }
  std::u32string_view WordNgram(size_t i, size_t n) const {
    return std::u32string_view(words).substr(start[i], end[i + n - 1] - start[i]);
  }
};

// sacreBLEU's CHRF._PUNCTS, string.punctuation.
bool IsPunct(char32_t c) { return internal::IsAsciiPunct(c); }

void AddWord(Segment& seg, std::u32string_view w) {
  if (!seg.words.empty()) seg.words.push_back(U' ');
  seg.start.push_back(seg.words.size());
  seg.words.append(w);
  seg.end.push_back(seg.words.size());
}

Segment Prepare(std::string_view raw, const ChrfOptions& options, bool need_words) {
  std::u32string s = internal::DecodeUtf8(internal::TruncateUtf8(raw, kMaxMetricTextBytes));
  if (options.lowercase) s = internal::Lowercase(s);
  Segment seg;
  if (options.whitespace) {
    seg.chars = s;
  } else {
    seg.chars.reserve(s.size());
    for (char32_t c : s) {
      if (!IsSpace(c)) seg.chars.push_back(c);
    }
  }
  if (!need_words) return seg;
  // CHRF._remove_punctuation: one punctuation character split off the end of a word longer
  // than one character, or else off its start.
  const std::u32string_view v(s);
  size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && IsSpace(v[i])) ++i;
    if (i == v.size()) break;
    size_t j = i;
    while (j < v.size() && !IsSpace(v[j])) ++j;
    const std::u32string_view w = v.substr(i, j - i);
    if (w.size() == 1) {
      AddWord(seg, w);
    } else if (IsPunct(w.back())) {
      AddWord(seg, w.substr(0, w.size() - 1));
      AddWord(seg, w.substr(w.size() - 1));
    } else if (IsPunct(w.front())) {
      AddWord(seg, w.substr(0, 1));
      AddWord(seg, w.substr(1));
    } else {
      AddWord(seg, w);
    }
    i = j;
  }
  return seg;
}

using NgramCounts = std::unordered_map<std::u32string_view, int64_t>;

// Order index k < orders.chars: character n-grams of order k + 1; else word n-grams of
// order k - orders.chars + 1.
NgramCounts CountNgrams(const Segment& seg, int k, const Orders& orders) {
  NgramCounts counts;
  if (k < orders.chars) {
    const size_t n = static_cast<size_t>(k) + 1;
    if (seg.chars.size() < n) return counts;
    counts.reserve(seg.chars.size() - n + 1);
    for (size_t i = 0; i + n <= seg.chars.size(); ++i) ++counts[seg.CharNgram(i, n)];
  } else {
    const size_t n = static_cast<size_t>(k - orders.chars) + 1;
    if (seg.start.size() < n) return counts;
    counts.reserve(seg.start.size() - n + 1);
    for (size_t i = 0; i + n <= seg.start.size(); ++i) ++counts[seg.WordNgram(i, n)];
  }
  return counts;
}

// CHRF._compute_f_score.
double FScore(const std::vector<int64_t>& stats, const Orders& orders, const ChrfOptions& o) {
  const int order = orders.total();
  if (order == 0) return 0;
  constexpr double kEps = 1e-16;
  // Why: a non-finite beta (from a pipeline file) would make the score NaN.
  const double beta = std::isfinite(o.beta) ? o.beta : 2.0;
  const double factor = beta * beta;
  double score = 0, avg_prec = 0, avg_rec = 0;
  int effective_order = 0;
  for (int i = 0; i < order; ++i) {
    const size_t at = 3 * static_cast<size_t>(i);
    const int64_t n_hyp = at < stats.size() ? stats[at] : 0;
    const int64_t n_ref = at + 1 < stats.size() ? stats[at + 1] : 0;
    const int64_t n_match = at + 2 < stats.size() ? stats[at + 2] : 0;
    const double prec =
        n_hyp > 0 ? static_cast<double>(n_match) / static_cast<double>(n_hyp) : kEps;
    const double rec = n_ref > 0 ? static_cast<double>(n_match) / static_cast<double>(n_ref) : kEps;
    const double denom = factor * prec + rec;
    score += denom > 0 ? ((1 + factor) * prec * rec / denom) : kEps;
    if (n_hyp > 0 && n_ref > 0) {
      avg_prec += prec;
      avg_rec += rec;
      ++effective_order;
    }
  }
  if (o.eps_smoothing) return 100 * score / order;
  if (effective_order == 0) {
    avg_prec = avg_rec = 0;
  } else {
    avg_prec /= effective_order;
    avg_rec /= effective_order;
  }
  if (avg_prec + avg_rec != 0) {
    score = (1 + factor) * avg_prec * avg_rec;
    score /= (factor * avg_prec) + avg_rec;
    return 100 * score;
  }
  return 0.0;
}

}  // namespace

ChrfStats& ChrfStats::operator+=(const ChrfStats& other) {
  if (values.size() < other.values.size()) values.resize(other.values.size(), 0);
  for (size_t i = 0; i < other.values.size(); ++i) values[i] += other.values[i];
  return *this;
}

ChrfStats SentenceChrfStats(std::string_view hyp, const std::vector<std::string>& refs,
                            const ChrfOptions& options) {
  const Orders orders = OrdersOf(options);
  const size_t width = 3 * static_cast<size_t>(orders.total());
  ChrfStats best;
  best.values.assign(width, 0);
  if (refs.empty()) return best;
  const bool words = orders.words > 0;
  const Segment h = Prepare(hyp, options, words);
  std::vector<Segment> r;
  r.reserve(refs.size());
  for (const std::string& ref : refs) r.push_back(Prepare(ref, options, words));
  std::vector<std::vector<int64_t>> stats(refs.size(), std::vector<int64_t>(width, 0));
  // Orders outside, references inside: one order's n-grams in memory at a time.
  for (int k = 0; k < orders.total(); ++k) {
    const NgramCounts hyp_counts = CountNgrams(h, k, orders);
    for (size_t j = 0; j < r.size(); ++j) {
      const NgramCounts ref_counts = CountNgrams(r[j], k, orders);
      int64_t hyp_total = 0, ref_total = 0, match = 0;
      for (const auto& [gram, count] : hyp_counts) {
        hyp_total += count;
        const auto it = ref_counts.find(gram);
        if (it != ref_counts.end()) match += std::min(count, it->second);
      }
      for (const auto& entry : ref_counts) ref_total += entry.second;
      const size_t at = 3 * static_cast<size_t>(k);
      stats[j][at] = ref_counts.empty() ? 0 : hyp_total;
      stats[j][at + 1] = ref_total;
      stats[j][at + 2] = match;
    }
  }
  double best_f = -1;
  for (const auto& s : stats) {
    const double f = FScore(s, orders, options);
    if (f > best_f) {
      best_f = f;
      best.values = s;
    }
  }
  return best;
}

std::vector<ChrfStats> CorpusChrfStats(const std::vector<std::string>& hyps,
                                       const std::vector<std::vector<std::string>>& ref_streams,
                                       const ChrfOptions& options) {
  return internal::PerHypothesis<ChrfStats>(
      hyps, ref_streams, [&](const std::string& hyp, const std::vector<std::string>& refs) {
        return SentenceChrfStats(hyp, refs, options);
      });
}

double ChrfFromStats(const ChrfStats& stats, const ChrfOptions& options) {
  return FScore(stats.values, OrdersOf(options), options);
}

double CorpusChrf(const std::vector<std::string>& hyps,
                  const std::vector<std::vector<std::string>>& ref_streams,
                  const ChrfOptions& options) {
  ChrfStats sum;
  for (const ChrfStats& s : CorpusChrfStats(hyps, ref_streams, options)) sum += s;
  return ChrfFromStats(sum, options);
}

double SentenceChrf(std::string_view hyp, const std::vector<std::string>& refs,
                    const ChrfOptions& options) {
  return ChrfFromStats(SentenceChrfStats(hyp, refs, options), options);
}

}  // namespace assay::evals
