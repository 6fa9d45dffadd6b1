#include "common/crypto/agent_secret.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"

namespace assay {
namespace {

constexpr size_t kMaxInput = 4096;
constexpr size_t kHexDigits = 64;

const char* PrefixOf(AgentSecretKind kind) {
  return kind == AgentSecretKind::kEnrollmentToken ? "assay-enroll-" : "assay-agent-";
}

const char* NameOf(AgentSecretKind kind) {
  return kind == AgentSecretKind::kEnrollmentToken ? "enrollment token" : "agent credential";
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

std::string NewAgentSecret(AgentSecretKind kind) {
  return absl::StrCat(PrefixOf(kind), RandomHexToken(kHexDigits / 2));
}

absl::StatusOr<std::string> ParseAgentSecret(std::string_view text, AgentSecretKind kind) {
  const char* what = NameOf(kind);
  if (text.size() > kMaxInput) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is too long (", text.size(),
                                                   " bytes; the format has ",
                                                   std::strlen(PrefixOf(kind)) + kHexDigits, ")"));
  }
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  const std::string_view prefix_view = PrefixOf(kind);
  const char* prefix = PrefixOf(kind);
  if (text.substr(0, prefix_view.size()) != prefix_view) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must start with '", prefix, "' (is this the right secret?)"));
  }
  std::string_view hex = text.substr(prefix_view.size());
  if (hex.size() != kHexDigits) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must have ", kHexDigits,
                                                   " hex digits after '", prefix, "', found ",
                                                   hex.size(), " characters"));
  }
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " must have only lowercase hex digits after '", prefix, "'"));
    }
  }
  return std::string(text);
}

std::string AgentSecretHash(std::string_view secret) { return Sha256(secret); }

}  // namespace assay
