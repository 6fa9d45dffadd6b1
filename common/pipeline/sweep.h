#pragma once
// `sweep:` (issue 10, docs/train.md "Sweeps"): a hyperparameter search over a job with a
// `train:` step. The job runs once per trial, each trial a job of its own placed like any job;
// its values reach the train step's ASSAY_PARAMS and `${{ matrix.NAME }}`. Expansion is pure
// and deterministic: the same spec gives the same trials on every machine (random draws come
// from a seeded mt19937_64 and are turned into numbers by hand, not by <random>'s
// implementation-defined distributions).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace assay {

inline constexpr int kMaxSweepTrials = 256;  // like a matrix
inline constexpr int kMaxSweepParameters = 32;
inline constexpr int kMaxSweepValuesPerParameter = 256;

// A trial's value of one parameter: its JSON text (a number, true/false or a quoted string)
// and its plain text (what `${{ matrix.NAME }}` and the job's name show).
struct SweepValue {
  std::string json;
  std::string text;

  bool operator==(const SweepValue&) const = default;
};

struct SweepParameter {
  enum class Kind {
    kValues,      // a list: `[a, b, c]`
    kRange,       // {min, max, step}: min, min + step, ... up to max
    kUniform,     // {min, max}: random only, unless `count` spaces points evenly
    kLogUniform,  // {distribution: log_uniform, min, max}: the same on a log scale
    kIntUniform,  // {distribution: int_uniform, min, max}: integers, both ends included
  };
  std::string name;
  Kind kind = Kind::kValues;
  std::vector<SweepValue> values;  // kValues; kRange's points, computed by the parser
  double min = 0, max = 0;
  int count = 0;  // kUniform/kLogUniform under grid: this many evenly spaced points (>= 2)

  bool operator==(const SweepParameter&) const = default;
};

struct SweepEarlyStop {
  // "median": a trial whose metric at its newest step is worse than the median of the other
  // trials' values at that step (each its point at the greatest step <= it, among trials that
  // reached it) is stopped, once at least `min_trials` others reached it and the step is at
  // least `warmup_steps`.
  std::string rule = "median";
  int min_trials = 3;
  int64_t warmup_steps = 0;

  bool operator==(const SweepEarlyStop&) const = default;
};

struct SweepSpec {
  std::vector<SweepParameter> parameters;  // file order
  std::string method = "grid";             // grid | random
  int trials = 0;     // random: how many (required); grid: 0 = every combination, else the first N
  uint64_t seed = 1;  // random only
  int max_parallel = 0;           // 0: no limit
  std::string metric;             // a series of the train step's metrics file
  std::string goal = "minimize";  // minimize | maximize
  std::optional<SweepEarlyStop> early_stop;

  bool operator==(const SweepSpec&) const = default;
};

// One trial: its 1-based number and its value of each parameter, in parameter order.
struct SweepTrial {
  int number = 0;
  std::vector<std::pair<std::string, SweepValue>> values;

  bool operator==(const SweepTrial&) const = default;
};

// The trials:
//  - grid: the product of each parameter's points (a list's values; a range's points; a
//    uniform's `count` evenly spaced points, log-spaced for log_uniform), the first parameter
//    varying slowest; `trials` > 0 keeps the first that many.
//  - random: `trials` draws; each parameter in order takes a uniform index into its points or
//    a uniform (log-uniform, integer) number in [min, max].
// Random real numbers are rounded to 6 significant digits, so the value a trial is given is the
// value its name and the API show. Errors (kInvalidArgument):
//   "sweep expands to N trials, more than the limit of 256"
//   "parameter 'P' is a distribution without points: give it `count` or use method: random"
absl::StatusOr<std::vector<SweepTrial>> ExpandSweep(const SweepSpec& spec);

// "JOB (trial N)".
std::string SweepTrialName(std::string_view job, int number);

// The points of a range (kRange): min, min + step, ... <= max (within 1e-9 of max counts),
// integers when min, max and step are all integers. kInvalidArgument past
// kMaxSweepValuesPerParameter points or for step <= 0.
absl::StatusOr<std::vector<SweepValue>> SweepRangePoints(double min, double max, double step,
                                                         bool integers);

// A scalar as a sweep value: an integer or a finite number (normalised: "1e-3" -> 0.001,
// "1_000" is a string), true/false, else a string.
SweepValue SweepValueOf(std::string_view scalar);
// `text` as a string value, whatever it looks like (a quoted YAML scalar).
SweepValue SweepStringValue(std::string_view text);

// The median of `values` (the mean of the middle two for an even count); values is not empty.
double Median(std::vector<double> values);

}  // namespace assay
