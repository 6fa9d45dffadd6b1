#include "common/pipeline_spec.h"

#include <algorithm>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/duration.h"
#include "common/edit_distance.h"
#include "common/pipeline_graph.h"
#include "yaml-cpp/yaml.h"

namespace assay {
namespace {

// ---- Drafts: the model plus the positions that later checks report at. ----

struct NeedRef {
  std::string name;
  std::string key;  // e.g. "jobs.build.needs[1]"
  YAML::Mark mark;
};

struct JobDraft {
  JobSpec spec;
  YAML::Mark mark;  // Of the job's name.
  std::vector<NeedRef> needs;
};

struct PipelineDraft {
  std::vector<JobDraft> jobs;
};

// ---- Error collection. ----

class Linter {
 public:
  explicit Linter(std::string_view file) : file_(file) {}

  void Error(const YAML::Mark& mark, std::string key, std::string message) {
    SpecError error;
    error.file = file_;
    // yaml-cpp marks are 0-based; a null mark (-1) becomes 1:1.
    error.line = mark.line < 0 ? 1 : mark.line + 1;
    error.column = mark.column < 0 ? 1 : mark.column + 1;
    error.key = std::move(key);
    error.message = std::move(message);
    errors_.push_back(std::move(error));
  }

  std::vector<SpecError> TakeErrors() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const SpecError& a, const SpecError& b) {
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    return std::move(errors_);
  }

 private:
  std::string file_;
  std::vector<SpecError> errors_;
};

// ---- Node helpers. ----

std::string Join(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(std::string(path), ".", std::string(key));
}

// Why not absl::StrJoin: Debian's Abseil has its own absl::string_view, which
// std::string_view does not convert to.
std::string JoinViews(const std::vector<std::string_view>& parts, std::string_view separator) {
  std::string joined;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) joined += separator;
    joined += parts[i];
  }
  return joined;
}

std::string Index(std::string_view path, size_t i) {
  return absl::StrCat(std::string(path), "[", i, "]");
}

bool LooksLikeNumber(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  if (s.empty()) return false;
  bool digit = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c != '.' && c != '_' && c != 'e' && c != 'E') {
      return false;
    }
  }
  return digit;
}

// How a node's kind reads in a message: "a list", "a mapping", "null", "a number", ...
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar: {
      if (node.Tag() != "?") return "a string";  // Quoted or explicitly tagged.
      const std::string& s = node.Scalar();
      if (s == "true" || s == "false" || s == "True" || s == "False" || s == "TRUE" ||
          s == "FALSE") {
        return "a boolean";
      }
      return LooksLikeNumber(s) ? "a number" : "a string";
    }
    default:
      return "null";
  }
}

// Where to report a problem with `node`: its own mark, except for null nodes, whose
// mark yaml-cpp places at the next token (often the next line).
YAML::Mark MarkOr(const YAML::Node& node, const YAML::Mark& fallback) {
  if (node.IsNull() || node.Mark().is_null()) return fallback;
  return node.Mark();
}

struct Entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
  YAML::Mark value_mark;  // MarkOr(value, key mark).
};

// The entries of mapping `map` in file order. Reports non-string keys and duplicate
// keys (yaml-cpp keeps both and lookups silently see the first); returns only the
// first occurrence of each key.
std::vector<Entry> MappingEntries(Linter& lint, const YAML::Node& map, std::string_view path) {
  std::vector<Entry> entries;
  absl::flat_hash_map<std::string, int> first_line;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node& key = it->first;
    if (!key.IsScalar()) {
      lint.Error(MarkOr(key, map.Mark()), std::string(path),
                 absl::StrCat("keys must be strings, got ", Describe(key)));
      continue;
    }
    const std::string& name = key.Scalar();
    auto [seen, inserted] = first_line.try_emplace(name, key.Mark().line + 1);
    if (!inserted) {
      lint.Error(
          key.Mark(), Join(path, name),
          absl::StrCat("duplicate key '", name, "' (first defined at line ", seen->second, ")"));
      continue;
    }
    entries.push_back(Entry{name, key, it->second, MarkOr(it->second, key.Mark())});
  }
  return entries;
}

// ---- The table-driven validator. ----
//
// Each mapping level of the file has a table of the keys it allows. To add a key,
// add a row (and a field in the model); unknown-key, duplicate-key and missing-key
// errors, with suggestions, come from ParseFields.

template <typename T>
struct FieldRule {
  std::string_view key;
  bool required;
  // `path` is the dotted path of the entry's key; `out` the object being built.
  void (*parse)(Linter& lint, const Entry& entry, const std::string& path, T& out);
};

template <typename T>
void ParseFields(Linter& lint, const YAML::Node& map, std::string_view path,
                 const YAML::Mark& owner_mark, std::span<const FieldRule<T>> rules, T& out) {
  std::vector<std::string_view> allowed;
  for (const FieldRule<T>& rule : rules) allowed.push_back(rule.key);
  absl::flat_hash_set<std::string_view> present;
  for (const Entry& entry : MappingEntries(lint, map, path)) {
    const std::string key_path = Join(path, entry.key);
    auto rule = std::find_if(rules.begin(), rules.end(),
                             [&](const FieldRule<T>& r) { return r.key == entry.key; });
    if (rule == rules.end()) {
      const std::string suggestion = ClosestMatch(entry.key, allowed);
      lint.Error(
          entry.key_node.Mark(), key_path,
          suggestion.empty()
              ? absl::StrCat("unknown key '", entry.key,
                             "' (allowed keys: ", JoinViews(allowed, ", "), ")")
              : absl::StrCat("unknown key '", entry.key, "' (did you mean '", suggestion, "'?)"));
      continue;
    }
    present.insert(rule->key);
    rule->parse(lint, entry, key_path, out);
  }
  for (const FieldRule<T>& rule : rules) {
    if (rule.required && !present.contains(rule.key)) {
      lint.Error(owner_mark, Join(path, rule.key),
                 absl::StrCat("missing required key '", std::string(rule.key), "'"));
    }
  }
}

// A scalar as text, or an error "<what> must be <expected>, got <kind>".
bool ScalarText(Linter& lint, const YAML::Node& node, const YAML::Mark& mark,
                const std::string& path, std::string_view what, std::string_view expected,
                std::string& out) {
  if (!node.IsScalar()) {
    lint.Error(mark, path,
               absl::StrCat(std::string(what), " must be ", std::string(expected), ", got ",
                            Describe(node)));
    return false;
  }
  out = node.Scalar();
  return true;
}

// ---- Steps. ----

void ParseStepName(Linter& lint, const Entry& entry, const std::string& path, StepSpec& step) {
  if (!ScalarText(lint, entry.value, entry.value_mark, path, "name", "a string", step.name)) {
    return;
  }
  if (step.name.empty()) lint.Error(entry.value_mark, path, "name must not be empty");
}

void ParseStepRun(Linter& lint, const Entry& entry, const std::string& path, StepSpec& step) {
  if (!ScalarText(lint, entry.value, entry.value_mark, path, "run", "a string", step.run)) {
    return;
  }
  if (step.run.empty()) lint.Error(entry.value_mark, path, "run must not be empty");
}

constexpr FieldRule<StepSpec> kStepRules[] = {
    {"name", false, ParseStepName},
    {"run", true, ParseStepRun},
};

// ---- Jobs. ----

void ParseNeeds(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job) {
  absl::flat_hash_set<std::string> seen;
  auto add = [&](const YAML::Node& node, const YAML::Mark& mark, std::string key) {
    std::string name;
    if (!ScalarText(lint, node, mark, key, "needs entries", "job names", name)) return;
    if (!seen.insert(name).second) {
      lint.Error(mark, key, absl::StrCat("job '", name, "' is listed more than once"));
      return;
    }
    job.needs.push_back(NeedRef{std::move(name), std::move(key), mark});
  };
  const YAML::Node& value = entry.value;
  if (value.IsScalar()) {
    add(value, entry.value_mark, path);
    return;
  }
  if (!value.IsSequence()) {
    lint.Error(entry.value_mark, path,
               absl::StrCat("needs must be a list of job names, got ", Describe(value)));
    return;
  }
  for (size_t i = 0; i < value.size(); ++i) {
    add(value[i], MarkOr(value[i], value.Mark()), Index(path, i));
  }
}

bool IsEnvName(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

void ParseEnv(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job) {
  if (!entry.value.IsMap()) {
    lint.Error(
        entry.value_mark, path,
        absl::StrCat("env must be a mapping of names to values, got ", Describe(entry.value)));
    return;
  }
  for (const Entry& var : MappingEntries(lint, entry.value, path)) {
    const std::string var_path = Join(path, var.key);
    if (!IsEnvName(var.key)) {
      lint.Error(var.key_node.Mark(), var_path,
                 absl::StrCat("invalid environment variable name '", var.key,
                              "': use letters, digits and '_', not starting with a digit"));
      continue;
    }
    std::string value;
    if (ScalarText(lint, var.value, var.value_mark, var_path, "env values",
                   "strings, numbers or booleans", value)) {
      job.spec.env.emplace_back(var.key, std::move(value));
    }
  }
}

void ParseTimeout(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job) {
  std::string text;
  if (!ScalarText(lint, entry.value, entry.value_mark, path, "timeout",
                  "a duration such as 30s, 10m or 1h30m", text)) {
    return;
  }
  absl::StatusOr<int64_t> seconds = ParseDurationSeconds(text);
  if (!seconds.ok()) {
    lint.Error(entry.value_mark, path, std::string(seconds.status().message()));
    return;
  }
  job.spec.timeout_s = *seconds;
}

void ParseSteps(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job) {
  const YAML::Node& value = entry.value;
  if (!value.IsSequence()) {
    lint.Error(entry.value_mark, path, absl::StrCat("steps must be a list, got ", Describe(value)));
    return;
  }
  if (value.size() == 0) {
    lint.Error(entry.value_mark, path, "steps must not be empty");
    return;
  }
  for (size_t i = 0; i < value.size(); ++i) {
    const YAML::Node item = value[i];
    const std::string item_path = Index(path, i);
    const YAML::Mark item_mark = MarkOr(item, value.Mark());
    StepSpec step;
    if (item.IsScalar()) {
      step.run = item.Scalar();
      if (step.run.empty()) lint.Error(item_mark, item_path, "step must not be empty");
    } else if (item.IsMap()) {
      ParseFields<StepSpec>(lint, item, item_path, item_mark, kStepRules, step);
    } else {
      lint.Error(item_mark, item_path,
                 absl::StrCat("a step must be a command string or a mapping with 'run', got ",
                              Describe(item)));
      continue;
    }
    if (step.name.empty()) step.name = absl::StrCat("step ", i + 1);
    job.spec.steps.push_back(std::move(step));
  }
}

constexpr FieldRule<JobDraft> kJobRules[] = {
    {"needs", false, ParseNeeds},
    {"env", false, ParseEnv},
    {"timeout", false, ParseTimeout},
    {"steps", true, ParseSteps},
};

// ---- Top level. ----

bool IsJobName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

void ParseJobs(Linter& lint, const Entry& entry, const std::string& path, PipelineDraft& draft) {
  const YAML::Node& value = entry.value;
  if (!value.IsMap()) {
    lint.Error(entry.value_mark, path,
               absl::StrCat("jobs must be a mapping of job names to jobs, got ", Describe(value)));
    return;
  }
  if (value.size() == 0) {
    lint.Error(entry.value_mark, path, "jobs must not be empty");
    return;
  }
  for (const Entry& job_entry : MappingEntries(lint, value, path)) {
    const std::string job_path = Join(path, job_entry.key);
    const YAML::Mark mark = job_entry.key_node.Mark();
    if (!IsJobName(job_entry.key)) {
      lint.Error(mark, job_path,
                 absl::StrCat("invalid job name '", job_entry.key,
                              "': use 1 to 64 letters, digits, '_', '.' or '-'"));
    }
    JobDraft job;
    job.spec.name = job_entry.key;
    job.spec.line = mark.line + 1;
    job.mark = mark;
    if (!job_entry.value.IsMap()) {
      lint.Error(job_entry.value_mark, job_path,
                 absl::StrCat("job '", job_entry.key, "' must be a mapping, got ",
                              Describe(job_entry.value)));
    } else {
      ParseFields<JobDraft>(lint, job_entry.value, job_path, mark, kJobRules, job);
    }
    // Kept even when invalid, so that needs naming it are not reported as unknown.
    draft.jobs.push_back(std::move(job));
  }
}

constexpr FieldRule<PipelineDraft> kTopLevelRules[] = {
    {"jobs", true, ParseJobs},
};

// Resolves needs against the defined jobs and reports self-needs, unknown jobs and
// cycles. Fills JobSpec::needs with the resolvable ones.
void CheckNeeds(Linter& lint, PipelineDraft& draft) {
  absl::flat_hash_map<std::string, int> index;
  std::vector<std::string_view> names;
  for (size_t i = 0; i < draft.jobs.size(); ++i) {
    index.emplace(draft.jobs[i].spec.name, static_cast<int>(i));
    names.push_back(draft.jobs[i].spec.name);
  }
  std::vector<std::vector<int>> edges(draft.jobs.size());
  for (size_t i = 0; i < draft.jobs.size(); ++i) {
    JobDraft& job = draft.jobs[i];
    for (NeedRef& need : job.needs) {
      if (need.name == job.spec.name) {
        lint.Error(need.mark, need.key, "a job cannot need itself");
        continue;
      }
      auto it = index.find(need.name);
      if (it == index.end()) {
        const std::string suggestion = ClosestMatch(need.name, names);
        lint.Error(
            need.mark, need.key,
            absl::StrCat(
                "needs unknown job '", need.name, "'",
                suggestion.empty() ? "" : absl::StrCat(" (did you mean '", suggestion, "'?)")));
        continue;
      }
      edges[i].push_back(it->second);
      job.spec.needs.push_back(need.name);
    }
  }
  for (const std::vector<int>& cycle : FindCycles(edges)) {
    std::vector<std::string_view> path;
    for (int node : cycle) path.push_back(draft.jobs[node].spec.name);
    path.push_back(draft.jobs[cycle.front()].spec.name);
    const JobDraft& first = draft.jobs[cycle.front()];
    lint.Error(first.mark, Join("jobs", first.spec.name),
               absl::StrCat("dependency cycle: ", JoinViews(path, " -> ")));
  }
}

// Validates `yaml_text`; `draft` holds whatever could be parsed.
std::vector<SpecError> Lint(std::string_view yaml_text, std::string_view file,
                            PipelineDraft& draft) {
  Linter lint(file);
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    lint.Error(e.mark, "", absl::StrCat("invalid YAML: ", e.msg));
    return lint.TakeErrors();
  }
  if (documents.empty() || documents[0].IsNull()) {
    lint.Error(YAML::Mark::null_mark(), "", "file is empty; expected a mapping with a 'jobs' key");
    return lint.TakeErrors();
  }
  if (documents.size() > 1) {
    lint.Error(documents[1].Mark(), "",
               absl::StrCat("expected one YAML document, found ", documents.size()));
  }
  const YAML::Node& root = documents[0];
  if (!root.IsMap()) {
    lint.Error(root.Mark(), "",
               absl::StrCat("top level must be a mapping with a 'jobs' key, got ", Describe(root)));
    return lint.TakeErrors();
  }
  try {
    ParseFields<PipelineDraft>(lint, root, "", root.Mark(), kTopLevelRules, draft);
  } catch (const YAML::Exception& e) {
    // Not expected: every access above is type-checked first.
    lint.Error(e.mark, "", absl::StrCat("cannot read the file: ", e.msg));
    return lint.TakeErrors();
  }
  CheckNeeds(lint, draft);
  return lint.TakeErrors();
}

}  // namespace

std::string SpecError::ToString() const {
  if (key.empty()) return absl::StrCat(file, ":", line, ":", column, ": ", message);
  return absl::StrCat(file, ":", line, ":", column, ": ", key, ": ", message);
}

std::vector<SpecError> LintPipelineSpec(std::string_view yaml_text, std::string_view file) {
  PipelineDraft draft;
  return Lint(yaml_text, file, draft);
}

absl::StatusOr<PipelineSpec> ParsePipelineSpec(std::string_view yaml_text, std::string_view file) {
  PipelineDraft draft;
  std::vector<SpecError> errors = Lint(yaml_text, file, draft);
  if (!errors.empty()) {
    std::string message = errors.front().ToString();
    if (errors.size() == 2) absl::StrAppend(&message, " (and 1 more error)");
    if (errors.size() > 2) absl::StrAppend(&message, " (and ", errors.size() - 1, " more errors)");
    return absl::InvalidArgumentError(message);
  }
  PipelineSpec spec;
  for (JobDraft& job : draft.jobs) spec.jobs.push_back(std::move(job.spec));
  return spec;
}

std::vector<std::string> TopologicalOrder(const PipelineSpec& spec) {
  absl::flat_hash_map<std::string_view, int> index;
  for (size_t i = 0; i < spec.jobs.size(); ++i) {
    index.emplace(spec.jobs[i].name, static_cast<int>(i));
  }
  std::vector<std::vector<int>> edges(spec.jobs.size());
  for (size_t i = 0; i < spec.jobs.size(); ++i) {
    for (const std::string& need : spec.jobs[i].needs) {
      auto it = index.find(need);
      if (it != index.end()) edges[i].push_back(it->second);
    }
  }
  std::vector<std::string> order;
  for (int node : StableTopologicalOrder(edges)) order.push_back(spec.jobs[node].name);
  return order;
}

}  // namespace assay
