// The job keys of issue 3: if, retry, allow_failure, concurrency, priority, strategy,
// runs_on; and the `${{ }}` placeholder check. Rows live in kJobRules (pipeline_spec.cc).

#include <cmath>
#include <cstdlib>

#include "common/pipeline/expr.h"
#include "common/pipeline/glob.h"
#include "common/pipeline/spec_internal.h"

namespace assay::spec_internal {
namespace {

bool AsBool(Linter& lint, const Entry& e, const std::string& path, bool& out) {
  if (Describe(e.value) != "a boolean") {
    lint.Error(e.value_mark, path,
               absl::StrCat(e.key, " must be a boolean, got ", Describe(e.value)));
    return false;
  }
  const std::string& s = e.value.Scalar();
  out = s == "true" || s == "True" || s == "TRUE";
  return true;
}

// An integer in [lo, hi]; `expected` reads e.g. "an integer from 0 to 10".
bool AsInt(Linter& lint, const YAML::Node& node, const YAML::Mark& mark, const std::string& path,
           std::string_view what, long lo, long hi, std::string_view expected, int& out) {
  const std::string kind = Describe(node);
  long value = 0;
  bool ok = kind == "a number";
  if (ok) {
    char* end = nullptr;
    value = std::strtol(node.Scalar().c_str(), &end, 10);
    ok = *end == '\0';
  }
  if (!ok || value < lo || value > hi) {
    lint.Error(mark, path,
               absl::StrCat(std::string(what), " must be ", std::string(expected), ", got ",
                            kind == "a number" ? node.Scalar() : kind));
    return false;
  }
  out = static_cast<int>(value);
  return true;
}

bool AsNumber(Linter& lint, const Entry& e, const std::string& path, double& out) {
  if (Describe(e.value) == "a number") {
    char* end = nullptr;
    out = std::strtod(e.value.Scalar().c_str(), &end);
    if (*end == '\0' && std::isfinite(out) && out >= 0) return true;
  }
  lint.Error(e.value_mark, path,
             absl::StrCat(e.key, " must be a number >= 0, got ",
                          Describe(e.value) == "a number" ? e.value.Scalar() : Describe(e.value)));
  return false;
}

// Scalars of a list (or a single scalar), with their marks and keys.
bool ScalarList(Linter& lint, const Entry& e, const std::string& path,
                std::vector<PlaceholderRef>& out) {
  auto add = [&](const YAML::Node& n, const YAML::Mark& mark, const std::string& key) {
    std::string text;
    if (ScalarText(lint, n, mark, key, absl::StrCat(e.key, " entries"), "strings", text)) {
      out.push_back({std::move(text), key, mark});
    }
  };
  if (e.value.IsScalar()) {
    add(e.value, e.value_mark, path);
    return true;
  }
  if (!e.value.IsSequence()) {
    lint.Error(e.value_mark, path,
               absl::StrCat(e.key, " must be a list of strings, got ", Describe(e.value)));
    return false;
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    add(e.value[i], MarkOr(e.value[i], e.value.Mark()), Index(path, i));
  }
  return true;
}

constexpr FieldRule<JobDraft> kRetryRules[] = {
    {"max", false,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       AsInt(lint, e.value, e.value_mark, path, "max", 0, 10, "an integer from 0 to 10",
             job.spec.retry.max);
     }},
    {"on", false,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       std::vector<PlaceholderRef> items;
       if (!ScalarList(lint, e, path, items)) return;
       job.spec.retry.on.clear();
       for (const PlaceholderRef& item : items) {
         if (item.text != "agent_lost" && item.text != "timeout" && item.text != "failure") {
           lint.Error(item.mark, item.key,
                      absl::StrCat("unknown retry reason '", item.text,
                                   "' (allowed: agent_lost, timeout, failure)"));
         } else if (std::find(job.spec.retry.on.begin(), job.spec.retry.on.end(), item.text) !=
                    job.spec.retry.on.end()) {
           lint.Error(item.mark, item.key,
                      absl::StrCat("retry reason '", item.text, "' is listed more than once"));
         } else {
           job.spec.retry.on.push_back(item.text);
         }
       }
     }},
};

constexpr FieldRule<JobDraft> kConcurrencyRules[] = {
    {"group", true,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       if (!ScalarText(lint, e.value, e.value_mark, path, "group", "a string",
                       job.spec.concurrency.group)) {
         return;
       }
       if (job.spec.concurrency.group.empty()) {
         lint.Error(e.value_mark, path, "group must not be empty");
         return;
       }
       job.placeholders.push_back({job.spec.concurrency.group, path, e.value_mark});
     }},
    {"cancel_in_progress", false,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       AsBool(lint, e, path, job.spec.concurrency.cancel_in_progress);
     }},
};

// Matrix values: each axis a non-empty list of scalars.
void ParseMatrixEntries(Linter& lint, const YAML::Node& list, const YAML::Mark& mark,
                        const std::string& path, const std::string& what,
                        std::vector<std::map<std::string, std::string>>& out) {
  if (!list.IsSequence()) {
    lint.Error(mark, path, absl::StrCat(what, " must be a list of mappings, got ", Describe(list)));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node item = list[i];
    const std::string item_path = Index(path, i);
    const YAML::Mark item_mark = MarkOr(item, list.Mark());
    if (!item.IsMap()) {
      lint.Error(item_mark, item_path,
                 absl::StrCat(what, " entries must be mappings, got ", Describe(item)));
      continue;
    }
    std::map<std::string, std::string> values;
    for (const Entry& kv : MappingEntries(lint, item, item_path)) {
      std::string text;
      if (ScalarText(lint, kv.value, kv.value_mark, Join(item_path, kv.key), "matrix values",
                     "strings, numbers or booleans", text)) {
        values[kv.key] = std::move(text);
      }
    }
    out.push_back(std::move(values));
  }
}

void ParseMatrix(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  if (!e.value.IsMap()) {
    lint.Error(e.value_mark, path,
               absl::StrCat("matrix must be a mapping of axes to lists, got ", Describe(e.value)));
    return;
  }
  MatrixSpec& m = *job.spec.matrix;
  for (const Entry& axis : MappingEntries(lint, e.value, path)) {
    const std::string axis_path = Join(path, axis.key);
    if (axis.key == "include" || axis.key == "exclude") {
      ParseMatrixEntries(lint, axis.value, axis.value_mark, axis_path, axis.key,
                         axis.key == "include" ? m.include : m.exclude);
      continue;
    }
    if (!axis.value.IsSequence() || axis.value.size() == 0) {
      lint.Error(axis.value_mark, axis_path,
                 absl::StrCat("matrix axis '", axis.key, "' must be a non-empty list, got ",
                              axis.value.IsSequence() ? "an empty list" : Describe(axis.value)));
      continue;
    }
    std::vector<std::string> values;
    for (size_t i = 0; i < axis.value.size(); ++i) {
      std::string text;
      const YAML::Node v = axis.value[i];
      if (ScalarText(lint, v, MarkOr(v, axis.value.Mark()), Index(axis_path, i), "matrix values",
                     "strings, numbers or booleans", text)) {
        values.push_back(std::move(text));
      }
    }
    m.axes.emplace_back(axis.key, std::move(values));
  }
  for (size_t i = 0; i < m.exclude.size(); ++i) {
    for (const auto& [key, value] : m.exclude[i]) {
      const bool known = std::any_of(m.axes.begin(), m.axes.end(),
                                     [&key = key](const auto& a) { return a.first == key; });
      if (!known) {
        lint.Error(e.value_mark, Index(Join(path, "exclude"), i),
                   absl::StrCat("exclude names '", key, "', which is not a matrix axis"));
      }
    }
  }
  absl::StatusOr<std::vector<std::map<std::string, std::string>>> expanded = ExpandMatrix(m);
  if (!expanded.ok()) lint.Error(e.value_mark, path, std::string(expanded.status().message()));
}

constexpr FieldRule<JobDraft> kStrategyRules[] = {
    {"matrix", true, ParseMatrix},
    {"max_parallel", false,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       AsInt(lint, e.value, e.value_mark, path, "max_parallel", 1, 256, "an integer from 1 to 256",
             job.spec.matrix->max_parallel);
     }},
};

constexpr FieldRule<JobDraft> kRunsOnRules[] = {
    {"labels", false,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       std::vector<PlaceholderRef> items;
       if (!ScalarList(lint, e, path, items)) return;
       for (PlaceholderRef& item : items) {
         job.spec.runs_on.labels.push_back(item.text);
         job.placeholders.push_back(std::move(item));
       }
     }},
    {"cpus", false,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       AsInt(lint, e.value, e.value_mark, path, "cpus", 1, 1024, "an integer from 1 to 1024",
             job.spec.runs_on.cpus);
     }},
    {"memory_gb", false,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       AsNumber(lint, e, path, job.spec.runs_on.memory_gb);
     }},
    {"gpus", false,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       if (e.value.IsScalar() && e.value.Scalar() == "shared") {
         job.spec.runs_on.gpus = 1;
         job.spec.runs_on.gpu_shared = true;
         return;
       }
       AsInt(lint, e.value, e.value_mark, path, "gpus", 0, 64,
             "an integer from 0 to 64 or 'shared'", job.spec.runs_on.gpus);
     }},
    {"gpu_memory_gb", false,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       AsNumber(lint, e, path, job.spec.runs_on.gpu_memory_gb);
     }},
    {"gpu_model", false,
     [](Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
       std::string& model = job.spec.runs_on.gpu_model;
       if (!ScalarText(lint, e.value, e.value_mark, path, "gpu_model", "a glob string", model)) {
         return;
       }
       absl::Status s = ValidateGlob(model);
       if (!s.ok()) lint.Error(e.value_mark, path, std::string(s.message()));
     }},
};

template <typename Rules>
void ParseNested(Linter& lint, const Entry& e, const std::string& path, std::string_view what,
                 const Rules& rules, JobDraft& job) {
  if (!e.value.IsMap()) {
    lint.Error(e.value_mark, path,
               absl::StrCat(e.key, " must be ", std::string(what), ", got ", Describe(e.value)));
    return;
  }
  ParseFields<JobDraft>(lint, e.value, path, e.key_node.Mark(), rules, job);
}

}  // namespace

void ParseIf(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  if (!ScalarText(lint, e.value, e.value_mark, path, "if", "an expression string",
                  job.spec.if_expr)) {
    return;
  }
  absl::StatusOr<Expr> expr = Expr::Parse(job.spec.if_expr);
  if (!expr.ok()) {
    lint.Error(e.key_node.Mark(), path,
               absl::StrCat("invalid expression: ", std::string(expr.status().message())));
  }
}

void ParseRetry(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  if (e.value.IsScalar()) {
    AsInt(lint, e.value, e.value_mark, path, "retry", 0, 10, "an integer from 0 to 10 or a mapping",
          job.spec.retry.max);
    return;
  }
  ParseNested(lint, e, path, "an integer from 0 to 10 or a mapping", kRetryRules, job);
}

void ParseAllowFailure(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  AsBool(lint, e, path, job.spec.allow_failure);
}

void ParseLfs(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  AsBool(lint, e, path, job.spec.lfs);
}

void ParseConcurrency(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  ParseNested(lint, e, path, "a mapping with 'group'", kConcurrencyRules, job);
}

void ParsePriority(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  AsInt(lint, e.value, e.value_mark, path, "priority", -100, 100, "an integer from -100 to 100",
        job.spec.priority);
}

void ParseStrategy(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  job.spec.matrix = MatrixSpec{};
  ParseNested(lint, e, path, "a mapping with 'matrix'", kStrategyRules, job);
}

void ParseRunsOn(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  ParseNested(lint, e, path, "a mapping", kRunsOnRules, job);
}

void ParseNetwork(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  std::string value;
  if (!ScalarText(lint, e.value, e.value_mark, path, "network", "none or default", value)) return;
  if (value != "none" && value != "default") {
    lint.Error(e.value_mark, path,
               absl::StrCat("network must be none or default, got '", value, "'"));
    return;
  }
  job.spec.network = value == "none" ? "none" : "";
}

void CheckPlaceholders(Linter& lint, const JobDraft& job) {
  for (const PlaceholderRef& ref : job.placeholders) {
    const bool sweep = job.spec.sweep.has_value() && !job.spec.matrix.has_value();
    absl::Status s = ValidatePlaceholders(ref.text, job.spec.matrix.has_value() || sweep);
    if (!s.ok()) {
      lint.Error(ref.mark, ref.key, std::string(s.message()));
      continue;
    }
    if (!job.spec.matrix.has_value() && !sweep) continue;
    if (sweep && job.sweep_invalid) continue;
    // Matrix names must be keys that the expansion produces.
    size_t pos = 0;
    while ((pos = ref.text.find("matrix.", pos)) != std::string::npos) {
      size_t end = pos + 7;
      while (end < ref.text.size() && ref.text[end] != ' ' && ref.text[end] != '}') ++end;
      const std::string name = ref.text.substr(pos + 7, end - pos - 7);
      bool known = false;
      if (sweep) {  // a sweep's trials are its matrix: its parameters are the keys
        const std::vector<SweepParameter>& ps = job.spec.sweep->parameters;
        known = std::any_of(ps.begin(), ps.end(), [&](const auto& p) { return p.name == name; });
      } else {
        const MatrixSpec& m = *job.spec.matrix;
        known = std::any_of(m.axes.begin(), m.axes.end(),
                            [&](const auto& a) { return a.first == name; }) ||
                std::any_of(m.include.begin(), m.include.end(),
                            [&](const auto& inc) { return inc.contains(name); });
      }
      if (!known) {
        lint.Error(
            ref.mark, ref.key,
            absl::StrCat("unknown ", sweep ? "sweep parameter" : "matrix key", " '", name, "'"));
      }
      pos = end;
    }
  }
}

}  // namespace assay::spec_internal
