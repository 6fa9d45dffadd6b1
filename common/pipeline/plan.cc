#include "common/pipeline/plan.h"

#include <algorithm>
#include <boost/json.hpp>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status.h"
#include "common/pipeline/cache_key.h"
#include "common/pipeline/glob.h"
#include "common/pipeline/matrix.h"
#include "common/pipeline/spec_internal.h"
#include "common/pipeline/sweep.h"
#include "common/registry/model_input.h"

namespace assay {
namespace {

bool Refuse(std::string* why_not, std::string reason) {
  if (why_not != nullptr) *why_not = std::move(reason);
  return false;
}

// "the 1 changed path" / "the 3 changed paths" / "all 3 changed paths".
std::string CountPaths(size_t n, bool all) {
  if (n == 1) return "the 1 changed path";
  return absl::StrCat(all ? "all " : "the ", n, " changed paths");
}

// Checks `text` for placeholders that cannot be substituted: malformed ones and, for
// a matrix job, matrix names its combination lacks. `key` prefixes the message.
absl::Status CheckPlaceholders(const std::string& key, const std::string& text,
                               const std::map<std::string, std::string>& combo, bool allow_matrix) {
  absl::Status s = ValidatePlaceholders(text, allow_matrix);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(key, ": ", s.message()));
  size_t pos = 0;
  while ((pos = text.find("${{", pos)) != std::string::npos) {
    const size_t close = text.find("}}", pos + 3);
    if (close == std::string::npos) break;  // ValidatePlaceholders rejects this.
    std::string_view name(text.data() + pos + 3, close - pos - 3);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    constexpr std::string_view kMatrix = "matrix.";
    if (name.substr(0, kMatrix.size()) == kMatrix) {
      const std::string axis(name.substr(kMatrix.size()));
      if (!combo.contains(axis)) {
        return absl::InvalidArgumentError(absl::StrCat(key, ": unknown matrix key '", axis, "'"));
      }
    }
    pos = close + 2;
  }
  return absl::OkStatus();
}

// A train step's params (a JSON object) with a trial's values set over them.
absl::StatusOr<std::string> WithSweepValues(const std::string& params_json, const SweepTrial& t) {
  boost::json::value params = boost::json::parse(params_json);
  if (!params.is_object()) return absl::InvalidArgumentError("train params are not an object");
  for (const auto& [name, value] : t.values) {
    params.as_object()[name] = boost::json::parse(value.json);
  }
  // The registry's bounds on params (size, depth, NUL) are the train step's.
  static_assert(registry::kMaxParamsBytes == evals::kMaxTrainParamsBytes);
  absl::StatusOr<std::string> out = registry::CanonicalParams(params);
  if (!out.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("trial ", t.number, ": ", out.status().message()));
  }
  return out;
}

}  // namespace

bool Triggers(const PipelineSpec& spec, const TriggerEvent& ev, std::string* why_not) {
  if (!spec.on.push.has_value()) return Refuse(why_not, "the pipeline has no on.push trigger");
  const PushTrigger& push = *spec.on.push;
  const bool is_default = spec.on == TriggerSpec{};
  const bool has_branches = !push.branches.empty();
  const bool has_tags = !push.tags.empty();
  if (ev.kind == "tag") {
    if (is_default) {
      return Refuse(why_not, "the default trigger (no 'on:' key) runs on branch pushes only");
    }
    if (has_branches && !has_tags) {
      return Refuse(why_not, "on.push has branches but no tags, so tag pushes do not trigger");
    }
    if (has_tags && !MatchesFilters(push.tags, ev.tag)) {
      return Refuse(why_not, absl::StrCat("on.push.tags does not match tag '", ev.tag, "'"));
    }
    return true;  // Path filters are not evaluated for tag pushes.
  }
  if (ev.kind != "push") {
    return Refuse(why_not,
                  absl::StrCat("unknown event kind '", ev.kind, "' (expected push or tag)"));
  }
  if (has_tags && !has_branches) {
    return Refuse(why_not, "on.push has tags but no branches, so branch pushes do not trigger");
  }
  if (has_branches && !MatchesFilters(push.branches, ev.branch)) {
    return Refuse(why_not,
                  absl::StrCat("on.push.branches does not match branch '", ev.branch, "'"));
  }
  const std::vector<std::string>& changed = ev.changed_paths;
  if (changed.empty()) return true;  // Unknown: path filters do not exclude.
  if (!push.paths.empty()) {
    bool any = false;
    for (const std::string& p : changed) any = any || MatchesFilters(push.paths, p);
    if (!any) {
      return Refuse(why_not, absl::StrCat("on.push.paths matches none of ",
                                          CountPaths(changed.size(), false)));
    }
  }
  if (!push.paths_ignore.empty()) {
    bool all = true;
    for (const std::string& p : changed) all = all && MatchesFilters(push.paths_ignore, p);
    if (all) {
      return Refuse(why_not,
                    absl::StrCat("on.push.paths_ignore covers ", CountPaths(changed.size(), true)));
    }
  }
  return true;
}

bool TriggersPullRequest(const PipelineSpec& spec, const std::string& base_branch,
                         const std::string& type, std::string* why_not) {
  if (!spec.on.pull_request.has_value()) {
    return Refuse(why_not, "the pipeline has no on.pull_request trigger");
  }
  const PullRequestTrigger& pr = *spec.on.pull_request;
  if (!pr.branches.empty() && !MatchesFilters(pr.branches, base_branch)) {
    return Refuse(why_not, absl::StrCat("on.pull_request.branches does not match base branch '",
                                        base_branch, "'"));
  }
  if (std::find(pr.types.begin(), pr.types.end(), type) == pr.types.end()) {
    return Refuse(why_not, absl::StrCat("on.pull_request.types does not include '", type, "'"));
  }
  return true;
}

absl::StatusOr<std::map<std::string, std::string>> ResolveManualInputs(
    const ManualTrigger& manual, const std::map<std::string, std::string>& given) {
  for (const auto& [name, value] : given) {
    const bool known =
        std::any_of(manual.inputs.begin(), manual.inputs.end(),
                    [&name = name](const ManualInput& in) { return in.name == name; });
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", name, "' is not defined in on.manual.inputs"));
    }
  }
  std::map<std::string, std::string> out;
  for (const ManualInput& in : manual.inputs) {
    auto it = given.find(in.name);
    if (it == given.end()) {
      if (in.has_default) {
        out[in.name] = in.default_value;
      } else if (in.required) {
        return absl::InvalidArgumentError(absl::StrCat("input '", in.name, "' is required"));
      } else {
        out[in.name] = "";
      }
      continue;
    }
    const std::string& v = it->second;
    if (in.type == "number" && !spec_internal::LooksLikeNumber(v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", in.name, "' must be a number, got '", v, "'"));
    }
    if (in.type == "boolean" && v != "true" && v != "false") {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", in.name, "' must be a boolean (true or false), got '", v, "'"));
    }
    if (in.type == "choice" &&
        std::find(in.options.begin(), in.options.end(), v) == in.options.end()) {
      return absl::InvalidArgumentError(absl::StrCat("input '", in.name, "' must be one of ",
                                                     absl::StrJoin(in.options, ", "), ", got '", v,
                                                     "'"));
    }
    out[in.name] = v;
  }
  return out;
}

std::string InputEnvName(const std::string& name) {
  std::string out = "ASSAY_INPUT_";
  for (char c : name) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    const bool keep = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    out.push_back(keep ? c : '_');
  }
  return out;
}

absl::StatusOr<std::vector<PlannedJob>> PlanJobs(const PipelineSpec& spec, const ExprContext& ctx) {
  // Pass 1: every job's combinations and concrete names, so needs can be resolved.
  using Combo = std::map<std::string, std::string>;
  std::map<std::string, std::vector<std::string>> names_of;
  std::vector<std::vector<Combo>> combos_of(spec.jobs.size());
  std::vector<std::vector<SweepTrial>> trials_of(spec.jobs.size());
  for (size_t j = 0; j < spec.jobs.size(); ++j) {
    const JobSpec& job = spec.jobs[j];
    std::vector<std::string>& names = names_of[job.name];
    if (job.sweep.has_value()) {
      absl::StatusOr<std::vector<SweepTrial>> trials = ExpandSweep(*job.sweep);
      if (!trials.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("jobs.", job.name, ".sweep: ", trials.status().message()));
      }
      for (const SweepTrial& t : *trials) {
        Combo combo;
        for (const auto& [name, value] : t.values) combo[name] = value.text;
        combos_of[j].push_back(std::move(combo));
        names.push_back(SweepTrialName(job.name, t.number));
      }
      trials_of[j] = *std::move(trials);
      continue;
    }
    if (!job.matrix.has_value()) {
      combos_of[j].push_back({});
      names.push_back(job.name);
      continue;
    }
    absl::StatusOr<std::vector<Combo>> combos = ExpandMatrix(*job.matrix);
    if (!combos.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("jobs.", job.name, ".strategy.matrix: ", combos.status().message()));
    }
    combos_of[j] = *std::move(combos);
    for (const Combo& c : combos_of[j]) names.push_back(MatrixJobName(job.name, c, *job.matrix));
  }

  std::vector<PlannedJob> out;
  for (size_t j = 0; j < spec.jobs.size(); ++j) {
    const JobSpec& job = spec.jobs[j];
    const std::string prefix = absl::StrCat("jobs.", job.name);
    std::vector<std::string> needs;
    for (const std::string& need : job.needs) {
      auto it = names_of.find(need);
      if (it == names_of.end()) {
        return absl::InvalidArgumentError(absl::StrCat(prefix, ".needs: unknown job '", need, "'"));
      }
      needs.insert(needs.end(), it->second.begin(), it->second.end());
    }
    std::vector<std::string> artifact_needs;
    for (const std::string& need : job.artifact_needs) {
      auto it = names_of.find(need);
      if (it == names_of.end()) {
        return absl::InvalidArgumentError(absl::StrCat(prefix, ".needs: unknown job '", need, "'"));
      }
      artifact_needs.insert(artifact_needs.end(), it->second.begin(), it->second.end());
    }
    bool skip = false;
    if (!job.if_expr.empty()) {
      absl::StatusOr<Expr> expr = Expr::Parse(job.if_expr);
      if (!expr.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(prefix, ".if: invalid expression: ", expr.status().message()));
      }
      skip = !expr->Evaluate(ctx);
    }
    const bool allow_matrix = job.matrix.has_value() || job.sweep.has_value();
    const std::vector<std::string>& names = names_of[job.name];
    for (size_t c = 0; c < combos_of[j].size(); ++c) {
      const Combo& combo = combos_of[j][c];
      PlannedJob p;
      p.name = names[c];
      p.needs = needs;
      for (const auto& [key, value] : job.env) {
        ASSAY_RETURN_IF_ERROR(
            CheckPlaceholders(absl::StrCat(prefix, ".env.", key), value, combo, allow_matrix));
        p.env.emplace_back(key, SubstitutePlaceholders(value, ctx, combo));
      }
      for (size_t i = 0; i < job.steps.size(); ++i) {
        const StepSpec& step = job.steps[i];
        ASSAY_RETURN_IF_ERROR(CheckPlaceholders(absl::StrCat(prefix, ".steps[", i, "].run"),
                                                step.run, combo, allow_matrix));
        StepSpec planned = step;  // a build_image step is copied as written (no placeholders)
        planned.run = SubstitutePlaceholders(step.run, ctx, combo);
        p.steps.push_back(std::move(planned));
      }
      p.timeout_s = job.timeout_s;
      p.priority = job.priority;
      p.skip = skip;
      if (skip) p.skip_reason = absl::StrCat("if: ", job.if_expr, " is false");
      p.matrix = combo;
      p.runs_on = job.runs_on;
      p.network = job.network;
      for (size_t i = 0; i < p.runs_on.labels.size(); ++i) {
        std::string& label = p.runs_on.labels[i];
        ASSAY_RETURN_IF_ERROR(CheckPlaceholders(absl::StrCat(prefix, ".runs_on.labels[", i, "]"),
                                                label, combo, allow_matrix));
        label = SubstitutePlaceholders(label, ctx, combo);
      }
      p.retry = job.retry;
      p.allow_failure = job.allow_failure;
      p.lfs = job.lfs;
      p.concurrency = job.concurrency;
      if (!p.concurrency.group.empty()) {
        ASSAY_RETURN_IF_ERROR(CheckPlaceholders(absl::StrCat(prefix, ".concurrency.group"),
                                                p.concurrency.group, combo, allow_matrix));
        p.concurrency.group = SubstitutePlaceholders(p.concurrency.group, ctx, combo);
      }
      p.base_name = job.name;
      if (job.matrix) p.max_parallel = job.matrix->max_parallel;
      if (job.sweep) {
        const SweepTrial& trial = trials_of[j][c];
        p.max_parallel = job.sweep->max_parallel;
        p.sweep = PlannedSweepTrial{trial.number,         static_cast<int>(trials_of[j].size()),
                                    trial.values,         job.sweep->method,
                                    job.sweep->metric,    job.sweep->goal,
                                    job.sweep->early_stop};
        for (StepSpec& step : p.steps) {
          if (!step.train.has_value()) continue;
          absl::StatusOr<std::string> params = WithSweepValues(step.train->params_json, trial);
          if (!params.ok()) {
            return absl::InvalidArgumentError(
                absl::StrCat(prefix, ".sweep: ", params.status().message()));
          }
          step.train->params_json = *std::move(params);
        }
      }
      p.artifacts = job.artifacts;
      for (size_t i = 0; p.artifacts.has_value() && i < p.artifacts->paths.size(); ++i) {
        std::string& glob = p.artifacts->paths[i];
        ASSAY_RETURN_IF_ERROR(CheckPlaceholders(absl::StrCat(prefix, ".artifacts.paths[", i, "]"),
                                                glob, combo, allow_matrix));
        glob = SubstitutePlaceholders(glob, ctx, combo);
      }
      p.artifact_needs = artifact_needs;
      p.secrets = job.secrets;
      p.environment = job.environment;
      p.image = job.image;
      p.services = job.services;
      if (job.cache.has_value()) {
        p.cache = job.cache;
        auto substitute = [&](const std::string& key, std::string& text) -> absl::Status {
          absl::StatusOr<std::vector<CacheKeyPart>> parts = ParseCacheKey(text);
          if (!parts.ok())
            return absl::InvalidArgumentError(absl::StrCat(key, ": ", parts.status().message()));
          std::string out_text;
          for (const CacheKeyPart& part : *parts) {
            if (!part.call) {
              ASSAY_RETURN_IF_ERROR(CheckPlaceholders(key, part.text, combo, allow_matrix));
            }
            out_text += part.call ? part.text : SubstitutePlaceholders(part.text, ctx, combo);
          }
          text = std::move(out_text);
          return absl::OkStatus();
        };
        ASSAY_RETURN_IF_ERROR(substitute(absl::StrCat(prefix, ".cache.key"), p.cache->key));
        for (size_t i = 0; i < p.cache->restore_keys.size(); ++i) {
          ASSAY_RETURN_IF_ERROR(substitute(absl::StrCat(prefix, ".cache.restore_keys[", i, "]"),
                                           p.cache->restore_keys[i]));
        }
        for (size_t i = 0; i < p.cache->paths.size(); ++i) {
          std::string& glob = p.cache->paths[i];
          ASSAY_RETURN_IF_ERROR(CheckPlaceholders(absl::StrCat(prefix, ".cache.paths[", i, "]"),
                                                  glob, combo, allow_matrix));
          glob = SubstitutePlaceholders(glob, ctx, combo);
        }
      }
      out.push_back(std::move(p));
    }
  }
  return out;
}

}  // namespace assay
