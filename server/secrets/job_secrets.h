#pragma once
// Repository secrets at rest and on their way to a job (issue 9, docs/secrets.md).

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "assay/v1/agent.pb.h"
#include "common/crypto/sealed.h"
#include "server/store/jobs.h"
#include "server/store/secrets.h"

namespace assay {

// The associated data a secret's value is sealed for: "repo_secrets/<repo>/<environment>/
// <name>" (RowAad with column "<environment>/<name>"; neither part can hold '/'). A value moved
// to another repository, environment or name does not open.
std::string SecretAad(int64_t repo_id, std::string_view environment, std::string_view name);

// The message a job's log shows for a secret an untrusted pipeline does not get.
inline constexpr std::string_view kWithheldUntrusted =
    "this pipeline is untrusted (a fork's pull request), and untrusted pipelines never get "
    "secrets";

// Fills a->secrets for the secrets the claimed job's spec lists ("secrets" in spec_json;
// "environment" picks the scope whose value wins over the repository-wide one). An untrusted
// job ("trusted": false) gets each entry withheld with kWithheldUntrusted and no value, and
// the store is not read. Errors:
//   kFailedPrecondition "secrets: NAME: no such secret in repo R" (or "... in repo R, neither
//     in environment E nor repository-wide"): the job must fail with this message;
//   kDataLoss "secrets: NAME: cannot be opened: ...": the job must fail too;
//   anything else (the database): the job goes back to the queue.
// `store` null: a job that lists secrets fails (kFailedPrecondition).
absl::Status AttachSecrets(const store::ClaimedJob& job, store::SecretStore* store,
                           const KeyRing& keys, v1::Assignment* a);

}  // namespace assay
