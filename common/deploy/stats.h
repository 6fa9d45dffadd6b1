#pragma once
// Statistics for deployment analysis: the canary judge (is the canary's metric different from
// the baseline's?) and drift detection (has a feature's distribution moved since the
// reference window?). Pure functions, no I/O, no global state; deterministic on every
// compiler and standard library.
//
// Limits (every function): a sample holds 1 .. kMaxSampleSize values, each finite; anything
// else is kInvalidArgument naming the sample ("canary", "baseline", "reference", "current",
// "a", "b") and what is wrong. Work is O(n log n) in the sample sizes (plus at most 10^6
// lattice steps for an exact Kolmogorov-Smirnov p), memory O(n).

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace assay::deploy {

// The most values one sample may hold (and the most categories one side of JensenShannon may
// name). Why 10^6: a canary window of per-request latencies is far smaller, and at this size
// every function here finishes in well under a second.
inline constexpr size_t kMaxSampleSize = 1'000'000;

// ---------------------------------------------------------------------------------------------
// Small helpers.

// The q-quantile (q in [0, 1]) of `values` by linear interpolation between order statistics,
// numpy.quantile's default method "linear" (Hyndman & Fan 1996, definition 7): sort,
// h = (n - 1)·q, v[⌊h⌋] + (h - ⌊h⌋)·(v[⌊h⌋+1] - v[⌊h⌋]).
// Errors: kInvalidArgument for an invalid sample (see above) or q outside [0, 1] or NaN.
absl::StatusOr<double> Quantile(std::vector<double> values, double q);

// Quantile(values, 0.5): the middle value, or the mean of the two middle values.
absl::StatusOr<double> Median(std::vector<double> values);

// ---------------------------------------------------------------------------------------------
// Mann-Whitney U (Wilcoxon rank-sum) two-sample test, the test of Kayenta's canary judge
// (NetflixMannWhitney): is one sample stochastically larger than the other? No assumption of
// normality, so latency tails and error counts are fine.
//
// Method (Mann & Whitney 1947; ties: Lehmann, "Nonparametrics", 1975, §1.4):
//   rank the pooled n1 + n2 values, tied values getting the average of their ranks;
//   U = R1 - n1(n1+1)/2, R1 the canary's rank sum (U counts the (canary, baseline) pairs with
//   canary > baseline, ties counting 1/2); U' = n1·n2 - U;
//   μ = n1·n2/2, σ² = n1·n2/12 · ((n+1) - Σ(t³-t)/(n(n-1))), t the size of each tie group;
//   normal approximation with continuity correction 0.5:
//     p_greater = Φ̄((U  - μ - 0.5)/σ)
//     p_less    = Φ̄((U' - μ - 0.5)/σ)
//     p_two     = min(1, 2·Φ̄((max(U, U') - μ - 0.5)/σ))
//   with Φ̄ the standard normal survival function. These are exactly the p-values of
//   scipy.stats.mannwhitneyu(canary, baseline, method='asymptotic', use_continuity=True,
//   alternative='two-sided' / 'greater' / 'less') (scipy >= 1.7), whose statistic is U.
//   When every pooled value is tied (σ = 0) all three p-values are 1 and z is 0.
//   The approximation is poor for very small samples (n1, n2 < ~8): p-values are then only a
//   rough guide, as in Kayenta.
struct MannWhitneyResult {
  double u = 0;  // U for the canary (scipy's statistic).
  // Signed, continuity-corrected z for the canary: (U - μ - 0.5·sgn(U - μ))/σ, 0 when U = μ or
  // σ = 0. Positive when the canary tends to be larger; p_two_sided = min(1, 2·Φ̄(|z|)).
  double z = 0;
  double p_two_sided = 1;
  double p_greater = 1;  // H1: the canary is stochastically greater than the baseline.
  double p_less = 1;     // H1: the canary is stochastically less than the baseline.
  // Rank-biserial correlation r = 2U/(n1·n2) - 1 (Cureton 1956; Kerby 2014), in [-1, 1]:
  // P(canary > baseline) - P(canary < baseline) over all pairs. Positive: the canary is larger.
  double rank_biserial = 0;
  // Hodges-Lehmann shift estimate (Hodges & Lehmann 1963): the median of all n1·n2 pairwise
  // differences canary_i - baseline_j (the mean of the two middle ones when n1·n2 is even).
  // Exact, without forming the n1·n2 differences: a selection in the implicitly sorted matrix
  // of differences (Monahan 1984, "Fast computation of the Hodges-Lehmann location
  // estimator"), with pivots drawn from a fixed-seed generator, so O((n1+n2)·log(n1·n2))
  // expected time and O(n1+n2) memory, and the same answer on every run. Values beyond about
  // ±1e307 can make a difference overflow to ±inf (and the estimate inf or NaN).
  double hodges_lehmann = 0;
  int64_t n_canary = 0, n_baseline = 0;
};

// Errors: kInvalidArgument when either sample is empty, has a NaN or ±inf, or holds more than
// kMaxSampleSize values.
absl::StatusOr<MannWhitneyResult> MannWhitney(const std::vector<double>& canary,
                                              const std::vector<double>& baseline);

// ---------------------------------------------------------------------------------------------
// Population Stability Index (Siddiqi, "Credit Risk Scorecards", 2006, ch. 8; Yurdakul 2018):
// how far `current` has drifted from `reference`. Rules of thumb: < 0.1 no significant
// change, 0.1 - 0.25 moderate, > 0.25 significant.
//
// Method: cut points at the reference's quantiles j/bins, j = 1 .. bins-1 (deciles for 10
// bins), each by Quantile() (linear interpolation). Equal cut points (a reference with many
// repeated values) collapse into one, so there may be fewer than `bins` bins (at least 2: one
// distinct cut point c gives (-inf, c] and (c, +inf)). Bins are closed on the right:
// (-inf, c1], (c1, c2], ..., (c_k, +inf); the outer bins are open-ended, so every value of
// either sample falls in a bin. Shares: count/n per sample, floored at kPsiShareFloor, so that
// an empty bin gives a large finite term and not infinity (the floored shares are not
// renormalised). PSI = Σ_bins (cur - ref)·ln(cur/ref) >= 0.
inline constexpr double kPsiShareFloor = 1e-4;

struct PsiBin {
  double lower = 0, upper = 0;  // (lower, upper]; -inf / +inf for the outer bins.
  int64_t reference_count = 0, current_count = 0;
  double reference_share = 0, current_share = 0;  // After the floor.
  double contribution = 0;  // (current_share - reference_share)·ln(current_share/reference_share)
};
struct PsiResult {
  double psi = 0;
  std::vector<PsiBin> bins;
};

// Errors: kInvalidArgument for an invalid sample (see above) or `bins` outside [2, 100].
absl::StatusOr<PsiResult> Psi(const std::vector<double>& reference,
                              const std::vector<double>& current, int bins = 10);

// ---------------------------------------------------------------------------------------------
// Two-sample Kolmogorov-Smirnov test: D = sup_x |F_a(x) - F_b(x)| of the two empirical CDFs,
// and the two-sided p-value P(D' >= D) under H0 (both samples from one continuous
// distribution).
//
//   n_a·n_b <= kKsExactMaxProduct: the exact p-value, the share of the C(n_a + n_b, n_a)
//     monotone lattice paths from (0, 0) to (n_a, n_b) that touch or cross the band
//     |i/n_a - j/n_b| >= D (Hodges 1958; Kim & Jennrich 1973), computed as a probability
//     recursion over the (n_a+1)·(n_b+1) lattice (so no binomial coefficient overflows) that
//     adds positive terms only (so tiny p-values, as for disjoint samples, keep their relative
//     precision down to about 1e-300). This is the value of
//     scipy.stats.ks_2samp(a, b, method='exact'). Cost: O(n_a·n_b), about 10 ms at the limit.
//   otherwise: the limiting Kolmogorov distribution, p = Q_KS(√en·D), en = n_a·n_b/(n_a+n_b),
//     Q_KS(λ) = 2 Σ_{k>=1} (-1)^{k-1} e^{-2k²λ²} (for λ < 1.18, 1 minus Jacobi's form
//     √(2π)/λ Σ e^{-(2k-1)²π²/(8λ²)}), = scipy.stats.kstwobign.sf(√en·D) (Smirnov 1948).
//     Its error is O(1/√en) (usually on the high, conservative side): for n_a = 1500, n_b = 1000 it
//     gives 0.1359 where the exact p is 0.1329. (scipy's ks_2samp(method='asymp') uses
//     kstwo.sf(D, round(en)) instead, 0.1317 there; scipy's 'auto' picks exact while
//     max(n_a, n_b) <= 10000.) Why this limit: the exact recursion is O(n_a·n_b), and beyond
//     10^6 lattice points the asymptotic p is already within a few percent.
// Ties between the samples are handled in D (both CDFs step together); the p-value, like
// scipy's, assumes no ties and is then conservative.
inline constexpr int64_t kKsExactMaxProduct = 1'000'000;

struct KsResult {
  double d = 0;        // In [0, 1].
  double p_value = 1;  // Two-sided.
  bool exact = false;  // Which of the two methods gave p_value.
  int64_t n_a = 0, n_b = 0;
};

// Errors: kInvalidArgument for an invalid sample (see above).
absl::StatusOr<KsResult> KolmogorovSmirnov(const std::vector<double>& a,
                                           const std::vector<double>& b);

// ---------------------------------------------------------------------------------------------
// Jensen-Shannon divergence of two categorical distributions given as counts per category
// (Lin 1991): P, Q the counts normalised to sum 1 (a category on one side only counts 0 on
// the other), M = (P + Q)/2, JSD = ½·KL(P‖M) + ½·KL(Q‖M) with log base 2, so JSD is in [0, 1]
// (0: identical, 1: disjoint supports). distance = √JSD is a metric (Endres & Schindelin
// 2003); it equals scipy.spatial.distance.jensenshannon(p, q, base=2). Counts may be
// fractional (weights). Huge counts do not overflow (they are scaled before summing).
struct JensenShannonResult {
  double divergence = 0;  // Bits, in [0, 1].
  double distance = 0;    // √divergence.
};

// Errors: kInvalidArgument when a count is negative, NaN or ±inf, when a side is empty or all
// its counts are 0, or when a side names more than kMaxSampleSize categories.
absl::StatusOr<JensenShannonResult> JensenShannon(
    const std::map<std::string, double>& reference_counts,
    const std::map<std::string, double>& current_counts);

}  // namespace assay::deploy
