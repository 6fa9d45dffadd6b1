// AgentCredentialStore (migration 0008): one-time enrollment tokens, credentials bound to a
// name and allowed labels, revoke and disable, and which agent holds an attempt.
#include <barrier>
#include <thread>

#include "common/crypto/agent_secret.h"
#include "common/crypto/crypto.h"
#include "server/store/agent_credentials.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

struct CredFixture : DbFixture {
  store::AgentCredentialStore creds{&db};

  std::string NewToken(std::optional<std::string> name, std::vector<std::string> labels,
                       absl::Duration ttl = absl::Hours(1)) {
    std::string token = NewAgentSecret(AgentSecretKind::kEnrollmentToken);
    auto row = creds.CreateEnrollmentToken(AgentSecretHash(token), name, labels, absl::Now() + ttl);
    REQUIRE(row.ok());
    return token;
  }
};

std::string Hash(const std::string& s) { return AgentSecretHash(s); }

TEST_CASE("enrollment: a token is used once and binds a hashed credential to name and labels",
          "[db]") {
  CredFixture f;
  const std::string token = f.NewToken(std::nullopt, {"linux", "gpu"});
  const std::string cred = NewAgentSecret(AgentSecretKind::kCredential);
  auto who = f.creds.Enroll(Hash(token), "e1", Hash(cred));
  REQUIRE(who.ok());
  CHECK(who->name == "e1");
  CHECK(who->allowed_labels == std::vector<std::string>{"linux", "gpu"});
  // Only hashes are stored: neither secret appears in any row.
  CHECK(f.Query("SELECT count(*) FROM agents WHERE credential_hash = decode('" +
                HexEncode(Hash(cred)) + "', 'hex') AND state = 'offline' AND name = 'e1'") ==
        Rows{{"1"}});
  CHECK(f.Query("SELECT count(*) FROM agent_enrollment_tokens WHERE used_at IS NOT NULL AND "
                "agent_id = " +
                std::to_string(who->agent_id)) == Rows{{"1"}});
  CHECK(f.Query("SELECT count(*) FROM agents a, agent_enrollment_tokens t WHERE "
                "position(convert_to('" +
                cred +
                "', 'UTF8') in a.credential_hash) > 0 OR "
                "position(convert_to('" +
                token + "', 'UTF8') in t.token_hash) > 0") == Rows{{"0"}});

  // Replayed: refused with the one message, nothing changes.
  auto again =
      f.creds.Enroll(Hash(token), "e2", Hash(NewAgentSecret(AgentSecretKind::kCredential)));
  REQUIRE(again.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(again.status().message() == "enrollment token is unknown, used or expired");
  CHECK(f.Query("SELECT count(*) FROM agents") == Rows{{"1"}});

  auto found = f.creds.FindByCredential(Hash(cred));
  REQUIRE(found.ok());
  REQUIRE(found->has_value());
  CHECK((*found)->name == "e1");
  auto forged = f.creds.FindByCredential(Hash(NewAgentSecret(AgentSecretKind::kCredential)));
  REQUIRE(forged.ok());
  CHECK(!forged->has_value());
}

TEST_CASE("enrollment: expired, unknown, wrong-name and taken-name tokens are refused", "[db]") {
  CredFixture f;
  auto c = [] { return Hash(NewAgentSecret(AgentSecretKind::kCredential)); };
  const std::string expired = f.NewToken(std::nullopt, {}, -absl::Seconds(1));
  CHECK(f.creds.Enroll(Hash(expired), "e1", c()).status().message() ==
        "enrollment token is unknown, used or expired");
  CHECK(f.creds.Enroll(Hash("forged"), "e1", c()).status().code() ==
        absl::StatusCode::kPermissionDenied);

  const std::string bound = f.NewToken("gpu-7", {});
  auto wrong = f.creds.Enroll(Hash(bound), "gpu-8", c());
  CHECK(wrong.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(wrong.status().message() ==
        "this enrollment token is for agent 'gpu-7'; start the agent with --name gpu-7");
  // A refusal leaves the token unused: the right name still enrolls with it.
  REQUIRE(f.creds.Enroll(Hash(bound), "", c()).ok());

  auto taken = f.creds.Enroll(Hash(f.NewToken(std::nullopt, {})), "gpu-7", c());
  CHECK(taken.status().code() == absl::StatusCode::kAlreadyExists);
  auto bad_name = f.creds.Enroll(Hash(f.NewToken(std::nullopt, {})), std::string(101, 'a'), c());
  CHECK(bad_name.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Query("SELECT name FROM agents") == Rows{{"gpu-7"}});

  // Revoked: the credential is gone, the name re-enrolls with a new token.
  REQUIRE(f.creds.Revoke("gpu-7").ok());
  CHECK(f.creds.Blocked({*f.creds.Revoke("gpu-7")}).value().size() == 1);
  auto re = f.creds.Enroll(Hash(f.NewToken(std::nullopt, {})), "gpu-7", c());
  REQUIRE(re.ok());
  CHECK(f.creds.Blocked({re->agent_id}).value().empty());
  CHECK(f.creds.Revoke("nobody").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("enrollment: two agents racing with one token, exactly one enrolls", "[db]") {
  for (int round = 0; round < 5; ++round) {
    CredFixture f;
    const std::string token = f.NewToken(std::nullopt, {});
    std::barrier start(2);
    absl::StatusOr<store::AgentIdentity> r1, r2;
    std::thread t1([&] {
      start.arrive_and_wait();
      r1 = f.creds.Enroll(Hash(token), "a1", Hash(NewAgentSecret(AgentSecretKind::kCredential)));
    });
    std::thread t2([&] {
      start.arrive_and_wait();
      r2 = f.creds.Enroll(Hash(token), "a2", Hash(NewAgentSecret(AgentSecretKind::kCredential)));
    });
    t1.join();
    t2.join();
    CHECK(r1.ok() != r2.ok());
    const auto& loser = r1.ok() ? r2 : r1;
    CHECK(loser.status().code() == absl::StatusCode::kPermissionDenied);
    CHECK(f.Query("SELECT count(*) FROM agents") == Rows{{"1"}});
  }
}

TEST_CASE(
    "agent access: a shared-token hello may not take an enrolled name, disabled and "
    "revoked credentials connect no more",
    "[db]") {
  CredFixture f;
  const std::string cred = NewAgentSecret(AgentSecretKind::kCredential);
  auto who = f.creds.Enroll(Hash(f.NewToken(std::nullopt, {"linux"})), "e1", Hash(cred));
  REQUIRE(who.ok());
  store::AgentHello shared;
  shared.name = "e1";
  auto impostor = f.agents.Connect(shared);
  CHECK(impostor.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(impostor.status().message() ==
        "agent 'e1' is enrolled: it must connect with its own credential");

  store::AgentHello own = shared;
  own.enrolled_id = who->agent_id;
  own.credential_hash = Hash(cred);
  REQUIRE(f.agents.Connect(own).ok());
  store::AgentHello other = own;
  other.credential_hash = Hash(NewAgentSecret(AgentSecretKind::kCredential));
  CHECK(f.agents.Connect(other).status().code() == absl::StatusCode::kPermissionDenied);

  REQUIRE(f.creds.SetDisabled("e1", true).ok());
  CHECK(f.agents.Connect(own).status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(f.creds.Blocked({who->agent_id}).value() == std::vector<int64_t>{who->agent_id});
  REQUIRE(f.creds.SetDisabled("e1", false).ok());
  REQUIRE(f.agents.Connect(own).ok());
  REQUIRE(f.creds.Revoke("e1").ok());
  CHECK(f.agents.Connect(own).status().code() == absl::StatusCode::kPermissionDenied);
  auto gone = f.creds.FindByCredential(Hash(cred));
  REQUIRE(gone.ok());
  CHECK(!gone->has_value());

  // A shared-token agent has no credential to disable.
  store::AgentHello plain;
  plain.name = "plain";
  REQUIRE(f.agents.Connect(plain).ok());
  CHECK(f.creds.SetDisabled("plain", true).status().code() ==
        absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace assay::dbtest
