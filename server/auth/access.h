#pragma once
// Who may do what (issue 11, docs/access.md). Pure functions: the API's middleware
// (server/api/access_routes.cc) finds the Principal from the request's credential and asks
// Authorize whether it meets the route's Need.
//
// Roles: admin (everything), maintainer (writes on every repository and the model registry),
// viewer (reads; writes on the repositories it is made maintainer of). API tokens carry a
// scope that narrows what their user may do: read (GET and HEAD only), write (all but
// administration), admin (all the user may do). The admin token (--admin-token) is the
// bootstrap credential: it may do everything, and has no user.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace assay::auth {

enum class PrincipalKind { kAnonymous, kAdminToken, kSession, kToken };

struct Principal {
  PrincipalKind kind = PrincipalKind::kAnonymous;
  int64_t user_id = 0;             // 0: the admin token or anonymous
  std::string name;                // username, "admin-token" or "anonymous"
  std::string role;                // admin | maintainer | viewer; "admin" for the admin token
  std::string scope = "admin";     // a token's scope; "admin" for the others
  std::vector<int64_t> maintains;  // repositories this viewer maintains
  std::string csrf_token;          // a session's
  int64_t token_id = 0;            // a token's

  // The audit log's actor_kind: session | token | admin-token | anonymous.
  std::string KindName() const;
};

// What a route asks of its caller.
enum class Level {
  kRead,        // any caller, anonymous too when anonymous read is on
  kUser,        // any signed-in caller (its own session, tokens, password)
  kRepoWrite,   // admin, maintainer, or a viewer maintaining the route's repository
  kMaintainer,  // admin or maintainer (the model registry)
  kAdmin,       // admin only (users, agents, audit log, repositories' creation)
};
// Where a kRepoWrite route's repository comes from.
enum class RepoFrom { kNone, kRepoId, kPipelineId, kJobId };

struct Need {
  Level level = Level::kRead;
  RepoFrom repo = RepoFrom::kNone;  // with kRepoWrite: the {id} path parameter's kind

  static Need Read() { return {Level::kRead, RepoFrom::kNone}; }
  static Need User() { return {Level::kUser, RepoFrom::kNone}; }
  static Need RepoWrite(RepoFrom from) { return {Level::kRepoWrite, from}; }
  static Need Maintainer() { return {Level::kMaintainer, RepoFrom::kNone}; }
  static Need Admin() { return {Level::kAdmin, RepoFrom::kNone}; }
};

// "read", "user", "repo-write", "maintainer", "admin" (for the OpenAPI document and errors).
std::string_view LevelName(Level level);

// GET and HEAD: the methods that change nothing (no CSRF token, read-scope tokens allowed).
bool SafeMethod(std::string_view method);

// OK when `p` may call a route needing `need` with `method`; `repo_id` is the route's
// repository for kRepoWrite (nullopt: it has none, only the roles for every repository
// count). kUnauthenticated for an anonymous caller where a sign-in is needed, kPermissionDenied
// naming the role or scope that is missing otherwise.
absl::Status Authorize(const Principal& p, const Need& need, std::string_view method,
                       std::optional<int64_t> repo_id);

// The value of cookie `name` in a Cookie header ("a=1; b=2"); nullopt when absent. Only the
// first of several with that name counts.
std::optional<std::string> CookieValue(std::string_view cookie_header, std::string_view name);

// The formats of the credentials users hold:
//   session id  64 lowercase hex digits (the assay_session cookie)
//   API token   "assay_pat_" + 64 lowercase hex digits
// New ones come from OpenSSL's CSPRNG; the database keeps only their SHA-256.
std::string NewSessionId();
std::string NewApiToken();
std::string NewCsrfToken();
bool LooksLikeSessionId(std::string_view s);
bool LooksLikeApiToken(std::string_view s);

}  // namespace assay::auth
