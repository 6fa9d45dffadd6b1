// The dashboard's server side over a real HTTP server and database (issue 11): the pipelines
// listing's filters and keyset pages with hostile values, badges with hostile paths, the
// shell and asset routes, and the OpenAPI document as served.

#include <boost/json.hpp>

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/net/http_client.h"
#include "server/api/api.h"
#include "server/http/http_server.h"
#include "server/metrics/metrics.h"
#include "server/web/assets.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

namespace json = boost::json;

struct Rig {
  DbFixture& f;
  Metrics metrics;
  ApiDeps deps;
  http::Router router;
  std::unique_ptr<http::Server> server;
  std::string base;

  explicit Rig(DbFixture& fx, const web::Assets* assets = nullptr)
      : f(fx), deps{&f.repos,
                    &f.deliveries,
                    &f.pipelines,
                    &f.jobs,
                    &f.agents,
                    nullptr,
                    nullptr,
                    &metrics,
                    std::string(40, 'a'),
                    std::string(32, 'k')} {
    deps.anonymous_read = true;  // reads need no credential here; access has its own tests
    deps.web = assets;
    RegisterApi(router, deps);
    server = std::make_unique<http::Server>(
        http::ServerOptions{}, [this](http::Request& req) { return router.Dispatch(req); },
        [this](http::Request& req) { return router.Admit(req); });
    REQUIRE(server->Start().ok());
    base = "http://127.0.0.1:" + std::to_string(server->port());
  }
  ~Rig() { server->Stop(); }

  HttpClientResponse Get(const std::string& path,
                         std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto r = HttpFetch("GET", base + path, headers);
    REQUIRE(r.ok());
    return *r;
  }
};

std::string Err400(const std::string& message) {
  return R"({"error":{"code":"invalid_argument","message":")" + message + R"("}})";
}

// The ids of a listing, in order, and its next_cursor ("" when null).
std::pair<std::vector<int64_t>, std::string> Ids(const std::string& body) {
  json::object o = json::parse(body).as_object();
  std::vector<int64_t> ids;
  for (const auto& p : o.at("pipelines").as_array()) ids.push_back(p.at("id").as_int64());
  const json::value& next = o.at("next_cursor");
  return {ids, next.is_null() ? "" : std::string(next.as_string())};
}

// Inserts a pipeline row as given; its id.
int64_t Row(DbFixture& f, const std::string& ref, const std::string& event,
            const std::string& state) {
  return std::stoll(f.One(absl::StrCat(
      "INSERT INTO pipelines (repo_id, event, ref, commit_sha, state, finished_at) VALUES (",
      f.repo_id, ", '", event, "', '", ref, "', '", std::string(40, 'a'), "', '", state, "', ",
      state == "running" ? "NULL" : "now()", ") RETURNING id")));
}

TEST_CASE("pipelines listing: filters, keyset pages, and hostile values", "[db]") {
  DbFixture f;
  Rig rig(f);
  const int64_t a = Row(f, "refs/heads/main", "push", "succeeded");
  const int64_t b = Row(f, "refs/heads/dev", "push", "failed");
  const int64_t c = Row(f, "refs/tags/v1", "tag", "succeeded");
  const int64_t d = Row(f, "refs/heads/main", "schedule", "running");
  const int64_t e = Row(f, "refs/pull/3/head", "pull_request", "failed");
  CHECK(Ids(rig.Get("/api/v1/pipelines").body).first == std::vector<int64_t>{e, d, c, b, a});
  CHECK(Ids(rig.Get("/api/v1/pipelines?branch=main").body).first == std::vector<int64_t>{d, a});
  CHECK(Ids(rig.Get("/api/v1/pipelines?tag=v1").body).first == std::vector<int64_t>{c});
  CHECK(Ids(rig.Get("/api/v1/pipelines?state=failed").body).first == std::vector<int64_t>{e, b});
  CHECK(Ids(rig.Get("/api/v1/pipelines?event=schedule").body).first == std::vector<int64_t>{d});
  CHECK(Ids(rig.Get("/api/v1/pipelines?repo=acme/app&branch=main&state=running").body).first ==
        std::vector<int64_t>{d});
  CHECK(Ids(rig.Get("/api/v1/pipelines?repo=nobody/none").body).first.empty());
  // An empty filter is no filter.
  CHECK(Ids(rig.Get("/api/v1/pipelines?state=&event=&branch=").body).first.size() == 5);
  // Keyset pages of 2: every pipeline once, in order, then a null cursor.
  std::vector<int64_t> all;
  std::string cursor;
  for (int page = 0; page < 5; ++page) {
    auto [ids, next] = Ids(rig.Get("/api/v1/pipelines?limit=2&cursor=" + cursor).body);
    all.insert(all.end(), ids.begin(), ids.end());
    cursor = next;
    if (next.empty()) break;
  }
  CHECK(all == std::vector<int64_t>{e, d, c, b, a});
  CHECK(cursor.empty());
  // A pipeline created meanwhile does not shift a page already begun.
  auto [first, next] = Ids(rig.Get("/api/v1/pipelines?limit=2").body);
  Row(f, "refs/heads/main", "push", "running");
  CHECK(Ids(rig.Get("/api/v1/pipelines?limit=2&cursor=" + next).body).first ==
        std::vector<int64_t>{c, b});
  // Hostile values: a clear 400 naming the parameter.
  for (const auto& [query, message] : std::vector<std::pair<std::string, std::string>>{
           {"state=bogus",
            "query parameter 'state' must be running, succeeded, failed, canceled or error"},
           {"state=SUCCEEDED",
            "query parameter 'state' must be running, succeeded, failed, canceled or error"},
           {"event=push%27%3B--",
            "query parameter 'event' must be push, tag, pull_request, manual or schedule"},
           {"cursor=abc", "query parameter 'cursor' must be a next_cursor this API gave"},
           {"cursor=0", "query parameter 'cursor' must be a next_cursor this API gave"},
           {"cursor=-5", "query parameter 'cursor' must be a next_cursor this API gave"},
           {"cursor=99999999999999999999",
            "query parameter 'cursor' must be a next_cursor this API gave"},
           {"limit=0", "query parameter 'limit' must be between 1 and 1000"},
           {"limit=1001", "query parameter 'limit' must be between 1 and 1000"},
       }) {
    INFO(query);
    HttpClientResponse r = rig.Get("/api/v1/pipelines?" + query);
    CHECK(r.status == 400);
    CHECK(r.body == Err400(message));
  }
  // A branch name with quotes or a huge one is only a value: nothing matches.
  CHECK(Ids(rig.Get("/api/v1/pipelines?branch=x%27%20OR%20%271%27=%271").body).first.empty());
  CHECK(Ids(rig.Get("/api/v1/pipelines?branch=" + std::string(10000, 'b')).body).first.empty());
}

TEST_CASE("badges: the newest pipeline of a branch, and hostile paths", "[db]") {
  DbFixture f;
  Rig rig(f);
  Row(f, "refs/heads/main", "push", "failed");
  Row(f, "refs/heads/main", "push", "succeeded");
  Row(f, "refs/heads/feature/x", "push", "running");
  HttpClientResponse ok = rig.Get("/badge/acme/app/main.svg");
  CHECK(ok.status == 200);
  CHECK(ok.Header("Content-Type") == "image/svg+xml");
  CHECK(absl::StrContains(ok.body, "<title>pipeline: succeeded</title>"));
  CHECK(absl::StrContains(rig.Get("/badge/acme/app/feature/x.svg").body,
                          "<title>pipeline: running</title>"));
  HttpClientResponse none = rig.Get("/badge/acme/app/nope.svg");
  CHECK(none.status == 404);
  CHECK(absl::StrContains(none.body, "<title>pipeline: none</title>"));
  for (const std::string& path :
       {std::string("/badge/acme/app.svg"), std::string("/badge/nobody/none/main.svg"),
        std::string("/badge/acme/app/.svg"), std::string("/badge/%2e%2e/%2e%2e/etc/passwd.svg")}) {
    INFO(path);
    HttpClientResponse r = rig.Get(path);
    CHECK(r.status == 404);
    CHECK(absl::StrContains(r.body, "<title>pipeline: unknown</title>"));
  }
  CHECK(rig.Get("/badge/acme/app/main.png").status == 404);
  CHECK(rig.Get("/badge/" + std::string(600, 'a') + ".svg").status == 404);
  // Nothing of the path is written into the SVG (no markup injection).
  HttpClientResponse odd = rig.Get("/badge/acme/app/%3Cscript%3E.svg");
  CHECK_FALSE(absl::StrContains(odd.body, "<script"));
}

TEST_CASE("the dashboard's shell, its assets, and the OpenAPI document as served", "[db][web]") {
  DbFixture f;
  {
    Rig bare(f);
    HttpClientResponse root = bare.Get("/");
    CHECK(root.status == 302);
    CHECK(root.Header("Location") == "/ui/");
    HttpClientResponse shell = bare.Get("/ui/pipelines/1");
    CHECK(shell.status == 503);
    CHECK(absl::StrContains(shell.body, "The dashboard is not built"));
    CHECK(bare.Get("/assets/app.js").status == 404);
  }
  web::Assets assets;
  assets.index_html = "<!doctype html><title>Assay</title>";
  assets.files["app-1.js"] = web::Asset{"text/javascript; charset=utf-8", "plain", "GZIPPED"};
  Rig rig(f, &assets);
  for (const char* path : {"/ui", "/ui/", "/ui/jobs/9/log", "/ui/no/such/page"}) {
    INFO(path);
    HttpClientResponse r = rig.Get(path);
    CHECK(r.status == 200);
    CHECK(r.body == assets.index_html);
    CHECK(r.Header("Content-Type") == "text/html; charset=utf-8");
    CHECK(r.Header("Cache-Control") == "no-cache");
    CHECK(absl::StrContains(r.Header("Content-Security-Policy"), "script-src 'self'"));
  }
  HttpClientResponse plain = rig.Get("/assets/app-1.js");
  CHECK(plain.body == "plain");
  CHECK(plain.Header("Cache-Control") == "public, max-age=31536000, immutable");
  CHECK(plain.Header("Content-Encoding").empty());
  HttpClientResponse gz = rig.Get("/assets/app-1.js", {{"Accept-Encoding", "gzip, br"}});
  CHECK(gz.body == "GZIPPED");
  CHECK(gz.Header("Content-Encoding") == "gzip");
  CHECK(gz.Header("Vary") == "Accept-Encoding");
  for (const char* path :
       {"/assets/app-2.js", "/assets/..%2Findex.html", "/assets/%2e%2e", "/assets/app-1.js.gz"}) {
    INFO(path);
    CHECK(rig.Get(path).status == 404);
  }
  HttpClientResponse doc = rig.Get("/api/v1/openapi.json");
  CHECK(doc.status == 200);
  CHECK(json::parse(doc.body).as_object().at("openapi").as_string() == "3.0.3");
}

}  // namespace
}  // namespace assay::dbtest
