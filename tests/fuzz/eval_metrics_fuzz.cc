// Fuzzes every text metric of common/evals/metrics/text_metrics.h with arbitrary bytes.
// Input: one options byte, then hypothesis and reference separated by the first 0x00 (a
// second 0x00 starts a second reference). Contract: no crash, no hang, no unbounded memory;
// every score finite and in range (BLEU and chrF 0..100; ROUGE, edit similarity 0..1);
// EditSimilarity symmetric and 1 on equal texts; Normalize with no option returns the input;
// the corpus score of one segment equals its statistics' score; bootstrap intervals ordered.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/evals/metrics/stats.h"
#include "common/evals/metrics/text_metrics.h"

namespace {

void Require(bool ok) {
  if (!ok) std::abort();
}

bool InRange(double v, double hi) { return std::isfinite(v) && v >= 0 && v <= hi + 1e-9; }

void CheckRouge(const assay::evals::RougeScore& s) {
  Require(InRange(s.precision, 1) && InRange(s.recall, 1) && InRange(s.fmeasure, 1));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace assay::evals;
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<std::string> parts;
  while (parts.size() < 2) {
    const size_t end = in.find('\0');
    if (end == std::string_view::npos) break;
    parts.emplace_back(in.substr(0, end));
    in.remove_prefix(end + 1);
  }
  parts.emplace_back(in);
  const std::string& hyp = parts[0];
  const std::vector<std::string> refs(parts.begin() + 1, parts.end());  // May be empty.
  const std::string ref0 = refs.empty() ? std::string() : refs[0];

  NormalizeOptions n;
  n.lowercase = flags & 1;
  n.strip = flags & 2;
  n.collapse_whitespace = flags & 4;
  n.remove_punctuation = flags & 8;
  n.remove_articles = flags & 16;
  (void)ExactMatch(hyp, ref0, n);
  NormalizeOptions none;
  none.strip = false;
  Require(Normalize(hyp, none) == hyp);

  BleuOptions b;
  b.tokenize = flags & 1 ? BleuTokenize::kNone : BleuTokenize::k13a;
  b.smooth_method = static_cast<BleuSmooth>((flags >> 1) & 3);
  b.lowercase = flags & 8;
  b.effective_order = flags & 16;
  const BleuScore sentence = SentenceBleu(hyp, refs, b);
  Require(InRange(sentence.score, 100));
  const BleuScore corpus = CorpusBleu({hyp, ref0}, {refs, {hyp, hyp}}, b);
  Require(InRange(corpus.score, 100));
  Require(BleuFromStats(SentenceBleuStats(hyp, refs, b), b).score == sentence.score);

  ChrfOptions c;
  c.word_order = (flags >> 5) % 3;
  c.lowercase = flags & 1;
  c.whitespace = flags & 2;
  c.eps_smoothing = flags & 4;
  Require(InRange(SentenceChrf(hyp, refs, c), 100));
  Require(InRange(CorpusChrf({hyp, ref0}, {refs, {hyp, hyp}}, c), 100));

  CheckRouge(RougeL(ref0, hyp));
  CheckRouge(RougeN(ref0, hyp, 1 + flags % 4));
  CheckRouge(RougeLsum(ref0, hyp));

  const double e = EditSimilarity(hyp, ref0);
  Require(InRange(e, 1));
  Require(e == EditSimilarity(ref0, hyp));
  Require(EditSimilarity(hyp, hyp) == 1.0);
  Require(EstimateTokens(hyp) <= static_cast<int64_t>(hyp.size() + 3) / 4 + 1);

  const std::vector<double> v(hyp.begin(), hyp.end());
  const Interval i = MeanInterval(v);
  Require(v.size() < 2 || (i.lo <= i.mean && i.mean <= i.hi));
  if (!v.empty()) Require(std::isfinite(Percentile(v, flags % 101)));
  const std::vector<double> w(v.rbegin(), v.rend());
  const PairedBootstrap pb = PairedBootstrapMeans(v, w, 0.9, 1 + flags % 50, flags);
  Require(pb.lo <= pb.hi && pb.p_worse >= 0 && pb.p_worse <= 1);
  // Every d* is >= 0 or <= 0 (n = 0 gives zeros).
  Require(v.empty() || pb.p_worse + pb.p_worse_lower_is_better >= 1);
  (void)JudgeDrop(pb, 0.01, flags & 1);
  const int n_samples = 1 + flags % 20;
  const double pass = PassAtK(n_samples, static_cast<int>(v.size()) % (n_samples + 1), 1);
  Require(pass >= 0 && pass <= 1);
  return 0;
}
