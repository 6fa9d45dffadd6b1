// Deployment statistics (common/deploy/stats.h): Mann-Whitney U, PSI, two-sample
// Kolmogorov-Smirnov and Jensen-Shannon against reference values (scipy 1.10 where scipy has
// the function, hand arithmetic for PSI), the Hodges-Lehmann selection against brute force,
// and hostile inputs: empty, NaN, inf, too many values, bins out of range, huge samples.
//
// The scipy values were printed with python3 (scipy 1.10.1, numpy 1.24) by the commands in
// the comments, with `from scipy import stats` and `from scipy.spatial import distance`.

#include "common/deploy/stats.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace assay::deploy {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// A uniform double in [0, 1) from 53 random bits: the same on every standard library.
double Uniform(std::mt19937_64& gen) { return static_cast<double>(gen() >> 11) * 0x1.0p-53; }

// --- Helpers ----------------------------------------------------------------------------------

TEST_CASE("deploy stats: Quantile and Median interpolate like numpy.quantile", "[unit][deploy]") {
  const std::vector<double> v = {4, 1, 3, 2};  // Sorted: 1 2 3 4.
  CHECK(Quantile(v, 0.5).value() == 2.5);
  CHECK(Quantile(v, 0.25).value() == 1.75);  // h = 0.75.
  CHECK(Quantile(v, 0).value() == 1);
  CHECK(Quantile(v, 1).value() == 4);
  CHECK(Median({7}).value() == 7);
  CHECK(Median({3, 1, 2}).value() == 2);
  CHECK(Median({-1e308, 1e308}).value() == 0);  // No overflow in b - a.
  CHECK(Quantile(v, 1.5).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Quantile(v, kNaN).status().message() == "quantile q is nan; it must be in [0, 1]");
  CHECK(Median({}).status().message() == "quantile sample is empty");
}

// --- Mann-Whitney U ---------------------------------------------------------------------------

void CheckMannWhitney(const MannWhitneyResult& r, double u, double p_two, double p_greater,
                      double p_less) {
  CHECK(r.u == u);
  CHECK(r.p_two_sided == Approx(p_two).epsilon(1e-12));
  CHECK(r.p_greater == Approx(p_greater).epsilon(1e-12));
  CHECK(r.p_less == Approx(p_less).epsilon(1e-12));
}

TEST_CASE("deploy stats: MannWhitney matches scipy's asymptotic test with ties", "[unit][deploy]") {
  // c = [3.1, 4.5, 2.2, 5.0, 4.5, 6.7, 3.3, 5.9]; b = [2.0, 3.1, 2.8, 4.1, 2.2, 3.9, 1.5]
  // for alt in ('two-sided', 'greater', 'less'):
  //   stats.mannwhitneyu(c, b, method='asymptotic', use_continuity=True, alternative=alt)
  // np.median(np.subtract.outer(c, b))
  const std::vector<double> c = {3.1, 4.5, 2.2, 5.0, 4.5, 6.7, 3.3, 5.9};
  const std::vector<double> b = {2.0, 3.1, 2.8, 4.1, 2.2, 3.9, 1.5};
  auto r = MannWhitney(c, b);
  REQUIRE(r.ok());
  CheckMannWhitney(*r, 47.0, 0.03181583152950131, 0.015907915764750653, 0.9881746198814397);
  CHECK(r->rank_biserial == Approx(2 * 47.0 / 56 - 1).epsilon(1e-15));
  CHECK(r->hodges_lehmann == Approx(1.65).epsilon(1e-14));
  CHECK(r->z > 0);
  CHECK(r->p_two_sided == Approx(std::erfc(r->z / std::sqrt(2.0))).epsilon(1e-12));
  CHECK(r->n_canary == 8);
  CHECK(r->n_baseline == 7);
}

TEST_CASE("deploy stats: MannWhitney on equal, disjoint and single-value samples",
          "[unit][deploy]") {
  {  // Equal samples: c = b = [1, 2, 3, 4, 5].
    auto r = MannWhitney({1, 2, 3, 4, 5}, {1, 2, 3, 4, 5});
    REQUIRE(r.ok());
    CheckMannWhitney(*r, 12.5, 1.0, 0.5422350133116141, 0.5422350133116141);
    CHECK(r->z == 0);
    CHECK(r->rank_biserial == 0);
    CHECK(r->hodges_lehmann == 0);
  }
  {  // Disjoint, canary larger: c = [10, 11, 12, 13, 14], b = [1, 2, 3, 4, 5].
    auto r = MannWhitney({10, 11, 12, 13, 14}, {1, 2, 3, 4, 5});
    REQUIRE(r.ok());
    CheckMannWhitney(*r, 25.0, 0.012185780355344813, 0.006092890177672406, 0.9966923245172357);
    CHECK(r->rank_biserial == 1);
    CHECK(r->hodges_lehmann == 9);
  }
  {  // One canary value: c = [5], b = [1, 2, 3, 4, 6, 7, 8].
    auto r = MannWhitney({5}, {1, 2, 3, 4, 6, 7, 8});
    REQUIRE(r.ok());
    CheckMannWhitney(*r, 4.0, 1.0, 0.5, 0.6687397082299713);
    CHECK(r->rank_biserial == Approx(1.0 / 7).epsilon(1e-14));
    CHECK(r->hodges_lehmann == 1);  // Differences 4 3 2 1 -1 -2 -3.
  }
  {  // Canary smaller: c = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5], b = [2.0, 3.0, ..., 10.0].
    auto r = MannWhitney({1.0, 1.5, 2.0, 2.5, 3.0, 3.5}, {2, 3, 4, 5, 6, 7, 8, 9, 10});
    REQUIRE(r.ok());
    CheckMannWhitney(*r, 5.0, 0.011138096142650473, 0.9960509858355727, 0.005569048071325237);
    CHECK(r->z < 0);
    CHECK(r->rank_biserial == Approx(-0.8148148148148149).epsilon(1e-14));
    CHECK(r->hodges_lehmann == -3.75);
  }
  {  // All tied: c = [2, 2, 2], b = [2, 2]. scipy: p = 1 for every alternative.
    auto r = MannWhitney({2, 2, 2}, {2, 2});
    REQUIRE(r.ok());
    CheckMannWhitney(*r, 3.0, 1, 1, 1);
    CHECK(r->z == 0);
  }
}

TEST_CASE("deploy stats: Hodges-Lehmann selection equals the brute-force median",
          "[unit][deploy]") {
  std::mt19937_64 gen(7);
  for (int round = 0; round < 400; ++round) {
    const int n1 = 1 + static_cast<int>(gen() % 90), n2 = 1 + static_cast<int>(gen() % 90);
    const uint64_t levels = 1 + gen() % 40;  // Few levels: many ties.
    std::vector<double> c(n1), b(n2);
    for (double& v : c) v = static_cast<double>(gen() % levels) * 0.5;
    for (double& v : b) v = static_cast<double>(gen() % levels) * 0.5 + (round % 2 ? 0.25 : 0);
    std::vector<double> diffs;
    for (double x : c) {
      for (double y : b) diffs.push_back(x - y);
    }
    std::sort(diffs.begin(), diffs.end());
    const size_t n = diffs.size();
    const double median = n % 2 ? diffs[n / 2] : (diffs[n / 2 - 1] + diffs[n / 2]) / 2;
    auto r = MannWhitney(c, b);
    REQUIRE(r.ok());
    INFO("n1 = " << n1 << ", n2 = " << n2);
    CHECK(r->hodges_lehmann == median);
  }
}

TEST_CASE("deploy stats: MannWhitney refuses empty, non-finite and oversized samples",
          "[unit][deploy]") {
  CHECK(MannWhitney({}, {1}).status().message() == "canary sample is empty");
  CHECK(MannWhitney({1}, {}).status().message() == "baseline sample is empty");
  auto nan = MannWhitney({1, kNaN}, {1});
  CHECK(nan.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(nan.status().message() == "canary sample has a non-finite value (nan) at index 1");
  CHECK(MannWhitney({1}, {2, 3, -kInf}).status().message() ==
        "baseline sample has a non-finite value (-inf) at index 2");
  const std::vector<double> too_many(kMaxSampleSize + 1, 1.0);
  auto big = MannWhitney({1}, too_many);
  CHECK(big.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(big.status().message() ==
        "baseline sample has 1000001 values; at most 1000000 are allowed");
}

TEST_CASE("deploy stats: MannWhitney on a million equal values each gives p = 1",
          "[unit][deploy]") {
  // Σ(t³ - t) is about 8e18 here: it must not overflow, and σ² = 0 must not become NaN.
  const std::vector<double> same(kMaxSampleSize, 3.0);
  auto r = MannWhitney(same, same);
  REQUIRE(r.ok());
  CHECK(r->u == 5e11);
  CHECK(r->p_two_sided == 1);
  CHECK(r->p_greater == 1);
  CHECK(r->p_less == 1);
  CHECK(r->z == 0);
  CHECK(r->rank_biserial == 0);
  CHECK(r->hodges_lehmann == 0);
}

TEST_CASE("deploy stats: MannWhitney finishes on a million distinct values each",
          "[unit][deploy]") {
  std::mt19937_64 gen(11);
  std::vector<double> canary(kMaxSampleSize), baseline(kMaxSampleSize);
  for (double& v : canary) v = Uniform(gen) + 0.1;
  for (double& v : baseline) v = Uniform(gen);
  auto r = MannWhitney(canary, baseline);
  REQUIRE(r.ok());
  // U(0.1, 1.1) against U(0, 1): P(X > Y) = 1 - 0.9²/2 = 0.595, so r = 0.19; shift 0.1.
  CHECK(r->rank_biserial == Approx(0.19).margin(0.003));
  CHECK(r->hodges_lehmann == Approx(0.1).margin(0.002));
  CHECK(r->z > 200);
  CHECK(r->p_greater == 0);  // Underflows: z ≈ 233.
  CHECK(r->p_less == 1);
}

// --- PSI --------------------------------------------------------------------------------------

TEST_CASE("deploy stats: Psi by hand on quartile bins", "[unit][deploy]") {
  // reference 1..10, bins = 4: cut points at the quartiles, h = 9·q: 3.25, 5.5, 7.75.
  // Reference counts 3 2 2 3 (shares .3 .2 .2 .3); current 3..12 gives 1 2 2 5
  // (.1 .2 .2 .5). PSI = (.1 - .3)·ln(1/3) + 0 + 0 + (.5 - .3)·ln(5/3)
  //                    = .2·ln 3 + .2·ln(5/3) = .2·ln 5 = 0.3218875824868201.
  const std::vector<double> reference = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  const std::vector<double> current = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  auto r = Psi(reference, current, 4);
  REQUIRE(r.ok());
  CHECK(r->psi == Approx(0.3218875824868201).epsilon(1e-14));
  REQUIRE(r->bins.size() == 4);
  CHECK(r->bins[0].lower == -kInf);
  CHECK(r->bins[0].upper == 3.25);
  CHECK(r->bins[1].lower == 3.25);
  CHECK(r->bins[1].upper == 5.5);
  CHECK(r->bins[2].upper == 7.75);
  CHECK(r->bins[3].upper == kInf);
  CHECK(r->bins[0].reference_count == 3);
  CHECK(r->bins[0].current_count == 1);
  CHECK(r->bins[3].current_count == 5);
  CHECK(r->bins[0].reference_share == Approx(0.3).epsilon(1e-15));
  CHECK(r->bins[3].current_share == Approx(0.5).epsilon(1e-15));
  CHECK(r->bins[1].contribution == 0);

  auto same = Psi(reference, reference, 4);
  REQUIRE(same.ok());
  CHECK(same->psi == 0);
}

TEST_CASE("deploy stats: Psi floors empty bins at 1e-4", "[unit][deploy]") {
  // Same reference bins (.3 .2 .2 .3); current {100, 200} all in the top bin: shares
  // 1e-4 1e-4 1e-4 1. PSI = (1e-4 - .3)·ln(1e-4/.3) + 2·(1e-4 - .2)·ln(1e-4/.2)
  //                         + (1 - .3)·ln(1/.3)
  //                       = 2.401109633538309 + 2·1.5194204016624624 + 0.8427809630281552
  //                       = 6.2827313998913885.
  auto r = Psi({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {100, 200}, 4);
  REQUIRE(r.ok());
  CHECK(std::isfinite(r->psi));
  CHECK(r->psi == Approx(6.2827313998913885).epsilon(1e-13));
  CHECK(r->bins[0].current_count == 0);
  CHECK(r->bins[0].current_share == kPsiShareFloor);
  CHECK(r->bins[0].contribution == Approx(2.401109633538309).epsilon(1e-13));
}

TEST_CASE("deploy stats: Psi collapses equal cut points", "[unit][deploy]") {
  // reference {0 ×6, 1, 2, 3, 4}, bins = 4: quartiles 0, 0 and 1.75 (h = 6.75) → cut points
  // {0, 1.75}, three bins with reference shares .6 .1 .3. current {0, 0, 1, 1, 1, 2, 2, 3, 4,
  // 5}: .2 .3 .5. PSI = (.2 - .6)·ln(1/3) + (.3 - .1)·ln 3 + (.5 - .3)·ln(5/3)
  //                   = .4·ln 3 + .2·ln 5 = 0.7613324979540641.
  auto r = Psi({0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, {0, 0, 1, 1, 1, 2, 2, 3, 4, 5}, 4);
  REQUIRE(r.ok());
  REQUIRE(r->bins.size() == 3);
  CHECK(r->bins[0].upper == 0);
  CHECK(r->bins[1].upper == 1.75);
  CHECK(r->psi == Approx(0.7613324979540641).epsilon(1e-14));

  // One distinct reference value: all cut points are 5, two bins (-inf, 5] and (5, inf).
  auto one = Psi({5}, {4, 5, 6, 7}, 10);
  REQUIRE(one.ok());
  REQUIRE(one->bins.size() == 2);
  CHECK(one->bins[0].current_count == 2);
  CHECK(one->bins[1].current_count == 2);
  CHECK(one->bins[1].reference_share == kPsiShareFloor);
  // (.5 - 1)·ln(.5) + (.5 - 1e-4)·ln(.5/1e-4).
  CHECK(one->psi ==
        Approx(-0.5 * std::log(0.5) + (0.5 - 1e-4) * std::log(0.5 / 1e-4)).epsilon(1e-14));
}

TEST_CASE("deploy stats: Psi uses deciles by default", "[unit][deploy]") {
  std::vector<double> reference;
  for (int i = 1; i <= 100; ++i) reference.push_back(i);
  auto r = Psi(reference, reference);
  REQUIRE(r.ok());
  REQUIRE(r->bins.size() == 10);
  CHECK(r->bins[0].upper == Approx(10.9).epsilon(1e-14));  // h = 99·0.1.
  for (const PsiBin& bin : r->bins) CHECK(bin.reference_count == 10);
  CHECK(r->psi == 0);
}

TEST_CASE("deploy stats: Psi refuses bad samples and bins", "[unit][deploy]") {
  CHECK(Psi({}, {1}).status().message() == "reference sample is empty");
  CHECK(Psi({1}, {}).status().message() == "current sample is empty");
  CHECK(Psi({1, kInf}, {1}).status().message() ==
        "reference sample has a non-finite value (inf) at index 1");
  CHECK(Psi({1}, {kNaN}).status().message() ==
        "current sample has a non-finite value (nan) at index 0");
  CHECK(Psi({1, 2}, {1}, 1).status().message() == "PSI bins is 1; it must be in [2, 100]");
  CHECK(Psi({1, 2}, {1}, 101).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Psi({1, 2}, {1}, -5).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Psi({1, 2}, {1}, 100).ok());
  CHECK(Psi({1, 2}, {1}, 2).ok());
  const std::vector<double> too_many(kMaxSampleSize + 1, 1.0);
  CHECK(Psi({1}, too_many).status().message() ==
        "current sample has 1000001 values; at most 1000000 are allowed");
}

TEST_CASE("deploy stats: Psi finishes on a million values each", "[unit][deploy]") {
  std::mt19937_64 gen(13);
  std::vector<double> reference(kMaxSampleSize), current(kMaxSampleSize);
  for (double& v : reference) v = Uniform(gen);
  for (double& v : current) v = Uniform(gen);
  auto r = Psi(reference, current, 100);
  REQUIRE(r.ok());
  CHECK(r->bins.size() == 100);
  CHECK(r->psi < 0.001);  // Same distribution: only sampling noise (expected about 1e-4).
}

// --- Kolmogorov-Smirnov -----------------------------------------------------------------------

TEST_CASE("deploy stats: KolmogorovSmirnov exact p matches scipy's exact method",
          "[unit][deploy]") {
  // stats.ks_2samp(a, b, method='exact') for each pair below.
  const std::vector<double> a = {0.61, 0.29,  0.06, 0.59,  -1.73, -0.74, 0.51, -0.56, 0.39, 1.64,
                                 0.05, -0.06, 0.64, -0.82, 0.37,  1.77,  1.09, -1.28, 2.36, 1.31};
  const std::vector<double> b = {1.2, 0.9, 2.5,  1.7, 0.3, 1.1, 2.2, 0.8,
                                 1.9, 1.4, -0.2, 2.8, 1.6, 0.7, 1.3};
  auto r = KolmogorovSmirnov(a, b);
  REQUIRE(r.ok());
  CHECK(r->exact);
  CHECK(r->d == Approx(0.6166666666666667).epsilon(1e-14));
  CHECK(r->p_value == Approx(0.001522449672425918).epsilon(1e-12));
  CHECK(r->n_a == 20);
  CHECK(r->n_b == 15);

  // Equal sizes (scipy's square-lattice branch).
  auto square = KolmogorovSmirnov({1, 3, 5, 7, 9, 11, 13, 15}, {2, 4, 6, 8, 20, 22, 24, 26});
  REQUIRE(square.ok());
  CHECK(square->d == 0.5);
  CHECK(square->p_value == Approx(0.2826728826728826).epsilon(1e-12));

  // Disjoint, a = 1..30, b = 31..60: p = 2/C(60, 30), kept to full relative precision.
  std::vector<double> low, high;
  for (int i = 1; i <= 30; ++i) {
    low.push_back(i);
    high.push_back(i + 30);
  }
  auto disjoint = KolmogorovSmirnov(low, high);
  REQUIRE(disjoint.ok());
  CHECK(disjoint->d == 1);
  CHECK(disjoint->p_value == Approx(1.6911233892144742e-17).epsilon(1e-12));

  // One value: a = [0.5], b = 1..6. D = 1 when a is first or last: p = 2/7.
  auto single = KolmogorovSmirnov({0.5}, {1, 2, 3, 4, 5, 6});
  REQUIRE(single.ok());
  CHECK(single->d == 1);
  CHECK(single->p_value == Approx(2.0 / 7).epsilon(1e-14));

  // Ties: a = [1, 2, 2, 3, 3, 3], b = [2, 3, 4, 4, 5]. D at x = 3: |6/6 - 2/5| = 0.6.
  auto ties = KolmogorovSmirnov({1, 2, 2, 3, 3, 3}, {2, 3, 4, 4, 5});
  REQUIRE(ties.ok());
  CHECK(ties->d == Approx(0.6).epsilon(1e-15));
  CHECK(ties->p_value == Approx(0.23809523809523814).epsilon(1e-12));

  auto same = KolmogorovSmirnov({1, 2, 3}, {3, 2, 1});
  REQUIRE(same.ok());
  CHECK(same->d == 0);
  CHECK(same->p_value == 1);
}

TEST_CASE("deploy stats: KolmogorovSmirnov exact p on larger samples matches scipy",
          "[unit][deploy]") {
  // a = np.arange(150) * 0.01; b = 0.3 + np.arange(120) * 0.0125
  // stats.ks_2samp(a, b, method='exact')
  std::vector<double> a, b;
  for (int i = 0; i < 150; ++i) a.push_back(i * 0.01);
  for (int i = 0; i < 120; ++i) b.push_back(0.3 + i * 0.0125);
  auto r = KolmogorovSmirnov(a, b);
  REQUIRE(r.ok());
  CHECK(r->exact);
  CHECK(r->d == Approx(0.20666666666666667).epsilon(1e-14));
  CHECK(r->p_value == Approx(0.005753772311373792).epsilon(1e-11));

  // a = np.arange(400) * 0.0025; b = 0.05 + np.arange(300) * 0.0033
  // stats.ks_2samp(a, b, method='exact')
  a.clear();
  b.clear();
  for (int i = 0; i < 400; ++i) a.push_back(i * 0.0025);
  for (int i = 0; i < 300; ++i) b.push_back(0.05 + i * 0.0033);
  r = KolmogorovSmirnov(a, b);
  REQUIRE(r.ok());
  CHECK(r->exact);
  CHECK(r->d == Approx(0.051666666666666666).epsilon(1e-14));
  CHECK(r->p_value == Approx(0.7325106016247965).epsilon(1e-11));
}

TEST_CASE("deploy stats: KolmogorovSmirnov asymptotic p is the Kolmogorov distribution",
          "[unit][deploy]") {
  // a = np.arange(1500) * 0.001; b = 0.07 + np.arange(1000) * 0.0015 (1500·1000 > 10^6)
  // d = stats.ks_2samp(a, b, method='exact').statistic   # 0.04733333333333333
  // stats.kstwobign.sf(np.sqrt(1500 * 1000 / 2500) * d)
  // (For comparison: ks_2samp(a, b, method='exact').pvalue = 0.132945563169621 and
  // method='asymp' gives 0.13165343125510287.)
  std::vector<double> a, b;
  for (int i = 0; i < 1500; ++i) a.push_back(i * 0.001);
  for (int i = 0; i < 1000; ++i) b.push_back(0.07 + i * 0.0015);
  auto r = KolmogorovSmirnov(a, b);
  REQUIRE(r.ok());
  CHECK_FALSE(r->exact);
  CHECK(r->d == Approx(0.04733333333333333).epsilon(1e-14));
  CHECK(r->p_value == Approx(0.13591842841808127).epsilon(1e-10));
}

TEST_CASE("deploy stats: KolmogorovSmirnov refuses bad samples and survives huge ones",
          "[unit][deploy]") {
  CHECK(KolmogorovSmirnov({}, {1}).status().message() == "a sample is empty");
  CHECK(KolmogorovSmirnov({1}, {2, kNaN}).status().message() ==
        "b sample has a non-finite value (nan) at index 1");
  const std::vector<double> too_many(kMaxSampleSize + 1, 1.0);
  CHECK(KolmogorovSmirnov(too_many, {1}).status().code() == absl::StatusCode::kInvalidArgument);

  const std::vector<double> same(kMaxSampleSize, -2.5);  // i·nb near 10^12: no overflow.
  auto equal = KolmogorovSmirnov(same, same);
  REQUIRE(equal.ok());
  CHECK(equal->d == 0);
  CHECK(equal->p_value == 1);

  std::mt19937_64 gen(17);
  std::vector<double> a(kMaxSampleSize), b(kMaxSampleSize);
  for (double& v : a) v = Uniform(gen);
  for (double& v : b) v = Uniform(gen) * 1.01;
  auto r = KolmogorovSmirnov(a, b);
  REQUIRE(r.ok());
  CHECK(r->d == Approx(0.0099).margin(0.002));  // sup |x - x/1.01| at x = 1.
  CHECK(r->p_value < 1e-30);

  auto unbalanced = KolmogorovSmirnov({0.5}, a);  // 1·10^6 lattice points: exact, at the limit.
  REQUIRE(unbalanced.ok());
  CHECK(unbalanced->exact);
  CHECK(unbalanced->p_value > 0.5);
}

// --- Jensen-Shannon ---------------------------------------------------------------------------

TEST_CASE("deploy stats: JensenShannon matches scipy's jensenshannon with base 2",
          "[unit][deploy]") {
  // distance.jensenshannon(p, q, base=2) over the union of categories in key order (0 where
  // one side lacks a category); the divergence is its square.
  auto shift = JensenShannon({{"a", 10}, {"b", 20}, {"c", 30}}, {{"a", 15}, {"b", 15}, {"c", 30}});
  REQUIRE(shift.ok());
  CHECK(shift->distance == Approx(0.10178614744627143).epsilon(1e-12));
  CHECK(shift->divergence == Approx(0.010360419811954107).epsilon(1e-12));

  // p = [1, 1, 0], q = [0, 1, 2] over a, b, c.
  auto missing = JensenShannon({{"a", 1}, {"b", 1}}, {{"b", 1}, {"c", 2}});
  REQUIRE(missing.ok());
  CHECK(missing->distance == Approx(0.7716458075506889).epsilon(1e-12));
  CHECK(missing->divergence == Approx(0.5954372523105548).epsilon(1e-12));

  auto disjoint = JensenShannon({{"x", 5}}, {{"y", 3}});
  REQUIRE(disjoint.ok());
  CHECK(disjoint->divergence == 1);
  CHECK(disjoint->distance == 1);

  auto same = JensenShannon({{"a", 1}, {"b", 2}}, {{"a", 100}, {"b", 200}, {"c", 0}});
  REQUIRE(same.ok());
  CHECK(same->divergence == Approx(0).margin(1e-15));

  // Counts near DBL_MAX sum without overflow: the same as p = [2, 2], q = [2, 1].
  auto huge = JensenShannon({{"a", 1e308}, {"b", 1e308}}, {{"a", 1e308}, {"b", 5e307}});
  REQUIRE(huge.ok());
  CHECK(huge->divergence == Approx(0.020720839623908218).epsilon(1e-12));
  CHECK(huge->distance == Approx(0.14394735018022464).epsilon(1e-12));
}

TEST_CASE("deploy stats: JensenShannon refuses bad counts", "[unit][deploy]") {
  CHECK(JensenShannon({}, {{"a", 1}}).status().message() ==
        "reference counts are empty or all zero; a distribution needs a positive count");
  CHECK(JensenShannon({{"a", 1}}, {{"a", 0}, {"b", 0}}).status().message() ==
        "current counts are empty or all zero; a distribution needs a positive count");
  CHECK(JensenShannon({{"a", -1}, {"b", 3}}, {{"a", 1}}).status().message() ==
        "reference count for category \"a\" is -1; counts must be finite and non-negative");
  CHECK(JensenShannon({{"a", 1}}, {{"a", kNaN}}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(JensenShannon({{"a", kInf}}, {{"a", 1}}).status().code() ==
        absl::StatusCode::kInvalidArgument);

  std::map<std::string, double> too_many;
  for (size_t i = 0; i <= kMaxSampleSize; ++i)
    too_many.emplace_hint(too_many.end(), std::to_string(i + 10'000'000), 1);
  CHECK(JensenShannon({{"a", 1}}, too_many).status().message() ==
        "current counts name 1000001 categories; at most 1000000 are allowed");
}

}  // namespace
}  // namespace assay::deploy
