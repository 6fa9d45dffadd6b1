// Statistics for evals (stats.h).
#include "common/evals/metrics/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "absl/strings/str_format.h"

namespace assay::evals {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double ValidConfidence(double confidence) {
  return confidence > 0 && confidence < 1 ? confidence : 0.95;
}

// Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes
// "betacf").
double BetaContinuedFraction(double a, double b, double x) {
  constexpr int kMaxIterations = 500;
  constexpr double kEps = 1e-16;
  constexpr double kTiny = 1e-300;
  const double qab = a + b, qap = a + 1, qam = a - 1;
  double c = 1, d = 1 - qab * x / qap;
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= kMaxIterations; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < kEps) break;
  }
  return h;
}

// The regularised incomplete beta function I_x(a, b).
double IncompleteBeta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) +
                                a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return front * BetaContinuedFraction(a, b, x) / a;
  return 1 - front * BetaContinuedFraction(b, a, 1 - x) / b;
}

double StudentTCdf(double t, double df) {
  const double tail = 0.5 * IncompleteBeta(df / 2, 0.5, df / (df + t * t));
  return t > 0 ? 1 - tail : tail;
}

double Mean(const std::vector<double>& v, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += v[i];
  return n == 0 ? 0 : sum / static_cast<double>(n);
}

// A uniform draw in [0, range), range >= 1, without bias (Lemire 2019, "Fast Random Integer
// Generation in an Interval").
uint64_t Bounded(std::mt19937_64& gen, uint64_t range) {
  __extension__ using U128 = unsigned __int128;
  U128 m = static_cast<U128>(gen()) * range;
  auto low = static_cast<uint64_t>(m);
  if (low < range) {
    const uint64_t threshold = (0 - range) % range;
    while (low < threshold) {
      m = static_cast<U128>(gen()) * range;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

// The shared resampling loop: `score(indices, &baseline, &candidate)` scores one resample.
template <typename ScoreFn>
PairedBootstrap Bootstrap(size_t n, double baseline_full, double candidate_full, double confidence,
                          int resamples, uint64_t seed, ScoreFn score) {
  PairedBootstrap r;
  r.confidence = ValidConfidence(confidence);
  r.resamples = std::clamp(resamples, 1, kMaxResamples);
  r.seed = seed;
  r.n = static_cast<int64_t>(n);
  if (n == 0) return r;
  r.baseline_mean = baseline_full;
  r.candidate_mean = candidate_full;
  r.diff = candidate_full - baseline_full;
  std::mt19937_64 gen(seed);
  std::vector<size_t> indices(n);
  std::vector<double> diffs;
  diffs.reserve(static_cast<size_t>(r.resamples));
  int64_t ge = 0, le = 0;
  for (int k = 0; k < r.resamples; ++k) {
    for (size_t& i : indices) i = static_cast<size_t>(Bounded(gen, n));
    double b = 0, c = 0;
    score(indices, &b, &c);
    const double d = c - b;
    diffs.push_back(d);
    if (d >= 0) ++ge;
    if (d <= 0) ++le;
  }
  r.p_worse = static_cast<double>(ge) / r.resamples;
  r.p_worse_lower_is_better = static_cast<double>(le) / r.resamples;
  r.lo = Percentile(diffs, (1 - r.confidence) / 2 * 100);
  r.hi = Percentile(std::move(diffs), (1 + r.confidence) / 2 * 100);
  return r;
}

std::string Num(double v) { return absl::StrFormat("%.6g", v); }

}  // namespace

double StudentTQuantile(double p, double df) {
  if (!(p > 0 && p < 1) || !(df >= 1) || std::isinf(df)) return kNaN;
  if (p == 0.5) return 0;
  if (p < 0.5) return -StudentTQuantile(1 - p, df);
  double lo = 0, hi = 1;
  while (StudentTCdf(hi, df) < p && hi < 1e300) hi *= 2;
  for (int i = 0; i < 2000 && hi - lo > 1e-13 * std::max(1.0, hi); ++i) {
    const double mid = lo + (hi - lo) / 2;
    if (StudentTCdf(mid, df) < p) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo + (hi - lo) / 2;
}

Interval MeanInterval(const std::vector<double>& values, double confidence) {
  Interval r;
  r.n = static_cast<int64_t>(values.size());
  r.mean = Mean(values, values.size());
  r.lo = r.hi = r.mean;
  if (values.size() < 2) return r;
  double ss = 0;
  for (double v : values) ss += (v - r.mean) * (v - r.mean);
  const double n = static_cast<double>(values.size());
  const double sd = std::sqrt(ss / (n - 1));
  const double t = StudentTQuantile((1 + ValidConfidence(confidence)) / 2, n - 1);
  const double half = t * sd / std::sqrt(n);
  r.lo = r.mean - half;
  r.hi = r.mean + half;
  return r;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty() || std::isnan(p)) return kNaN;
  // Why: NaN breaks std::sort's ordering; a NaN value makes every percentile NaN instead.
  if (std::any_of(values.begin(), values.end(), [](double v) { return std::isnan(v); })) {
    return kNaN;
  }
  p = std::clamp(p, 0.0, 100.0);
  std::sort(values.begin(), values.end());
  const double h = static_cast<double>(values.size() - 1) * (p / 100);  // numpy's order
  const auto below = static_cast<size_t>(std::floor(h));
  if (below + 1 >= values.size()) return values.back();
  const double t = h - static_cast<double>(below);
  const double a = values[below], b = values[below + 1];
  // numpy's _lerp: a + (b - a)·t, computed from b's side for t >= 0.5.
  return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

PairedBootstrap PairedBootstrapMeans(const std::vector<double>& baseline,
                                     const std::vector<double>& candidate, double confidence,
                                     int resamples, uint64_t seed) {
  const size_t n = std::min(baseline.size(), candidate.size());
  return Bootstrap(n, Mean(baseline, n), Mean(candidate, n), confidence, resamples, seed,
                   [&](const std::vector<size_t>& idx, double* b, double* c) {
                     double sb = 0, sc = 0;
                     for (size_t i : idx) {
                       sb += baseline[i];
                       sc += candidate[i];
                     }
                     *b = sb / static_cast<double>(idx.size());
                     *c = sc / static_cast<double>(idx.size());
                   });
}

PairedBootstrap PairedBootstrapBleu(const std::vector<BleuStats>& baseline,
                                    const std::vector<BleuStats>& candidate,
                                    const BleuOptions& options, double confidence, int resamples,
                                    uint64_t seed) {
  const size_t n = std::min(baseline.size(), candidate.size());
  BleuStats b_all, c_all;
  for (size_t i = 0; i < n; ++i) {
    b_all += baseline[i];
    c_all += candidate[i];
  }
  return Bootstrap(n, BleuFromStats(b_all, options).score, BleuFromStats(c_all, options).score,
                   confidence, resamples, seed,
                   [&](const std::vector<size_t>& idx, double* b, double* c) {
                     BleuStats sb, sc;
                     for (size_t i : idx) {
                       sb += baseline[i];
                       sc += candidate[i];
                     }
                     *b = BleuFromStats(sb, options).score;
                     *c = BleuFromStats(sc, options).score;
                   });
}

PairedBootstrap PairedBootstrapChrf(const std::vector<ChrfStats>& baseline,
                                    const std::vector<ChrfStats>& candidate,
                                    const ChrfOptions& options, double confidence, int resamples,
                                    uint64_t seed) {
  const size_t n = std::min(baseline.size(), candidate.size());
  ChrfStats b_all, c_all;
  for (size_t i = 0; i < n; ++i) {
    b_all += baseline[i];
    c_all += candidate[i];
  }
  return Bootstrap(n, ChrfFromStats(b_all, options), ChrfFromStats(c_all, options), confidence,
                   resamples, seed, [&](const std::vector<size_t>& idx, double* b, double* c) {
                     ChrfStats sb, sc;
                     for (size_t i : idx) {
                       sb += baseline[i];
                       sc += candidate[i];
                     }
                     *b = ChrfFromStats(sb, options);
                     *c = ChrfFromStats(sc, options);
                   });
}

DropVerdict JudgeDrop(const PairedBootstrap& r, double max_drop, bool higher_is_better) {
  // `+ 0.0`: no drop of "-0" (IEEE: -0 + +0 is +0).
  const double drop = (higher_is_better ? -r.diff : r.diff) + 0.0;
  const bool real = higher_is_better ? r.hi < 0 : r.lo > 0;
  const std::string interval =
      absl::StrFormat("%s %% interval of candidate-baseline [%s, %s] over %d examples",
                      Num(r.confidence * 100), Num(r.lo), Num(r.hi), r.n);
  const std::string change =
      absl::StrFormat("baseline %s, candidate %s (%s is better)", Num(r.baseline_mean),
                      Num(r.candidate_mean), higher_is_better ? "higher" : "lower");
  DropVerdict v;
  v.fail = drop > max_drop && real;
  if (v.fail) {
    v.why = absl::StrFormat("dropped by %s, more than max_drop %s, and the %s excludes 0; %s",
                            Num(drop), Num(max_drop), interval, change);
  } else if (drop <= max_drop) {
    v.why = absl::StrFormat("drop %s is within max_drop %s; %s", Num(drop), Num(max_drop), change);
  } else {
    v.why =
        absl::StrFormat("drop %s exceeds max_drop %s but is not significant: the %s includes 0; %s",
                        Num(drop), Num(max_drop), interval, change);
  }
  return v;
}

double PassAtK(int n, int c, int k) {
  if (n < 1 || c < 0 || c > n || k < 1 || k > n) return kNaN;
  if (n - c < k) return 1.0;
  double prod = 1.0;
  for (int i = n - c + 1; i <= n; ++i) prod *= 1.0 - static_cast<double>(k) / i;
  return 1.0 - prod;
}

double PassHatK(int n, int c, int k) {
  if (n < 1 || c < 0 || c > n || k < 1 || k > n) return kNaN;
  if (c < k) return 0.0;
  double prod = 1.0;
  for (int i = 0; i < k; ++i) prod *= static_cast<double>(c - i) / (n - i);
  return prod;
}

}  // namespace assay::evals
