// `sweep:` (issue 10, docs/train.md "Sweeps"): a job with one `train:` step run once per
// trial of a hyperparameter search. Every mistake is a lint error naming its line and key.

#include <charconv>
#include <cmath>

#include "common/pipeline/spec_internal.h"
#include "common/pipeline/sweep.h"

namespace assay::spec_internal {
namespace {

using Kind = SweepParameter::Kind;

bool IsParameterName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
        name[0] == '_')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// A finite number written as one (not quoted); `integer` tells whether it was written as an
// integer.
bool Number(Linter& lint, const Entry& e, const std::string& path, double& out, bool* integer) {
  if (Describe(e.value) == "a number") {
    const std::string& s = e.value.Scalar();
    int64_t i = 0;
    auto [iend, iec] = std::from_chars(s.data(), s.data() + s.size(), i);
    if (iec == std::errc() && iend == s.data() + s.size()) {
      out = static_cast<double>(i);
      if (integer != nullptr) *integer = true;
      return std::abs(out) <= 1e15 ||
             (lint.Error(e.value_mark, path, absl::StrCat(e.key, " must be within ±1e15")), false);
    }
    auto [dend, dec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (dec == std::errc() && dend == s.data() + s.size() && std::isfinite(out)) {
      if (integer != nullptr) *integer = false;
      return true;
    }
  }
  lint.Error(e.value_mark, path,
             absl::StrCat(e.key, " must be a number, got ",
                          Describe(e.value) == "a number" ? e.value.Scalar() : Describe(e.value)));
  return false;
}

// An integer in [lo, hi], written as one. One error either way: "must be an integer" for a
// number with a fraction (1.5), else the range.
bool Int(Linter& lint, const Entry& e, const std::string& path, int64_t lo, int64_t hi,
         int64_t& out) {
  const bool number = Describe(e.value) == "a number";
  const std::string s = number ? e.value.Scalar() : "";
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (number && ec == std::errc() && end == s.data() + s.size()) {
    if (v >= lo && v <= hi) {
      out = v;
      return true;
    }
  } else if (number) {
    double d = 0;
    auto [dend, dec] = std::from_chars(s.data(), s.data() + s.size(), d);
    if (dec == std::errc() && dend == s.data() + s.size() && std::trunc(d) != d) {
      lint.Error(e.value_mark, path, absl::StrCat(e.key, " must be an integer, got ", s));
      return false;
    }
  }
  lint.Error(e.value_mark, path,
             absl::StrCat(e.key, " must be an integer from ", lo, " to ", hi, ", got ",
                          number ? s : Describe(e.value)));
  return false;
}

// What a parameter mapping says, before it is checked as a whole.
struct ParameterDraft {
  std::string distribution;
  std::optional<double> min, max, step;
  bool min_int = false, max_int = false, step_int = false;
  int64_t count = 0;
};

constexpr FieldRule<ParameterDraft> kParameterRules[] = {
    {"distribution", false,
     [](Linter& lint, const Entry& e, const std::string& path, ParameterDraft& p) {
       if (!ScalarText(lint, e.value, e.value_mark, path, "distribution",
                       "uniform, log_uniform or int_uniform", p.distribution)) {
         return;
       }
       if (p.distribution != "uniform" && p.distribution != "log_uniform" &&
           p.distribution != "int_uniform") {
         lint.Error(e.value_mark, path,
                    absl::StrCat("distribution must be uniform, log_uniform or int_uniform, got '",
                                 p.distribution, "'"));
         p.distribution = "uniform";
       }
     }},
    {"min", true,
     [](Linter& lint, const Entry& e, const std::string& path, ParameterDraft& p) {
       double v = 0;
       if (Number(lint, e, path, v, &p.min_int)) p.min = v;
     }},
    {"max", true,
     [](Linter& lint, const Entry& e, const std::string& path, ParameterDraft& p) {
       double v = 0;
       if (Number(lint, e, path, v, &p.max_int)) p.max = v;
     }},
    {"step", false,
     [](Linter& lint, const Entry& e, const std::string& path, ParameterDraft& p) {
       double v = 0;
       if (!Number(lint, e, path, v, &p.step_int)) return;
       if (v <= 0) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("step must be greater than 0, got ", e.value.Scalar()));
         return;
       }
       p.step = v;
     }},
    {"count", false,
     [](Linter& lint, const Entry& e, const std::string& path, ParameterDraft& p) {
       Int(lint, e, path, 2, kMaxSweepValuesPerParameter, p.count);
     }},
};

void ParseParameter(Linter& lint, const Entry& e, const std::string& path, SweepSpec& sweep) {
  SweepParameter p;
  p.name = e.key;
  if (!IsParameterName(e.key)) {
    lint.Error(e.key_node.Mark(), path,
               absl::StrCat("invalid parameter name '", e.key,
                            "': use a letter or '_' then up to 63 letters, digits or '_'"));
    return;
  }
  if (e.value.IsSequence()) {
    if (e.value.size() == 0 || e.value.size() > kMaxSweepValuesPerParameter) {
      lint.Error(e.value_mark, path,
                 absl::StrCat("a parameter list must have 1 to ", kMaxSweepValuesPerParameter,
                              " values, got ", e.value.size()));
      return;
    }
    for (size_t i = 0; i < e.value.size(); ++i) {
      const YAML::Node v = e.value[i];
      std::string text;
      if (!ScalarText(lint, v, MarkOr(v, e.value_mark), Index(path, i), "parameter values",
                      "strings, numbers or booleans", text)) {
        return;
      }
      // A quoted value stays a string ("1" is not 1), as in `params:`.
      p.values.push_back(v.Tag() != "?" ? SweepStringValue(text) : SweepValueOf(text));
    }
    p.kind = Kind::kValues;
    sweep.parameters.push_back(std::move(p));
    return;
  }
  if (!e.value.IsMap()) {
    lint.Error(e.value_mark, path,
               absl::StrCat("parameter '", e.key,
                            "' must be a list of values or a mapping with min and max, got ",
                            Describe(e.value)));
    return;
  }
  ParameterDraft d;
  const size_t errors = lint.ErrorCount();
  ParseFields<ParameterDraft>(lint, e.value, path, e.key_node.Mark(), kParameterRules, d);
  if (lint.ErrorCount() != errors || !d.min || !d.max) return;
  if (!(*d.min < *d.max)) {
    lint.Error(e.value_mark, path, "min must be less than max");
    return;
  }
  p.min = *d.min;
  p.max = *d.max;
  p.count = static_cast<int>(d.count);
  if (d.step) {
    if (!d.distribution.empty() || d.count != 0) {
      lint.Error(e.value_mark, path,
                 "a parameter with step is a range: it takes neither distribution nor count");
      return;
    }
    absl::StatusOr<std::vector<SweepValue>> points =
        SweepRangePoints(p.min, p.max, *d.step, d.min_int && d.max_int && d.step_int);
    if (!points.ok()) {
      lint.Error(e.value_mark, Join(path, "step"), std::string(points.status().message()));
      return;
    }
    p.kind = Kind::kRange;
    p.values = *std::move(points);
  } else if (d.distribution == "log_uniform") {
    if (p.min <= 0) {
      lint.Error(e.value_mark, Join(path, "min"), "log_uniform needs min greater than 0");
      return;
    }
    p.kind = Kind::kLogUniform;
  } else if (d.distribution == "int_uniform") {
    if (!d.min_int || !d.max_int) {
      lint.Error(e.value_mark, path, "int_uniform needs integer min and max");
      return;
    }
    p.kind = Kind::kIntUniform;
  } else {
    p.kind = Kind::kUniform;
  }
  sweep.parameters.push_back(std::move(p));
}

constexpr FieldRule<SweepSpec> kMetricRules[] = {
    {"name", true,
     [](Linter& lint, const Entry& e, const std::string& path, SweepSpec& s) {
       if (ScalarText(lint, e.value, e.value_mark, path, "name", "a metric name", s.metric) &&
           (s.metric.empty() || s.metric.size() > 128)) {
         lint.Error(e.value_mark, path, "name must be 1 to 128 bytes");
       }
     }},
    {"goal", false,
     [](Linter& lint, const Entry& e, const std::string& path, SweepSpec& s) {
       if (ScalarText(lint, e.value, e.value_mark, path, "goal", "minimize or maximize", s.goal) &&
           s.goal != "minimize" && s.goal != "maximize") {
         lint.Error(e.value_mark, path,
                    absl::StrCat("goal must be minimize or maximize, got '", s.goal, "'"));
       }
     }},
};

constexpr FieldRule<SweepEarlyStop> kEarlyStopRules[] = {
    {"rule", true,
     [](Linter& lint, const Entry& e, const std::string& path, SweepEarlyStop& s) {
       if (ScalarText(lint, e.value, e.value_mark, path, "rule", "median", s.rule) &&
           s.rule != "median") {
         lint.Error(e.value_mark, path, absl::StrCat("rule must be median, got '", s.rule, "'"));
       }
     }},
    {"min_trials", false,
     [](Linter& lint, const Entry& e, const std::string& path, SweepEarlyStop& s) {
       int64_t v = 0;
       if (Int(lint, e, path, 1, kMaxSweepTrials, v)) s.min_trials = static_cast<int>(v);
     }},
    {"warmup_steps", false,
     [](Linter& lint, const Entry& e, const std::string& path, SweepEarlyStop& s) {
       Int(lint, e, path, 0, int64_t{1} << 50, s.warmup_steps);
     }},
};

constexpr FieldRule<SweepSpec> kSweepRules[] = {
    {"parameters", true,
     [](Linter& lint, const Entry& e, const std::string& path, SweepSpec& s) {
       if (!e.value.IsMap() || e.value.size() == 0) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("parameters must be a non-empty mapping of names to values, got ",
                                 e.value.IsMap() ? "an empty mapping" : Describe(e.value)));
         return;
       }
       if (e.value.size() > kMaxSweepParameters) {
         lint.Error(
             e.value_mark, path,
             absl::StrCat("at most ", kMaxSweepParameters, " parameters, got ", e.value.size()));
         return;
       }
       for (const Entry& p : MappingEntries(lint, e.value, path)) {
         ParseParameter(lint, p, Join(path, p.key), s);
       }
     }},
    {"method", false,
     [](Linter& lint, const Entry& e, const std::string& path, SweepSpec& s) {
       if (ScalarText(lint, e.value, e.value_mark, path, "method", "grid or random", s.method) &&
           s.method != "grid" && s.method != "random") {
         lint.Error(e.value_mark, path,
                    absl::StrCat("method must be grid or random, got '", s.method, "'"));
         s.method = "grid";
       }
     }},
    {"trials", false,
     [](Linter& lint, const Entry& e, const std::string& path, SweepSpec& s) {
       int64_t v = 0;
       if (Int(lint, e, path, 1, kMaxSweepTrials, v)) s.trials = static_cast<int>(v);
     }},
    {"seed", false,
     [](Linter& lint, const Entry& e, const std::string& path, SweepSpec& s) {
       int64_t v = 0;
       if (Int(lint, e, path, 0, int64_t{1} << 53, v)) s.seed = static_cast<uint64_t>(v);
     }},
    {"max_parallel", false,
     [](Linter& lint, const Entry& e, const std::string& path, SweepSpec& s) {
       int64_t v = 0;
       if (Int(lint, e, path, 1, kMaxSweepTrials, v)) s.max_parallel = static_cast<int>(v);
     }},
    {"metric", true,
     [](Linter& lint, const Entry& e, const std::string& path, SweepSpec& s) {
       if (!e.value.IsMap()) {
         lint.Error(
             e.value_mark, path,
             absl::StrCat("metric must be a mapping with name and goal, got ", Describe(e.value)));
         return;
       }
       ParseFields<SweepSpec>(lint, e.value, path, e.key_node.Mark(), kMetricRules, s);
     }},
    {"early_stop", false,
     [](Linter& lint, const Entry& e, const std::string& path, SweepSpec& s) {
       s.early_stop = SweepEarlyStop{};
       if (e.value.IsScalar()) {
         if (e.value.Scalar() != "median") {
           lint.Error(e.value_mark, path,
                      absl::StrCat("early_stop must be median or a mapping with rule, got '",
                                   e.value.Scalar(), "'"));
         }
         return;
       }
       if (!e.value.IsMap()) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("early_stop must be median or a mapping with rule, got ",
                                 Describe(e.value)));
         return;
       }
       ParseFields<SweepEarlyStop>(lint, e.value, path, e.key_node.Mark(), kEarlyStopRules,
                                   *s.early_stop);
     }},
};

}  // namespace

void ParseSweep(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  job.sweep_mark = e.key_node.Mark();
  if (!e.value.IsMap()) {
    lint.Error(e.value_mark, path,
               absl::StrCat("sweep must be a mapping with parameters and metric, got ",
                            Describe(e.value)));
    return;
  }
  SweepSpec sweep;
  const size_t errors = lint.ErrorCount();
  ParseFields<SweepSpec>(lint, e.value, path, e.key_node.Mark(), kSweepRules, sweep);
  if (lint.ErrorCount() != errors) {
    job.spec.sweep = SweepSpec{};  // seen (CheckSweep), but nothing else is said of it
    job.sweep_invalid = true;
    return;
  }
  if (sweep.method == "random" && sweep.trials == 0) {
    lint.Error(e.value_mark, Join(path, "trials"), "method random needs trials");
  } else if (absl::StatusOr<std::vector<SweepTrial>> trials = ExpandSweep(sweep); !trials.ok()) {
    lint.Error(e.value_mark, path, std::string(trials.status().message()));
  }
  job.spec.sweep = std::move(sweep);
}

void CheckSweep(Linter& lint, const std::string& job_path, const JobDraft& job) {
  if (!job.spec.sweep.has_value()) return;
  const std::string path = Join(job_path, "sweep");
  if (job.spec.matrix.has_value()) {
    lint.Error(job.sweep_mark, path,
               "a job has strategy.matrix or sweep, not both (a sweep's trials are its matrix)");
  }
  int train_steps = 0;
  for (const StepSpec& s : job.spec.steps) train_steps += s.train.has_value() ? 1 : 0;
  if (train_steps != 1) {
    lint.Error(job.sweep_mark, path,
               absl::StrCat("a sweep needs exactly one train step in its job (the sweep's metric "
                            "is one of that step's series), found ",
                            train_steps));
  }
}

}  // namespace assay::spec_internal
