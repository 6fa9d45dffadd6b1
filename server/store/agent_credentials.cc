#include "server/store/agent_credentials.h"

#include <regex>

#include "absl/strings/str_cat.h"

namespace assay::store {
namespace {

const Query kCreateToken{
    "enroll_token_create",
    "INSERT INTO agent_enrollment_tokens (token_hash, name, labels, expires_at) "
    "VALUES ($1, $2, $3::text[], $4) RETURNING id"};
// The one-use guarantee: the row is updated only while unused and unexpired; a concurrent
// second use waits on the row lock and then finds used_at set.
const Query kUseToken{
    "enroll_token_use",
    "UPDATE agent_enrollment_tokens SET used_at = now() WHERE token_hash = $1 AND "
    "used_at IS NULL AND expires_at > now() RETURNING id, name, labels"};
const Query kBindCredential{
    "enroll_bind_credential",
    "INSERT INTO agents (name, cpu_slots, state, credential_hash, allowed_labels, enrolled_at) "
    "VALUES ($1, 1, 'offline', $2, $3::text[], now()) "
    "ON CONFLICT (name) DO UPDATE SET credential_hash = EXCLUDED.credential_hash, "
    "allowed_labels = EXCLUDED.allowed_labels, enrolled_at = now(), revoked_at = NULL, "
    "disabled = false WHERE agents.credential_hash IS NULL RETURNING id"};
const Query kTokenUsedBy{"enroll_token_used_by",
                         "UPDATE agent_enrollment_tokens SET agent_id = $2 WHERE id = $1"};
const Query kFindByCredential{
    "agent_find_by_credential",
    "SELECT id, name, coalesce(allowed_labels, '{}'), disabled FROM agents "
    "WHERE credential_hash = $1"};
const Query kAccessOf{
    "agent_access_of",
    "SELECT id, enrolled_at IS NOT NULL, credential_hash IS NOT NULL, revoked_at IS NOT NULL, "
    "disabled FROM agents WHERE name = $1"};
const Query kRevoke{"agent_revoke",
                    "UPDATE agents SET credential_hash = NULL, revoked_at = now(), "
                    "enrolled_at = coalesce(enrolled_at, now()) WHERE name = $1 RETURNING id"};
const Query kSetDisabled{
    "agent_set_disabled",
    "UPDATE agents SET disabled = $2 WHERE name = $1 AND enrolled_at IS NOT NULL RETURNING id"};
const Query kAgentIdOf{"agent_id_of_name", "SELECT id FROM agents WHERE name = $1"};
const Query kBlocked{"agent_blocked",
                     "SELECT id FROM agents WHERE id = ANY($1::bigint[]) AND "
                     "(disabled OR revoked_at IS NOT NULL)"};
const Query kAttemptOwner{"attempt_owner",
                          "SELECT agent_id FROM job_attempts WHERE job_id = $1 AND "
                          "attempt_token = $2"};

bool ValidName(const std::string& name) {
  static const std::regex kName("^[A-Za-z0-9][A-Za-z0-9_.\\-]{0,99}$");
  return std::regex_match(name, kName);
}

}  // namespace

absl::StatusOr<EnrollmentTokenRow> AgentCredentialStore::CreateEnrollmentToken(
    const std::string& token_hash, const std::optional<std::string>& name,
    const std::vector<std::string>& labels, absl::Time expires_at) {
  if (name && !ValidName(*name)) {
    return absl::InvalidArgumentError(
        "name must be 1-100 characters of letters, digits, '_', '.', '-'");
  }
  EnrollmentTokenRow out;
  out.name = name;
  out.labels = labels;
  out.expires_at = expires_at;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kCreateToken,
                  {Param::Bytes(token_hash), Param::Opt(name), ToPgTextArray(labels), expires_at});
    out.id = r[0][0].as<int64_t>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<AgentIdentity> AgentCredentialStore::Enroll(const std::string& token_hash,
                                                           const std::string& requested_name,
                                                           const std::string& credential_hash) {
  AgentIdentity out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto t = Exec(tx, c, kUseToken, {Param::Bytes(token_hash)});
    if (t.empty()) {
      return absl::PermissionDeniedError("enrollment token is unknown, used or expired");
    }
    const int64_t token_id = t[0][0].as<int64_t>();
    std::string name = requested_name;
    if (!t[0][1].is_null()) {
      const std::string bound = t[0][1].as<std::string>();
      if (!name.empty() && name != bound) {
        return absl::InvalidArgumentError(absl::StrCat("this enrollment token is for agent '",
                                                       bound, "'; start the agent with --name ",
                                                       bound));
      }
      name = bound;
    }
    if (!ValidName(name)) {
      return absl::InvalidArgumentError(
          "agent name must be 1-100 characters of letters, digits, '_', '.', '-'");
    }
    out.allowed_labels = FromPgTextArray(t[0][2]);
    auto a = Exec(tx, c, kBindCredential,
                  {name, Param::Bytes(credential_hash), ToPgTextArray(out.allowed_labels)});
    if (a.empty()) {
      return absl::AlreadyExistsError(
          absl::StrCat("agent '", name,
                       "' is already enrolled; to replace its credential, revoke it first "
                       "(assay agents revoke ",
                       name, ")"));
    }
    out.agent_id = a[0][0].as<int64_t>();
    out.name = name;
    Exec(tx, c, kTokenUsedBy, {token_id, out.agent_id});
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<AgentIdentity>> AgentCredentialStore::FindByCredential(
    const std::string& credential_hash) {
  std::optional<AgentIdentity> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kFindByCredential, {Param::Bytes(credential_hash)});
    if (!r.empty()) {
      AgentIdentity id;
      id.agent_id = r[0][0].as<int64_t>();
      id.name = r[0][1].as<std::string>();
      id.allowed_labels = FromPgTextArray(r[0][2]);
      id.disabled = r[0][3].as<bool>();
      out = std::move(id);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<AgentAccess>> AgentCredentialStore::AccessOf(const std::string& name) {
  std::optional<AgentAccess> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kAccessOf, {name});
    if (!r.empty()) {
      AgentAccess a;
      a.agent_id = r[0][0].as<int64_t>();
      a.enrolled = r[0][1].as<bool>();
      a.has_credential = r[0][2].as<bool>();
      a.revoked = r[0][3].as<bool>();
      a.disabled = r[0][4].as<bool>();
      out = a;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<int64_t> AgentCredentialStore::Revoke(const std::string& name) {
  int64_t id = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto r = Exec(tx, c, kRevoke, {name});
    if (r.empty()) return absl::NotFoundError(absl::StrCat("no agent named '", name, "'"));
    id = r[0][0].as<int64_t>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return id;
}

absl::StatusOr<int64_t> AgentCredentialStore::SetDisabled(const std::string& name, bool disabled) {
  int64_t id = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto r = Exec(tx, c, kSetDisabled, {name, disabled});
    if (!r.empty()) {
      id = r[0][0].as<int64_t>();
      return absl::OkStatus();
    }
    if (Exec(tx, c, kAgentIdOf, {name}).empty()) {
      return absl::NotFoundError(absl::StrCat("no agent named '", name, "'"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "agent '", name,
        "' was never enrolled (it uses the shared agent token): revoke it to reserve its name "
        "for enrollment, or change the shared token"));
  });
  if (!s.ok()) return s;
  return id;
}

absl::StatusOr<std::vector<int64_t>> AgentCredentialStore::Blocked(
    const std::vector<int64_t>& agent_ids) {
  std::vector<int64_t> out;
  if (agent_ids.empty()) return out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kBlocked, {ToPgArray(agent_ids)})) {
      out.push_back(r[0].as<int64_t>());
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<int64_t>> AgentCredentialStore::AttemptOwner(
    int64_t job_id, const std::string& attempt_token) {
  std::optional<int64_t> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kAttemptOwner, {job_id, attempt_token});
    if (!r.empty()) out = r[0][0].as<int64_t>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace assay::store
