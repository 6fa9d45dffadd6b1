// Users and access (issue 11, migration 0024, server/store/users.h): users and roles, the
// last-admin guard (also under concurrent demotions), sessions and API tokens by hash only,
// expiry, revocation and disabling, repository maintainers, the audit log's keyset pages; and
// the route table of tests/support/access_table.h against the routes the server registers.

#include <barrier>
#include <cctype>
#include <map>
#include <set>
#include <thread>

#include <boost/json.hpp>
#include "common/crypto/crypto.h"

#include "absl/strings/str_replace.h"
#include "server/api/api.h"
#include "server/api/openapi.h"
#include "server/http/http_server.h"
#include "server/metrics/metrics.h"
#include "server/store/agent_credentials.h"
#include "server/store/users.h"
#include "tests/db/db_fixture.h"
#include "tests/support/access_table.h"

namespace assay::dbtest {
namespace {

// Not a real scrypt hash: the store keeps whatever it is given (the API hashes).
const std::string kHash = "$scrypt$ln=10,r=8,p=1$00$00";

struct UsersFixture : DbFixture {
  store::UserStore users{&db};

  store::UserRow User(const std::string& name, const std::string& role) {
    auto u = users.CreateUser(name, kHash, role);
    INFO(u.status().ToString());
    REQUIRE(u.ok());
    return *u;
  }
};

// Every route the server registers, on `router` (the stores are the fixture's; nothing runs).
struct ServerRoutes {
  Metrics metrics;
  store::AgentCredentialStore credentials;
  ApiDeps deps;
  ServerRoutes(UsersFixture& f, http::Router& router)
      : credentials(&f.db), deps{&f.repos,
                                 &f.deliveries,
                                 &f.pipelines,
                                 &f.jobs,
                                 &f.agents,
                                 nullptr,
                                 nullptr,
                                 &metrics,
                                 std::string(40, 'a'),
                                 std::string(32, 'k')} {
    deps.credentials = &credentials;
    deps.users = &f.users;
    RegisterApi(router, deps);
  }
};

TEST_CASE("users: create, find, names and roles checked, one name once", "[db]") {
  UsersFixture f;
  store::UserRow a = f.User("alice", "admin");
  CHECK(a.username == "alice");
  CHECK(a.role == "admin");
  CHECK_FALSE(a.disabled);
  CHECK(a.maintains.empty());
  CHECK(f.users.CreateUser("alice", kHash, "viewer").status().message() ==
        "a user named 'alice' exists");
  CHECK(f.users.CreateUser("Alice", kHash, "viewer").status().code() ==
        absl::StatusCode::kInvalidArgument);
  for (const std::string& bad :
       std::vector<std::string>{"", "-x", "a b", "a/b", std::string(65, 'a'), "ünï", "a\nb"}) {
    INFO(bad);
    CHECK(f.users.CreateUser(bad, kHash, "viewer").status().code() ==
          absl::StatusCode::kInvalidArgument);
  }
  CHECK(f.User(std::string(64, 'a'), "viewer").username.size() == 64);
  CHECK(f.users.CreateUser("bob", kHash, "owner").status().message() ==
        "role must be admin, maintainer or viewer, got 'owner'");
  auto login = f.users.FindLogin("alice");
  REQUIRE(login.ok());
  REQUIRE(login->has_value());
  CHECK((*login)->password_hash == kHash);
  CHECK((*login)->user.id == a.id);
  CHECK_FALSE(f.users.FindLogin("nobody")->has_value());
  CHECK_FALSE(f.users.FindLogin("Robert'); DROP TABLE users;--")->has_value());
  CHECK(f.Count("SELECT count(*) FROM users") == 2);
}

TEST_CASE("users: the last enabled admin cannot be demoted, disabled or deleted", "[db]") {
  UsersFixture f;
  store::UserRow a = f.User("alice", "admin");
  store::UserRow v = f.User("victor", "viewer");
  const std::string last = "this is the last enabled admin; make another admin first";
  store::UserStore::Update demote;
  demote.role = "viewer";
  CHECK(f.users.UpdateUser(a.id, demote).status().message() == last);
  store::UserStore::Update disable;
  disable.disabled = true;
  CHECK(f.users.UpdateUser(a.id, disable).status().message() == last);
  CHECK(f.users.DeleteUser(a.id).message() == last);
  CHECK(f.One("SELECT role FROM users WHERE id = " + std::to_string(a.id)) == "admin");
  // With a second admin, either may go.
  store::UserStore::Update promote;
  promote.role = "admin";
  REQUIRE(f.users.UpdateUser(v.id, promote).ok());
  auto demoted = f.users.UpdateUser(a.id, demote);
  REQUIRE(demoted.ok());
  CHECK(demoted->role == "viewer");
  CHECK(f.users.DeleteUser(v.id).message() == last);
  CHECK(f.users.UpdateUser(999999, demote).status().code() == absl::StatusCode::kNotFound);
  CHECK(f.users.DeleteUser(999999).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("users: two admins demoting each other at once leave one admin", "[db]") {
  UsersFixture f;
  store::UserRow a = f.User("alice", "admin");
  store::UserRow b = f.User("bob", "admin");
  for (int round = 0; round < 10; ++round) {
    std::barrier go(2);
    absl::Status sa, sb;
    store::UserStore::Update demote;
    demote.role = "viewer";
    std::thread ta([&] {
      go.arrive_and_wait();
      sa = f.users.UpdateUser(a.id, demote).status();
    });
    std::thread tb([&] {
      go.arrive_and_wait();
      sb = f.users.UpdateUser(b.id, demote).status();
    });
    ta.join();
    tb.join();
    INFO(sa.ToString() << " / " << sb.ToString());
    CHECK(sa.ok() != sb.ok());
    CHECK(f.Count("SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled") == 1);
    f.Exec("UPDATE users SET role = 'admin'");
  }
}

TEST_CASE("sessions: found by hash until they expire, end, or their user is disabled", "[db]") {
  UsersFixture f;
  store::UserRow v = f.User("victor", "viewer");
  store::UserRow a = f.User("alice", "admin");
  const std::string id = RandomHexToken(32), csrf = RandomHexToken(32);
  REQUIRE(f.users.CreateSession(Sha256(id), v.id, csrf, absl::Now() + absl::Hours(1), "127.0.0.1")
              .ok());
  // Only the hash is stored.
  CHECK(f.Count("SELECT count(*) FROM sessions WHERE id_hash = decode('" + HexEncode(Sha256(id)) +
                "', 'hex')") == 1);
  CHECK(f.Count("SELECT count(*) FROM sessions WHERE position(convert_to('" + id +
                "', 'UTF8') in id_hash) > 0") == 0);
  auto s = f.users.FindSession(Sha256(id));
  REQUIRE(s.ok());
  REQUIRE(s->has_value());
  CHECK((*s)->user.username == "victor");
  CHECK((*s)->csrf_token == csrf);
  CHECK((*s)->kind == "session");
  CHECK_FALSE(f.users.FindSession(Sha256(id + "x"))->has_value());
  CHECK_FALSE(f.users.FindSession(id)->has_value());  // the id itself is not the key
  // Disabling the user ends its sessions.
  store::UserStore::Update disable;
  disable.disabled = true;
  REQUIRE(f.users.UpdateUser(v.id, disable).ok());
  CHECK_FALSE(f.users.FindSession(Sha256(id))->has_value());
  CHECK(f.Count("SELECT count(*) FROM sessions") == 0);
  // A new password ends them too.
  REQUIRE(f.users.CreateSession(Sha256(id), a.id, csrf, absl::Now() + absl::Hours(1), "").ok());
  store::UserStore::Update pw;
  pw.password_hash = "$scrypt$ln=10,r=8,p=1$11$11";
  REQUIRE(f.users.UpdateUser(a.id, pw).ok());
  CHECK_FALSE(f.users.FindSession(Sha256(id))->has_value());
  // Expired sessions are not found, and pruned.
  REQUIRE(f.users.CreateSession(Sha256(id), a.id, csrf, absl::Now() - absl::Seconds(1), "").ok());
  CHECK_FALSE(f.users.FindSession(Sha256(id))->has_value());
  CHECK(f.users.PruneSessions().value() == 1);
  // Ending one is idempotent.
  REQUIRE(f.users.CreateSession(Sha256(id), a.id, csrf, absl::Now() + absl::Hours(1), "").ok());
  REQUIRE(f.users.DeleteSession(Sha256(id)).ok());
  REQUIRE(f.users.DeleteSession(Sha256(id)).ok());
  CHECK_FALSE(f.users.FindSession(Sha256(id))->has_value());
}

TEST_CASE("tokens: by hash, scoped, expiring, revocable by their user or an admin", "[db]") {
  UsersFixture f;
  store::UserRow v = f.User("victor", "viewer");
  store::UserRow w = f.User("wendy", "viewer");
  const std::string t = "assay_pat_" + RandomHexToken(32);
  auto row =
      f.users.CreateToken(v.id, "ci laptop", Sha256(t), "read", absl::Now() + absl::Hours(1));
  REQUIRE(row.ok());
  CHECK(row->scope == "read");
  CHECK(f.users.CreateToken(v.id, "ci laptop", Sha256(t + "2"), "read", absl::Now())
            .status()
            .message() == "a token named 'ci laptop' exists");
  CHECK(
      f.users.CreateToken(w.id, "ci laptop", Sha256(t + "2"), "write", absl::Now() + absl::Hours(1))
          .ok());
  CHECK(f.users.CreateToken(v.id, "x", Sha256(t + "3"), "root", absl::Now()).status().message() ==
        "scope must be read, write or admin, got 'root'");
  CHECK(f.users.CreateToken(v.id, "", Sha256(t + "3"), "read", absl::Now()).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(f.users.CreateToken(v.id, "a\nb", Sha256(t + "3"), "read", absl::Now()).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(f.users.CreateToken(999999, "x", Sha256(t + "3"), "read", absl::Now()).status().code() ==
        absl::StatusCode::kNotFound);
  auto found = f.users.FindToken(Sha256(t));
  REQUIRE(found.ok());
  REQUIRE(found->has_value());
  CHECK((*found)->user.username == "victor");
  CHECK((*found)->scope == "read");
  CHECK((*found)->token_id == row->id);
  CHECK(f.Count("SELECT count(*) FROM api_tokens WHERE last_used_at IS NOT NULL AND id = " +
                std::to_string(row->id)) == 1);
  // Another user cannot revoke it (the same answer as for no such token); its user can.
  CHECK(f.users.RevokeToken(row->id, w.id).message() ==
        "no token with id " + std::to_string(row->id));
  CHECK((*f.users.FindToken(Sha256(t))).has_value());
  REQUIRE(f.users.RevokeToken(row->id, v.id).ok());
  CHECK_FALSE(f.users.FindToken(Sha256(t))->has_value());
  auto mine = f.users.ListTokens(v.id);
  REQUIRE(mine.ok());
  REQUIRE(mine->size() == 1);
  CHECK((*mine)[0].revoked);
  CHECK(f.users.ListTokens(std::nullopt)->size() == 2);
  // Expired, or its user disabled: not found.
  const std::string old = "assay_pat_" + RandomHexToken(32);
  REQUIRE(
      f.users.CreateToken(w.id, "old", Sha256(old), "admin", absl::Now() - absl::Seconds(1)).ok());
  CHECK_FALSE(f.users.FindToken(Sha256(old))->has_value());
  const std::string live = "assay_pat_" + RandomHexToken(32);
  REQUIRE(
      f.users.CreateToken(w.id, "live", Sha256(live), "write", absl::Now() + absl::Hours(1)).ok());
  REQUIRE(f.users.FindToken(Sha256(live))->has_value());
  f.Exec("UPDATE users SET disabled = true WHERE username = 'wendy'");
  CHECK_FALSE(f.users.FindToken(Sha256(live))->has_value());
  // A deleted user's tokens go with it.
  REQUIRE(f.users.DeleteUser(w.id).ok());
  CHECK(f.Count("SELECT count(*) FROM api_tokens WHERE user_id = " + std::to_string(w.id)) == 0);
}

TEST_CASE("maintainers: a viewer made maintainer of one repository", "[db]") {
  UsersFixture f;
  store::UserRow v = f.User("victor", "viewer");
  REQUIRE(f.users.AddMaintainer(f.repo_id, v.id).ok());
  REQUIRE(f.users.AddMaintainer(f.repo_id, v.id).ok());  // idempotent
  CHECK(f.users.GetUser(v.id).value()->maintains == std::vector<int64_t>{f.repo_id});
  auto list = f.users.Maintainers(f.repo_id);
  REQUIRE(list.ok());
  REQUIRE(list->size() == 1);
  CHECK((*list)[0].second == "victor");
  CHECK(f.users.AddMaintainer(999999, v.id).message() == "no repository with id 999999");
  CHECK(f.users.AddMaintainer(f.repo_id, 999999).message() == "no user with id 999999");
  REQUIRE(f.users.RemoveMaintainer(f.repo_id, v.id).ok());
  CHECK(f.users.RemoveMaintainer(f.repo_id, v.id).code() == absl::StatusCode::kNotFound);
  CHECK(f.users.GetUser(v.id).value()->maintains.empty());
  // The repository of a pipeline and of a job.
  const int64_t p = f.CreatePipeline({Job("build")});
  CHECK(f.users.RepoOfPipeline(p).value() == f.repo_id);
  CHECK(f.users.RepoOfJob(f.JobId(p, "build")).value() == f.repo_id);
  CHECK_FALSE(f.users.RepoOfPipeline(999999).value().has_value());
  CHECK_FALSE(f.users.RepoOfJob(999999).value().has_value());
}

TEST_CASE("audit log: appended, newest first, paged by id, filtered by actor", "[db]") {
  UsersFixture f;
  for (int i = 0; i < 7; ++i) {
    store::AuditEntry e;
    e.actor = i % 2 == 0 ? "alice" : "bob";
    e.actor_kind = "session";
    e.action = "POST /api/v1/x/" + std::to_string(i);
    e.status = 200;
    e.detail = std::string(5000, 'd');  // cut to 4096
    REQUIRE(f.users.Audit(e).ok());
  }
  store::AuditFilter page;
  page.limit = 3;
  auto first = f.users.ListAudit(page);
  REQUIRE(first.ok());
  REQUIRE(first->size() == 3);
  CHECK((*first)[0].action == "POST /api/v1/x/6");
  CHECK((*first)[2].action == "POST /api/v1/x/4");
  CHECK((*first)[0].detail.size() == 4096);
  page.before_id = (*first)[2].id;
  auto second = f.users.ListAudit(page);
  REQUIRE(second->size() == 3);
  CHECK((*second)[0].action == "POST /api/v1/x/3");
  page.before_id = (*second)[2].id;
  auto third = f.users.ListAudit(page);
  REQUIRE(third->size() == 1);
  CHECK((*third)[0].action == "POST /api/v1/x/0");
  store::AuditFilter bob;
  bob.actor = "bob";
  auto bobs = f.users.ListAudit(bob);
  REQUIRE(bobs->size() == 3);
  for (const auto& e : *bobs) CHECK(e.actor == "bob");
}

TEST_CASE("access table: it names exactly the routes the server registers", "[db][security]") {
  UsersFixture f;
  http::Router router;
  ServerRoutes routes(f, router);
  std::set<std::pair<std::string, std::string>> registered, documented;
  for (const auto& r : router.Routes()) registered.insert(r);
  for (const auto& r : testing::AccessTable()) {
    INFO(r.method << " " << r.pattern);
    CHECK(documented.insert({r.method, r.pattern}).second);  // no route twice
  }
  for (const auto& r : registered) {
    INFO("registered but not in the access table: " << r.first << " " << r.second);
    CHECK(documented.count(r) == 1);
  }
  for (const auto& r : documented) {
    INFO("in the access table but not registered: " << r.first << " " << r.second);
    CHECK(registered.count(r) == 1);
  }
}

TEST_CASE("openapi.json documents exactly the /api/v1 routes, each with its access level",
          "[db][security]") {
  UsersFixture f;
  http::Router router;
  ServerRoutes routes(f, router);
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(api::OpenApiDocument(), ec);
  REQUIRE_FALSE(ec);
  CHECK(doc.at("openapi").as_string() == "3.0.3");
  // {method, pattern} → x-assay-access, with "{path}" written back as the router's "{path...}".
  std::map<std::pair<std::string, std::string>, std::string> documented;
  for (const auto& [path, ops] : doc.at("paths").as_object()) {
    for (const auto& [method, op] : ops.as_object()) {
      std::string m(method);
      for (char& ch : m) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      const std::string pattern = absl::StrReplaceAll(std::string(path), {{"{path}", "{path...}"}});
      INFO(m << " " << pattern);
      REQUIRE(op.as_object().if_contains("x-assay-access") != nullptr);
      REQUIRE(op.at("summary").as_string().size() > 3);
      documented[{m, pattern}] = std::string(op.at("x-assay-access").as_string());
    }
  }
  std::set<std::pair<std::string, std::string>> registered;
  for (const auto& r : router.Routes()) {
    if (r.second.rfind("/api/v1/", 0) == 0) registered.insert(r);
  }
  for (const auto& r : registered) {
    INFO("registered but not in openapi.json: " << r.first << " " << r.second);
    CHECK(documented.count(r) == 1);
  }
  for (const auto& [r, level] : documented) {
    INFO("in openapi.json but not registered: " << r.first << " " << r.second);
    CHECK(registered.count(r) == 1);
  }
  for (const auto& r : testing::AccessTable()) {
    if (r.pattern.rfind("/api/v1/", 0) != 0) continue;
    INFO(r.method << " " << r.pattern);
    CHECK(documented[{r.method, r.pattern}] == r.level);
  }
}

}  // namespace
}  // namespace assay::dbtest
