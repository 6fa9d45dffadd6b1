#pragma once
// The rules for repository secrets (issue 9), shared by the API, the `.assay.yml` linter, the
// server that delivers them and the agent that receives them. See docs/secrets.md.

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"

namespace assay {

// A value shorter than this is refused: it would be masked everywhere it appears in logs ("abc"
// in every word) or not at all.
inline constexpr size_t kMinSecretValueBytes = 4;
inline constexpr size_t kMaxSecretValueBytes = 64 * 1024;
// At most this many secrets per repository and environment, and listed by one job.
inline constexpr size_t kMaxSecretsPerScope = 200;
inline constexpr size_t kMaxSecretsPerJob = 100;

// [A-Z_][A-Z0-9_]{0,127}, and not reserved: names starting with ASSAY_ or GITHUB_, and the
// variables a step's shell or the agent relies on (CI, PATH, HOME, USER, LOGNAME, SHELL, PWD,
// IFS, TMPDIR, LD_*, BASH_ENV, ENV, CUDA_VISIBLE_DEVICES, NVIDIA_VISIBLE_DEVICES). Names ending
// in _FILE are refused too: `as: file` delivers the path in NAME_FILE. kInvalidArgument with
// the reason (the name is quoted only when it is printable ASCII).
absl::Status ValidateSecretName(std::string_view name);

// An environment: [a-z0-9][a-z0-9_.-]{0,63} ("" is the repository-wide scope, valid).
absl::Status ValidateEnvironmentName(std::string_view name);

// kInvalidArgument when `value` is shorter than kMinSecretValueBytes, longer than
// kMaxSecretValueBytes or holds a NUL byte (it could not be passed in an environment variable).
absl::Status ValidateSecretValue(std::string_view value);

}  // namespace assay
