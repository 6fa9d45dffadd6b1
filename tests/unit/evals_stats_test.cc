// Statistics for evals (common/evals/metrics/stats.h): hand-computed values (numpy's
// percentile, Student t quantiles from tables, pass@k by its definition), bootstrap
// determinism, and the gate's false-failure rate on simulated reruns of an unchanged model.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "common/evals/metrics/stats.h"

namespace assay::evals {
namespace {

// A uniform double in [0, 1) from 53 random bits: the same on every standard library.
double Uniform(std::mt19937_64& gen) { return static_cast<double>(gen() >> 11) * 0x1.0p-53; }

TEST_CASE("Percentile matches numpy.percentile's linear method", "[evals]") {
  const std::vector<double> v = {4, 1, 3, 2};  // Sorted: 1 2 3 4.
  CHECK(Percentile(v, 50) == 2.5);
  CHECK(Percentile(v, 25) == 1.75);
  CHECK(Percentile(v, 90) == Approx(3.7).epsilon(1e-15));
  CHECK(Percentile(v, 0) == 1.0);
  CHECK(Percentile(v, 100) == 4.0);
  CHECK(Percentile(v, 250) == 4.0);  // Clamped.
  CHECK(Percentile(v, -1) == 1.0);
  CHECK(Percentile({7}, 95) == 7.0);
  CHECK(Percentile({10, 20, 30, 40, 50}, 95) == 48.0);  // h = 3.8: 40 + 0.8 · 10.
  CHECK(std::isnan(Percentile({}, 50)));
  CHECK(std::isnan(Percentile(v, std::nan(""))));
  CHECK(std::isnan(Percentile({1, std::nan(""), 3}, 50)));
  CHECK(std::isnan(Percentile({3, 1, std::nan(""), 2}, 0)));  // Unguarded sort gave 1.
}

TEST_CASE("StudentTQuantile matches the t table", "[evals]") {
  CHECK(StudentTQuantile(0.975, 1) == Approx(12.7062047362).epsilon(1e-10));
  CHECK(StudentTQuantile(0.975, 4) == Approx(2.7764451052).epsilon(1e-10));
  CHECK(StudentTQuantile(0.975, 10) == Approx(2.2281388520).epsilon(1e-10));
  CHECK(StudentTQuantile(0.95, 30) == Approx(1.6972608866).epsilon(1e-10));
  CHECK(StudentTQuantile(0.995, 2) == Approx(9.9248432009).epsilon(1e-10));
  CHECK(StudentTQuantile(0.025, 4) == Approx(-2.7764451052).epsilon(1e-10));
  CHECK(StudentTQuantile(0.975, 1e6) == Approx(1.9599663).epsilon(1e-6));
  CHECK(StudentTQuantile(0.5, 3) == 0.0);
  CHECK(std::isnan(StudentTQuantile(1.0, 3)));
  CHECK(std::isnan(StudentTQuantile(0.9, 0.5)));
}

TEST_CASE("MeanInterval is a Student t interval", "[evals]") {
  // mean 3, s = sqrt(2.5), t(0.975, 4) = 2.7764451052: half width 1.9632432.
  const Interval i = MeanInterval({1, 2, 3, 4, 5});
  CHECK(i.n == 5);
  CHECK(i.mean == 3.0);
  CHECK(i.lo == Approx(3 - 1.9632432).epsilon(1e-7));
  CHECK(i.hi == Approx(3 + 1.9632432).epsilon(1e-7));
  const Interval ninety = MeanInterval({1, 2, 3, 4, 5}, 0.90);  // t(0.95, 4) = 2.1318468
  CHECK(ninety.hi == Approx(3 + 2.1318468 * std::sqrt(2.5) / std::sqrt(5.0)).epsilon(1e-7));
  const Interval one = MeanInterval({0.25});
  CHECK((one.mean == 0.25 && one.lo == 0.25 && one.hi == 0.25 && one.n == 1));
  const Interval none = MeanInterval({});
  CHECK((none.mean == 0 && none.lo == 0 && none.hi == 0 && none.n == 0));
  const Interval flat = MeanInterval({2, 2, 2});
  CHECK((flat.lo == 2 && flat.hi == 2));
  CHECK(MeanInterval({1, 2, 3, 4, 5}, 7).hi == i.hi);  // Out of range: 0.95.
}

TEST_CASE("PassAtK and PassHatK", "[evals]") {
  CHECK(PassAtK(10, 3, 1) == Approx(0.3).epsilon(1e-15));
  CHECK(PassAtK(10, 2, 5) == Approx(1 - 56.0 / 252).epsilon(1e-15));  // 1 - C(8,5)/C(10,5)
  CHECK(PassAtK(5, 0, 3) == 0.0);
  CHECK(PassAtK(10, 10, 5) == 1.0);
  CHECK(PassAtK(10, 6, 5) == 1.0);  // n - c < k
  CHECK(PassAtK(200, 37, 10) == Approx(1 - std::exp(std::lgamma(164) - std::lgamma(154) -
                                                    std::lgamma(201) + std::lgamma(191)))
                                    .epsilon(1e-12));
  CHECK(PassHatK(10, 5, 2) == Approx(10.0 / 45).epsilon(1e-15));
  CHECK(PassHatK(10, 5, 1) == 0.5);
  CHECK(PassHatK(10, 10, 10) == 1.0);
  CHECK(PassHatK(10, 2, 3) == 0.0);
  CHECK(std::isnan(PassAtK(10, 11, 1)));
  CHECK(std::isnan(PassAtK(10, 3, 0)));
  CHECK(std::isnan(PassAtK(10, 3, 11)));
  CHECK(std::isnan(PassHatK(0, 0, 1)));
  CHECK(std::isnan(PassHatK(5, -1, 1)));
}

TEST_CASE("PairedBootstrapMeans is deterministic for a seed", "[evals]") {
  std::mt19937_64 gen(7);
  std::vector<double> base, cand;
  for (int i = 0; i < 50; ++i) {
    base.push_back(Uniform(gen) < 0.6 ? 1 : 0);
    cand.push_back(Uniform(gen) < 0.7 ? 1 : 0);
  }
  const PairedBootstrap a = PairedBootstrapMeans(base, cand, 0.95, 1000, 42);
  const PairedBootstrap b = PairedBootstrapMeans(base, cand, 0.95, 1000, 42);
  CHECK(a.lo == b.lo);
  CHECK(a.hi == b.hi);
  CHECK(a.p_worse == b.p_worse);
  CHECK(a.n == 50);
  CHECK(a.resamples == 1000);
  CHECK(a.seed == 42);
  CHECK(a.diff == a.candidate_mean - a.baseline_mean);
  // Pinned: a change of generator or of the bounded draw changes these numbers.
  CHECK(a.baseline_mean == 0.62);
  CHECK(a.candidate_mean == 0.72);
  CHECK(a.lo == Approx(-0.1).margin(1e-12));
  CHECK(a.hi == Approx(0.28).margin(1e-12));
  CHECK(a.p_worse == 0.894);
  const PairedBootstrap other = PairedBootstrapMeans(base, cand, 0.95, 1000, 43);
  CHECK((other.lo != a.lo || other.hi != a.hi || other.p_worse != a.p_worse));
}

TEST_CASE("PairedBootstrapMeans edge cases", "[evals]") {
  const PairedBootstrap same = PairedBootstrapMeans({1, 0, 1}, {1, 0, 1}, 0.95, 200, 1);
  CHECK((same.diff == 0 && same.lo == 0 && same.hi == 0));
  CHECK((same.p_worse == 1 && same.p_worse_lower_is_better == 1));
  const PairedBootstrap up = PairedBootstrapMeans({0, 0, 0, 0}, {1, 1, 1, 1}, 0.95, 200, 1);
  CHECK((up.diff == 1 && up.lo == 1 && up.hi == 1));
  CHECK((up.p_worse == 1 && up.p_worse_lower_is_better == 0));
  const PairedBootstrap empty = PairedBootstrapMeans({}, {}, 0.95, 200, 1);
  CHECK((empty.n == 0 && empty.diff == 0 && empty.lo == 0 && empty.hi == 0));
  const PairedBootstrap uneven = PairedBootstrapMeans({1, 1, 5}, {1, 1}, 2.0, 0, 1);
  CHECK((uneven.n == 2 && uneven.baseline_mean == 1 && uneven.resamples == 1));
  CHECK(uneven.confidence == 0.95);
  CHECK(PairedBootstrapMeans({1}, {1}, 0.95, 1'000'000'000, 1).resamples == kMaxResamples);
  const PairedBootstrap nan = PairedBootstrapMeans({1, 0}, {std::nan(""), 0}, 0.95, 100, 1);
  CHECK((std::isnan(nan.lo) && std::isnan(nan.hi)));
  CHECK_FALSE(JudgeDrop(nan, 0, true).fail);
}

TEST_CASE("PairedBootstrapBleu and PairedBootstrapChrf resample corpus statistics", "[evals]") {
  const std::vector<std::string> refs = {"the cat sat on the mat", "a dog barked at night",
                                         "it rained all day long", "we ate bread and cheese"};
  const std::vector<std::string> good = refs;
  const std::vector<std::string> bad = {"the cat", "dog at", "it rained", "bread"};
  const BleuOptions o;
  const auto b = PairedBootstrapBleu(CorpusBleuStats(bad, {refs}, o),
                                     CorpusBleuStats(good, {refs}, o), o, 0.95, 300, 5);
  CHECK(b.candidate_mean == Approx(100).epsilon(1e-12));
  CHECK(b.baseline_mean == CorpusBleu(bad, {refs}, o).score);
  CHECK(b.lo > 0);
  const ChrfOptions c;
  const auto ch = PairedBootstrapChrf(CorpusChrfStats(good, {refs}, c),
                                      CorpusChrfStats(good, {refs}, c), c, 0.95, 300, 5);
  CHECK((ch.diff == 0 && ch.lo == 0 && ch.hi == 0));
  CHECK(ch.baseline_mean == CorpusChrf(good, {refs}, c));
}

TEST_CASE("JudgeDrop fails only on a drop beyond max_drop that the interval confirms", "[evals]") {
  PairedBootstrap r;
  r.baseline_mean = 0.8;
  r.candidate_mean = 0.7;
  r.diff = -0.1;
  r.lo = -0.15;
  r.hi = -0.05;
  r.n = 100;
  const DropVerdict fail = JudgeDrop(r, 0.05, true);
  CHECK(fail.fail);
  CHECK(fail.why ==
        "dropped by 0.1, more than max_drop 0.05, and the 95 % interval of "
        "candidate-baseline [-0.15, -0.05] over 100 examples excludes 0; baseline 0.8, "
        "candidate 0.7 (higher is better)");
  const DropVerdict within = JudgeDrop(r, 0.2, true);
  CHECK_FALSE(within.fail);
  CHECK(within.why ==
        "drop 0.1 is within max_drop 0.2; baseline 0.8, candidate 0.7 "
        "(higher is better)");
  r.hi = 0.01;
  const DropVerdict noisy = JudgeDrop(r, 0.05, true);
  CHECK_FALSE(noisy.fail);
  CHECK(noisy.why ==
        "drop 0.1 exceeds max_drop 0.05 but is not significant: the 95 % interval of "
        "candidate-baseline [-0.15, 0.01] over 100 examples includes 0; baseline 0.8, "
        "candidate 0.7 (higher is better)");
  // Lower is better (latency, cost): a rise is the drop.
  PairedBootstrap lat;
  lat.baseline_mean = 100;
  lat.candidate_mean = 130;
  lat.diff = 30;
  lat.lo = 10;
  lat.hi = 50;
  CHECK(JudgeDrop(lat, 20, false).fail);
  CHECK_FALSE(JudgeDrop(lat, 40, false).fail);
  lat.lo = -1;
  CHECK_FALSE(JudgeDrop(lat, 20, false).fail);
  CHECK_FALSE(JudgeDrop(lat, 20, true).fail);  // Higher is better: that is a gain.
}

// One simulated run of `n` examples: example i passes with probability p[i] - shift.
std::vector<double> Run(const std::vector<double>& p, double shift, std::mt19937_64& gen) {
  std::vector<double> out;
  for (double q : p) out.push_back(Uniform(gen) < q - shift ? 1.0 : 0.0);
  return out;
}

std::vector<double> Difficulties(size_t n) {
  std::mt19937_64 gen(1);
  std::vector<double> p;
  for (size_t i = 0; i < n; ++i) p.push_back(0.05 + 0.9 * Uniform(gen));
  return p;
}

TEST_CASE("JudgeDrop: an unchanged model re-run on a noisy server rarely fails", "[evals]") {
  // 200 examples of varied difficulty; each rerun draws every outcome afresh (sampling at
  // temperature > 0, a flaky server), so baseline and candidate differ by noise alone.
  const std::vector<double> p = Difficulties(200);
  int fails_strict = 0, fails_allowance = 0;
  for (uint64_t rerun = 0; rerun < 200; ++rerun) {
    std::mt19937_64 gen(1000 + rerun);
    const std::vector<double> base = Run(p, 0, gen);
    const std::vector<double> cand = Run(p, 0, gen);
    const PairedBootstrap r = PairedBootstrapMeans(base, cand, 0.95, 1000, rerun);
    if (JudgeDrop(r, 0.0, true).fail) ++fails_strict;
    if (JudgeDrop(r, 0.02, true).fail) ++fails_allowance;
  }
  CHECK(fails_strict == 8);
  CHECK(fails_allowance == 8);
  CHECK(fails_strict <= 10);  // At most 5 % of 200.
  CHECK(fails_allowance <= fails_strict);
}

TEST_CASE("JudgeDrop catches a real drop", "[evals]") {
  const std::vector<double> p = Difficulties(200);
  int caught = 0;
  for (uint64_t rerun = 0; rerun < 50; ++rerun) {
    std::mt19937_64 gen(5000 + rerun);
    const std::vector<double> base = Run(p, 0, gen);
    const std::vector<double> cand = Run(p, 0.15, gen);  // 15 points worse on every example.
    if (JudgeDrop(PairedBootstrapMeans(base, cand, 0.95, 1000, rerun), 0.02, true).fail) {
      ++caught;
    }
  }
  CHECK(caught == 45);  // Power about 0.9: the mean drop is 0.14 (p - 0.15 floors at 0).
}

}  // namespace
}  // namespace assay::evals
