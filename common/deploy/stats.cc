#include "common/deploy/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numbers>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/base/status.h"

namespace assay::deploy {
namespace {

absl::Status ValidateSample(absl::string_view name, const std::vector<double>& values) {
  if (values.empty()) return absl::InvalidArgumentError(absl::StrCat(name, " sample is empty"));
  if (values.size() > kMaxSampleSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " sample has ", values.size(), " values; at most ", kMaxSampleSize, " are allowed"));
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " sample has a non-finite value (", values[i], ") at index ", i));
    }
  }
  return absl::OkStatus();
}

// numpy's "linear" quantile of an ascending, non-empty vector; q in [0, 1].
double SortedQuantile(const std::vector<double>& sorted, double q) {
  const double h = static_cast<double>(sorted.size() - 1) * q;
  const double floor_h = std::floor(h);
  const size_t lo = static_cast<size_t>(floor_h);
  if (lo + 1 >= sorted.size()) return sorted.back();
  const double a = sorted[lo], b = sorted[lo + 1], t = h - floor_h;
  // Why the special cases: equal neighbours must give exactly that value (PSI collapses equal
  // cut points), and b - a overflows for values near ±DBL_MAX.
  if (t == 0 || a == b) return a;
  const double v = a + (b - a) * t;
  return std::isfinite(v) ? v : a * (1 - t) + b * t;
}

// The standard normal survival function 1 - Φ(z), accurate in both tails.
double NormalSf(double z) { return 0.5 * std::erfc(z / std::numbers::sqrt2); }

// The k-th smallest (0-based) of the n1·n2 differences x[i] - y[m], x and y ascending.
// Monahan's (1984) selection: think of the matrix D[i][j] = x[i] - y[n2-1-j], whose rows and
// columns both increase. Each row keeps an active column range [lo[i], hi[i]) that still may
// hold the answer; a pivot drawn from the active entries is counted against every row with two
// pointers (O(n1 + n2)), and the ranges shrink to the side holding the k-th; once few entries
// remain they are gathered and selected directly. Every round removes at least the pivot, and
// a random pivot removes a constant fraction on average: O(log(n1·n2)) rounds expected.
// Why a fixed seed: the same inputs give the same work and the same answer on every run.
double SelectDifference(const std::vector<double>& x, const std::vector<double>& y, int64_t k) {
  const int64_t n1 = static_cast<int64_t>(x.size()), n2 = static_cast<int64_t>(y.size());
  std::vector<int64_t> lo(n1, 0), hi(n1, n2), lt(n1), le(n1);
  const auto at = [&](int64_t i, int64_t j) { return x[i] - y[n2 - 1 - j]; };
  const int64_t gather_at = std::max<int64_t>(4 * (n1 + n2), 4096);
  std::mt19937_64 gen(0x9e3779b97f4a7c15ULL);
  while (true) {
    int64_t active = 0, below = 0;
    for (int64_t i = 0; i < n1; ++i) {
      active += hi[i] - lo[i];
      below += lo[i];
    }
    if (active <= gather_at) {
      std::vector<double> rest;
      rest.reserve(static_cast<size_t>(active));
      for (int64_t i = 0; i < n1; ++i) {
        for (int64_t j = lo[i]; j < hi[i]; ++j) rest.push_back(at(i, j));
      }
      const auto nth = rest.begin() + (k - below);
      std::nth_element(rest.begin(), nth, rest.end());
      return *nth;
    }
    int64_t r = static_cast<int64_t>(gen() % static_cast<uint64_t>(active));
    double pivot = 0;
    for (int64_t i = 0; i < n1; ++i) {
      const int64_t width = hi[i] - lo[i];
      if (r < width) {
        pivot = at(i, lo[i] + r);
        break;
      }
      r -= width;
    }
    // In row i, x[i] - y[m] < pivot exactly for m in [t_lt, n2), i.e. the first n2 - t_lt
    // columns; t_lt only grows with i because x is ascending. Likewise <= pivot and t_le.
    // Floating-point subtraction is monotone, so this agrees with at().
    int64_t count_lt = 0, count_le = 0, t_lt = 0, t_le = 0;
    for (int64_t i = 0; i < n1; ++i) {
      while (t_lt < n2 && x[i] - y[t_lt] >= pivot) ++t_lt;
      while (t_le < n2 && x[i] - y[t_le] > pivot) ++t_le;
      lt[i] = n2 - t_lt;
      le[i] = n2 - t_le;
      count_lt += lt[i];
      count_le += le[i];
    }
    if (k < count_lt) {
      for (int64_t i = 0; i < n1; ++i) hi[i] = std::min(hi[i], lt[i]);
    } else if (k < count_le) {
      return pivot;
    } else {
      for (int64_t i = 0; i < n1; ++i) lo[i] = std::max(lo[i], le[i]);
    }
  }
}

// canary and baseline ascending.
double HodgesLehmann(const std::vector<double>& canary, const std::vector<double>& baseline) {
  const int64_t n = static_cast<int64_t>(canary.size()) * static_cast<int64_t>(baseline.size());
  const double upper = SelectDifference(canary, baseline, n / 2);
  if (n % 2 == 1) return upper;
  // The (n/2 - 1)-th: `upper` again if fewer than n/2 differences lie below it, else the
  // largest difference below it (in each row, the last one below), found in one pass.
  const int64_t n2 = static_cast<int64_t>(baseline.size());
  int64_t below = 0, t = 0;
  double lower = -HUGE_VAL;
  for (double x : canary) {
    while (t < n2 && x - baseline[t] >= upper) ++t;
    below += n2 - t;
    if (t < n2) lower = std::max(lower, x - baseline[t]);
  }
  if (below < n / 2) lower = upper;
  return lower * 0.5 + upper * 0.5;  // Why not (a + b)/2: that overflows near ±DBL_MAX.
}

// Q_KS(λ) = P(K > λ) for the Kolmogorov distribution (scipy.stats.kstwobign.sf).
double KolmogorovSf(double lambda) {
  if (lambda <= 0) return 1;
  double sum = 0;
  if (lambda < 1.18) {
    // Jacobi's form of the CDF converges fast for small λ: a few terms.
    const double w = std::numbers::pi * std::numbers::pi / (8 * lambda * lambda);
    for (int k = 1; k <= 50; ++k) {
      const double term = std::exp(-(2.0 * k - 1) * (2.0 * k - 1) * w);
      sum += term;
      if (term < 1e-18 * sum || term == 0) break;
    }
    const double cdf = std::sqrt(2 * std::numbers::pi) / lambda * sum;
    return std::clamp(1 - cdf, 0.0, 1.0);
  }
  for (int k = 1; k <= 50; ++k) {
    const double term = std::exp(-2.0 * k * k * lambda * lambda);
    sum += (k % 2 == 1) ? term : -term;
    if (term < 1e-18 * sum || term == 0) break;
  }
  return std::clamp(2 * sum, 0.0, 1.0);
}

// P(D >= H/(na·nb)) for two samples without ties: the chance that a uniformly random
// monotone lattice path from (0, 0) to (na, nb) (one of C(na+nb, na)) reaches a point with
// |i·nb - j·na| >= H. Counted in probabilities, not path counts, so nothing overflows
// (C(na+nb, na) would beyond about na = nb = 510): visit[j] is the chance that the path passes
// (i, j), hit[j] the chance that it passes (i, j) having reached the band. A path at
// (i', j') steps right with chance (na-i')/(N-i'-j'), N = na + nb, so
//   visit(i, j) = (visit(i-1, j)·(na-i+1) + visit(i, j-1)·(nb-j+1)) / (N-i-j+1),
// and hit the same, except that hit = visit on the band. Only positive terms are added, so a
// tiny p keeps its relative precision (until it underflows below 1e-308). O(na·nb) time.
double KsExactP(int64_t na, int64_t nb, int64_t h) {
  const int64_t n = na + nb;
  std::vector<double> visit(static_cast<size_t>(nb + 1)), hit(static_cast<size_t>(nb + 1));
  for (int64_t i = 0; i <= na; ++i) {
    for (int64_t j = 0; j <= nb; ++j) {
      if (i == 0 && j == 0) {
        visit[0] = 1;
        hit[0] = 0;  // |0| >= h is false: h > 0 here.
        continue;
      }
      // visit[j] and hit[j] still hold row i - 1; [j - 1] already holds row i.
      const double from_up = static_cast<double>(na - i + 1);
      const double from_left = static_cast<double>(nb - j + 1);
      const double inv_rest = 1 / static_cast<double>(n - i - j + 1);
      const double v =
          ((i > 0 ? visit[j] * from_up : 0) + (j > 0 ? visit[j - 1] * from_left : 0)) * inv_rest;
      const double c =
          ((i > 0 ? hit[j] * from_up : 0) + (j > 0 ? hit[j - 1] * from_left : 0)) * inv_rest;
      visit[j] = v;
      hit[j] = std::abs(i * nb - j * na) >= h ? v : c;
    }
  }
  return std::clamp(hit[nb], 0.0, 1.0);
}

absl::Status ValidateCounts(absl::string_view name, const std::map<std::string, double>& counts,
                            double* max_count) {
  if (counts.size() > kMaxSampleSize) {
    return absl::InvalidArgumentError(absl::StrCat(name, " counts name ", counts.size(),
                                                   " categories; at most ", kMaxSampleSize,
                                                   " are allowed"));
  }
  *max_count = 0;
  for (const auto& [category, count] : counts) {
    if (!std::isfinite(count) || count < 0) {
      return absl::InvalidArgumentError(absl::StrCat(name, " count for category \"", category,
                                                     "\" is ", count,
                                                     "; counts must be finite and non-negative"));
    }
    *max_count = std::max(*max_count, count);
  }
  if (*max_count == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " counts are empty or all zero; a distribution needs a positive count"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<double> Quantile(std::vector<double> values, double q) {
  ASSAY_RETURN_IF_ERROR(ValidateSample("quantile", values));
  if (!(q >= 0 && q <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("quantile q is ", q, "; it must be in [0, 1]"));
  }
  std::sort(values.begin(), values.end());
  return SortedQuantile(values, q);
}

absl::StatusOr<double> Median(std::vector<double> values) {
  return Quantile(std::move(values), 0.5);
}

absl::StatusOr<MannWhitneyResult> MannWhitney(const std::vector<double>& canary,
                                              const std::vector<double>& baseline) {
  ASSAY_RETURN_IF_ERROR(ValidateSample("canary", canary));
  ASSAY_RETURN_IF_ERROR(ValidateSample("baseline", baseline));
  MannWhitneyResult out;
  out.n_canary = static_cast<int64_t>(canary.size());
  out.n_baseline = static_cast<int64_t>(baseline.size());
  const double n1 = static_cast<double>(canary.size()), n2 = static_cast<double>(baseline.size());
  const double n = n1 + n2;

  std::vector<double> c = canary, b = baseline;
  std::sort(c.begin(), c.end());
  std::sort(b.begin(), b.end());
  // Walk the two sorted samples together, one tie group (all values equal to v) at a time.
  // Ranks are 1-based; a group at pooled positions [s, s + t) gets the average rank
  // s + (t + 1)/2. All sums are of half-integers below 2^53, so exact in a double.
  double canary_rank_sum = 0, tie_term = 0;
  size_t groups = 0;
  for (size_t i = 0, j = 0; i < c.size() || j < b.size();) {
    const double v = i == c.size() ? b[j] : j == b.size() ? c[i] : std::min(c[i], b[j]);
    const size_t s = i + j;
    size_t in_canary = 0;
    for (; i < c.size() && c[i] == v; ++i) ++in_canary;
    while (j < b.size() && b[j] == v) ++j;
    const double t = static_cast<double>(i + j - s);
    canary_rank_sum += static_cast<double>(in_canary) * (static_cast<double>(s) + (t + 1) / 2);
    tie_term += t * t * t - t;  // Why double: t³ overflows int64 near 2·10^6.
    ++groups;
  }
  const double u1 = canary_rank_sum - n1 * (n1 + 1) / 2;
  const double u2 = n1 * n2 - u1;
  const double mu = n1 * n2 / 2;
  out.u = u1;
  out.rank_biserial = 2 * u1 / (n1 * n2) - 1;
  out.hodges_lehmann = HodgesLehmann(c, b);

  const double variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)));
  // Why also groups == 1: with every value tied the variance is 0 in exact arithmetic but may
  // round to a tiny non-zero value for large n.
  if (groups == 1 || !(variance > 0)) return out;  // p-values 1, z 0.
  const double sigma = std::sqrt(variance);
  out.p_greater = std::min(1.0, NormalSf((u1 - mu - 0.5) / sigma));
  out.p_less = std::min(1.0, NormalSf((u2 - mu - 0.5) / sigma));
  out.p_two_sided = std::min(1.0, 2 * NormalSf((std::max(u1, u2) - mu - 0.5) / sigma));
  if (u1 > mu) out.z = (u1 - mu - 0.5) / sigma;
  if (u1 < mu) out.z = (u1 - mu + 0.5) / sigma;
  return out;
}

absl::StatusOr<PsiResult> Psi(const std::vector<double>& reference,
                              const std::vector<double>& current, int bins) {
  ASSAY_RETURN_IF_ERROR(ValidateSample("reference", reference));
  ASSAY_RETURN_IF_ERROR(ValidateSample("current", current));
  if (bins < 2 || bins > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("PSI bins is ", bins, "; it must be in [2, 100]"));
  }
  std::vector<double> sorted = reference;
  std::sort(sorted.begin(), sorted.end());
  std::vector<double> cuts;
  for (int j = 1; j < bins; ++j) {
    const double c = SortedQuantile(sorted, static_cast<double>(j) / bins);
    // Equal cut points collapse; `>` also drops a rounding step backwards, keeping them strictly
    // ascending.
    if (cuts.empty() || c > cuts.back()) cuts.push_back(c);
  }
  // Bin b holds (cuts[b-1], cuts[b]]: the number of cut points below the value.
  const auto count = [&cuts](const std::vector<double>& values) {
    std::vector<int64_t> counts(cuts.size() + 1, 0);
    for (double v : values) ++counts[std::lower_bound(cuts.begin(), cuts.end(), v) - cuts.begin()];
    return counts;
  };
  const std::vector<int64_t> ref_counts = count(reference), cur_counts = count(current);

  PsiResult out;
  out.bins.resize(cuts.size() + 1);
  for (size_t b = 0; b < out.bins.size(); ++b) {
    PsiBin& bin = out.bins[b];
    bin.lower = b == 0 ? -HUGE_VAL : cuts[b - 1];
    bin.upper = b == cuts.size() ? HUGE_VAL : cuts[b];
    bin.reference_count = ref_counts[b];
    bin.current_count = cur_counts[b];
    bin.reference_share = std::max(
        kPsiShareFloor, static_cast<double>(ref_counts[b]) / static_cast<double>(reference.size()));
    bin.current_share = std::max(
        kPsiShareFloor, static_cast<double>(cur_counts[b]) / static_cast<double>(current.size()));
    bin.contribution = (bin.current_share - bin.reference_share) *
                       std::log(bin.current_share / bin.reference_share);
    out.psi += bin.contribution;
  }
  return out;
}

absl::StatusOr<KsResult> KolmogorovSmirnov(const std::vector<double>& a,
                                           const std::vector<double>& b) {
  ASSAY_RETURN_IF_ERROR(ValidateSample("a", a));
  ASSAY_RETURN_IF_ERROR(ValidateSample("b", b));
  std::vector<double> sa = a, sb = b;
  std::sort(sa.begin(), sa.end());
  std::sort(sb.begin(), sb.end());
  const int64_t na = static_cast<int64_t>(sa.size()), nb = static_cast<int64_t>(sb.size());
  // D·na·nb = max |i·nb - j·na| over the points where both empirical CDFs have taken every
  // value up to some x (i of a, j of b): an integer, so D and the exact band are exact. Once
  // one sample is used up, the rest of the walk only approaches 0.
  int64_t h = 0;
  for (int64_t i = 0, j = 0; i < na && j < nb;) {
    const double x = std::min(sa[i], sb[j]);
    while (i < na && sa[i] == x) ++i;
    while (j < nb && sb[j] == x) ++j;
    h = std::max(h, std::abs(i * nb - j * na));
  }
  KsResult out;
  out.n_a = na;
  out.n_b = nb;
  out.d = static_cast<double>(h) / (static_cast<double>(na) * static_cast<double>(nb));
  out.exact = na * nb <= kKsExactMaxProduct;
  if (h == 0) {
    out.p_value = 1;
  } else if (out.exact) {
    out.p_value = KsExactP(na, nb, h);
  } else {
    const double en =
        static_cast<double>(na) * static_cast<double>(nb) / static_cast<double>(na + nb);
    out.p_value = KolmogorovSf(std::sqrt(en) * out.d);
  }
  return out;
}

absl::StatusOr<JensenShannonResult> JensenShannon(
    const std::map<std::string, double>& reference_counts,
    const std::map<std::string, double>& current_counts) {
  double ref_max = 0, cur_max = 0;
  ASSAY_RETURN_IF_ERROR(ValidateCounts("reference", reference_counts, &ref_max));
  ASSAY_RETURN_IF_ERROR(ValidateCounts("current", current_counts, &cur_max));
  // Why scale by the largest count first: the sum of counts near DBL_MAX would overflow.
  double ref_sum = 0, cur_sum = 0;
  for (const auto& [category, count] : reference_counts) ref_sum += count / ref_max;
  for (const auto& [category, count] : current_counts) cur_sum += count / cur_max;
  double divergence = 0;
  const auto add = [&divergence](double p, double q) {
    const double m = 0.5 * (p + q);
    if (p > 0) divergence += 0.5 * p * std::log2(p / m);
    if (q > 0) divergence += 0.5 * q * std::log2(q / m);
  };
  // Both maps are ordered: walk them together, a category missing on one side counting 0.
  auto r = reference_counts.begin(), c = current_counts.begin();
  while (r != reference_counts.end() || c != current_counts.end()) {
    if (c == current_counts.end() || (r != reference_counts.end() && r->first < c->first)) {
      add(r->second / ref_max / ref_sum, 0);
      ++r;
    } else if (r == reference_counts.end() || c->first < r->first) {
      add(0, c->second / cur_max / cur_sum);
      ++c;
    } else {
      add(r->second / ref_max / ref_sum, c->second / cur_max / cur_sum);
      ++r;
      ++c;
    }
  }
  JensenShannonResult out;
  out.divergence = std::clamp(divergence, 0.0, 1.0);
  out.distance = std::sqrt(out.divergence);
  return out;
}

}  // namespace assay::deploy
