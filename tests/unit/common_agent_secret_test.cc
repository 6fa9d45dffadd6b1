// The agent secret format (enrollment tokens and credentials): what parses, and the exact
// refusals for hostile input.
#include <catch2/catch.hpp>

#include "common/crypto/agent_secret.h"

namespace assay {
namespace {

const std::string kHex(64, 'a');

TEST_CASE("agent secrets: new ones parse as themselves and are distinct", "[unit]") {
  for (auto kind : {AgentSecretKind::kEnrollmentToken, AgentSecretKind::kCredential}) {
    std::string a = NewAgentSecret(kind), b = NewAgentSecret(kind);
    CHECK(a != b);
    auto parsed = ParseAgentSecret(a, kind);
    REQUIRE(parsed.ok());
    CHECK(*parsed == a);
    CHECK(AgentSecretHash(a).size() == 32);
  }
  CHECK(NewAgentSecret(AgentSecretKind::kEnrollmentToken).rfind("assay-enroll-", 0) == 0);
  CHECK(NewAgentSecret(AgentSecretKind::kCredential).rfind("assay-agent-", 0) == 0);
}

TEST_CASE("agent secrets: surrounding whitespace from a file is dropped", "[unit]") {
  auto p = ParseAgentSecret("  assay-agent-" + kHex + "\r\n", AgentSecretKind::kCredential);
  REQUIRE(p.ok());
  CHECK(*p == "assay-agent-" + kHex);
}

TEST_CASE("agent secrets: hostile input is refused without echoing it", "[unit]") {
  auto msg = [](const std::string& text, AgentSecretKind kind) {
    auto p = ParseAgentSecret(text, kind);
    REQUIRE(p.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(p.status().message());
  };
  const auto cred = AgentSecretKind::kCredential;
  const auto tok = AgentSecretKind::kEnrollmentToken;
  CHECK(msg("", cred) == "agent credential is empty");
  CHECK(msg("\n\n", tok) == "enrollment token is empty");
  CHECK(msg(std::string(4097, 'a'), cred) ==
        "agent credential is too long (4097 bytes; the format has 76)");
  CHECK(msg("assay-agent-" + kHex, tok) ==
        "enrollment token must start with 'assay-enroll-' (is this the right secret?)");
  CHECK(msg("assay-agent-" + kHex + "a", cred) ==
        "agent credential must have 64 hex digits after 'assay-agent-', found 65 characters");
  CHECK(msg("assay-agent-" + std::string(64, 'A'), cred) ==
        "agent credential must have only lowercase hex digits after 'assay-agent-'");
  std::string with_nul = "assay-agent-" + kHex;
  with_nul[20] = '\0';
  CHECK(msg(with_nul, cred) ==
        "agent credential must have only lowercase hex digits after 'assay-agent-'");
  CHECK(msg("assay-agent-" + kHex.substr(0, 32) + " " + kHex.substr(0, 31), cred) ==
        "agent credential must have only lowercase hex digits after 'assay-agent-'");
  CHECK(msg("Bearer assay-agent-" + kHex, cred) ==
        "agent credential must start with 'assay-agent-' (is this the right secret?)");
}

}  // namespace
}  // namespace assay
