// End to end: users and access (issue 11, docs/access.md) against a real server and database.
// Logging in and out, the session cookie's attributes, CSRF, API tokens (shown once, scoped,
// expiring, revoked), the audit log, login rate limits, anonymous read, and every API route
// called as every kind of caller against tests/support/access_table.h.

#include <boost/json.hpp>

#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "tests/e2e/e2e.h"
#include "tests/support/access_table.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr char kPipelineFile[] = R"yml(jobs:
  build:
    steps:
      - run: echo build
)yml";

// Cheap password hashes: the checks are the same at any cost.
ClusterOptions AccessOptions(std::vector<std::string> extra = {}) {
  std::vector<std::string> flags = {"--password-cost", "10"};
  flags.insert(flags.end(), extra.begin(), extra.end());
  return Options(flags);
}

void CreateUser(Cluster& c, const std::string& name, const std::string& role) {
  HttpClientResponse r = MUST(c.Api("POST", "/api/v1/users",
                                    absl::StrCat(R"({"username":")", name, R"(","password":"pw-)",
                                                 name, R"(-123","role":")", role, R"("})")));
  INFO(r.body);
  REQUIRE(r.status == 201);
}

struct Session {
  std::string cookie;  // "assay_session=..."
  std::string csrf;
  Headers Get() const { return {{"Cookie", cookie}}; }
  Headers Write() const {
    return {{"Cookie", cookie}, {"X-Assay-CSRF", csrf}, {"Content-Type", "application/json"}};
  }
};

// The value of the Set-Cookie header whose name is `name` (the HTTP client keeps each header).
std::string SetCookie(const HttpClientResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (absl::EqualsIgnoreCase(k, "set-cookie") && absl::StartsWith(v, name + "=")) return v;
  }
  return "";
}

Session Login(Cluster& c, const std::string& name) {
  HttpClientResponse r = MUST(
      c.Fetch("POST", "/api/v1/session", {{"Content-Type", "application/json"}},
              absl::StrCat(R"({"username":")", name, R"(","password":"pw-)", name, R"(-123"})")));
  INFO(r.body);
  REQUIRE(r.status == 200);
  const std::string set = SetCookie(r, "assay_session");
  Session s;
  s.cookie = set.substr(0, set.find(';'));
  s.csrf = std::string(json::parse(r.body).as_object().at("csrf_token").as_string());
  return s;
}

std::string NewToken(Cluster& c, const Session& s, const std::string& name,
                     const std::string& scope) {
  HttpClientResponse r =
      MUST(c.Fetch("POST", "/api/v1/tokens", s.Write(),
                   absl::StrCat(R"({"name":")", name, R"(","scope":")", scope, R"("})")));
  INFO(r.body);
  REQUIRE(r.status == 201);
  return std::string(json::parse(r.body).as_object().at("token").as_string());
}

int64_t Int(Cluster& c, const std::string& sql) { return MUST(c.QueryInt(sql)); }

TEST_CASE("access: log in, the cookie's attributes, CSRF on writes, log out", "[e2e][security]") {
  Cluster c(AccessOptions());
  MUST(c.StartServer());
  CreateUser(c, "alice", "admin");
  // Wrong password, unknown user: one answer, nothing stored, both audited.
  for (const char* body : {R"({"username":"alice","password":"wrong-password"})",
                           R"({"username":"nobody","password":"wrong-password"})"}) {
    HttpClientResponse r =
        MUST(c.Fetch("POST", "/api/v1/session", {{"Content-Type", "application/json"}}, body));
    CHECK(r.status == 401);
    CHECK(r.body ==
          R"({"error":{"code":"unauthenticated","message":"wrong username or password"}})");
    CHECK(SetCookie(r, "assay_session").empty());
  }
  CHECK(Int(c, "SELECT count(*) FROM sessions") == 0);
  CHECK(Int(c,
            "SELECT count(*) FROM audit_log WHERE action = 'login' AND status = 401 AND "
            "actor = 'alice' AND detail = 'wrong password'") == 1);
  CHECK(Int(c,
            "SELECT count(*) FROM audit_log WHERE action = 'login' AND status = 401 AND "
            "actor = 'anonymous' AND detail = 'unknown username'") == 1);
  // A form post cannot log in (login CSRF).
  HttpClientResponse form = MUST(c.Fetch("POST", "/api/v1/session",
                                         {{"Content-Type", "application/x-www-form-urlencoded"}},
                                         R"({"username":"alice","password":"pw-alice-123"})"));
  CHECK(form.status == 415);

  HttpClientResponse ok =
      MUST(c.Fetch("POST", "/api/v1/session", {{"Content-Type", "application/json"}},
                   R"({"username":"alice","password":"pw-alice-123"})"));
  REQUIRE(ok.status == 200);
  const std::string cookie = SetCookie(ok, "assay_session");
  INFO(cookie);
  CHECK(absl::StrContains(cookie, "; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict; Secure"));
  const std::string csrf_cookie = SetCookie(ok, "assay_csrf");
  CHECK(absl::StrContains(csrf_cookie, "; Path=/; Max-Age=43200; SameSite=Strict; Secure"));
  CHECK_FALSE(absl::StrContains(csrf_cookie, "HttpOnly"));
  json::object body = json::parse(ok.body).as_object();
  CHECK(body.at("user").as_object().at("username").as_string() == "alice");
  Session s;
  s.cookie = cookie.substr(0, cookie.find(';'));
  s.csrf = std::string(body.at("csrf_token").as_string());
  CHECK(csrf_cookie.substr(0, csrf_cookie.find(';')) == "assay_csrf=" + s.csrf);
  // The session id is stored only as its hash.
  const std::string id = s.cookie.substr(std::string("assay_session=").size());
  CHECK(Int(c, "SELECT count(*) FROM sessions WHERE id_hash = sha256(convert_to('" + id +
                   "', 'UTF8'))") == 1);

  HttpClientResponse me = MUST(c.Fetch("GET", "/api/v1/me", s.Get()));
  REQUIRE(me.status == 200);
  json::object who = json::parse(me.body).as_object();
  CHECK(who.at("name").as_string() == "alice");
  CHECK(who.at("kind").as_string() == "session");
  CHECK(who.at("role").as_string() == "admin");

  // A write without the CSRF header, or with a wrong one: 403, nothing made, audited.
  const std::string repo =
      R"({"name":"acme/x","clone_url":"https://example.com/x.git","provider":"github"})";
  HttpClientResponse no_csrf = MUST(c.Fetch(
      "POST", "/api/v1/repos", {{"Cookie", s.cookie}, {"Content-Type", "application/json"}}, repo));
  CHECK(no_csrf.status == 403);
  CHECK(no_csrf.body ==
        R"({"error":{"code":"permission_denied","message":"missing or wrong X-Assay-CSRF header: )"
        R"(a request that changes something must carry the session's CSRF token"}})");
  Headers wrong = s.Write();
  wrong[1].second = std::string(64, '0');
  CHECK(MUST(c.Fetch("POST", "/api/v1/repos", wrong, repo)).status == 403);
  CHECK(Int(c, "SELECT count(*) FROM repos") == 0);
  CHECK(Int(c,
            "SELECT count(*) FROM audit_log WHERE actor = 'alice' AND status = 403 AND "
            "action = 'POST /api/v1/repos'") == 2);
  // With it: made, and audited as alice's.
  HttpClientResponse made = MUST(c.Fetch("POST", "/api/v1/repos", s.Write(), repo));
  CHECK(made.status == 201);
  CHECK(Int(c,
            "SELECT count(*) FROM audit_log WHERE actor = 'alice' AND actor_kind = 'session' "
            "AND status = 201 AND action = 'POST /api/v1/repos'") == 1);

  // Log out: the cookie is cleared and the old one is refused (a replay).
  HttpClientResponse out = MUST(c.Fetch("DELETE", "/api/v1/session", s.Write()));
  CHECK(out.status == 200);
  CHECK(absl::StartsWith(SetCookie(out, "assay_session"), "assay_session=; Path=/; Max-Age=0;"));
  HttpClientResponse replay = MUST(c.Fetch("GET", "/api/v1/me", s.Get()));
  CHECK(replay.status == 401);
  CHECK(replay.body ==
        R"({"error":{"code":"unauthenticated","message":"your session has ended: log in again"}})");
  // Forged cookies: a well-formed random id, junk, a huge one.
  for (const std::string& forged :
       {"assay_session=" + std::string(64, 'a'), std::string("assay_session=../../etc"),
        "assay_session=" + std::string(8000, 'f'), std::string("assay_session=\"\"; a=b")}) {
    CHECK(MUST(c.Fetch("GET", "/api/v1/me", {{"Cookie", forged}})).status == 401);
  }
}

TEST_CASE("access: API tokens are shown once, stored hashed, scoped, revocable and expire",
          "[e2e][security]") {
  Cluster c(AccessOptions());
  MUST(c.StartServer());
  CreateUser(c, "alice", "admin");
  CreateUser(c, "victor", "viewer");
  Session a = Login(c, "alice");
  const std::string read = NewToken(c, a, "reader", "read");
  CHECK(read.size() == 74);
  CHECK(Int(c, "SELECT count(*) FROM api_tokens WHERE token_hash = sha256(convert_to('" + read +
                   "', 'UTF8')) AND scope = 'read'") == 1);
  // The list never shows a token again.
  HttpClientResponse list = MUST(c.Fetch("GET", "/api/v1/tokens", a.Get()));
  REQUIRE(list.status == 200);
  CHECK_FALSE(absl::StrContains(list.body, read));
  CHECK(absl::StrContains(list.body, R"("name":"reader","scope":"read")"));
  const Headers bearer_read = {{"Authorization", "Bearer " + read},
                               {"Content-Type", "application/json"}};
  CHECK(MUST(c.Fetch("GET", "/api/v1/repos", bearer_read)).status == 200);
  HttpClientResponse refused = MUST(c.Fetch("POST", "/api/v1/repos", bearer_read, "{}"));
  CHECK(refused.status == 403);
  CHECK(refused.body == R"({"error":{"code":"permission_denied","message":"this token's scope )"
                        R"(is 'read': it may only GET; create a token with scope 'write'"}})");
  CHECK(MUST(c.Fetch("GET", "/api/v1/users", bearer_read)).status == 403);
  // A write token cannot make an admin one.
  const std::string write = NewToken(c, a, "writer", "write");
  HttpClientResponse wider =
      MUST(c.Fetch("POST", "/api/v1/tokens",
                   {{"Authorization", "Bearer " + write}, {"Content-Type", "application/json"}},
                   R"({"name":"escalate","scope":"admin"})"));
  CHECK(wider.status == 403);
  CHECK(wider.body == R"({"error":{"code":"permission_denied","message":"a token with scope )"
                      R"('write' cannot make one with the wider scope 'admin'"}})");
  // Bad input.
  for (const auto& [body, message] : std::vector<std::pair<std::string, std::string>>{
           {R"({"name":"x","expires_in_days":0})",
            "field 'expires_in_days' must be 1 to 366, got 0"},
           {R"({"name":"x","expires_in_days":367})",
            "field 'expires_in_days' must be 1 to 366, got 367"},
           {R"({"name":"x","scope":"root"})", "field 'scope' must be read, write or admin"},
           {R"({"name":"x","owner":"bob"})",
            "unknown field 'owner' (allowed: name, scope, expires_in_days)"},
       }) {
    HttpClientResponse r = MUST(c.Fetch("POST", "/api/v1/tokens", a.Write(), body));
    INFO(body);
    CHECK(r.status == 400);
    CHECK(r.body == R"({"error":{"code":"invalid_argument","message":")" + message + R"("}})");
  }
  // The admin token has no user to own a token.
  CHECK(MUST(c.Api("POST", "/api/v1/tokens", R"({"name":"x"})")).status == 400);
  // Expired: refused like a wrong one, and the failure is audited.
  MUST(
      c.Query("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = "
              "'reader'"));
  HttpClientResponse expired = MUST(c.Fetch("GET", "/api/v1/repos", bearer_read));
  CHECK(expired.status == 401);
  CHECK(expired.Header("WWW-Authenticate") == "Bearer");
  CHECK(Int(c,
            "SELECT count(*) FROM audit_log WHERE status = 401 AND action = 'GET "
            "/api/v1/repos' AND actor = 'anonymous'") == 1);
  // Revoked by its owner; another user cannot revoke it (404, as for no such token).
  Session v = Login(c, "victor");
  const std::string vt = NewToken(c, v, "victors-token", "read");
  const int64_t vt_id = Int(c, "SELECT id FROM api_tokens WHERE name = 'victors-token'");
  const int64_t writer_id = Int(c, "SELECT id FROM api_tokens WHERE name = 'writer'");
  CHECK(MUST(c.Fetch("DELETE", absl::StrCat("/api/v1/tokens/", writer_id), v.Write())).status ==
        404);
  CHECK(MUST(c.Fetch("GET", "/api/v1/me", {{"Authorization", "Bearer " + write}})).status == 200);
  CHECK(MUST(c.Fetch("DELETE", absl::StrCat("/api/v1/tokens/", vt_id), v.Write())).status == 200);
  CHECK(MUST(c.Fetch("GET", "/api/v1/me", {{"Authorization", "Bearer " + vt}})).status == 401);
  // An admin revokes anyone's, and lists everyone's with all=1; a viewer may not list all.
  CHECK(MUST(c.Fetch("DELETE", absl::StrCat("/api/v1/tokens/", writer_id), a.Write())).status ==
        200);
  CHECK(MUST(c.Fetch("GET", "/api/v1/me", {{"Authorization", "Bearer " + write}})).status == 401);
  HttpClientResponse all = MUST(c.Fetch("GET", "/api/v1/tokens?all=1", a.Get()));
  CHECK(absl::StrContains(all.body, R"("user":"victor")"));
  CHECK(MUST(c.Fetch("GET", "/api/v1/tokens?all=1", v.Get())).status == 403);
}

TEST_CASE("access: failed logins are limited per username and per address, and audited",
          "[e2e][security]") {
  Cluster c(AccessOptions({"--auth-failures-per-minute", "100"}));
  MUST(c.StartServer());
  CreateUser(c, "alice", "admin");
  const Headers json_type = {{"Content-Type", "application/json"}};
  for (int i = 0; i < 10; ++i) {
    CHECK(MUST(c.Fetch("POST", "/api/v1/session", json_type,
                       R"({"username":"alice","password":"guess-number-)" + std::to_string(i) +
                           R"("})"))
              .status == 401);
  }
  // The eleventh try is refused before the password is looked at, even the right one.
  HttpClientResponse blocked = MUST(c.Fetch("POST", "/api/v1/session", json_type,
                                            R"({"username":"alice","password":"pw-alice-123"})"));
  CHECK(blocked.status == 429);
  CHECK(blocked.Header("Retry-After") == "6");
  CHECK(blocked.body == R"({"error":{"code":"too_many_requests","message":"too many failed )"
                        R"(logins for this username; retry later"}})");
  CHECK(Int(c,
            "SELECT count(*) FROM audit_log WHERE action = 'login' AND actor = 'alice' AND "
            "status = 429") == 1);
  CHECK(Int(c, "SELECT count(*) FROM sessions") == 0);
  // Another user from the same address still may.
  CreateUser(c, "bob", "viewer");
  CHECK(MUST(c.Fetch("POST", "/api/v1/session", json_type,
                     R"({"username":"bob","password":"pw-bob-123"})"))
            .status == 200);
  // Hostile bodies: a clear 400 each, nothing stored.
  for (const char* body : {"", "[]", R"({"username":"alice"})", R"({"username":1,"password":"x"})",
                           R"({"username":"alice","password":"x","extra":1})"}) {
    INFO(body);
    CHECK(MUST(c.Fetch("POST", "/api/v1/session", json_type, body)).status == 400);
  }
  // A megabyte of password costs nothing and logs nobody in.
  HttpClientResponse huge =
      MUST(c.Fetch("POST", "/api/v1/session", json_type,
                   R"({"username":"bob","password":")" + std::string(1 << 20, 'p') + R"("})"));
  CHECK(huge.status == 401);
}

TEST_CASE("access: users and roles by the API: bad input, the last admin, disabling",
          "[e2e][security]") {
  Cluster c(AccessOptions());
  MUST(c.StartServer());
  CreateUser(c, "alice", "admin");
  for (const auto& [body, message] : std::vector<std::pair<std::string, std::string>>{
           {R"({"username":"Bob","password":"long-enough"})",
            "field 'username' must be 1-64 characters of a-z, 0-9, '_', '.', '-', starting with "
            "a letter or digit"},
           {R"({"username":"bob","password":"short"})",
            "field 'password': password must be at least 8 bytes"},
           {R"({"username":"bob","password":"long-enough","role":"root"})",
            "field 'role' must be admin, maintainer or viewer"},
           {R"({"username":"bob","password":")" + std::string(1025, 'x') + R"("})",
            "field 'password': password must be at most 1024 bytes"},
       }) {
    HttpClientResponse r = MUST(c.Api("POST", "/api/v1/users", body));
    INFO(body.substr(0, 80));
    CHECK(r.status == 400);
    CHECK(r.body == R"({"error":{"code":"invalid_argument","message":")" +
                        absl::StrReplaceAll(message, {{"'", "'"}}) + R"("}})");
  }
  CHECK(MUST(c.Api("POST", "/api/v1/users", R"({"username":"alice","password":"long-enough"})"))
            .status == 409);
  const int64_t alice = Int(c, "SELECT id FROM users WHERE username = 'alice'");
  HttpClientResponse last =
      MUST(c.Api("PATCH", absl::StrCat("/api/v1/users/", alice), R"({"role":"viewer"})"));
  CHECK(last.status == 409);
  CHECK(last.body == R"({"error":{"code":"failed_precondition","message":"this is the last )"
                     R"(enabled admin; make another admin first"}})");
  // The password is never stored as given.
  CHECK(Int(c, "SELECT count(*) FROM users WHERE password_hash LIKE '%pw-alice%'") == 0);
  CHECK(Int(c, "SELECT count(*) FROM users WHERE password_hash LIKE '$scrypt$ln=10,r=8,p=1$%'") ==
        1);
  // Disabling a user ends its session at once.
  CreateUser(c, "victor", "viewer");
  Session v = Login(c, "victor");
  CHECK(MUST(c.Fetch("GET", "/api/v1/me", v.Get())).status == 200);
  const int64_t victor = Int(c, "SELECT id FROM users WHERE username = 'victor'");
  CHECK(
      MUST(c.Api("PATCH", absl::StrCat("/api/v1/users/", victor), R"({"disabled":true})")).status ==
      200);
  CHECK(MUST(c.Fetch("GET", "/api/v1/me", v.Get())).status == 401);
  CHECK(MUST(c.Fetch("POST", "/api/v1/session", {{"Content-Type", "application/json"}},
                     R"({"username":"victor","password":"pw-victor-123"})"))
            .status == 401);
  // Changing one's own password needs the current one, and ends every session.
  Session a = Login(c, "alice");
  HttpClientResponse wrong =
      MUST(c.Fetch("PUT", "/api/v1/me/password", a.Write(),
                   R"({"current_password":"not-it-at-all","new_password":"a-new-password"})"));
  CHECK(wrong.status == 403);
  HttpClientResponse changed =
      MUST(c.Fetch("PUT", "/api/v1/me/password", a.Write(),
                   R"({"current_password":"pw-alice-123","new_password":"a-new-password"})"));
  CHECK(changed.status == 200);
  CHECK(MUST(c.Fetch("GET", "/api/v1/me", a.Get())).status == 401);
  // The audit log lists it all, newest first, paged by cursor.
  // (The newest: the refused GET /api/v1/me with the ended session, then the change.)
  HttpClientResponse audit = MUST(c.Api("GET", "/api/v1/audit?limit=2"));
  REQUIRE(audit.status == 200);
  json::object page = json::parse(audit.body).as_object();
  const json::array& entries = page.at("entries").as_array();
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].as_object().at("action").as_string() == "GET /api/v1/me");
  CHECK(entries[0].as_object().at("status").as_int64() == 401);
  CHECK(entries[1].as_object().at("action").as_string() == "PUT /api/v1/me/password");
  CHECK(entries[1].as_object().at("actor").as_string() == "alice");
  CHECK(entries[1].as_object().at("status").as_int64() == 200);
  const std::string cursor(page.at("next_cursor").as_string());
  HttpClientResponse next = MUST(c.Api("GET", "/api/v1/audit?limit=2&cursor=" + cursor));
  CHECK(json::parse(next.body)
            .as_object()
            .at("entries")
            .as_array()[0]
            .as_object()
            .at("id")
            .as_int64() < std::stoll(cursor));
  CHECK(MUST(c.Api("GET", "/api/v1/audit?cursor=abc")).status == 400);
  CHECK(MUST(c.Api("GET", "/api/v1/audit?limit=501")).status == 400);
}

TEST_CASE("access: anonymous read serves reads only, never secrets, users or the audit log",
          "[e2e][security]") {
  Cluster c(AccessOptions({"--anonymous-read"}));
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  CHECK(MUST(c.Fetch("GET", "/api/v1/repos")).status == 200);
  CHECK(MUST(c.Fetch("GET", "/api/v1/pipelines")).status == 200);
  for (const char* path : {"/api/v1/repos/1/secrets", "/api/v1/users", "/api/v1/audit",
                           "/api/v1/tokens", "/api/v1/me"}) {
    INFO(path);
    CHECK(MUST(c.Fetch("GET", path)).status == 401);
  }
  CHECK(MUST(c.Fetch("POST", "/api/v1/repos/1/pipelines", {{"Content-Type", "application/json"}},
                     "{}"))
            .status == 401);
  CHECK(Int(c, "SELECT count(*) FROM pipelines") == 0);
}

// Every route as every kind of caller: a refused call is 401 or 403 and changes nothing; an
// allowed one gets past access (whatever its handler then answers for the made-up ids and the
// deliberately bad bodies below, never 401, 403 or 5xx).
TEST_CASE("access: every route as every role, allowed and refused", "[e2e][security]") {
  Cluster c(AccessOptions());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  const int64_t pipeline = PushFiles(c, repo, {{".assay.yml", kPipelineFile}});
  const int64_t job = Int(c, "SELECT id FROM jobs WHERE pipeline_id = " + std::to_string(pipeline));
  const int64_t repo_id = Int(c, "SELECT id FROM repos");
  CreateUser(c, "alice", "admin");
  CreateUser(c, "mallory", "maintainer");
  CreateUser(c, "victor", "viewer");
  CreateUser(c, "vera", "viewer");
  CHECK(MUST(c.Api("PUT", absl::StrCat("/api/v1/repos/", repo_id, "/maintainers/vera"))).status ==
        200);
  Session alice = Login(c, "alice"), victor = Login(c, "victor"), vera = Login(c, "vera");
  Session mallory_session = Login(c, "mallory");
  const std::string mallory_write = NewToken(c, mallory_session, "w", "write");
  const std::string alice_read = NewToken(c, alice, "r", "read");

  struct Caller {
    std::string name;
    std::function<Headers(bool write)> headers;
    // Which levels it passes.
    std::set<std::string> passes;
    bool read_only = false;  // a read-scope token: GET routes only
  };
  const auto session = [](const Session& s) {
    return [s](bool write) { return write ? s.Write() : s.Get(); };
  };
  const auto bearer = [](const std::string& t) {
    return [t](bool) {
      return Headers{{"Authorization", "Bearer " + t}, {"Content-Type", "application/json"}};
    };
  };
  const std::vector<Caller> callers = {
      {"anonymous",
       [](bool) {
         return Headers{{"Content-Type", "application/json"}};
       },
       {}},
      {"viewer", session(victor), {"read", "user"}},
      {"viewer maintaining the repository", session(vera), {"read", "user", "repo-write"}},
      {"maintainer (write token)",
       bearer(mallory_write),
       {"read", "user", "repo-write", "maintainer"}},
      {"admin", session(alice), {"read", "user", "repo-write", "maintainer", "admin"}},
      // Scope read: every GET its admin may make but administration's.
      {"admin (read token)",
       bearer(alice_read),
       {"read", "user", "repo-write", "maintainer"},
       true},
      {"admin token",
       bearer(testing::kAdminToken),
       {"read", "user", "repo-write", "maintainer", "admin"}},
  };
  const std::map<std::string, std::string> ids = {
      {"/api/v1/repos/{id}", std::to_string(repo_id)},
      {"/api/v1/pipelines/{id}", std::to_string(pipeline)},
      {"/api/v1/jobs/{id}", std::to_string(job)},
  };
  int checked = 0;
  for (const testing::RouteAccess& route : testing::AccessTable()) {
    if (route.level == "public") continue;
    // Ending the session would end this test's sessions; tests above cover it.
    if (route.method == "DELETE" && route.pattern == "/api/v1/session") continue;
    std::string path = route.pattern;
    std::string id = "999999";
    for (const auto& [prefix, value] : ids) {
      if (absl::StartsWith(path, prefix)) id = value;
    }
    path = absl::StrReplaceAll(path, {{"{id}", id},
                                      {"{name}", "nope"},
                                      {"{user}", "nobody"},
                                      {"{entry}", "999999"},
                                      {"{key}", "k"},
                                      {"{v}", "1"},
                                      {"{alias}", "prod"},
                                      {"{path...}", "x"}});
    const bool write = route.method != "GET";
    for (const Caller& caller : callers) {
      INFO(caller.name << ": " << route.method << " " << path << " (" << route.level << ")");
      const bool allowed = caller.passes.count(route.level) == 1 && !(caller.read_only && write);
      // An allowed event stream never ends (tests/e2e/events_test.cc reads one).
      if (allowed && route.pattern == "/api/v1/events") {
        ++checked;
        continue;
      }
      // Deliberately not JSON: a handler that reads a body stops at it.
      HttpClientResponse r =
          MUST(c.Fetch(route.method, path, caller.headers(write), write ? "{" : ""));
      INFO(r.status << " " << r.body.substr(0, 300));
      if (allowed) {
        CHECK(r.status != 401);
        CHECK(r.status != 403);
        CHECK(r.status < 500);
      } else {
        CHECK((r.status == 401 || r.status == 403));
        if (caller.name == "anonymous") CHECK(r.status == 401);
      }
      ++checked;
    }
  }
  // Every route but the 14 public ones and DELETE /api/v1/session, by every caller.
  CHECK(checked ==
        static_cast<int>(callers.size()) * (static_cast<int>(testing::AccessTable().size()) - 15));
  // Refusals changed nothing the allowed calls did not: the viewer's refused cancel left the
  // job to the others; every refusal of a signed-in caller is in the audit log.
  CHECK(Int(c, "SELECT count(*) FROM audit_log WHERE status = 403 AND actor = 'victor'") > 0);
  CHECK(Int(c,
            "SELECT count(*) FROM audit_log WHERE status = 403 AND actor = 'victor' AND "
            "action = 'POST /api/v1/jobs/" +
                std::to_string(job) + "/cancel'") == 1);
}

}  // namespace
}  // namespace assay::e2e
