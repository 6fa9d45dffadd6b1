#pragma once
// The two secrets of agent enrollment (issue 8) and their one text format:
//   enrollment token  "assay-enroll-" + 64 lowercase hex digits (32 random bytes; one use)
//   agent credential  "assay-agent-"  + 64 lowercase hex digits (32 random bytes)
// The server stores only SHA-256 of either (AgentSecretHash): each is 256 random bits, so a
// plain hash is enough; nothing about it can be guessed or brute-forced.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace assay {

enum class AgentSecretKind { kEnrollmentToken, kCredential };

// A new random secret of `kind` (OpenSSL's CSPRNG).
std::string NewAgentSecret(AgentSecretKind kind);

// Parses a secret as read from a file, the environment or a request: surrounding ASCII
// whitespace (a trailing newline) is ignored; anything else must be exactly the format of
// `kind`. kInvalidArgument saying what is wrong, never echoing the input (it may be a
// secret of another kind). Input over 4 KiB is refused before it is looked at.
absl::StatusOr<std::string> ParseAgentSecret(std::string_view text, AgentSecretKind kind);

// SHA-256 of a parsed secret (32 raw bytes), the form the database keeps.
std::string AgentSecretHash(std::string_view secret);

}  // namespace assay
