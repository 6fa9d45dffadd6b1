// Issue 11 (docs/access.md): logging in and out, the caller, users and their roles,
// repository maintainers, API tokens and the audit log.

#include <boost/json.hpp>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/crypto/crypto.h"
#include "common/crypto/password.h"
#include "server/api/json.h"
#include "server/api/routes.h"
#include "server/http/json_util.h"

namespace assay::api {
namespace {

using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
using http::Response;
namespace json = boost::json;

constexpr int64_t kMaxTokenDays = 366;
constexpr int64_t kDefaultTokenDays = 30;
constexpr int kMaxAuditPage = 500;

Response Unavailable() {
  return ErrorResponse(503, "unavailable", "users are not available on this server");
}
Response Error(const absl::Status& s) { return http::StatusToResponse(s); }

// Credentials expire by the database's clock (the queries compare with now()), so they are
// given the wall clock's time here, never a simulated one.
absl::Time WallNow() { return absl::Now(); }

json::object UserJson(const store::UserRow& u) {
  json::array maintains;
  for (int64_t id : u.maintains) maintains.push_back(id);
  return {{"id", u.id},
          {"username", u.username},
          {"role", u.role},
          {"disabled", u.disabled},
          {"maintains", std::move(maintains)},
          {"created_at", TimeJson(u.created_at)}};
}

json::object TokenJson(const store::ApiTokenRow& t) {
  return {{"id", t.id},
          {"user", t.username},
          {"name", t.name},
          {"scope", t.scope},
          {"created_at", TimeJson(t.created_at)},
          {"expires_at", TimeJson(t.expires_at)},
          {"last_used_at", TimeJson(t.last_used_at)},
          {"revoked", t.revoked}};
}

// The cookie that carries `name`=`value` for `max_age` (0: delete it).
std::string Cookie(const ApiDeps& d, const std::string& name, const std::string& value,
                   absl::Duration max_age, bool http_only) {
  return absl::StrCat(name, "=", value, "; Path=/; Max-Age=", absl::ToInt64Seconds(max_age),
                      http_only ? "; HttpOnly" : "", "; SameSite=Strict",
                      d.secure_cookies ? "; Secure" : "");
}

// A JSON body only: a form post from another site cannot log anyone in (login CSRF).
bool JsonContentType(const Request& req) {
  std::string type = absl::AsciiStrToLower(req.Header("content-type"));
  return type == "application/json" || absl::StartsWith(type, "application/json;");
}

Response TooMany(absl::Duration wait, const std::string& what) {
  Response r = ErrorResponse(429, "too_many_requests",
                             absl::StrCat("too many failed logins ", what, "; retry later"));
  r.headers.emplace_back(
      "Retry-After",
      absl::StrCat(std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(wait, absl::Seconds(1))))));
  return r;
}

void AuditLogin(const ApiDeps& d, const Request& req, const std::string& actor, int status,
                std::string detail) {
  store::AuditEntry e;
  e.actor = actor;
  e.actor_kind = actor == "anonymous" ? "anonymous" : "session";
  e.action = "login";
  e.status = status;
  e.remote_addr = AuthLimiter::AddressOf(req.remote_addr);
  e.request_id = req.request_id;
  e.detail = std::move(detail);
  if (absl::Status s = d.users->Audit(e); !s.ok()) {
    LogError("api", "audit log: could not record a login by ", actor, ": ", s.ToString());
  }
}

// A hash no password matches, with the configured cost: an unknown username takes as long to
// refuse as a wrong password (no oracle for which names exist).
const std::string& DecoyHash(int log2_n) {
  static const std::string* const kDecoy = [log2_n] {
    auto h = HashPassword(RandomHexToken(16), ScryptParams{log2_n, 8, 1});
    return new std::string(h.ok() ? *h : "");
  }();
  return *kDecoy;
}

std::string LoginKey(const std::string& username) {
  return "login-" + HexSha256(absl::AsciiStrToLower(username)).substr(0, 32);
}

// POST /api/v1/session {"username", "password"}: a session cookie (HttpOnly) and its CSRF
// token (in the answer and a cookie the dashboard's script reads).
Response Login(const ApiDeps& d, Request& req) {
  if (d.users == nullptr) return Unavailable();
  if (d.auth_limiter != nullptr) {
    if (absl::Duration w = d.auth_limiter->Blocked(req.remote_addr); w > absl::ZeroDuration()) {
      return TooMany(w, "from this address");
    }
  }
  if (!JsonContentType(req)) {
    return ErrorResponse(415, "unsupported_media_type",
                         "log in with a JSON body and Content-Type: application/json");
  }
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status s = http::OnlyFields(*body, {"username", "password"}); !s.ok()) return Error(s);
  auto username = http::RequiredString(*body, "username");
  if (!username.ok()) return Error(username.status());
  auto password = http::RequiredString(*body, "password");
  if (!password.ok()) return Error(password.status());
  // The limiter's key for this name: a hash, which has no ':' (the limiter reads "a:b" as an
  // address and port) and bounds the key's size whatever was sent.
  const std::string user_key = LoginKey(*username);
  if (d.login_limiter != nullptr) {
    if (absl::Duration w = d.login_limiter->Blocked(user_key); w > absl::ZeroDuration()) {
      AuditLogin(d, req, store::ValidUsername(*username) ? *username : "anonymous", 429,
                 "refused: too many failed logins for this username");
      return TooMany(w, "for this username");
    }
  }
  auto login = d.users->FindLogin(*username);
  if (!login.ok()) return Error(login.status());
  bool ok = false;
  if (*login) {
    ok = VerifyPassword(*password, (*login)->password_hash);
  } else {
    VerifyPassword(*password, DecoyHash(d.password_log2_n));  // the time a real check takes
  }
  if (!ok || (*login)->user.disabled) {
    if (d.auth_limiter != nullptr) d.auth_limiter->Failed(req.remote_addr);
    if (d.login_limiter != nullptr) d.login_limiter->Failed(user_key);
    AuditLogin(d, req, *login ? (*login)->user.username : "anonymous", 401,
               *login ? ((*login)->user.disabled ? "user is disabled" : "wrong password")
                      : "unknown username");
    return ErrorResponse(401, "unauthenticated", "wrong username or password");
  }
  const store::UserRow& user = (*login)->user;
  const std::string session = auth::NewSessionId();
  const std::string csrf = auth::NewCsrfToken();
  const absl::Time expires = WallNow() + d.session_ttl;
  if (absl::Status s = d.users->CreateSession(Sha256(session), user.id, csrf, expires,
                                              AuthLimiter::AddressOf(req.remote_addr));
      !s.ok()) {
    return Error(s);
  }
  AuditLogin(d, req, user.username, 200, "");
  // Expired sessions go at each login (an index on expires_at makes it cheap).
  if (auto pruned = d.users->PruneSessions(); !pruned.ok()) {
    LogWarn("api", "could not delete expired sessions: ", pruned.status().ToString());
  }
  Response r = JsonResponse(
      200, {{"user", UserJson(user)}, {"csrf_token", csrf}, {"expires_at", TimeJson(expires)}});
  r.headers.emplace_back("Set-Cookie", Cookie(d, "assay_session", session, d.session_ttl, true));
  r.headers.emplace_back("Set-Cookie", Cookie(d, "assay_csrf", csrf, d.session_ttl, false));
  return r;
}

// DELETE /api/v1/session: ends the caller's session.
Response Logout(const ApiDeps& d, Request& req) {
  if (Caller(req).kind != auth::PrincipalKind::kSession) {
    return ErrorResponse(400, "invalid_argument",
                         "this request has no session to end (it used a token)");
  }
  auto cookie = auth::CookieValue(req.Header("cookie"), "assay_session");
  if (absl::Status s = d.users->DeleteSession(Sha256(cookie.value_or(""))); !s.ok()) {
    return Error(s);
  }
  Response r = JsonResponse(200, {{"ended", true}});
  r.headers.emplace_back("Set-Cookie", Cookie(d, "assay_session", "", absl::ZeroDuration(), true));
  r.headers.emplace_back("Set-Cookie", Cookie(d, "assay_csrf", "", absl::ZeroDuration(), false));
  return r;
}

// GET /api/v1/me: who the caller is and what it may do.
Response Me(const ApiDeps&, Request& req) {
  const auth::Principal& p = Caller(req);
  json::array maintains;
  for (int64_t id : p.maintains) maintains.push_back(id);
  json::object o{{"name", p.name},
                 {"kind", p.KindName()},
                 {"role", p.role},
                 {"scope", p.scope},
                 {"maintains", std::move(maintains)}};
  if (p.user_id != 0) o["user_id"] = p.user_id;
  if (p.kind == auth::PrincipalKind::kSession) o["csrf_token"] = p.csrf_token;
  return JsonResponse(200, std::move(o));
}

// A user's own requests need a user: the admin token has none.
std::optional<Response> NeedsUser(const auth::Principal& p) {
  if (p.user_id != 0) return std::nullopt;
  return ErrorResponse(400, "invalid_argument",
                       "the admin token has no user: create a user (POST /api/v1/users) and "
                       "use its session or tokens");
}

// PUT /api/v1/me/password {"current_password", "new_password"}: ends every session of the
// user (this one too).
Response ChangeOwnPassword(const ApiDeps& d, Request& req) {
  const auth::Principal& p = Caller(req);
  if (auto r = NeedsUser(p)) return *r;
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status s = http::OnlyFields(*body, {"current_password", "new_password"}); !s.ok()) {
    return Error(s);
  }
  auto current = http::RequiredString(*body, "current_password");
  if (!current.ok()) return Error(current.status());
  auto next = http::RequiredString(*body, "new_password");
  if (!next.ok()) return Error(next.status());
  auto login = d.users->FindLogin(p.name);
  if (!login.ok()) return Error(login.status());
  if (!*login || !VerifyPassword(*current, (*login)->password_hash)) {
    if (d.login_limiter != nullptr) d.login_limiter->Failed(LoginKey(p.name));
    return ErrorResponse(403, "permission_denied", "current_password is wrong");
  }
  auto hash = HashPassword(*next, ScryptParams{d.password_log2_n, 8, 1});
  if (!hash.ok()) return Error(hash.status());
  store::UserStore::Update u;
  u.password_hash = *hash;
  auto user = d.users->UpdateUser(p.user_id, u);
  if (!user.ok()) return Error(user.status());
  return JsonResponse(200, {{"user", UserJson(*user)}, {"sessions_ended", true}});
}

// POST /api/v1/users {"username", "password", "role"}.
Response CreateUser(const ApiDeps& d, Request& req) {
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status s = http::OnlyFields(*body, {"username", "password", "role"}); !s.ok()) {
    return Error(s);
  }
  auto username = http::RequiredString(*body, "username");
  if (!username.ok()) return Error(username.status());
  auto password = http::RequiredString(*body, "password");
  if (!password.ok()) return Error(password.status());
  auto role = http::OptionalString(*body, "role");
  if (!role.ok()) return Error(role.status());
  if (!store::ValidUsername(*username)) {
    return Error(absl::InvalidArgumentError(
        "field 'username' must be 1-64 characters of a-z, 0-9, '_', '.', '-', starting with a "
        "letter or digit"));
  }
  if (!store::ValidRole(role->value_or("viewer"))) {
    return Error(absl::InvalidArgumentError("field 'role' must be admin, maintainer or viewer"));
  }
  if (absl::Status s = CheckPasswordPolicy(*password); !s.ok()) {
    return Error(absl::InvalidArgumentError(absl::StrCat("field 'password': ", s.message())));
  }
  auto hash = HashPassword(*password, ScryptParams{d.password_log2_n, 8, 1});
  if (!hash.ok()) return Error(hash.status());
  auto user = d.users->CreateUser(*username, *hash, role->value_or("viewer"));
  if (!user.ok()) return Error(user.status());
  return JsonResponse(201, UserJson(*user));
}

absl::StatusOr<store::UserRow> UserOfPath(const ApiDeps& d, const Request& req) {
  auto id = PathId(req);
  if (!id.ok()) return id.status();
  auto user = d.users->GetUser(*id);
  if (!user.ok()) return user.status();
  if (!*user) return absl::NotFoundError(absl::StrCat("no user with id ", *id));
  return **user;
}

// PATCH /api/v1/users/{id} {"role", "password", "disabled"}.
Response UpdateUser(const ApiDeps& d, Request& req) {
  auto id = PathId(req);
  if (!id.ok()) return Error(id.status());
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status s = http::OnlyFields(*body, {"role", "password", "disabled"}); !s.ok()) {
    return Error(s);
  }
  store::UserStore::Update u;
  auto role = http::OptionalString(*body, "role");
  if (!role.ok()) return Error(role.status());
  if (*role && !store::ValidRole(**role)) {
    return Error(absl::InvalidArgumentError("field 'role' must be admin, maintainer or viewer"));
  }
  u.role = *role;
  auto password = http::OptionalString(*body, "password");
  if (!password.ok()) return Error(password.status());
  if (*password) {
    if (absl::Status s = CheckPasswordPolicy(**password); !s.ok()) {
      return Error(absl::InvalidArgumentError(absl::StrCat("field 'password': ", s.message())));
    }
    auto hash = HashPassword(**password, ScryptParams{d.password_log2_n, 8, 1});
    if (!hash.ok()) return Error(hash.status());
    u.password_hash = *hash;
  }
  auto disabled = http::OptionalBool(*body, "disabled");
  if (!disabled.ok()) return Error(disabled.status());
  u.disabled = *disabled;
  auto user = d.users->UpdateUser(*id, u);
  if (!user.ok()) return Error(user.status());
  return JsonResponse(200, UserJson(*user));
}

// The {user} path parameter: a username that exists.
absl::StatusOr<store::UserRow> NamedUser(const ApiDeps& d, const Request& req) {
  auto it = req.path_params.find("user");
  const std::string name = it == req.path_params.end() ? "" : it->second;
  auto login = d.users->FindLogin(name);
  if (!login.ok()) return login.status();
  if (!*login) return absl::NotFoundError(absl::StrCat("no user named '", name, "'"));
  return (*login)->user;
}

// POST /api/v1/tokens {"name", "scope", "expires_in_days"}: the token itself is in this
// answer only.
Response CreateToken(const ApiDeps& d, Request& req) {
  const auth::Principal& p = Caller(req);
  if (auto r = NeedsUser(p)) return *r;
  Response err;
  auto body = http::ParseJsonBody(req, &err);
  if (!body) return err;
  if (absl::Status s = http::OnlyFields(*body, {"name", "scope", "expires_in_days"}); !s.ok()) {
    return Error(s);
  }
  auto name = http::RequiredString(*body, "name");
  if (!name.ok()) return Error(name.status());
  auto scope = http::OptionalString(*body, "scope");
  if (!scope.ok()) return Error(scope.status());
  auto days = http::OptionalInt(*body, "expires_in_days");
  if (!days.ok()) return Error(days.status());
  const std::string s = scope->value_or("write");
  if (!store::ValidScope(s)) {
    return Error(absl::InvalidArgumentError("field 'scope' must be read, write or admin"));
  }
  const auto rank = [](std::string_view x) { return x == "read" ? 0 : x == "write" ? 1 : 2; };
  if (rank(s) > rank(p.scope)) {
    return ErrorResponse(403, "permission_denied",
                         absl::StrCat("a token with scope '", p.scope,
                                      "' cannot make one with the wider scope '", s, "'"));
  }
  const int64_t n = days->value_or(kDefaultTokenDays);
  if (n < 1 || n > kMaxTokenDays) {
    return Error(absl::InvalidArgumentError(
        absl::StrCat("field 'expires_in_days' must be 1 to ", kMaxTokenDays, ", got ", n)));
  }
  const std::string token = auth::NewApiToken();
  auto row =
      d.users->CreateToken(p.user_id, *name, Sha256(token), s, WallNow() + absl::Hours(24 * n));
  if (!row.ok()) return Error(row.status());
  row->username = p.name;
  json::object o = TokenJson(*row);
  o["token"] = token;
  return JsonResponse(201, std::move(o));
}

// GET /api/v1/tokens[?all=1]: the caller's tokens (every user's with all=1, admins only).
Response ListTokens(const ApiDeps& d, Request& req) {
  const auth::Principal& p = Caller(req);
  std::optional<int64_t> user = p.user_id;
  if (auto all = req.Query("all"); all && (*all == "1" || *all == "true")) {
    if (absl::Status s = auth::Authorize(p, auth::Need::Admin(), req.method, std::nullopt);
        !s.ok()) {
      return ErrorResponse(403, "permission_denied", std::string(s.message()));
    }
    user = std::nullopt;
  } else if (auto r = NeedsUser(p)) {
    return *r;
  }
  auto list = d.users->ListTokens(user);
  if (!list.ok()) return Error(list.status());
  json::array a;
  for (const auto& t : *list) a.push_back(TokenJson(t));
  return JsonResponse(200, {{"tokens", std::move(a)}});
}

// DELETE /api/v1/tokens/{id}: a user revokes its own; an admin any.
Response RevokeToken(const ApiDeps& d, Request& req) {
  const auth::Principal& p = Caller(req);
  auto id = PathId(req);
  if (!id.ok()) return Error(id.status());
  const bool any = auth::Authorize(p, auth::Need::Admin(), req.method, std::nullopt).ok();
  if (!any) {
    if (auto r = NeedsUser(p)) return *r;
  }
  if (absl::Status s = d.users->RevokeToken(*id, any ? std::nullopt : std::optional(p.user_id));
      !s.ok()) {
    return Error(s);
  }
  return JsonResponse(200, {{"id", *id}, {"revoked", true}});
}

// GET /api/v1/audit?actor=&cursor=&limit=: newest first; "next_cursor" pages on.
Response ListAudit(const ApiDeps& d, Request& req) {
  store::AuditFilter f;
  f.actor = req.Query("actor");
  if (auto c = req.Query("cursor"); c && !c->empty()) {
    if (!absl::SimpleAtoi(*c, &f.before_id) || f.before_id < 1) {
      return Error(absl::InvalidArgumentError("cursor must be a next_cursor this API gave"));
    }
  }
  if (auto l = req.Query("limit")) {
    if (!absl::SimpleAtoi(*l, &f.limit) || f.limit < 1 || f.limit > kMaxAuditPage) {
      return Error(absl::InvalidArgumentError(
          absl::StrCat("limit must be an integer from 1 to ", kMaxAuditPage)));
    }
  }
  auto list = d.users->ListAudit(f);
  if (!list.ok()) return Error(list.status());
  json::array a;
  for (const auto& e : *list) {
    a.push_back(json::object{{"id", e.id},
                             {"at", TimeJson(e.at)},
                             {"actor", e.actor},
                             {"actor_kind", e.actor_kind},
                             {"action", e.action},
                             {"status", e.status},
                             {"remote_addr", e.remote_addr},
                             {"request_id", e.request_id},
                             {"detail", e.detail}});
  }
  json::object o{{"entries", std::move(a)}};
  o["next_cursor"] = static_cast<int>(list->size()) == f.limit
                         ? json::value(absl::StrCat(list->back().id))
                         : json::value(nullptr);
  return JsonResponse(200, std::move(o));
}

// Wraps a handler: 503 without a user store, then Authed.
http::Handler Users(const ApiDeps& d, auth::Need need,
                    std::function<Response(const ApiDeps&, Request&)> h) {
  return Authed(d, need, [&d, h = std::move(h)](Request& req) {
    if (d.users == nullptr) return Unavailable();
    return h(d, req);
  });
}

}  // namespace

void RegisterAccessRoutes(http::Router& router, const ApiDeps& d) {
  using auth::Need;
  router.Add("POST", "/api/v1/session", [&d](Request& req) { return Login(d, req); });
  router.Add("DELETE", "/api/v1/session", Users(d, Need::User(), Logout));
  router.Add("GET", "/api/v1/me",
             Authed(d, Need::User(), [&d](Request& req) { return Me(d, req); }));
  router.Add("PUT", "/api/v1/me/password", Users(d, Need::User(), ChangeOwnPassword));
  router.Add("GET", "/api/v1/users", Users(d, Need::Admin(), [](const ApiDeps& d, Request&) {
               auto list = d.users->ListUsers();
               if (!list.ok()) return Error(list.status());
               json::array a;
               for (const auto& u : *list) a.push_back(UserJson(u));
               return JsonResponse(200, {{"users", std::move(a)}});
             }));
  router.Add("POST", "/api/v1/users", Users(d, Need::Admin(), CreateUser));
  router.Add("GET", "/api/v1/users/{id}",
             Users(d, Need::Admin(), [](const ApiDeps& d, Request& req) {
               auto u = UserOfPath(d, req);
               if (!u.ok()) return Error(u.status());
               return JsonResponse(200, UserJson(*u));
             }));
  router.Add("PATCH", "/api/v1/users/{id}", Users(d, Need::Admin(), UpdateUser));
  router.Add("DELETE", "/api/v1/users/{id}",
             Users(d, Need::Admin(), [](const ApiDeps& d, Request& req) {
               auto id = PathId(req);
               if (!id.ok()) return Error(id.status());
               if (absl::Status s = d.users->DeleteUser(*id); !s.ok()) return Error(s);
               return JsonResponse(200, {{"id", *id}, {"deleted", true}});
             }));
  router.Add("GET", "/api/v1/repos/{id}/maintainers",
             Users(d, Need::Read(), [](const ApiDeps& d, Request& req) {
               auto id = PathId(req);
               if (!id.ok()) return Error(id.status());
               auto list = d.users->Maintainers(*id);
               if (!list.ok()) return Error(list.status());
               json::array a;
               for (const auto& [uid, name] : *list) {
                 a.push_back(json::object{{"user_id", uid}, {"username", name}});
               }
               return JsonResponse(200, {{"maintainers", std::move(a)}});
             }));
  for (const char* method : {"PUT", "DELETE"}) {
    const bool add = std::string_view(method) == "PUT";
    router.Add(method, "/api/v1/repos/{id}/maintainers/{user}",
               Users(d, Need::Admin(), [add](const ApiDeps& d, Request& req) {
                 auto id = PathId(req);
                 if (!id.ok()) return Error(id.status());
                 auto user = NamedUser(d, req);
                 if (!user.ok()) return Error(user.status());
                 absl::Status s = add ? d.users->AddMaintainer(*id, user->id)
                                      : d.users->RemoveMaintainer(*id, user->id);
                 if (!s.ok()) return Error(s);
                 return JsonResponse(
                     200, {{"repo_id", *id}, {"username", user->username}, {"maintainer", add}});
               }));
  }
  router.Add("GET", "/api/v1/tokens", Users(d, Need::User(), ListTokens));
  router.Add("POST", "/api/v1/tokens", Users(d, Need::User(), CreateToken));
  router.Add("DELETE", "/api/v1/tokens/{id}", Users(d, Need::User(), RevokeToken));
  router.Add("GET", "/api/v1/audit", Users(d, Need::Admin(), ListAudit));
}

}  // namespace assay::api
