#pragma once
// Internals of the `.assay.yml` validator shared by pipeline_spec.cc (jobs, steps,
// needs) and pipeline_spec_keys.cc (on:, if, retry, strategy, runs_on, ...). Not a
// public API: only those two files include it.

#include <algorithm>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/pipeline/edit_distance.h"
#include "common/pipeline/spec.h"
#include "yaml-cpp/yaml.h"

namespace assay::spec_internal {

// ---- Drafts: the model plus the positions that later checks report at. ----

struct NeedRef {
  std::string name;
  std::string key;  // e.g. "jobs.build.needs[1]"
  YAML::Mark mark;
  bool artifacts = false;  // written as {job: NAME, artifacts: true}
};

// A text that may hold `${{ }}` placeholders, checked once the job's matrix is known.
struct PlaceholderRef {
  std::string text;
  std::string key;
  YAML::Mark mark;
};

struct JobDraft {
  JobSpec spec;
  YAML::Mark mark;  // Of the job's name.
  std::vector<NeedRef> needs;
  std::vector<PlaceholderRef> placeholders;
  // Container keys (spec_container.cc): seen in the file, even when invalid.
  bool image_seen = false;
  bool services_seen = false;
  YAML::Mark services_mark;
  // build_image (spec_build_image.cc): where `image:`'s value is, and each build step's
  // registry_secret (text, key, mark), checked against `secrets:` once all keys are read.
  YAML::Mark image_mark;
  std::vector<PlaceholderRef> registry_secrets;
  // Issue 10, sweep (spec_sweep.cc): where `sweep:` is, and whether it had errors (its
  // parameters are then unknown, so placeholders naming them are not reported).
  YAML::Mark sweep_mark;
  bool sweep_invalid = false;
};

struct PipelineDraft {
  TriggerSpec on;
  std::vector<JobDraft> jobs;
};

// ---- Error collection. ----

class Linter {
 public:
  explicit Linter(std::string_view file) : file_(file) {}

  // Records a problem; returns its index for Lead().
  size_t Error(const YAML::Mark& mark, std::string key, std::string message) {
    SpecError error;
    error.file = file_;
    // yaml-cpp marks are 0-based; a null mark (-1) becomes 1:1.
    error.line = mark.line < 0 ? 1 : mark.line + 1;
    error.column = mark.column < 0 ? 1 : mark.column + 1;
    error.key = std::move(key);
    error.message = std::move(message);
    errors_.push_back(std::move(error));
    return errors_.size() - 1;
  }

  size_t ErrorCount() const { return errors_.size(); }

  // Puts error `index` ahead of every error not so marked: it is most likely the cause of
  // others (an unknown key that is a near miss of a missing required key).
  void Lead(size_t index) { leads_.insert(index); }

  // Every error: those marked by Lead() first, then by position (line, then column); ties
  // keep discovery order.
  std::vector<SpecError> TakeErrors() {
    std::vector<size_t> order(errors_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [this](size_t a, size_t b) {
      return std::tuple(!leads_.contains(a), errors_[a].line, errors_[a].column) <
             std::tuple(!leads_.contains(b), errors_[b].line, errors_[b].column);
    });
    std::vector<SpecError> sorted;
    for (size_t i : order) sorted.push_back(std::move(errors_[i]));
    errors_.clear();
    leads_.clear();
    return sorted;
  }

 private:
  std::string file_;
  std::vector<SpecError> errors_;
  absl::flat_hash_set<size_t> leads_;
};

// ---- Node helpers. ----

inline std::string Join(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(std::string(path), ".", std::string(key));
}

// Why not absl::StrJoin: Debian's Abseil has its own absl::string_view, which
// std::string_view does not convert to.
inline std::string JoinViews(const std::vector<std::string_view>& parts,
                             std::string_view separator) {
  std::string joined;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) joined += separator;
    joined += parts[i];
  }
  return joined;
}

inline std::string Index(std::string_view path, size_t i) {
  return absl::StrCat(std::string(path), "[", i, "]");
}

inline bool LooksLikeNumber(std::string_view s) {
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
inline std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Scalar: {
      if (node.Tag() != "?") return "a string";  // Quoted or explicitly tagged.
      const std::string& s = node.Scalar();
      if (s == "true" || s == "false" || s == "True" || s == "False" || s == "TRUE" ||
          s == "FALSE") {
        return "a boolean";
      }
      return LooksLikeNumber(s) ? "a number" : "a string";
    }
    default: return "null";
  }
}

// Where to report a problem with `node`: its own mark, except for null nodes, whose
// mark yaml-cpp places at the next token (often the next line).
inline YAML::Mark MarkOr(const YAML::Node& node, const YAML::Mark& fallback) {
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
inline std::vector<Entry> MappingEntries(Linter& lint, const YAML::Node& map,
                                         std::string_view path) {
  std::vector<Entry> entries;
  absl::flat_hash_map<std::string, int> first_line;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first;  // A copy: GCC 12 flags a reference as dangling.
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
  // Unknown keys with a suggestion: (suggested key, the error's index).
  std::vector<std::pair<std::string, size_t>> near_misses;
  for (const Entry& entry : MappingEntries(lint, map, path)) {
    const std::string key_path = Join(path, entry.key);
    auto rule = std::find_if(rules.begin(), rules.end(),
                             [&](const FieldRule<T>& r) { return r.key == entry.key; });
    if (rule == rules.end()) {
      const std::string suggestion = ClosestMatch(entry.key, allowed);
      const size_t error = lint.Error(
          entry.key_node.Mark(), key_path,
          suggestion.empty()
              ? absl::StrCat("unknown key '", entry.key,
                             "' (allowed keys: ", JoinViews(allowed, ", "), ")")
              : absl::StrCat("unknown key '", entry.key, "' (did you mean '", suggestion, "'?)"));
      if (!suggestion.empty()) near_misses.emplace_back(suggestion, error);
      continue;
    }
    present.insert(rule->key);
    rule->parse(lint, entry, key_path, out);
  }
  for (const FieldRule<T>& rule : rules) {
    if (rule.required && !present.contains(rule.key)) {
      lint.Error(owner_mark, Join(path, rule.key),
                 absl::StrCat("missing required key '", std::string(rule.key), "'"));
      // Why: "missing 'steps'" beside "unknown key 'stepz'" reads best cause first.
      for (const auto& [suggested, error] : near_misses) {
        if (suggested == rule.key) lint.Lead(error);
      }
    }
  }
}

// A scalar as text, or an error "<what> must be <expected>, got <kind>".
inline bool ScalarText(Linter& lint, const YAML::Node& node, const YAML::Mark& mark,
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

// `e`'s value as a YAML boolean, or an error "KEY must be a boolean, got <kind>"
// (spec_build_image.cc).
bool ParseBoolValue(Linter& lint, const Entry& e, const std::string& path, bool& out);
// "" when `path` is usable as a path relative to the workspace (non-empty, at most 1024 bytes,
// not absolute, no control characters, no '..' component), else the problem, naming `key`
// (spec_build_image.cc).
std::string RelativePathProblem(std::string_view key, const std::string& path);

// ---- Keys added by issue 3 (pipeline_spec_keys.cc). ----

void ParseOn(Linter& lint, const Entry& entry, const std::string& path, PipelineDraft& draft);
void ParseIf(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
void ParseRetry(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
void ParseAllowFailure(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
void ParseLfs(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
void ParseConcurrency(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
void ParsePriority(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
void ParseStrategy(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
void ParseRunsOn(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
// Issue 9 (spec_artifacts.cc): `artifacts:`, one `needs` entry written as a mapping
// ({job: NAME, artifacts: BOOL}; false when it is not one), and the check that every need
// marked `artifacts: true` names a job that has `artifacts:`.
void ParseArtifacts(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
bool ParseNeedMapping(Linter& lint, const YAML::Node& node, const YAML::Mark& mark,
                      const std::string& key, NeedRef& out);
void CheckArtifactNeeds(Linter& lint, PipelineDraft& draft);
// Issue 9 (spec_secrets.cc): `secrets:` and `environment:`.
void ParseSecrets(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
void ParseEnvironment(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
// Issue 9, container keys (spec_container.cc).
void ParseImage(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
void ParseServices(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
// After all of a job's keys: services without image.
void CheckContainerKeys(Linter& lint, const std::string& job_path, const JobDraft& job);
// Issue 9, build_image (spec_build_image.cc). ImageNameProblem (spec_container.cc): "" for a
// usable image reference or a `${{ jobs.NAME.image }}` (JobImageRef), else the problem.
std::string ImageNameProblem(const std::string& name);
// "" for a `tags:` entry: [registry/]path[:tag], lowercase path, no digest; else the problem.
std::string BuildImageTagProblem(const std::string& ref);
// The `build_image:` row of a step.
void ParseBuildImageStep(Linter& lint, const Entry& entry, const std::string& path, StepSpec& step);
// Issue 10, field readers shared by the eval and train keys (spec_eval.cc): a path in the
// workspace (RelativePathProblem), and a non-empty string; each an error naming the key.
void WorkspacePath(Linter& lint, const Entry& e, const std::string& path, std::string& out);
void NonEmptyText(Linter& lint, const Entry& e, const std::string& path, std::string& out);
// Issue 10: the `eval:` row of a step (spec_eval.cc).
void ParseEvalStep(Linter& lint, const Entry& entry, const std::string& path, StepSpec& step);
// Issue 10: the `train:` row of a step (spec_train.cc), and after all of a job's keys: the
// model_dir of each registering train step is added to the job's artifact paths.
void ParseTrainStep(Linter& lint, const Entry& entry, const std::string& path, StepSpec& step);
void AddTrainArtifacts(JobDraft& job);
// Issue 10: `sweep:` (spec_sweep.cc), and after all of a job's keys: no strategy beside it and
// exactly one train step.
void ParseSweep(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
void CheckSweep(Linter& lint, const std::string& job_path, const JobDraft& job);
// Issue 10: the `promote:` row of a step (spec_train.cc).
void ParsePromoteStep(Linter& lint, const Entry& entry, const std::string& path, StepSpec& step);
// Issue 12: the `deploy:` row of a step (spec_deploy.cc).
void ParseDeployStep(Linter& lint, const Entry& entry, const std::string& path, StepSpec& step);
// After all of a job's keys: every registry_secret is listed in `secrets:`.
void CheckBuildImageSecrets(Linter& lint, const JobDraft& job);
// After CheckNeeds: `image: ${{ jobs.NAME.image }}` names a job in needs, without a matrix,
// that has a build_image step with push: true.
void CheckJobImageRefs(Linter& lint, const PipelineDraft& draft);
// Issue 9: `network: none | default` (spec_jobs.cc).
void ParseNetwork(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
// Issue 9: `cache: {key, paths, restore_keys}` (spec_cache.cc).
void ParseCache(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job);
// Checks placeholders in env, steps.run, runs_on.labels, concurrency.group and
// artifacts.paths (matrix names only where the job has a matrix with that key).
void CheckPlaceholders(Linter& lint, const JobDraft& job);

}  // namespace assay::spec_internal
