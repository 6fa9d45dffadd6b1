#pragma once
// Text metrics for `eval:` steps (issue 10; docs/eval-metrics.md has the definitions and how
// each was checked against its reference implementation). Pure functions: no I/O, no global
// state, no exceptions; every input is accepted, including invalid UTF-8 and huge strings.
//
// Text is UTF-8. Where a metric works on characters it works on Unicode code points; a byte
// that is not part of valid UTF-8 counts as one code point of its own (never merged with its
// neighbours, never equal to a valid character), so invalid input is scored, not refused.
//
// Bounds (so that one huge model output cannot stall or exhaust the agent):
//   - BLEU and chrF read at most kMaxMetricTextBytes of each hypothesis and reference,
//     cut at a code point boundary (their cost is linear in that size).
//   - ROUGE reads at most kMaxRougeTokens tokens of each side (LCS is quadratic: at most
//     10^8 cells, computed in two rows; ROUGE-Lsum keeps one bit per cell, <= 12.5 MB).
//   - EditSimilarity reads at most kMaxEditCodePoints code points of each side (at most
//     4 x 10^8 cells, two rows of int32).

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace assay::evals {

inline constexpr size_t kMaxMetricTextBytes = 256 * 1024;
inline constexpr size_t kMaxRougeTokens = 10'000;
inline constexpr size_t kMaxEditCodePoints = 20'000;

// ---------------------------------------------------------------------------------------------
// Normalisation and exact match.

// Options of Normalize. The steps run in this order, each on the previous one's output:
//  1. lowercase: Python 3.11's str.lower() (Unicode 14.0; common/evals/metrics/
//     lowercase_table.inc): every code point's lowercase mapping, İ (U+0130) becoming
//     "i" + U+0307, and Σ becoming ς in Unicode's Final_Sigma context (a cased letter
//     before it and none after it, looking past case-ignorable marks and apostrophes).
//  2. remove_punctuation: deletes ASCII punctuation (Python's string.punctuation:
//     !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~), ¡ § « ¶ · » ¿, General Punctuation U+2010..U+2027 and
//     U+2030..U+205E (dashes, curly quotes, …, ‰, ‹ ›) and CJK 、。〃 〈..】 (U+3001..U+3003,
//     U+3008..U+3011). Deleted, not replaced by a space (SQuAD's normalize_answer).
//  3. remove_articles: replaces each whole word "a", "an" or "the" (ASCII, any case) by one
//     space. A word is a maximal run of code points that are neither whitespace nor
//     punctuation as defined in step 2 (so "the-end" holds the word "the", "theory" none).
//  4. collapse_whitespace: every run of whitespace becomes one U+0020.
//  5. strip: deletes leading and trailing whitespace.
// Whitespace is Python's str.isspace() set: U+0009..U+000D, U+001C..U+0020, U+0085, U+00A0,
// U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000. Bytes of invalid UTF-8 are
// kept as they are (none of the steps touches them). With every option false the text comes
// back byte for byte.
struct NormalizeOptions {
  bool lowercase = false;
  bool strip = true;
  bool collapse_whitespace = false;
  bool remove_punctuation = false;
  bool remove_articles = false;
};

std::string Normalize(std::string_view text, const NormalizeOptions& options);

// Normalize(output) == Normalize(expected), byte for byte.
bool ExactMatch(std::string_view output, std::string_view expected,
                const NormalizeOptions& options);

// ---------------------------------------------------------------------------------------------
// BLEU, as sacreBLEU 2.x (mjpost/sacrebleu, sacrebleu/metrics/bleu.py), max n-gram order 4.

enum class BleuTokenize {
  k13a,  // sacreBLEU's default, mteval-v13a's tokenisation (docs/eval-metrics.md).
  kNone  // Only whitespace splitting.
};
enum class BleuSmooth { kNone, kFloor, kAddK, kExp };

struct BleuOptions {
  BleuTokenize tokenize = BleuTokenize::k13a;
  BleuSmooth smooth_method = BleuSmooth::kExp;
  // Used by kFloor (default 0.1) and kAddK (default 1); unset, negative or non-finite means
  // that default.
  std::optional<double> smooth_value;
  bool lowercase = false;  // Lowercases as NormalizeOptions::lowercase before tokenising.
  bool effective_order = false;
};

// The options of sacrebleu.sentence_bleu: as BleuOptions() but effective_order true.
BleuOptions SentenceBleuOptions();

// Sufficient statistics of one segment (or, summed, of a corpus): a corpus score is
// BleuFromStats over the sum of its segments' statistics, which lets a caller resample
// examples without re-tokenising.
struct BleuStats {
  int64_t sys_len = 0;  // Hypothesis tokens.
  int64_t ref_len = 0;  // Tokens of the reference whose length is closest (ties: shorter).
  std::array<int64_t, 4> counts{};  // Clipped n-gram matches, n = 1..4.
  std::array<int64_t, 4> totals{};  // Hypothesis n-grams, n = 1..4.

  BleuStats& operator+=(const BleuStats& other);
  bool operator==(const BleuStats&) const = default;
};

struct BleuScore {
  double score = 0;                    // 0..100.
  std::array<double, 4> precisions{};  // Percent, after smoothing.
  double bp = 0;                       // Brevity penalty.
  int64_t sys_len = 0, ref_len = 0;
  std::array<int64_t, 4> counts{}, totals{};  // As given (before add-k smoothing).
};

// The statistics of one hypothesis against its references (any number; none gives
// ref_len 0 and no matches).
BleuStats SentenceBleuStats(std::string_view hyp, const std::vector<std::string>& refs,
                            const BleuOptions& options = BleuOptions());

// One BleuStats per hypothesis; ref_streams[k][i] is the k-th reference of hypothesis i
// (sacreBLEU's layout). A stream shorter than hyps gives no k-th reference to the
// hypotheses past its end (as sacreBLEU's None).
std::vector<BleuStats> CorpusBleuStats(const std::vector<std::string>& hyps,
                                       const std::vector<std::vector<std::string>>& ref_streams,
                                       const BleuOptions& options = BleuOptions());

BleuScore BleuFromStats(const std::array<int64_t, 4>& counts, const std::array<int64_t, 4>& totals,
                        int64_t sys_len, int64_t ref_len,
                        const BleuOptions& options = BleuOptions());
BleuScore BleuFromStats(const BleuStats& stats, const BleuOptions& options = BleuOptions());

// sacrebleu.corpus_bleu(hyps, ref_streams) with these options.
BleuScore CorpusBleu(const std::vector<std::string>& hyps,
                     const std::vector<std::vector<std::string>>& ref_streams,
                     const BleuOptions& options = BleuOptions());

// sacrebleu.sentence_bleu(hyp, refs): by default with effective order.
BleuScore SentenceBleu(std::string_view hyp, const std::vector<std::string>& refs,
                       BleuOptions options = SentenceBleuOptions());

// ---------------------------------------------------------------------------------------------
// chrF and chrF++, as sacreBLEU 2.x (sacrebleu/metrics/chrf.py).

struct ChrfOptions {
  int char_order = 6;       // Clamped to 0..16.
  int word_order = 0;       // 2 gives chrF++. Clamped to 0..8.
  double beta = 2;          // Non-finite means 2.
  bool lowercase = false;   // As NormalizeOptions::lowercase.
  bool whitespace = false;  // Keep whitespace in character n-grams.
  bool eps_smoothing = false;
};

// Per order (character orders 1..char_order, then word orders 1..word_order) three numbers:
// hypothesis n-grams (0 when the reference has none of that order), reference n-grams,
// clipped matches. Summable like BleuStats; an empty `values` is the zero of any size.
struct ChrfStats {
  std::vector<int64_t> values;

  ChrfStats& operator+=(const ChrfStats& other);
  bool operator==(const ChrfStats&) const = default;
};

// The statistics of one hypothesis against the best of its references (highest chrF; the
// first on ties). No references gives zeros.
ChrfStats SentenceChrfStats(std::string_view hyp, const std::vector<std::string>& refs,
                            const ChrfOptions& options = ChrfOptions());
std::vector<ChrfStats> CorpusChrfStats(const std::vector<std::string>& hyps,
                                       const std::vector<std::vector<std::string>>& ref_streams,
                                       const ChrfOptions& options = ChrfOptions());
// 0..100. `stats` must come from the same options (missing orders count as zeros).
double ChrfFromStats(const ChrfStats& stats, const ChrfOptions& options = ChrfOptions());

double CorpusChrf(const std::vector<std::string>& hyps,
                  const std::vector<std::vector<std::string>>& ref_streams,
                  const ChrfOptions& options = ChrfOptions());
double SentenceChrf(std::string_view hyp, const std::vector<std::string>& refs,
                    const ChrfOptions& options = ChrfOptions());

// ---------------------------------------------------------------------------------------------
// ROUGE, as google-research's rouge_score (rouge/rouge_scorer.py) without stemming: tokens
// are the maximal runs of [a-z0-9] after ASCII lowercasing (also İ -> i and the Kelvin sign
// -> k, which Python's lower() maps into ASCII); every other character separates tokens.
// Note the argument order: the reference (target) first, as rouge_score's score().

struct RougeScore {
  double precision = 0, recall = 0, fmeasure = 0;
};

// Longest common subsequence of the token lists; zeros when either side has no tokens.
RougeScore RougeL(std::string_view target, std::string_view prediction);
// Clipped n-gram overlap; n < 1 gives zeros.
RougeScore RougeN(std::string_view target, std::string_view prediction, int n);
// Summary-level LCS over the non-empty '\n'-separated lines (union LCS, clipped counts).
RougeScore RougeLsum(std::string_view target, std::string_view prediction);

// ---------------------------------------------------------------------------------------------
// Edit similarity, token estimate, cost.

// 1 - Levenshtein(a, b) / max(|a|, |b|) over code points (insert, delete, substitute cost 1);
// 1.0 for two empty strings. Each side is cut to its first kMaxEditCodePoints code points.
double EditSimilarity(std::string_view a, std::string_view b);

// An estimate of the tokens of `text` for responses without `usage`: ceil(code points / 4),
// OpenAI's rule of thumb of about 4 characters of English per token. 0 for "".
int64_t EstimateTokens(std::string_view text);

// USD per million tokens.
struct Price {
  double input_per_mtok = 0;
  double output_per_mtok = 0;
};

// input_tokens * input_per_mtok / 1e6 + output_tokens * output_per_mtok / 1e6 (USD); a
// negative token count counts as 0.
double Cost(int64_t input_tokens, int64_t output_tokens, const Price& price);

}  // namespace assay::evals
