// Fuzzes the agent secret parser (enrollment tokens and credentials from files, the
// environment and Enroll requests). Contract: a Status, or exactly the canonical form
// (prefix + 64 lowercase hex digits) that parses to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/crypto/agent_secret.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (auto kind :
       {assay::AgentSecretKind::kEnrollmentToken, assay::AgentSecretKind::kCredential}) {
    auto parsed = assay::ParseAgentSecret(text, kind);
    if (!parsed.ok()) continue;
    const size_t want = kind == assay::AgentSecretKind::kEnrollmentToken ? 13 + 64 : 12 + 64;
    if (parsed->size() != want) std::abort();
    auto again = assay::ParseAgentSecret(*parsed, kind);
    if (!again.ok() || *again != *parsed) std::abort();
  }
  return 0;
}
