#include "server/scheduler/built_image.h"

#include <boost/json.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/pipeline/spec.h"
#include "server/secrets/job_secrets.h"

namespace assay {
namespace {

// The registry (host[:port]) of a reference, as the agent reads it (agent/image_build.h).
std::string RegistryOf(const std::string& reference) {
  const size_t slash = reference.find('/');
  if (slash == std::string::npos) return "docker.io";
  const std::string first = reference.substr(0, slash);
  if (first.find_first_of(".:") != std::string::npos || first == "localhost") return first;
  return "docker.io";
}

}  // namespace

absl::Status ResolveBuiltImage(const store::ClaimedJob& job, store::JobImageStore* images,
                               store::SecretStore* secrets, const KeyRing& keys,
                               v1::Assignment* a) {
  std::string builder;
  if (!a->has_image() || !JobImageRef(a->image().name(), &builder)) return absl::OkStatus();
  const std::string what = absl::StrCat("image: ", a->image().name());
  if (images == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": this server does not record built images"));
  }
  absl::StatusOr<std::optional<store::JobImageStore::Pinned>> pinned =
      images->PinnedImage(job.pipeline_id, builder);
  if (!pinned.ok()) return pinned.status();
  if (!pinned->has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": job ", builder, " pushed no image"));
  }
  const std::string reference = (*pinned)->reference;
  a->mutable_image()->set_name(reference);
  // Untrusted as AttachSecrets reads it (the spec's "trusted": false), or by its requirements.
  bool untrusted = job.untrusted;
  try {
    const boost::json::object spec = boost::json::parse(job.spec_json).as_object();
    if (const auto* t = spec.if_contains("trusted"); t != nullptr && t->is_bool()) {
      untrusted = untrusted || !t->get_bool();
    }
  } catch (const std::exception&) {
    untrusted = true;  // BuildAssignment parsed it already; be safe anyway
  }
  if (untrusted) return absl::OkStatus();  // never credentials (it pulls without)
  // The builder's last pushing step names the secret; its environment picks the scope.
  std::string secret_name;
  std::string environment;
  try {
    const boost::json::object spec = boost::json::parse((*pinned)->builder_spec_json).as_object();
    for (const auto& step : spec.at("steps").as_array()) {
      const auto* b = step.as_object().if_contains("build_image");
      if (b != nullptr && b->as_object().at("push").as_bool()) {
        secret_name = std::string(b->as_object().at("registry_secret").as_string());
      }
    }
    if (const auto* e = spec.if_contains("environment"); e != nullptr && e->is_string()) {
      environment = std::string(e->as_string());
    }
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat(what, ": job ", builder, " has a malformed spec: ", e.what()));
  }
  if (secret_name.empty()) return absl::OkStatus();
  // Opened exactly as a job's own `secrets:` are (AttachSecrets), into a scratch assignment.
  store::ClaimedJob scratch = job;
  boost::json::object scratch_spec{
      {"secrets", boost::json::array{boost::json::object{{"name", secret_name}, {"as", "env"}}}}};
  if (!environment.empty()) scratch_spec["environment"] = environment;
  scratch.spec_json = boost::json::serialize(scratch_spec);
  v1::Assignment opened;
  if (absl::Status s = AttachSecrets(scratch, secrets, keys, &opened); !s.ok()) {
    return absl::Status(
        s.code(), absl::StrCat(what, ": the registry_secret of job ", builder, ": ", s.message()));
  }
  if (opened.secrets_size() != 1) return absl::OkStatus();
  const std::string& value = opened.secrets(0).value();
  const size_t colon = value.find(':');
  if (colon == std::string::npos) return absl::OkStatus();  // the build could not push either
  v1::RegistryCredential* c = a->mutable_image_pull_credential();
  c->set_registry(RegistryOf(reference));
  c->set_username(value.substr(0, colon));
  c->set_password(value.substr(colon + 1));
  return absl::OkStatus();
}

}  // namespace assay
