// Issue 12: the `deploy:` step of .assay.yml (docs/deployments.md, "From a pipeline"):
//
//   - deploy:
//       environment: production
//       model: support-bot@candidate        # or image: app@sha256:...
//       endpoints: [10.0.0.8:8081]
//       strategy: { canary: { steps: [{ weight: 10 }, { pause: 60s }, { weight: 50 }] } }
//       supersede: false
//
// The strategy is the API's (common/deploy/spec.h), written in YAML; it is checked here, so a
// bad one is a lint error with the file's line, before any pipeline runs.

#include <boost/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/deploy/spec.h"
#include "common/pipeline/spec_internal.h"
#include "common/registry/model_input.h"

namespace assay::spec_internal {
namespace {

namespace json = boost::json;

// A YAML value as JSON: plain scalars that read as integers, numbers, true/false or null become
// those; quoted scalars stay strings. The pipeline parser has bounded the depth already.
json::value ToJson(const YAML::Node& n) {
  if (n.IsMap()) {
    json::object o;
    for (const auto& kv : n) o[kv.first.Scalar()] = ToJson(kv.second);
    return o;
  }
  if (n.IsSequence()) {
    json::array a;
    for (const auto& v : n) a.push_back(ToJson(v));
    return a;
  }
  if (!n.IsScalar()) return nullptr;
  const std::string& s = n.Scalar();
  if (n.Tag() != "!") {
    int64_t i = 0;
    double d = 0;
    if (absl::SimpleAtoi(s, &i)) return i;
    if (absl::SimpleAtod(s, &d) && s.find_first_not_of("0123456789.eE+-") == std::string::npos) {
      return d;
    }
    if (s == "true") return true;
    if (s == "false") return false;
    if (s == "null" || s == "~") return nullptr;
  }
  return json::string(s);
}

bool ValidEnvironment(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-')))) {
      return false;
    }
  }
  return true;
}

constexpr FieldRule<DeployStepSpec> kDeployRules[] = {
    {"environment", true,
     [](Linter& lint, const Entry& e, const std::string& path, DeployStepSpec& out) {
       NonEmptyText(lint, e, path, out.environment);
       if (!out.environment.empty() && !ValidEnvironment(out.environment)) {
         lint.Error(e.value_mark, path,
                    "environment must be 1 to 63 of a-z 0-9 _ - starting with a letter or digit");
       }
     }},
    {"model", false,
     [](Linter& lint, const Entry& e, const std::string& path, DeployStepSpec& out) {
       NonEmptyText(lint, e, path, out.model);
       if (out.model.empty()) return;
       const size_t at = out.model.find('@');
       if (at == std::string::npos) {
         lint.Error(e.value_mark, path, "model must be NAME@VERSION or NAME@ALIAS");
         return;
       }
       if (absl::Status s = registry::ValidateModelName(out.model.substr(0, at)); !s.ok()) {
         lint.Error(e.value_mark, path, std::string(s.message()));
       } else if (auto r = registry::ParseVersionRef(out.model.substr(at + 1)); !r.ok()) {
         lint.Error(e.value_mark, path, std::string(r.status().message()));
       }
     }},
    {"image", false,
     [](Linter& lint, const Entry& e, const std::string& path, DeployStepSpec& out) {
       NonEmptyText(lint, e, path, out.image);
       if (!out.image.empty() && !deploy::ImageByDigest(out.image)) {
         lint.Error(e.value_mark, path, "image must be an image by digest: NAME@sha256:<64 hex>");
       }
     }},
    {"endpoints", true,
     [](Linter& lint, const Entry& e, const std::string& path, DeployStepSpec& out) {
       if (!e.value.IsSequence() || e.value.size() == 0 ||
           e.value.size() > static_cast<size_t>(deploy::kMaxServers)) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("endpoints must be a list of 1 to ", deploy::kMaxServers,
                                 " HOST:PORT addresses of the new version's servers"));
         return;
       }
       for (size_t i = 0; i < e.value.size(); ++i) {
         const YAML::Node item = e.value[i];
         const std::string s = item.IsScalar() ? item.Scalar() : "";
         const size_t colon = s.rfind(':');
         int port = 0;
         if (s.empty() || s.size() > 300 || colon == std::string::npos || colon == 0 ||
             !absl::SimpleAtoi(s.substr(colon + 1), &port) || port < 1 || port > 65535 ||
             s.find_first_of(" \t;#") != std::string::npos) {
           lint.Error(MarkOr(item, e.value_mark), Index(path, i),
                      absl::StrCat("endpoint must be HOST:PORT, got ",
                                   item.IsScalar() ? absl::StrCat("'", s.substr(0, 80), "'")
                                                   : Describe(item)));
           continue;
         }
         out.endpoints.push_back(s);
       }
     }},
    {"strategy", true,
     [](Linter& lint, const Entry& e, const std::string& path, DeployStepSpec& out) {
       json::value v = ToJson(e.value);
       auto parsed = deploy::ParseStrategy(v, "strategy");
       if (!parsed.ok()) {
         lint.Error(e.value_mark, path, std::string(parsed.status().message()));
         return;
       }
       out.strategy_json = json::serialize(v);
     }},
    {"supersede", false,
     [](Linter& lint, const Entry& e, const std::string& path, DeployStepSpec& out) {
       if (!e.value.IsScalar() || (e.value.Scalar() != "true" && e.value.Scalar() != "false")) {
         lint.Error(e.value_mark, path,
                    absl::StrCat("supersede must be a boolean, got ", Describe(e.value)));
         return;
       }
       out.supersede = e.value.Scalar() == "true";
     }},
};

}  // namespace

void ParseDeployStep(Linter& lint, const Entry& e, const std::string& path, StepSpec& step) {
  DeployStepSpec spec;
  if (!e.value.IsMap()) {
    lint.Error(e.value_mark, path,
               absl::StrCat("deploy must be a mapping with environment, model or image, "
                            "endpoints and strategy, got ",
                            Describe(e.value)));
  } else {
    const size_t before = lint.ErrorCount();
    ParseFields<DeployStepSpec>(lint, e.value, path, e.key_node.Mark(), kDeployRules, spec);
    if (spec.model.empty() == spec.image.empty() && lint.ErrorCount() == before) {
      lint.Error(e.value_mark, path, "deploy needs exactly one of model: and image:");
    }
  }
  step.deploy = std::move(spec);
}

}  // namespace assay::spec_internal

namespace assay {

namespace json = boost::json;

std::string DeployStepSpecToJson(const DeployStepSpec& s) {
  json::array endpoints;
  for (const auto& a : s.endpoints) endpoints.push_back(json::value(a));
  json::object o{{"environment", s.environment},
                 {"endpoints", std::move(endpoints)},
                 {"supersede", s.supersede}};
  if (!s.model.empty()) o["model"] = s.model;
  if (!s.image.empty()) o["image"] = s.image;
  boost::system::error_code ec;
  json::value strategy = json::parse(s.strategy_json, ec);
  o["strategy"] = ec ? json::value(json::object()) : strategy;
  return json::serialize(o);
}

absl::StatusOr<DeployStepSpec> DeployStepSpecFromJson(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return absl::InvalidArgumentError("a deploy step is not a JSON object");
  const json::object& o = v.as_object();
  DeployStepSpec s;
  auto str = [&](const char* k) -> std::string {
    const json::value* x = o.if_contains(k);
    return x != nullptr && x->is_string() ? std::string(x->as_string()) : "";
  };
  s.environment = str("environment");
  s.model = str("model");
  s.image = str("image");
  if (const json::value* e = o.if_contains("endpoints"); e != nullptr && e->is_array()) {
    for (const json::value& a : e->as_array()) {
      if (a.is_string()) s.endpoints.emplace_back(a.as_string());
    }
  }
  if (const json::value* st = o.if_contains("strategy")) s.strategy_json = json::serialize(*st);
  if (const json::value* sup = o.if_contains("supersede"); sup != nullptr && sup->is_bool()) {
    s.supersede = sup->as_bool();
  }
  if (s.environment.empty() || s.endpoints.empty() || s.strategy_json.empty() ||
      s.model.empty() == s.image.empty()) {
    return absl::InvalidArgumentError(
        "a deploy step lacks environment, endpoints, strategy, or "
        "exactly one of model and image");
  }
  return s;
}

}  // namespace assay
