#include "server/secrets/job_secrets.h"

#include <boost/json.hpp>

#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/secret_rules.h"

namespace assay {

std::string SecretAad(int64_t repo_id, std::string_view environment, std::string_view name) {
  return RowAad("repo_secrets", repo_id,
                absl::StrCat(std::string(environment), "/", std::string(name)));
}

absl::Status AttachSecrets(const store::ClaimedJob& job, store::SecretStore* store,
                           const KeyRing& keys, v1::Assignment* a) {
  struct Use {
    std::string name;
    bool as_file = false;
  };
  std::vector<Use> uses;
  std::string environment;
  bool trusted = true;
  try {
    const boost::json::object spec = boost::json::parse(job.spec_json).as_object();
    const auto* list = spec.if_contains("secrets");
    if (list == nullptr) return absl::OkStatus();
    for (const auto& s : list->as_array()) {
      const auto& o = s.as_object();
      uses.push_back({std::string(o.at("name").as_string()), o.at("as").as_string() == "file"});
    }
    if (const auto* e = spec.if_contains("environment")) environment = e->as_string();
    if (const auto* t = spec.if_contains("trusted")) trusted = t->as_bool();
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(
        absl::StrCat("secrets: job ", job.job_id, " has a malformed secrets list: ", e.what()));
  }
  // The planner's linter checked these; a spec written before (or by hand) is checked again.
  if (uses.size() > kMaxSecretsPerJob) {
    return absl::FailedPreconditionError(absl::StrCat(
        "secrets: the job lists ", uses.size(), ", more than the limit of ", kMaxSecretsPerJob));
  }
  for (const Use& u : uses) {
    if (absl::Status s = ValidateSecretName(u.name); !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("secrets: ", s.message()));
    }
  }
  if (absl::Status s = ValidateEnvironmentName(environment); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("environment: ", s.message()));
  }
  if (!trusted) {
    for (const Use& u : uses) {
      v1::JobSecret* out = a->add_secrets();
      out->set_name(u.name);
      out->set_as_file(u.as_file);
      out->set_withheld(std::string(kWithheldUntrusted));
    }
    return absl::OkStatus();
  }
  if (uses.empty()) return absl::OkStatus();
  if (store == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("secrets: ", uses[0].name, ": this server has no secret store"));
  }
  std::vector<std::string> names;
  for (const Use& u : uses) names.push_back(u.name);
  auto rows = store->ForJob(job.repo_id, environment, names);
  if (!rows.ok()) return rows.status();
  // The environment's value wins over the repository-wide one.
  std::map<std::string, const store::SealedSecret*> chosen;
  for (const store::SealedSecret& r : *rows) {
    auto [it, inserted] = chosen.try_emplace(r.name, &r);
    if (!inserted && !r.environment.empty()) it->second = &r;
  }
  for (const Use& u : uses) {
    auto it = chosen.find(u.name);
    if (it == chosen.end()) {
      return absl::FailedPreconditionError(
          environment.empty()
              ? absl::StrCat("secrets: ", u.name, ": no such secret in repo ", job.repo_id)
              : absl::StrCat("secrets: ", u.name, ": no such secret in repo ", job.repo_id,
                             ", neither in environment '", environment, "' nor repository-wide"));
    }
    const store::SealedSecret& row = *it->second;
    auto plain = keys.Open(row.sealed, SecretAad(job.repo_id, row.environment, row.name));
    if (!plain.ok()) {
      return absl::DataLossError(absl::StrCat("secrets: ", u.name,
                                              ": cannot be opened (sealed "
                                              "with key ",
                                              SealedKeyId(row.sealed),
                                              "): ", plain.status().message()));
    }
    v1::JobSecret* out = a->add_secrets();
    out->set_name(u.name);
    out->set_as_file(u.as_file);
    out->set_value(std::move(*plain));
  }
  return absl::OkStatus();
}

}  // namespace assay
