#include "common/pipeline/spec.h"

#include <algorithm>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/pipeline/duration.h"
#include "common/pipeline/edit_distance.h"
#include "common/pipeline/graph.h"
#include "common/pipeline/spec_internal.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace assay {
namespace {

using namespace spec_internal;  // NOLINT: the validator's own internals.

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
    {"run", false, ParseStepRun},  // required unless build_image (ParseSteps)
    {"build_image", false, ParseBuildImageStep},
    {"eval", false, ParseEvalStep},
    {"train", false, ParseTrainStep},
    {"promote", false, ParsePromoteStep},
    {"deploy", false, ParseDeployStep},
};

// ---- Jobs. ----

void ParseNeeds(Linter& lint, const Entry& entry, const std::string& path, JobDraft& job) {
  absl::flat_hash_set<std::string> seen;
  auto add = [&](const YAML::Node& node, const YAML::Mark& mark, std::string key) {
    NeedRef need;
    if (node.IsMap()) {
      if (!ParseNeedMapping(lint, node, mark, key, need)) return;
    } else if (!ScalarText(lint, node, mark, key, "needs entries",
                           "job names or {job, artifacts} mappings", need.name)) {
      return;
    }
    if (!seen.insert(need.name).second) {
      lint.Error(mark, key, absl::StrCat("job '", need.name, "' is listed more than once"));
      return;
    }
    need.key = std::move(key);
    need.mark = mark;
    job.needs.push_back(std::move(need));
  };
  const YAML::Node& value = entry.value;
  if (value.IsScalar()) {
    add(value, entry.value_mark, path);
    return;
  }
  if (!value.IsSequence()) {
    lint.Error(entry.value_mark, path,
               absl::StrCat("needs must be a list of job names or {job, artifacts} mappings, got ",
                            Describe(value)));
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
      job.placeholders.push_back({value, var_path, var.value_mark});
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
      const int kinds = (item["run"] ? 1 : 0) + (step.build_image.has_value() ? 1 : 0) +
                        (step.eval.has_value() ? 1 : 0) + (step.train.has_value() ? 1 : 0) +
                        (step.promote.has_value() ? 1 : 0) + (step.deploy.has_value() ? 1 : 0);
      if (kinds == 0) {
        lint.Error(item_mark, Join(item_path, "run"), "missing required key 'run'");
      } else if (kinds > 1) {
        const char* key = step.deploy.has_value()    ? "deploy"
                          : step.promote.has_value() ? "promote"
                          : step.train.has_value()   ? "train"
                          : step.eval.has_value()    ? "eval"
                                                     : "build_image";
        lint.Error(item_mark, Join(item_path, key),
                   "a step has one of run:, build_image:, eval:, train:, promote: and deploy:, not "
                   "two");
      }
      if (step.build_image.has_value() && !step.build_image->registry_secret.empty()) {
        const YAML::Node secret = item["build_image"]["registry_secret"];
        job.registry_secrets.push_back({step.build_image->registry_secret,
                                        Join(Join(item_path, "build_image"), "registry_secret"),
                                        MarkOr(secret, item_mark)});
      }
    } else {
      lint.Error(item_mark, item_path,
                 absl::StrCat("a step must be a command string or a mapping with 'run', got ",
                              Describe(item)));
      continue;
    }
    if (step.name.empty()) step.name = absl::StrCat("step ", i + 1);
    if (step.eval.has_value() && step.eval->name.empty()) step.eval->name = step.name;
    if (step.train.has_value() && step.train->name.empty()) step.train->name = step.name;
    if (!step.build_image.has_value() && !step.eval.has_value() && !step.train.has_value() &&
        !step.promote.has_value() && !step.deploy.has_value()) {
      job.placeholders.push_back({step.run, item_path, item_mark});
    }
    job.spec.steps.push_back(std::move(step));
  }
}

constexpr FieldRule<JobDraft> kJobRules[] = {
    {"needs", false, ParseNeeds},
    {"env", false, ParseEnv},
    {"timeout", false, ParseTimeout},
    {"steps", true, ParseSteps},
    {"if", false, ParseIf},
    {"retry", false, ParseRetry},
    {"allow_failure", false, ParseAllowFailure},
    {"concurrency", false, ParseConcurrency},
    {"priority", false, ParsePriority},
    {"strategy", false, ParseStrategy},
    {"runs_on", false, ParseRunsOn},
    {"lfs", false, ParseLfs},
    {"artifacts", false, ParseArtifacts},
    {"secrets", false, ParseSecrets},          // issue 9 (spec_secrets.cc)
    {"environment", false, ParseEnvironment},  // issue 9 (spec_secrets.cc)
    {"image", false, ParseImage},
    {"services", false, ParseServices},
    {"network", false, ParseNetwork},
    {"cache", false, ParseCache},  // issue 9 (spec_cache.cc)
    {"sweep", false, ParseSweep},  // issue 10 (spec_sweep.cc)
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
      CheckPlaceholders(lint, job);
      CheckSweep(lint, job_path, job);
      CheckContainerKeys(lint, job_path, job);
      CheckBuildImageSecrets(lint, job);
      AddTrainArtifacts(job);
    }
    // Kept even when invalid, so that needs naming it are not reported as unknown.
    draft.jobs.push_back(std::move(job));
  }
}

constexpr FieldRule<PipelineDraft> kTopLevelRules[] = {
    {"on", false, ParseOn},
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
      if (need.artifacts) job.spec.artifact_needs.push_back(need.name);
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

// A limit of ReadShape that the file breaks: where, under which key, and how.
struct ShapeError {
  YAML::Mark mark;
  std::string key;
  std::string message;
};

// Reads a YAML stream's events (no nodes are built) to refuse, before yaml-cpp builds nodes
// and before the validator walks them, a file that is too deep or whose aliases expand too
// far, and to find yaml-cpp 0.7's endless loop. Throws ShapeError at the first problem.
//
// Why count alias expansions: yaml-cpp shares an aliased node, but the validator (and any
// code after it) walks the expanded tree, so nine lines of `&a [*b, *b, ...]` are a billion
// nodes. Why a depth limit: no pipeline file needs more than a few levels, and every
// recursive reader of the tree (here, yaml-cpp's parser, Describe) is then shallow.
class ShapeReader : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    last_start = mark;
    anchor_sizes_.clear();
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t anchor) override { Leaf(anchor, 1); }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t anchor,
                const std::string& value) override {
    if (AtKey()) frames_.back().key = value;
    Leaf(anchor, 1);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchor_sizes_.find(anchor);
    const uint64_t size = it == anchor_sizes_.end() ? 1 : it->second;
    expanded_ = Add(expanded_, size);
    if (expanded_ > kMaxAliasNodes) {
      throw ShapeError{mark, Path(),
                       absl::StrCat("aliases expand to more than ", kMaxAliasNodes, " nodes")};
    }
    if (AtKey()) frames_.back().key = "*";
    Leaf(0, size);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(mark, anchor, false);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(mark, anchor, true);
  }
  void OnMapEnd() override { Close(); }

  YAML::Mark last_start;  // of the last document started

 private:
  struct Frame {
    bool map = false;
    bool at_key = true;  // map: the next node is a key
    size_t index = 0;    // sequence: the next item's index
    std::string path;    // of this collection
    std::string key;     // map: the last key read
    YAML::anchor_t anchor = 0;
    uint64_t size = 1;  // nodes in the collection so far, itself included
  };

  static uint64_t Add(uint64_t a, uint64_t b) {
    return std::min<uint64_t>(a + std::min<uint64_t>(b, UINT64_C(1) << 61), UINT64_C(1) << 61);
  }
  bool AtKey() const { return !frames_.empty() && frames_.back().map && frames_.back().at_key; }
  // The key path of the node now read, as the validator names it ("jobs.build.steps[2]").
  std::string Path() const {
    if (frames_.empty()) return "";
    const Frame& f = frames_.back();
    if (!f.map) return spec_internal::Index(f.path, f.index);
    return f.at_key ? f.path : spec_internal::Join(f.path, f.key);
  }
  // A node of `size` expanded nodes is complete in the current collection.
  void Leaf(YAML::anchor_t anchor, uint64_t size) {
    if (anchor != 0) anchor_sizes_[anchor] = size;
    if (frames_.empty()) return;
    Frame& f = frames_.back();
    f.size = Add(f.size, size);
    if (f.map) {
      f.at_key = !f.at_key;
    } else {
      ++f.index;
    }
  }
  void Open(const YAML::Mark& mark, YAML::anchor_t anchor, bool map) {
    std::string path = Path();
    if (frames_.size() >= kMaxYamlDepth) {
      throw ShapeError{mark, path,
                       absl::StrCat("YAML nested deeper than ", kMaxYamlDepth, " levels")};
    }
    Frame f;
    f.map = map;
    f.path = std::move(path);
    f.anchor = anchor;
    frames_.push_back(std::move(f));
  }
  void Close() {
    if (frames_.empty()) return;
    const Frame f = std::move(frames_.back());
    frames_.pop_back();
    if (AtKey()) frames_.back().key = "?";
    Leaf(f.anchor, f.size);
  }

  std::vector<Frame> frames_;
  absl::flat_hash_map<YAML::anchor_t, uint64_t> anchor_sizes_;  // of this document
  uint64_t expanded_ = 0;  // nodes read through aliases, in the whole stream
};

// Checks the shape of `yaml_text` (see ShapeReader), and finds the token that yaml-cpp 0.7
// never consumes, if there is one. Why: a ',' (or ',]') after a document's top-level node
// (",", "- a\n,") makes YAML::LoadAll start a new empty document at the same place forever,
// allocating as it goes (found by tests/fuzz/pipeline_spec_fuzz). A document that starts where
// the previous one started is that loop. Throws ShapeError, or YAML::Exception as LoadAll would.
std::optional<YAML::Mark> ReadShape(const std::string& yaml_text) {
  std::istringstream in(yaml_text);
  YAML::Parser parser(in);
  ShapeReader reader;
  std::optional<int> previous;
  while (parser.HandleNextDocument(reader)) {
    if (previous == reader.last_start.pos) return reader.last_start;
    previous = reader.last_start.pos;
  }
  return std::nullopt;
}

// Validates `yaml_text`; `draft` holds whatever could be parsed.
std::vector<SpecError> Lint(std::string_view yaml_text, std::string_view file,
                            PipelineDraft& draft) {
  Linter lint(file);
  if (yaml_text.size() > kMaxSpecBytes) {
    lint.Error(YAML::Mark::null_mark(), "",
               absl::StrCat("file is ", yaml_text.size(), " bytes, more than the limit of ",
                            kMaxSpecBytes));
    return lint.TakeErrors();
  }
  std::vector<YAML::Node> documents;
  try {
    const std::string text(yaml_text);
    if (std::optional<YAML::Mark> stuck = ReadShape(text)) {
      const size_t pos = static_cast<size_t>(stuck->pos);
      lint.Error(*stuck, "",
                 absl::StrCat("invalid YAML: unexpected '",
                              pos < text.size() ? text.substr(pos, 1) : "", "'"));
      return lint.TakeErrors();
    }
    documents = YAML::LoadAll(text);
  } catch (const ShapeError& e) {
    lint.Error(e.mark, e.key, e.message);
    return lint.TakeErrors();
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
  CheckArtifactNeeds(lint, draft);
  CheckJobImageRefs(lint, draft);
  return lint.TakeErrors();
}

// Every error's ToString(), one per line.
std::string ErrorLines(const std::vector<SpecError>& errors) {
  std::string lines;
  for (const SpecError& error : errors) {
    absl::StrAppend(&lines, lines.empty() ? "" : "\n", error.ToString());
  }
  return lines;
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
    return absl::InvalidArgumentError(ErrorLines(errors));
  }
  // Why constructed, not assigned: GCC 12 wrongly warns that a move-assigned `on` may be used
  // uninitialized.
  PipelineSpec spec{.on = std::move(draft.on)};
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
