#pragma once
// Users and access (issue 11, migration 0024): local users and their per-repository roles,
// browser sessions, API tokens and the audit log. Session ids and API tokens come in already
// hashed (SHA-256; each is 256 random bits), passwords as scrypt hashes
// (common/crypto/password.h): nothing here can recover a credential. *db must outlive it.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/db.h"

namespace assay::store {

struct UserRow {
  int64_t id = 0;
  std::string username;
  std::string role;  // admin | maintainer | viewer
  bool disabled = false;
  absl::Time created_at = absl::InfinitePast();
  std::vector<int64_t> maintains;  // repositories of repo_members
};

// A user as a credential found them: the row plus, for a token, its scope, for a session,
// its CSRF token.
struct Credential {
  UserRow user;
  std::string kind;        // session | token
  std::string scope;       // token: read | write | admin; session: admin
  std::string csrf_token;  // session only
  int64_t token_id = 0;    // token only
  absl::Time expires_at = absl::InfinitePast();
};

struct ApiTokenRow {
  int64_t id = 0;
  int64_t user_id = 0;
  std::string username;
  std::string name;
  std::string scope;
  absl::Time created_at = absl::InfinitePast();
  absl::Time expires_at = absl::InfinitePast();
  absl::Time last_used_at = absl::InfinitePast();  // InfinitePast: never
  bool revoked = false;
};

struct AuditEntry {
  int64_t id = 0;
  absl::Time at = absl::InfinitePast();
  std::string actor;
  std::string actor_kind;  // session | token | admin-token | anonymous
  std::string action;
  int status = 0;
  std::string remote_addr;
  std::string request_id;
  std::string detail;
};

struct AuditFilter {
  std::optional<std::string> actor;
  int64_t before_id = 0;  // keyset cursor: entries with a smaller id; 0: from the newest
  int limit = 50;
};

// Valid usernames: 1-64 of [a-z0-9_.-], starting with a letter or digit (lower case, so that
// "Alice" and "alice" can never be two users).
bool ValidUsername(const std::string& name);
bool ValidRole(const std::string& role);
bool ValidScope(const std::string& scope);
bool ValidTokenName(const std::string& name);

class UserStore {
 public:
  explicit UserStore(Db* db) : db_(db) {}

  // kInvalidArgument for a bad name or role, kAlreadyExists when the name is taken.
  absl::StatusOr<UserRow> CreateUser(const std::string& username, const std::string& password_hash,
                                     const std::string& role);
  absl::StatusOr<std::vector<UserRow>> ListUsers();
  absl::StatusOr<std::optional<UserRow>> GetUser(int64_t id);
  // The user and password hash to check a login against; nullopt when no such user.
  struct Login {
    UserRow user;
    std::string password_hash;
  };
  absl::StatusOr<std::optional<Login>> FindLogin(const std::string& username);
  // Each set field changes; a new password hash or disabling also ends the user's sessions.
  // kNotFound, kInvalidArgument (role). Refuses (kFailedPrecondition) to leave no enabled
  // admin: the admin token then is the only way back in, so the last one stays.
  struct Update {
    std::optional<std::string> role;
    std::optional<std::string> password_hash;
    std::optional<bool> disabled;
  };
  absl::StatusOr<UserRow> UpdateUser(int64_t id, const Update& u);
  // kNotFound; kFailedPrecondition for the last enabled admin.
  absl::Status DeleteUser(int64_t id);

  // Makes `user_id` maintainer of `repo_id` (idempotent); kNotFound for either missing.
  absl::Status AddMaintainer(int64_t repo_id, int64_t user_id);
  // kNotFound when it was not one.
  absl::Status RemoveMaintainer(int64_t repo_id, int64_t user_id);
  // The user ids maintaining `repo_id` through repo_members, with their names.
  absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> Maintainers(int64_t repo_id);

  // Sessions. Create stores it; Find answers the live session's user (nullopt when unknown,
  // expired, or the user is disabled); Delete ends one (idempotent).
  absl::Status CreateSession(const std::string& id_hash, int64_t user_id,
                             const std::string& csrf_token, absl::Time expires_at,
                             const std::string& remote_addr);
  absl::StatusOr<std::optional<Credential>> FindSession(const std::string& id_hash);
  absl::Status DeleteSession(const std::string& id_hash);
  // Deletes expired sessions; how many.
  absl::StatusOr<int64_t> PruneSessions();

  // API tokens. kAlreadyExists when the user already has a token of that name,
  // kInvalidArgument for a bad name or scope.
  absl::StatusOr<ApiTokenRow> CreateToken(int64_t user_id, const std::string& name,
                                          const std::string& token_hash, const std::string& scope,
                                          absl::Time expires_at);
  // The live token's user (nullopt when unknown, revoked, expired, or the user is disabled);
  // records its last use (at most once a minute per token).
  absl::StatusOr<std::optional<Credential>> FindToken(const std::string& token_hash);
  // Every token of `user_id` (all users' when nullopt), newest first.
  absl::StatusOr<std::vector<ApiTokenRow>> ListTokens(std::optional<int64_t> user_id);
  // Revokes token `id`; when `user_id` is set, only if it is that user's (kNotFound otherwise,
  // the same answer as for a token that does not exist).
  absl::Status RevokeToken(int64_t id, std::optional<int64_t> user_id);

  // The repository a pipeline or a job belongs to (for per-repository roles); nullopt when
  // there is no such pipeline or job.
  absl::StatusOr<std::optional<int64_t>> RepoOfPipeline(int64_t pipeline_id);
  absl::StatusOr<std::optional<int64_t>> RepoOfJob(int64_t job_id);

  // The audit log.
  absl::Status Audit(const AuditEntry& e);
  absl::StatusOr<std::vector<AuditEntry>> ListAudit(const AuditFilter& f);

 private:
  Db* db_;
};

}  // namespace assay::store
