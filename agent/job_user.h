#pragma once
// The agent's --job-user: which account steps run as, and whether the agent may start at all.

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "agent/step_runner.h"

namespace assay {

// `spec` is a user name (its primary group and supplementary groups from the user and group
// databases) or UID:GID (numbers, no supplementary groups). kInvalidArgument naming the value:
//   --job-user 'x': no such user
//   --job-user '1:': must be a user name or UID:GID
absl::StatusOr<JobIdentity> ParseJobUser(std::string_view spec);

// What the agent's --job-user means for an agent running with effective uid `euid`:
// - root, no --job-user: kFailedPrecondition (jobs would run as root and could read the
//   agent's token and rewrite its cache); `--job-user root` (or 0:0) is the explicit opt-in.
// - root with an unprivileged user: that identity.
// - not root: --job-user must be absent or name this same uid (a non-root process cannot
//   switch users); steps run as the agent's user.
// Returns the identity steps must switch to, nullopt for "run as the agent's own user".
absl::StatusOr<std::optional<JobIdentity>> ResolveJobUser(std::string_view spec, uid_t euid);

}  // namespace assay
