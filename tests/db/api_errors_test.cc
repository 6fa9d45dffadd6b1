// The REST API over a real database that fails: no database text ever reaches a client; the
// answer is a generic 500 with the request id, which also names the details in the log.

#include <catch2/catch.hpp>
#include <string>

#include "absl/strings/match.h"
#include "common/net/http_client.h"
#include "server/api/api.h"
#include "server/http/http_server.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

TEST_CASE("api: a database error is a generic 500 with the request id, no database text",
          "[db][security]") {
  DbFixture f;
  Metrics metrics;
  ApiDeps deps{
      &f.repos, &f.deliveries,        &f.pipelines,        &f.jobs, &f.agents, nullptr, nullptr,
      &metrics, std::string(40, 'a'), std::string(32, 'k')};
  http::Router router;
  RegisterApi(router, deps);
  http::Server server(
      {}, [&router](http::Request& req) { return router.Dispatch(req); },
      [&router](http::Request& req) { return router.Admit(req); });
  REQUIRE(server.Start().ok());
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port());
  const std::vector<std::pair<std::string, std::string>> auth = {
      {"Authorization", "Bearer " + std::string(40, 'a')}};

  auto before = HttpFetch("GET", url + "/api/v1/repos", auth);
  REQUIRE(before.ok());
  CHECK(before->status == 200);

  f.Exec("ALTER TABLE repos RENAME TO repos_gone");
  auto r = HttpFetch("GET", url + "/api/v1/repos", auth);
  REQUIRE(r.ok());
  CHECK(r->status == 500);
  const std::string id = r->Header("X-Request-Id");
  CHECK(id.size() == 16);
  CHECK(r->body == R"({"error":{"code":"internal","message":"internal server error",)"
                   R"("request_id":")" +
                       id + R"("}})");
  CHECK_FALSE(absl::StrContains(r->body, "repos"));

  // A constraint's message is database text too, whatever code the store gives it.
  f.Exec("ALTER TABLE repos_gone RENAME TO repos");
  f.Exec("ALTER TABLE repos ADD CONSTRAINT short_names CHECK (length(name) < 10)");
  auto conflict =
      HttpFetch("POST", url + "/api/v1/repos", auth,
                R"({"name":"a-rather-long-name","clone_url":"https://example.com/x.git",)"
                R"("provider":"github"})");
  REQUIRE(conflict.ok());
  CHECK(conflict->status == 500);
  CHECK_FALSE(absl::StrContains(conflict->body, "short_names"));
}

}  // namespace
}  // namespace assay::dbtest
