// Who may do what (server/auth/access.h): every role and scope against every level, the
// cookie parser and the credential formats.

#include "server/auth/access.h"

#include <catch2/catch.hpp>
#include <string>

namespace assay::auth {
namespace {

Principal User(const std::string& role, const std::string& scope = "admin",
               std::vector<int64_t> maintains = {}) {
  Principal p;
  p.kind = scope == "admin" ? PrincipalKind::kSession : PrincipalKind::kToken;
  p.user_id = 7;
  p.name = "alice";
  p.role = role;
  p.scope = scope;
  p.maintains = std::move(maintains);
  return p;
}

// "ok", or the status's message.
std::string Check(const Principal& p, Need need, const std::string& method,
                  std::optional<int64_t> repo = std::nullopt) {
  absl::Status s = Authorize(p, need, method, repo);
  return s.ok() ? "ok" : std::string(s.message());
}

TEST_CASE("access: each role at each level", "[security]") {
  const Need read = Need::Read(), user = Need::User(), admin = Need::Admin(),
             maint = Need::Maintainer(), repo = Need::RepoWrite(RepoFrom::kRepoId);
  const Principal a = User("admin"), m = User("maintainer"), v = User("viewer"),
                  vm = User("viewer", "admin", {3, 5});
  for (const Principal& p : {a, m, v, vm}) {
    CHECK(Check(p, read, "GET") == "ok");
    CHECK(Check(p, user, "POST") == "ok");
  }
  CHECK(Check(a, admin, "POST") == "ok");
  CHECK(Check(m, admin, "POST") == "maintainer 'alice' may not do this: it needs admin");
  CHECK(Check(v, admin, "GET") == "viewer 'alice' may not do this: it needs admin");
  CHECK(Check(a, maint, "PUT") == "ok");
  CHECK(Check(m, maint, "PUT") == "ok");
  CHECK(Check(v, maint, "PUT") == "viewer 'alice' may not do this: it needs maintainer or admin");
  CHECK(Check(vm, maint, "PUT") == "viewer 'alice' may not do this: it needs maintainer or admin");
  CHECK(Check(a, repo, "POST", 4) == "ok");
  CHECK(Check(m, repo, "POST", 4) == "ok");
  CHECK(Check(vm, repo, "POST", 3) == "ok");
  CHECK(Check(vm, repo, "POST", 5) == "ok");
  CHECK(Check(vm, repo, "POST", 4) ==
        "viewer 'alice' may not do this: it needs maintainer of repository 4 or admin");
  CHECK(Check(vm, repo, "POST") == "viewer 'alice' may not do this: it needs maintainer or admin");
  CHECK(Check(v, repo, "DELETE", 3) ==
        "viewer 'alice' may not do this: it needs maintainer of repository 3 or admin");
}

TEST_CASE("access: a token's scope narrows its user's role", "[security]") {
  const Principal read = User("admin", "read"), write = User("admin", "write");
  CHECK(Check(read, Need::Read(), "GET") == "ok");
  CHECK(Check(read, Need::Read(), "HEAD") == "ok");
  CHECK(Check(read, Need::User(), "GET") == "ok");
  CHECK(Check(read, Need::User(), "POST") ==
        "this token's scope is 'read': it may only GET; create a token with scope 'write'");
  CHECK(Check(read, Need::RepoWrite(RepoFrom::kRepoId), "POST", 1) ==
        "this token's scope is 'read': it may only GET; create a token with scope 'write'");
  // Administration needs scope admin, even to read (users, the audit log).
  CHECK(Check(read, Need::Admin(), "GET") ==
        "this token's scope is 'read': administration needs a token with scope 'admin'");
  CHECK(Check(write, Need::Admin(), "GET") ==
        "this token's scope is 'write': administration needs a token with scope 'admin'");
  CHECK(Check(write, Need::Maintainer(), "DELETE") == "ok");
  CHECK(Check(write, Need::RepoWrite(RepoFrom::kJobId), "POST", 9) == "ok");
  // The scope never widens the role.
  CHECK(Check(User("viewer", "admin"), Need::Admin(), "GET") ==
        "viewer 'alice' may not do this: it needs admin");
  Principal odd = User("admin", "superuser");
  CHECK(Check(odd, Need::Read(), "GET") == "unknown token scope");
}

TEST_CASE("access: anonymous callers read only", "[security]") {
  Principal anon;
  anon.name = "anonymous";
  CHECK(Check(anon, Need::Read(), "GET") == "ok");
  CHECK(Check(anon, Need::Read(), "HEAD") == "ok");
  const std::string sign_in = "sign in first: this needs a session or an API token";
  CHECK(Check(anon, Need::Read(), "POST") == sign_in);
  CHECK(Check(anon, Need::User(), "GET") == sign_in);
  CHECK(Check(anon, Need::Admin(), "GET") == sign_in);
  CHECK(Check(anon, Need::RepoWrite(RepoFrom::kRepoId), "GET", 1) == sign_in);
  CHECK(Authorize(anon, Need::User(), "GET", std::nullopt).code() ==
        absl::StatusCode::kUnauthenticated);
  CHECK(Authorize(User("viewer"), Need::Admin(), "GET", std::nullopt).code() ==
        absl::StatusCode::kPermissionDenied);
}

TEST_CASE("access: cookies", "[security]") {
  CHECK(CookieValue("assay_session=abc", "assay_session") == "abc");
  CHECK(CookieValue("a=1; assay_session=abc; b=2", "assay_session") == "abc");
  CHECK(CookieValue("a=1;assay_session=\"abc\"", "assay_session") == "abc");
  CHECK(CookieValue("  assay_session = abc  ", "assay_session") == "abc");
  CHECK(CookieValue("assay_session=first; assay_session=second", "assay_session") == "first");
  CHECK(CookieValue("assay_session=", "assay_session") == "");
  CHECK(CookieValue("xassay_session=abc", "assay_session") == std::nullopt);
  CHECK(CookieValue("assay_sessionx=abc", "assay_session") == std::nullopt);
  CHECK(CookieValue("assay_session", "assay_session") == std::nullopt);
  CHECK(CookieValue("", "assay_session") == std::nullopt);
  CHECK(CookieValue(";;;", "assay_session") == std::nullopt);
  CHECK(CookieValue("a=1; assay_csrf=x=y", "assay_csrf") == "x=y");
  // A huge header with many cookies is walked without trouble.
  std::string many;
  for (int i = 0; i < 10000; ++i) many += "c" + std::to_string(i) + "=v; ";
  CHECK(CookieValue(many + "assay_session=z", "assay_session") == "z");
}

TEST_CASE("access: credential formats", "[security]") {
  const std::string s = NewSessionId(), t = NewApiToken(), c = NewCsrfToken();
  CHECK(s.size() == 64);
  CHECK(LooksLikeSessionId(s));
  CHECK(c.size() == 64);
  CHECK(t.size() == 10 + 64);
  CHECK(t.rfind("assay_pat_", 0) == 0);
  CHECK(LooksLikeApiToken(t));
  CHECK(NewSessionId() != s);
  CHECK(NewApiToken() != t);
  CHECK_FALSE(LooksLikeSessionId(s.substr(1)));
  CHECK_FALSE(LooksLikeSessionId(s + "0"));
  std::string upper = s;
  upper[0] = 'A';
  CHECK_FALSE(LooksLikeSessionId(upper));
  CHECK_FALSE(LooksLikeApiToken(s));
  CHECK_FALSE(LooksLikeApiToken("assay_pat_" + s.substr(1) + "g"));
  CHECK_FALSE(LooksLikeApiToken(t + "0"));
  CHECK_FALSE(LooksLikeApiToken("assay-enroll-" + s));
}

}  // namespace
}  // namespace assay::auth
