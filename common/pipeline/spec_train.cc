// The `train:` step (issue 10, docs/train.md): the user's training command with the model,
// checkpoint and metrics contract, and what the server registers when the job succeeds. Every
// mistake is a lint error naming its line and key.

#include <boost/json.hpp>
#include <cstdlib>

#include "common/evals/train_spec.h"
#include "common/pipeline/duration.h"
#include "common/pipeline/expr.h"
#include "common/pipeline/spec_internal.h"
#include "common/registry/model_input.h"

namespace assay::spec_internal {
namespace {

using evals::TrainSpec;

// Deeper than the registry allows (registry::kMaxParamsDepth), so that its message is the one
// a user sees; this bound only keeps the recursion short.
constexpr int kMaxParamsDepth = 32;

// `params:` as JSON: numbers stay numbers, true/false booleans, null/~ null, other scalars
// strings (a quoted "1" stays a string: yaml-cpp keeps the tag).
bool ParamsJson(Linter& lint, const YAML::Node& node, const YAML::Mark& mark,
                const std::string& path, int depth, boost::json::value& out) {
  if (depth > kMaxParamsDepth) {
    lint.Error(mark, path, absl::StrCat("params nest deeper than ", kMaxParamsDepth, " levels"));
    return false;
  }
  if (node.IsMap()) {
    boost::json::object o;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar() || kv.first.Scalar().empty()) {
        lint.Error(MarkOr(kv.first, mark), path, "params keys must be non-empty strings");
        return false;
      }
      const std::string key = kv.first.Scalar();
      if (o.contains(key)) {
        lint.Error(MarkOr(kv.first, mark), Join(path, key), "duplicate key in params");
        return false;
      }
      boost::json::value v;
      if (!ParamsJson(lint, kv.second, MarkOr(kv.second, mark), Join(path, key), depth + 1, v)) {
        return false;
      }
      o[key] = std::move(v);
    }
    out = std::move(o);
    return true;
  }
  if (node.IsSequence()) {
    boost::json::array a;
    for (size_t i = 0; i < node.size(); ++i) {
      boost::json::value v;
      if (!ParamsJson(lint, node[i], MarkOr(node[i], mark), Index(path, i), depth + 1, v)) {
        return false;
      }
      a.push_back(std::move(v));
    }
    out = std::move(a);
    return true;
  }
  if (node.IsNull()) {
    out = nullptr;
    return true;
  }
  const std::string& s = node.Scalar();
  const bool plain = node.Tag() != "!";  // "!" marks a quoted scalar
  if (plain && (s == "true" || s == "false")) {
    out = (s == "true");
    return true;
  }
  if (plain && LooksLikeNumber(s) && s.find('_') == std::string::npos) {
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (*end == '\0' && std::isfinite(d)) {
      if (s.find_first_of(".eE") == std::string::npos && std::abs(d) < 9e15) {
        out = static_cast<int64_t>(std::strtoll(s.c_str(), nullptr, 10));
      } else {
        out = d;
      }
      return true;
    }
  }
  out = s;
  return true;
}

constexpr FieldRule<TrainSpec> kTrainRules[] = {
    {"name", false,
     [](Linter& lint, const Entry& e, const std::string& path, TrainSpec& out) {
       NonEmptyText(lint, e, path, out.name);
       if (out.name.size() > 128) lint.Error(e.value_mark, path, "name is over 128 bytes");
     }},
    {"command", true,
     [](Linter& lint, const Entry& e, const std::string& path, TrainSpec& out) {
       NonEmptyText(lint, e, path, out.command);
     }},
    {"model", false,
     [](Linter& lint, const Entry& e, const std::string& path, TrainSpec& out) {
       NonEmptyText(lint, e, path, out.model);
       if (out.model.empty()) return;
       if (absl::Status s = registry::ValidateModelName(out.model); !s.ok()) {
         lint.Error(e.value_mark, path, std::string(s.message()));
       }
     }},
    {"params", false,
     [](Linter& lint, const Entry& e, const std::string& path, TrainSpec& out) {
       if (!e.value.IsMap()) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("params must be a mapping, got ", Describe(e.value)));
         return;
       }
       boost::json::value v;
       if (!ParamsJson(lint, e.value, e.value_mark, path, 1, v)) return;
       absl::StatusOr<std::string> text = registry::CanonicalParams(v);
       if (!text.ok()) {
         lint.Error(e.value_mark, path, std::string(text.status().message()));
         return;
       }
       out.params_json = *std::move(text);
     }},
    {"model_dir", false,
     [](Linter& lint, const Entry& e, const std::string& path, TrainSpec& out) {
       WorkspacePath(lint, e, path, out.model_dir);
       while (out.model_dir.size() > 1 && out.model_dir.back() == '/') out.model_dir.pop_back();
       if (out.model_dir == "." || out.model_dir.rfind(".git", 0) == 0 ||
           out.model_dir.rfind(".assay", 0) == 0) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("model_dir '", out.model_dir,
                                 "' must be a directory of its own (not the workspace, .git or "
                                 ".assay)"));
       }
     }},
    {"datasets", false,
     [](Linter& lint, const Entry& e, const std::string& path, TrainSpec& out) {
       if (!e.value.IsSequence()) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("datasets must be a list of paths, got ", Describe(e.value)));
         return;
       }
       if (e.value.size() > evals::kMaxTrainDatasets) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("datasets lists ", e.value.size(), " paths; at most ",
                                 evals::kMaxTrainDatasets));
         return;
       }
       for (size_t i = 0; i < e.value.size(); ++i) {
         Entry item{absl::StrCat("datasets[", i, "]"), e.key_node, e.value[i],
                    MarkOr(e.value[i], e.value_mark)};
         std::string p;
         WorkspacePath(lint, item, Index(path, i), p);
         if (!p.empty()) out.datasets.push_back(std::move(p));
       }
     }},
    {"register", false,
     [](Linter& lint, const Entry& e, const std::string& path, TrainSpec& out) {
       ParseBoolValue(lint, e, path, out.register_model);
     }},
    {"parent", false,
     [](Linter& lint, const Entry& e, const std::string& path, TrainSpec& out) {
       NonEmptyText(lint, e, path, out.parent);
       if (out.parent.empty()) return;
       if (absl::StatusOr<registry::VersionRef> r = registry::ParseVersionRef(out.parent);
           !r.ok()) {
         lint.Error(e.value_mark, path, std::string(r.status().message()));
       }
     }},
    {"checkpoint_interval", false,
     [](Linter& lint, const Entry& e, const std::string& path, TrainSpec& out) {
       std::string text;
       if (!ScalarText(lint, e.value, e.value_mark, path, e.key, "a duration", text)) return;
       absl::StatusOr<int64_t> seconds = ParseDurationSeconds(text);
       if (!seconds.ok()) {
         lint.Error(e.value_mark, path, std::string(seconds.status().message()));
         return;
       }
       if (*seconds < 1 || *seconds > 86'400) {
         lint.Error(e.value_mark, path, "checkpoint_interval must be from 1s to 24h");
         return;
       }
       out.checkpoint_interval_ms = *seconds * 1000;
     }},
};

constexpr FieldRule<evals::PromoteSpec> kPromoteRules[] = {
    {"model", true,
     [](Linter& lint, const Entry& e, const std::string& path, evals::PromoteSpec& out) {
       NonEmptyText(lint, e, path, out.model);
       if (out.model.empty()) return;
       if (absl::Status s = registry::ValidateModelName(out.model); !s.ok()) {
         lint.Error(e.value_mark, path, std::string(s.message()));
       }
     }},
    {"alias", true,
     [](Linter& lint, const Entry& e, const std::string& path, evals::PromoteSpec& out) {
       NonEmptyText(lint, e, path, out.alias);
       if (out.alias.empty()) return;
       if (absl::Status s = registry::ValidateAlias(out.alias); !s.ok()) {
         lint.Error(e.value_mark, path, std::string(s.message()));
       }
     }},
    {"version", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::PromoteSpec& out) {
       NonEmptyText(lint, e, path, out.version);
       if (out.version.empty()) return;
       if (auto r = registry::ParseVersionRef(out.version); !r.ok()) {
         lint.Error(e.value_mark, path, std::string(r.status().message()));
       }
     }},
    {"if", false,
     [](Linter& lint, const Entry& e, const std::string& path, evals::PromoteSpec& out) {
       NonEmptyText(lint, e, path, out.condition);
       if (out.condition.empty()) return;
       if (auto x = Expr::Parse(out.condition, ExprOptions{.allow_evals = true}); !x.ok()) {
         lint.Error(e.value_mark, path, std::string(x.status().message()));
       }
     }},
};

}  // namespace

void ParsePromoteStep(Linter& lint, const Entry& e, const std::string& path, StepSpec& step) {
  evals::PromoteSpec spec;
  if (!e.value.IsMap()) {
    lint.Error(
        e.value_mark, path,
        absl::StrCat("promote must be a mapping with model and alias, got ", Describe(e.value)));
  } else {
    ParseFields<evals::PromoteSpec>(lint, e.value, path, e.key_node.Mark(), kPromoteRules, spec);
  }
  step.promote = std::move(spec);
}

void ParseTrainStep(Linter& lint, const Entry& e, const std::string& path, StepSpec& step) {
  TrainSpec spec;
  if (!e.value.IsMap()) {
    lint.Error(
        e.value_mark, path,
        absl::StrCat("train must be a mapping with command and model, got ", Describe(e.value)));
    step.train = std::move(spec);
    return;
  }
  const size_t errors = lint.ErrorCount();
  ParseFields<TrainSpec>(lint, e.value, path, e.key_node.Mark(), kTrainRules, spec);
  if (lint.ErrorCount() == errors && spec.register_model && spec.model.empty()) {
    lint.Error(e.key_node.Mark(), Join(path, "model"),
               "train needs model: the registered model's name (or register: false)");
  }
  if (lint.ErrorCount() == errors && !spec.register_model && !spec.parent.empty()) {
    lint.Error(e.key_node.Mark(), Join(path, "parent"), "parent needs register: true");
  }
  step.train = std::move(spec);
}

void AddTrainArtifacts(JobDraft& job) {
  for (const StepSpec& s : job.spec.steps) {
    if (!s.train.has_value() || !s.train->register_model) continue;
    if (!job.spec.artifacts.has_value()) job.spec.artifacts = ArtifactsSpec{};
    std::vector<std::string>& paths = job.spec.artifacts->paths;
    const std::string glob = s.train->model_dir + "/**";
    if (std::find(paths.begin(), paths.end(), glob) == paths.end()) paths.push_back(glob);
  }
}

}  // namespace assay::spec_internal
