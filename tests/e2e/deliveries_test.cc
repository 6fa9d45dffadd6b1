// The settings page's webhook tools (issue 11) against a real server and PostgreSQL: a test
// delivery signed with each forge's scheme goes through the same intake as the forge's, and a
// repository's recent deliveries list what became of each, newest first, in pages.
#include "absl/strings/match.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

json::object Post(Cluster& c, const std::string& path, int want) {
  HttpClientResponse r = MUST(c.Api("POST", path, ""));
  INFO(path << ": " << r.status << " " << r.body);
  REQUIRE(r.status == want);
  return json::parse(r.body).as_object();
}

TEST_CASE("test deliveries go through the intake, and a repository lists its deliveries", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);  // github, repository 1
  for (const char* provider : {"gitlab", "gitea"}) {
    json::object body{{"name", std::string("acme/") + provider},
                      {"clone_url", "file://" + c.dir() + "/" + provider},
                      {"provider", provider},
                      {"webhook_secret", "s3cret-" + std::string(provider)}};
    REQUIRE(MUST(c.Api("POST", "/api/v1/repos", json::serialize(body))).status == 201);
  }
  REQUIRE(MUST(c.Api("POST", "/api/v1/repos",
                     R"({"name":"acme/nosecret","clone_url":"file://)" + c.dir() + R"(/none"})"))
              .status == 201);

  json::object ping = Post(c, "/api/v1/repos/1/test-delivery", 200);
  CHECK(json::serialize(ping) ==
        R"({"http_status":200,"result":"accepted","delivery":1,"status":"pong","message":null})");
  json::object gitlab = Post(c, "/api/v1/repos/2/test-delivery", 200);
  CHECK(json::serialize(gitlab) ==
        R"({"http_status":202,"result":"ignored","delivery":2,"status":"ignored","message":null})");
  json::object gitea = Post(c, "/api/v1/repos/3/test-delivery", 200);
  CHECK(json::serialize(gitea) ==
        R"({"http_status":202,"result":"ignored","delivery":3,"status":"ignored","message":null})");
  // Twice in a row is not a replay: a fresh delivery id and body each time.
  CHECK(Post(c, "/api/v1/repos/1/test-delivery", 200).at("delivery").as_int64() == 4);
  // Nothing to sign with; no such repository; not an id.
  HttpClientResponse none = MUST(c.Api("POST", "/api/v1/repos/4/test-delivery", ""));
  CHECK(none.status == 409);
  CHECK(absl::StrContains(none.body, "repository acme/nosecret has no webhook secret"));
  CHECK(MUST(c.Api("POST", "/api/v1/repos/99/test-delivery", "")).status == 404);
  // Set one (write-only: the answer says only that there is one), then the test passes.
  CHECK(MUST(c.Api("PATCH", "/api/v1/repos/4", R"({"webhook_secret":""})")).status == 400);
  CHECK(MUST(c.Api("PATCH", "/api/v1/repos/4",
                   R"({"webhook_secret":")" + std::string(1025, 'k') + R"("})"))
            .status == 400);
  HttpClientResponse set =
      MUST(c.Api("PATCH", "/api/v1/repos/4", R"({"webhook_secret":"n3w-s3cret-value"})"));
  CHECK(set.status == 200);
  CHECK(absl::StrContains(set.body, R"("has_webhook_secret":true)"));
  CHECK(!absl::StrContains(set.body, "n3w-s3cret-value"));
  CHECK(JsonString(Post(c, "/api/v1/repos/4/test-delivery", 200), "status") == "pong");
  CHECK(MUST(c.Api("POST", "/api/v1/repos/x/test-delivery", "")).status == 400);

  // A real push after them (repository 1): it lists first, with its pipeline.
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const int64_t pipeline =
      PushFiles(c, repo, {{".assay.yml", "jobs:\n  a:\n    steps:\n      - run: 'true'\n"}});
  json::object page = MUST(c.ApiObject("GET", "/api/v1/repos/1/deliveries?limit=2"));
  INFO(json::serialize(page));
  const json::array& list = page.at("deliveries").as_array();
  REQUIRE(list.size() == 2);
  CHECK(JsonString(list[0].as_object(), "delivery_id") == "delivery-1");
  CHECK(JsonString(list[0].as_object(), "state") == "processed");
  CHECK(list[0].at("pipeline_id").as_int64() == pipeline);
  CHECK(JsonString(list[1].as_object(), "event") == "ping");
  CHECK(JsonString(list[1].as_object(), "state") == "ignored");
  CHECK(JsonString(list[1].as_object(), "message") == "ping");
  CHECK(absl::StartsWith(JsonString(list[1].as_object(), "delivery_id"), "assay-test-"));
  CHECK(list[1].at("pipeline_id").is_null());
  REQUIRE(page.at("next_cursor").is_string());
  json::object rest = MUST(c.ApiObject("GET", "/api/v1/repos/1/deliveries?limit=2&cursor=" +
                                                  std::string(page.at("next_cursor").as_string())));
  INFO(json::serialize(rest));
  REQUIRE(rest.at("deliveries").as_array().size() == 1);
  CHECK(rest.at("deliveries").as_array()[0].at("id").as_int64() == 1);
  CHECK(rest.at("next_cursor").is_null());
  // Bad paging answers 400 and names the parameter.
  for (const char* q : {"limit=0", "limit=201", "limit=x", "cursor=-1", "cursor=abc"}) {
    HttpClientResponse bad = MUST(c.Api("GET", std::string("/api/v1/repos/1/deliveries?") + q));
    INFO(q << ": " << bad.body);
    CHECK(bad.status == 400);
  }
  CHECK(MUST(c.Api("GET", "/api/v1/repos/99/deliveries")).status == 404);
}

}  // namespace
}  // namespace assay::e2e
