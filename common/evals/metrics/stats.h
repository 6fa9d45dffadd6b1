#pragma once
// Statistics for `eval:` steps (issue 10; docs/eval-metrics.md): confidence intervals,
// percentiles, the paired bootstrap that compares a candidate run with a baseline, the gate
// rule built on it, and pass@k. Pure functions, no I/O; deterministic for a given seed on
// every compiler and standard library (std::mt19937_64 is specified exactly by the standard;
// bounded draws use Lemire's method, not std::uniform_int_distribution, whose algorithm
// differs between libstdc++ and libc++).
//
// NaN inputs propagate into means, percentiles and intervals (a NaN interval never fails
// JudgeDrop); callers keep non-numbers out.

#include <cstdint>
#include <string>
#include <vector>

#include "common/evals/metrics/text_metrics.h"

namespace assay::evals {

// Mean with a two-sided Student t interval: mean ± t_{(1+confidence)/2, n-1} · s / √n, s the
// sample standard deviation (n - 1 in the denominator). n < 2 gives lo = hi = mean (0 for
// n = 0). A confidence outside (0, 1) is taken as 0.95.
struct Interval {
  double mean = 0, lo = 0, hi = 0;
  int64_t n = 0;
};
Interval MeanInterval(const std::vector<double>& values, double confidence = 0.95);

// The p-quantile of Student's t distribution with `df` degrees of freedom (p in (0, 1),
// df >= 1), to about 1e-12: bisection on the CDF, computed from the regularised incomplete
// beta function. NaN for arguments outside those ranges.
double StudentTQuantile(double p, double df);

// numpy.percentile(values, p) with numpy's default method "linear": sort, h = (n-1)·p/100,
// v[⌊h⌋] + (h - ⌊h⌋)·(v[⌊h⌋+1] - v[⌊h⌋]), h computed as (n-1)·(p/100)
// as numpy does. p is clamped to [0, 100]. NaN for an empty
// vector, a NaN p or a NaN value.
double Percentile(std::vector<double> values, double p);

// A paired bootstrap of the difference candidate - baseline, resampling examples (the same
// resampled indices for both runs). For means: `resamples` times, draw n indices uniformly
// with replacement and take d* = mean(candidate*) - mean(baseline*). lo and hi are the
// Percentile()s (1-confidence)/2·100 and (1+confidence)/2·100 of the d*s (the percentile
// interval); `diff` is the difference on the full sample.
struct PairedBootstrap {
  double baseline_mean = 0, candidate_mean = 0;
  double diff = 0;  // candidate_mean - baseline_mean.
  double lo = 0, hi = 0;
  double confidence = 0.95;
  // The fraction of resamples with candidate* >= baseline* (d* >= 0): for a metric where
  // higher is better, the one-sided bootstrap p-value of "the candidate is worse".
  double p_worse = 0;
  // The fraction with candidate* <= baseline* (d* <= 0): the same for lower-is-better.
  double p_worse_lower_is_better = 0;
  int64_t n = 0;
  int resamples = 0;
  uint64_t seed = 0;
};

inline constexpr int kDefaultResamples = 1000;
inline constexpr int kMaxResamples = 100'000;

// `baseline` and `candidate` are paired by index; only the first min(sizes) pairs are used
// (n says how many). resamples is clamped to [1, kMaxResamples]; confidence outside (0, 1)
// is taken as 0.95. n = 0 gives zeros (p values 0).
PairedBootstrap PairedBootstrapMeans(const std::vector<double>& baseline,
                                     const std::vector<double>& candidate, double confidence = 0.95,
                                     int resamples = kDefaultResamples, uint64_t seed = 0);

// The same over corpus-level BLEU and chrF: each resample sums the drawn examples'
// sufficient statistics and recomputes the corpus score (0..100), as sacreBLEU's paired
// bootstrap does; the "means" are the corpus scores of the full sample.
PairedBootstrap PairedBootstrapBleu(const std::vector<BleuStats>& baseline,
                                    const std::vector<BleuStats>& candidate,
                                    const BleuOptions& options, double confidence = 0.95,
                                    int resamples = kDefaultResamples, uint64_t seed = 0);
PairedBootstrap PairedBootstrapChrf(const std::vector<ChrfStats>& baseline,
                                    const std::vector<ChrfStats>& candidate,
                                    const ChrfOptions& options, double confidence = 0.95,
                                    int resamples = kDefaultResamples, uint64_t seed = 0);

// The gate. With drop = baseline - candidate (higher_is_better) or candidate - baseline
// (lower is better), the verdict fails exactly when
//   drop > max_drop, and
//   the interval excludes "no drop": hi < 0 (higher is better) or lo > 0 (lower is better).
// So a run fails only when the observed drop is larger than allowed and the bootstrap says,
// at its confidence, that the candidate is really worse; with a two-sided interval at 95 %
// an unchanged model fails about 2.5 % of the time or less (tests/unit/evals_stats_test.cc
// simulates it). `why` always explains the verdict in one line.
struct DropVerdict {
  bool fail = false;
  std::string why;
};
DropVerdict JudgeDrop(const PairedBootstrap& result, double max_drop, bool higher_is_better);

// pass@k, the unbiased estimator of Chen et al. 2021 (HumanEval): with n samples of which c
// pass, 1 - C(n-c, k)/C(n, k), computed as 1 - Π_{i=n-c+1}^{n} (1 - k/i); 1 when n - c < k.
// NaN unless 0 <= c <= n and 1 <= k <= n.
double PassAtK(int n, int c, int k);

// pass^k (tau-bench): C(c, k)/C(n, k), the chance that k samples drawn without replacement
// all pass, computed as Π_{i=0}^{k-1} (c-i)/(n-i). NaN unless 0 <= c <= n and 1 <= k <= n.
double PassHatK(int n, int c, int k);

}  // namespace assay::evals
