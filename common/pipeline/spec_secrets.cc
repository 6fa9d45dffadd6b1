// The job keys of issue 9's secrets: `secrets:` (names, or {name, as: env|file}) and
// `environment:`. Rows live in kJobRules (spec.cc); see docs/secrets.md.

#include "common/base/secret_rules.h"
#include "common/pipeline/spec_internal.h"

namespace assay::spec_internal {
namespace {

constexpr std::string_view kSecretForms = "a secret name or a mapping {name: NAME, as: env|file}";

bool SecretName(Linter& lint, const YAML::Node& node, const YAML::Mark& mark,
                const std::string& path, std::string& out) {
  if (!ScalarText(lint, node, mark, path, "secrets entries", kSecretForms, out)) return false;
  absl::Status s = ValidateSecretName(out);
  if (!s.ok()) {
    lint.Error(mark, path, std::string(s.message()));
    return false;
  }
  return true;
}

constexpr FieldRule<SecretUse> kSecretRules[] = {
    {"name", true,
     [](Linter& lint, const Entry& e, const std::string& path, SecretUse& use) {
       SecretName(lint, e.value, e.value_mark, path, use.name);
     }},
    {"as", false,
     [](Linter& lint, const Entry& e, const std::string& path, SecretUse& use) {
       std::string as;
       if (!ScalarText(lint, e.value, e.value_mark, path, "as", "env or file", as)) return;
       if (as != "env" && as != "file") {
         lint.Error(e.value_mark, path, absl::StrCat("as must be env or file, got '", as, "'"));
         return;
       }
       use.as_file = as == "file";
     }},
};

}  // namespace

void ParseSecrets(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  if (!e.value.IsSequence()) {
    lint.Error(e.value_mark, path,
               absl::StrCat("secrets must be a list of secret names or {name, as} mappings, got ",
                            Describe(e.value)));
    return;
  }
  if (e.value.size() > kMaxSecretsPerJob) {
    lint.Error(e.value_mark, path,
               absl::StrCat("secrets lists ", e.value.size(), " entries, more than the limit of ",
                            kMaxSecretsPerJob));
    return;
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    const YAML::Node item = e.value[i];
    const std::string item_path = Index(path, i);
    const YAML::Mark mark = MarkOr(item, e.value.Mark());
    SecretUse use;
    if (item.IsMap()) {
      ParseFields<SecretUse>(lint, item, item_path, mark, kSecretRules, use);
      if (use.name.empty()) continue;
    } else if (!SecretName(lint, item, mark, item_path, use.name)) {
      continue;
    }
    const bool seen = std::any_of(job.spec.secrets.begin(), job.spec.secrets.end(),
                                  [&](const SecretUse& u) { return u.name == use.name; });
    if (seen) {
      lint.Error(mark, item_path, absl::StrCat("secret '", use.name, "' is listed more than once"));
      continue;
    }
    job.spec.secrets.push_back(std::move(use));
  }
}

void ParseEnvironment(Linter& lint, const Entry& e, const std::string& path, JobDraft& job) {
  std::string name;
  if (!ScalarText(lint, e.value, e.value_mark, path, "environment", "an environment name", name)) {
    return;
  }
  if (name.empty()) {
    lint.Error(e.value_mark, path, "environment must not be empty");
    return;
  }
  absl::Status s = ValidateEnvironmentName(name);
  if (!s.ok()) {
    lint.Error(e.value_mark, path, std::string(s.message()));
    return;
  }
  job.spec.environment = std::move(name);
}

}  // namespace assay::spec_internal
