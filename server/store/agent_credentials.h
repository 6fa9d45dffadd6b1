#pragma once
// Agent enrollment and credentials (migration 0008): one-time enrollment tokens, the
// credential each enrolled agent gets, revocation and disabling, and which agent holds an
// attempt. Secrets are passed in and stored only as hashes (AgentSecretHash). *db must
// outlive the store.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/db.h"

namespace assay::store {

struct EnrollmentTokenRow {
  int64_t id = 0;
  std::optional<std::string> name;  // unset: the agent's own name
  std::vector<std::string> labels;
  absl::Time expires_at = absl::InfinitePast();
};

// What a valid credential stands for.
struct AgentIdentity {
  int64_t agent_id = 0;
  std::string name;
  std::vector<std::string> allowed_labels;
  bool disabled = false;
};

// An agent's enrollment state, for the API.
struct AgentAccess {
  int64_t agent_id = 0;
  bool enrolled = false;  // has (or had) a credential
  bool has_credential = false;
  bool revoked = false;
  bool disabled = false;
};

class AgentCredentialStore {
 public:
  explicit AgentCredentialStore(Db* db) : db_(db) {}

  // Stores a new enrollment token by its hash. `name` (when set) must be a valid agent name:
  // kInvalidArgument otherwise (checked by the database too).
  absl::StatusOr<EnrollmentTokenRow> CreateEnrollmentToken(const std::string& token_hash,
                                                           const std::optional<std::string>& name,
                                                           const std::vector<std::string>& labels,
                                                           absl::Time expires_at);

  // Uses the enrollment token once, in one transaction, and binds `credential_hash` to the
  // agent: the token's name if it has one (then `requested_name` must be empty or equal), else
  // `requested_name`. The agent row is created (offline) or taken over when it has no
  // credential (it connected with the shared token, or its credential was revoked).
  // Errors, each leaving the token unused unless said otherwise:
  //   kPermissionDenied "enrollment token is unknown, used or expired" (one message for all
  //     three: no oracle);
  //   kInvalidArgument  the name does not match the token's, or is not a valid name;
  //   kAlreadyExists    an agent of that name holds a credential (revoke it first).
  absl::StatusOr<AgentIdentity> Enroll(const std::string& token_hash,
                                       const std::string& requested_name,
                                       const std::string& credential_hash);

  // The agent holding this credential; nullopt when none does (unknown or revoked).
  absl::StatusOr<std::optional<AgentIdentity>> FindByCredential(const std::string& credential_hash);

  // The enrollment state of the agent named `name`; nullopt when there is no such agent.
  absl::StatusOr<std::optional<AgentAccess>> AccessOf(const std::string& name);

  // Revoke: the credential is deleted for good (the agent must enroll again with a new
  // token) and the name stays reserved for enrollment. Disable/enable: the credential is kept
  // but refused while disabled. kNotFound when no agent has that name; kFailedPrecondition
  // for disabling an agent that was never enrolled (shared-token agents have no credential
  // to refuse: stop them by changing the shared token).
  absl::StatusOr<int64_t> Revoke(const std::string& name);
  absl::StatusOr<int64_t> SetDisabled(const std::string& name, bool disabled);

  // Of `agent_ids`, those that may no longer connect (revoked or disabled).
  absl::StatusOr<std::vector<int64_t>> Blocked(const std::vector<int64_t>& agent_ids);

  // The agent that was given attempt `attempt_token` of job `job_id`; nullopt when no attempt
  // has that token.
  absl::StatusOr<std::optional<int64_t>> AttemptOwner(int64_t job_id,
                                                      const std::string& attempt_token);

 private:
  Db* db_;
};

}  // namespace assay::store
