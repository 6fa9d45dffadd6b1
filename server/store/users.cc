#include "server/store/users.h"

#include <regex>

#include "absl/strings/str_cat.h"

namespace assay::store {
namespace {

#define USER_COLUMNS \
  "u.id, u.username, u.role, u.disabled, " ASSAY_EPOCH_US("u.created_at")                   \
      ", coalesce((SELECT array_agg(m.repo_id ORDER BY m.repo_id)::text FROM repo_members m " \
      "WHERE m.user_id = u.id), '{}')"

const Query kCreateUser{
    "user_create",
    "INSERT INTO users AS u (username, password_hash, role) VALUES ($1, $2, $3) "
    "ON CONFLICT (username) DO NOTHING RETURNING " USER_COLUMNS};
const Query kListUsers{"user_list", "SELECT " USER_COLUMNS " FROM users u ORDER BY u.username"};
const Query kGetUser{"user_get", "SELECT " USER_COLUMNS " FROM users u WHERE u.id = $1"};
const Query kFindLogin{"user_find_login", "SELECT " USER_COLUMNS
                                          ", u.password_hash FROM users u WHERE u.username = $1"};
const Query kLockUser{"user_lock", "SELECT role, disabled FROM users WHERE id = $1 FOR UPDATE"};
// Other enabled admins, locked so that two demotions at once cannot both pass the check.
const Query kOtherAdmins{"user_other_admins",
                         "SELECT id FROM users WHERE role = 'admin' AND NOT disabled AND id <> $1 "
                         "FOR UPDATE"};
const Query kUpdateUser{
    "user_update",
    "UPDATE users SET role = coalesce($2, role), password_hash = coalesce($3, password_hash), "
    "disabled = coalesce($4::boolean, disabled), updated_at = now() WHERE id = $1"};
const Query kEndSessions{"user_end_sessions", "DELETE FROM sessions WHERE user_id = $1"};
const Query kDeleteUser{"user_delete", "DELETE FROM users WHERE id = $1"};
const Query kAddMaintainer{
    "repo_member_add",
    "INSERT INTO repo_members (repo_id, user_id, role) SELECT r.id, u.id, 'maintainer' "
    "FROM repos r, users u WHERE r.id = $1 AND u.id = $2 "
    "ON CONFLICT (repo_id, user_id) DO UPDATE SET role = 'maintainer' RETURNING repo_id"};
const Query kRepoExists{"repo_member_repo_exists", "SELECT 1 FROM repos WHERE id = $1"};
const Query kRemoveMaintainer{"repo_member_remove",
                              "DELETE FROM repo_members WHERE repo_id = $1 AND user_id = $2 "
                              "RETURNING user_id"};
const Query kMaintainers{"repo_member_list",
                         "SELECT u.id, u.username FROM repo_members m JOIN users u ON "
                         "u.id = m.user_id WHERE m.repo_id = $1 ORDER BY u.username"};
const Query kCreateSession{
    "session_create",
    "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at, remote_addr) "
    "VALUES ($1, $2, $3, now(), $4, $5)"};
const Query kFindSession{
    "session_find",
    "SELECT " USER_COLUMNS ", s.csrf_token, " ASSAY_EPOCH_US("s.expires_at")
    " FROM sessions s JOIN users u ON u.id = s.user_id "
    "WHERE s.id_hash = $1 AND s.expires_at > now() AND NOT u.disabled"};
const Query kDeleteSession{"session_delete", "DELETE FROM sessions WHERE id_hash = $1"};
const Query kPruneSessions{"session_prune", "DELETE FROM sessions WHERE expires_at <= now()"};
const Query kCreateToken{
    "api_token_create",
    "INSERT INTO api_tokens (user_id, name, token_hash, scope, created_at, expires_at) "
    "SELECT $1, $2, $3, $4, now(), $5 FROM users WHERE id = $1 "
    "ON CONFLICT (user_id, name) DO NOTHING RETURNING id, " ASSAY_EPOCH_US("created_at")};
const Query kFindToken{
    "api_token_find",
    "SELECT " USER_COLUMNS ", t.scope, t.id, " ASSAY_EPOCH_US("t.expires_at")
    ", t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute' "
    "FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 AND "
    "t.revoked_at IS NULL AND t.expires_at > now() AND NOT u.disabled"};
const Query kTouchToken{"api_token_touch",
                        "UPDATE api_tokens SET last_used_at = now() WHERE id = $1"};
#define TOKEN_COLUMNS \
  "t.id, t.user_id, u.username, t.name, t.scope, " ASSAY_EPOCH_US("t.created_at") ", " \
  ASSAY_EPOCH_US("t.expires_at") ", " ASSAY_EPOCH_US("t.last_used_at")                 \
  ", t.revoked_at IS NOT NULL FROM api_tokens t JOIN users u ON u.id = t.user_id "
const Query kListTokens{"api_token_list", "SELECT " TOKEN_COLUMNS
                                          "WHERE $1::bigint IS NULL OR t.user_id = $1 "
                                          "ORDER BY t.id DESC"};
const Query kRevokeToken{
    "api_token_revoke",
    "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND "
    "($2::bigint IS NULL OR user_id = $2) RETURNING id"};
const Query kRepoOfPipeline{"repo_of_pipeline", "SELECT repo_id FROM pipelines WHERE id = $1"};
const Query kRepoOfJob{"repo_of_job",
                       "SELECT p.repo_id FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id "
                       "WHERE j.id = $1"};
const Query kAudit{"audit_append",
                   "INSERT INTO audit_log (at, actor, actor_kind, action, status, remote_addr, "
                   "request_id, detail) VALUES (now(), $1, $2, $3, $4, $5, $6, $7)"};
const Query kListAudit{
    "audit_list",
    "SELECT id, " ASSAY_EPOCH_US("at") ", actor, actor_kind, action, status, remote_addr, "
    "request_id, detail FROM audit_log WHERE ($1::bigint = 0 OR id < $1) AND "
    "($2::text IS NULL OR actor = $2) ORDER BY id DESC LIMIT $3"};

// Columns 0-5 of USER_COLUMNS.
UserRow UserOf(const pqxx::row& r) {
  UserRow u;
  u.id = r[0].as<int64_t>();
  u.username = r[1].as<std::string>();
  u.role = r[2].as<std::string>();
  u.disabled = r[3].as<bool>();
  u.created_at = ToTime(r[4]);
  for (const std::string& id : FromPgTextArray(r[5])) u.maintains.push_back(std::stoll(id));
  return u;
}

ApiTokenRow TokenOf(const pqxx::row& r) {
  ApiTokenRow t;
  t.id = r[0].as<int64_t>();
  t.user_id = r[1].as<int64_t>();
  t.username = r[2].as<std::string>();
  t.name = r[3].as<std::string>();
  t.scope = r[4].as<std::string>();
  t.created_at = ToTime(r[5]);
  t.expires_at = ToTime(r[6]);
  t.last_used_at = ToTime(r[7]);
  t.revoked = r[8].as<bool>();
  return t;
}

absl::Status CheckRole(const std::string& role) {
  if (!ValidRole(role)) {
    return absl::InvalidArgumentError(
        absl::StrCat("role must be admin, maintainer or viewer, got '", role, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<int64_t>> RepoOf(Db& db, const Query& q, int64_t id) {
  std::optional<int64_t> out;
  absl::Status s = InTransaction(db, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, q, {id});
    if (!r.empty()) out = r[0][0].as<int64_t>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace

bool ValidUsername(const std::string& name) {
  static const std::regex kName("^[a-z0-9][a-z0-9_.\\-]{0,63}$");
  return std::regex_match(name, kName);
}
bool ValidRole(const std::string& role) {
  return role == "admin" || role == "maintainer" || role == "viewer";
}
bool ValidScope(const std::string& scope) {
  return scope == "read" || scope == "write" || scope == "admin";
}
bool ValidTokenName(const std::string& name) {
  static const std::regex kName("^[A-Za-z0-9][A-Za-z0-9 _.:\\-]{0,99}$");
  return std::regex_match(name, kName);
}

absl::StatusOr<UserRow> UserStore::CreateUser(const std::string& username,
                                              const std::string& password_hash,
                                              const std::string& role) {
  if (!ValidUsername(username)) {
    return absl::InvalidArgumentError(
        "username must be 1-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter or "
        "digit");
  }
  if (absl::Status s = CheckRole(role); !s.ok()) return s;
  UserRow out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kCreateUser, {username, password_hash, role});
    if (r.empty()) {
      return absl::AlreadyExistsError(absl::StrCat("a user named '", username, "' exists"));
    }
    out = UserOf(r[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<UserRow>> UserStore::ListUsers() {
  std::vector<UserRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kListUsers)) out.push_back(UserOf(r));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<UserRow>> UserStore::GetUser(int64_t id) {
  std::optional<UserRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kGetUser, {id});
    if (!r.empty()) out = UserOf(r[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<UserStore::Login>> UserStore::FindLogin(const std::string& username) {
  std::optional<Login> out;
  if (!ValidUsername(username)) return out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kFindLogin, {username});
    if (!r.empty()) out = Login{UserOf(r[0]), r[0][6].as<std::string>()};
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<UserRow> UserStore::UpdateUser(int64_t id, const Update& u) {
  if (u.role) {
    if (absl::Status s = CheckRole(*u.role); !s.ok()) return s;
  }
  UserRow out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto cur = Exec(tx, c, kLockUser, {id});
    if (cur.empty()) return absl::NotFoundError(absl::StrCat("no user with id ", id));
    const bool was_admin = cur[0][0].as<std::string>() == "admin" && !cur[0][1].as<bool>();
    const bool stays_admin =
        u.role.value_or(cur[0][0].as<std::string>()) == "admin" && !u.disabled.value_or(false);
    if (was_admin && !stays_admin && Exec(tx, c, kOtherAdmins, {id}).empty()) {
      return absl::FailedPreconditionError(
          "this is the last enabled admin; make another admin first");
    }
    Exec(tx, c, kUpdateUser,
         {id, Param::Opt(u.role), Param::Opt(u.password_hash),
          u.disabled ? Param(*u.disabled) : Param::Null()});
    if (u.password_hash || u.disabled.value_or(false)) Exec(tx, c, kEndSessions, {id});
    out = UserOf(Exec(tx, c, kGetUser, {id})[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status UserStore::DeleteUser(int64_t id) {
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto cur = Exec(tx, c, kLockUser, {id});
    if (cur.empty()) return absl::NotFoundError(absl::StrCat("no user with id ", id));
    if (cur[0][0].as<std::string>() == "admin" && !cur[0][1].as<bool>() &&
        Exec(tx, c, kOtherAdmins, {id}).empty()) {
      return absl::FailedPreconditionError(
          "this is the last enabled admin; make another admin first");
    }
    Exec(tx, c, kDeleteUser, {id});
    return absl::OkStatus();
  });
}

absl::Status UserStore::AddMaintainer(int64_t repo_id, int64_t user_id) {
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    if (!Exec(tx, c, kAddMaintainer, {repo_id, user_id}).empty()) return absl::OkStatus();
    if (Exec(tx, c, kRepoExists, {repo_id}).empty()) {
      return absl::NotFoundError(absl::StrCat("no repository with id ", repo_id));
    }
    return absl::NotFoundError(absl::StrCat("no user with id ", user_id));
  });
}

absl::Status UserStore::RemoveMaintainer(int64_t repo_id, int64_t user_id) {
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    if (Exec(tx, c, kRemoveMaintainer, {repo_id, user_id}).empty()) {
      return absl::NotFoundError(
          absl::StrCat("user ", user_id, " is not a maintainer of repository ", repo_id));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> UserStore::Maintainers(
    int64_t repo_id) {
  std::vector<std::pair<int64_t, std::string>> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kMaintainers, {repo_id})) {
      out.emplace_back(r[0].as<int64_t>(), r[1].as<std::string>());
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status UserStore::CreateSession(const std::string& id_hash, int64_t user_id,
                                      const std::string& csrf_token, absl::Time expires_at,
                                      const std::string& remote_addr) {
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    Exec(tx, c, kCreateSession,
         {Param::Bytes(id_hash), user_id, csrf_token, expires_at, remote_addr.substr(0, 128)});
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<Credential>> UserStore::FindSession(const std::string& id_hash) {
  std::optional<Credential> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kFindSession, {Param::Bytes(id_hash)});
    if (r.empty()) return absl::OkStatus();
    Credential cred;
    cred.user = UserOf(r[0]);
    cred.kind = "session";
    cred.scope = "admin";
    cred.csrf_token = r[0][6].as<std::string>();
    cred.expires_at = ToTime(r[0][7]);
    out = std::move(cred);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status UserStore::DeleteSession(const std::string& id_hash) {
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    Exec(tx, c, kDeleteSession, {Param::Bytes(id_hash)});
    return absl::OkStatus();
  });
}

absl::StatusOr<int64_t> UserStore::PruneSessions() {
  int64_t n = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    n = static_cast<int64_t>(Exec(tx, c, kPruneSessions).affected_rows());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return n;
}

absl::StatusOr<ApiTokenRow> UserStore::CreateToken(int64_t user_id, const std::string& name,
                                                   const std::string& token_hash,
                                                   const std::string& scope,
                                                   absl::Time expires_at) {
  if (!ValidTokenName(name)) {
    return absl::InvalidArgumentError(
        "token name must be 1-100 characters of letters, digits, ' ', '_', '.', ':', '-', "
        "starting with a letter or digit");
  }
  if (!ValidScope(scope)) {
    return absl::InvalidArgumentError(
        absl::StrCat("scope must be read, write or admin, got '", scope, "'"));
  }
  ApiTokenRow out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r =
        Exec(tx, c, kCreateToken, {user_id, name, Param::Bytes(token_hash), scope, expires_at});
    if (r.empty()) {
      if (Exec(tx, c, kGetUser, {user_id}).empty()) {
        return absl::NotFoundError(absl::StrCat("no user with id ", user_id));
      }
      return absl::AlreadyExistsError(absl::StrCat("a token named '", name, "' exists"));
    }
    out.id = r[0][0].as<int64_t>();
    out.created_at = ToTime(r[0][1]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  out.user_id = user_id;
  out.name = name;
  out.scope = scope;
  out.expires_at = expires_at;
  return out;
}

absl::StatusOr<std::optional<Credential>> UserStore::FindToken(const std::string& token_hash) {
  std::optional<Credential> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kFindToken, {Param::Bytes(token_hash)});
    if (r.empty()) return absl::OkStatus();
    Credential cred;
    cred.user = UserOf(r[0]);
    cred.kind = "token";
    cred.scope = r[0][6].as<std::string>();
    cred.token_id = r[0][7].as<int64_t>();
    cred.expires_at = ToTime(r[0][8]);
    if (r[0][9].as<bool>()) Exec(tx, c, kTouchToken, {cred.token_id});
    out = std::move(cred);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<ApiTokenRow>> UserStore::ListTokens(std::optional<int64_t> user_id) {
  std::vector<ApiTokenRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kListTokens, {Param::Opt(user_id)})) {
      out.push_back(TokenOf(r));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status UserStore::RevokeToken(int64_t id, std::optional<int64_t> user_id) {
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    if (Exec(tx, c, kRevokeToken, {id, Param::Opt(user_id)}).empty()) {
      return absl::NotFoundError(absl::StrCat("no token with id ", id));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<int64_t>> UserStore::RepoOfPipeline(int64_t pipeline_id) {
  return RepoOf(*db_, kRepoOfPipeline, pipeline_id);
}
absl::StatusOr<std::optional<int64_t>> UserStore::RepoOfJob(int64_t job_id) {
  return RepoOf(*db_, kRepoOfJob, job_id);
}

absl::Status UserStore::Audit(const AuditEntry& e) {
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    Exec(tx, c, kAudit,
         {e.actor.substr(0, 128), e.actor_kind, e.action.substr(0, 512), e.status,
          e.remote_addr.substr(0, 128), e.request_id.substr(0, 128), e.detail.substr(0, 4096)});
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<AuditEntry>> UserStore::ListAudit(const AuditFilter& f) {
  std::vector<AuditEntry> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r :
         Exec(tx, c, kListAudit, {f.before_id, Param::Opt(f.actor), std::max(1, f.limit)})) {
      AuditEntry e;
      e.id = r[0].as<int64_t>();
      e.at = ToTime(r[1]);
      e.actor = r[2].as<std::string>();
      e.actor_kind = r[3].as<std::string>();
      e.action = r[4].as<std::string>();
      e.status = r[5].as<int>();
      e.remote_addr = r[6].as<std::string>();
      e.request_id = r[7].as<std::string>();
      e.detail = r[8].as<std::string>();
      out.push_back(std::move(e));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace assay::store
