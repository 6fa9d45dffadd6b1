#include "common/pipeline/sweep.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/base/number_text.h"

namespace assay {
namespace {

// `v` rounded to 6 significant digits, as JSON.
SweepValue RoundedNumber(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  const std::string text = ShortestDouble(std::strtod(buf, nullptr));
  return {text, text};
}

SweepValue IntegerValue(int64_t v) {
  const std::string text = absl::StrCat(v);
  return {text, text};
}

std::string JsonQuoted(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

// The points a parameter offers a grid, or a random index draw.
absl::StatusOr<std::vector<SweepValue>> PointsOf(const SweepParameter& p) {
  using Kind = SweepParameter::Kind;
  if (p.kind == Kind::kValues || p.kind == Kind::kRange) return p.values;
  if (p.count < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter '", p.name,
                     "' is a distribution without points: give it `count` or use method: random"));
  }
  std::vector<SweepValue> out;
  if (p.kind == Kind::kIntUniform) {
    const int64_t lo = static_cast<int64_t>(p.min), hi = static_cast<int64_t>(p.max);
    for (int i = 0; i < p.count; ++i) {
      out.push_back(IntegerValue(lo + static_cast<int64_t>(std::llround(
                                          static_cast<double>(hi - lo) * i / (p.count - 1)))));
    }
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }
  const bool log = p.kind == Kind::kLogUniform;
  const double lo = log ? std::log(p.min) : p.min, hi = log ? std::log(p.max) : p.max;
  for (int i = 0; i < p.count; ++i) {
    const double x = i == p.count - 1 ? hi : lo + (hi - lo) * i / (p.count - 1);
    out.push_back(RoundedNumber(log ? std::exp(x) : x));
  }
  return out;
}

// A uniform double in [0, 1) from 53 bits of one draw.
double Unit(uint64_t draw) { return static_cast<double>(draw >> 11) * 0x1.0p-53; }

}  // namespace

SweepValue SweepStringValue(std::string_view text) { return {JsonQuoted(text), std::string(text)}; }

SweepValue SweepValueOf(std::string_view s) {
  if (s == "true" || s == "false") return {std::string(s), std::string(s)};
  int64_t i = 0;
  auto [iend, iec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (iec == std::errc() && iend == s.data() + s.size() && !s.empty()) return IntegerValue(i);
  double d = 0;
  auto [dend, dec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (dec == std::errc() && dend == s.data() + s.size() && !s.empty() && std::isfinite(d)) {
    const std::string text = ShortestDouble(d);
    return {text, text};
  }
  return SweepStringValue(s);
}

absl::StatusOr<std::vector<SweepValue>> SweepRangePoints(double min, double max, double step,
                                                         bool integers) {
  if (!(step > 0)) return absl::InvalidArgumentError("step must be greater than 0");
  const double n = std::floor((max - min) / step + 1e-9) + 1;
  if (!(n >= 1) || n > kMaxSweepValuesPerParameter) {
    return absl::InvalidArgumentError(
        absl::StrCat("the range has ", n > 1 ? ShortestDouble(n) : "no", " points; at most ",
                     kMaxSweepValuesPerParameter));
  }
  std::vector<SweepValue> out;
  for (int i = 0; i < static_cast<int>(n); ++i) {
    const double v = min + step * i;
    out.push_back(integers ? IntegerValue(static_cast<int64_t>(std::llround(v)))
                           : RoundedNumber(v));
  }
  return out;
}

absl::StatusOr<std::vector<SweepTrial>> ExpandSweep(const SweepSpec& spec) {
  std::vector<SweepTrial> out;
  if (spec.method == "grid") {
    std::vector<std::vector<SweepValue>> points;
    double total = 1;
    for (const SweepParameter& p : spec.parameters) {
      absl::StatusOr<std::vector<SweepValue>> pts = PointsOf(p);
      if (!pts.ok()) return pts.status();
      total *= static_cast<double>(pts->size());
      points.push_back(*std::move(pts));
    }
    const double wanted = spec.trials > 0 ? std::min<double>(spec.trials, total) : total;
    if (wanted > kMaxSweepTrials) {
      return absl::InvalidArgumentError(absl::StrCat("sweep expands to ", ShortestDouble(total),
                                                     " trials, more than the limit of ",
                                                     kMaxSweepTrials));
    }
    // Odometer over the points, the last parameter varying fastest.
    std::vector<size_t> at(points.size(), 0);
    for (int n = 1; n <= static_cast<int>(wanted); ++n) {
      SweepTrial t;
      t.number = n;
      for (size_t i = 0; i < points.size(); ++i) {
        t.values.emplace_back(spec.parameters[i].name, points[i][at[i]]);
      }
      out.push_back(std::move(t));
      for (size_t i = points.size(); i-- > 0;) {
        if (++at[i] < points[i].size()) break;
        at[i] = 0;
      }
    }
    return out;
  }
  if (spec.trials < 1 || spec.trials > kMaxSweepTrials) {
    return absl::InvalidArgumentError(
        absl::StrCat("random needs trials from 1 to ", kMaxSweepTrials));
  }
  std::mt19937_64 rng(spec.seed);
  using Kind = SweepParameter::Kind;
  for (int n = 1; n <= spec.trials; ++n) {
    SweepTrial t;
    t.number = n;
    for (const SweepParameter& p : spec.parameters) {
      const uint64_t draw = rng();
      SweepValue v;
      switch (p.kind) {
        case Kind::kValues:
        case Kind::kRange: v = p.values[draw % p.values.size()]; break;
        case Kind::kUniform: v = RoundedNumber(p.min + Unit(draw) * (p.max - p.min)); break;
        case Kind::kLogUniform: {
          const double lo = std::log(p.min), hi = std::log(p.max);
          v = RoundedNumber(std::exp(lo + Unit(draw) * (hi - lo)));
          break;
        }
        case Kind::kIntUniform: {
          const int64_t lo = static_cast<int64_t>(p.min), hi = static_cast<int64_t>(p.max);
          v = IntegerValue(lo + static_cast<int64_t>(draw % static_cast<uint64_t>(hi - lo + 1)));
          break;
        }
      }
      t.values.emplace_back(p.name, std::move(v));
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::string SweepTrialName(std::string_view job, int number) {
  return absl::StrCat(std::string(job), " (trial ", number, ")");
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

}  // namespace assay
