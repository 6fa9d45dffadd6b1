// End to end: the HTTP surface's own defences (issue 8, item 9 and the parts of item 5 that are
// not webhooks): headers on every answer, no database text in any answer, a token on /metrics,
// failed authentications rate-limited per address.

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

TEST_CASE("API answers carry nosniff, no-store and a request id", "[e2e][security]") {
  Cluster c(Options());
  MUST(c.StartServer());
  for (const char* path : {"/api/v1/repos", "/api/v1/nothing-here", "/healthz"}) {
    INFO(path);
    HttpClientResponse r = MUST(c.Api("GET", path));
    CHECK(r.Header("X-Content-Type-Options") == "nosniff");
    CHECK(r.Header("Cache-Control") == "no-store");
    CHECK(r.Header("X-Request-Id").size() == 16);
  }
  HttpClientResponse unauthed = MUST(c.Fetch("GET", "/api/v1/repos"));
  CHECK(unauthed.status == 401);
  CHECK(unauthed.Header("Cache-Control") == "no-store");
}

TEST_CASE("a NUL in a field is a 400 naming the field, never the database's text",
          "[e2e][security]") {
  Cluster c(Options());
  MUST(c.StartServer());
  HttpClientResponse r = MUST(c.Api(
      "POST", "/api/v1/repos",
      R"({"name":"acme/a\u0000b","clone_url":"https://example.com/a.git","provider":"github"})"));
  CHECK(r.status == 400);
  CHECK(r.body == R"({"error":{"code":"invalid_argument",)"
                  R"("message":"field 'name' must not contain a NUL character"}})");
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM repos")) == 0);
}

TEST_CASE("failed authentications from one address are answered 429 after the limit",
          "[e2e][security]") {
  Cluster c(Options({"--auth-failures-per-minute", "3"}));
  MUST(c.StartServer());
  const std::vector<std::pair<std::string, std::string>> wrong = {
      {"Authorization", "Bearer not-the-admin-token-but-long-enough-000"}};
  for (int i = 0; i < 3; ++i) {
    HttpClientResponse r = MUST(c.Fetch("GET", "/api/v1/repos", wrong));
    CHECK(r.status == 401);
  }
  HttpClientResponse blocked = MUST(c.Fetch("GET", "/api/v1/repos", wrong));
  CHECK(blocked.status == 429);
  CHECK(blocked.Header("Retry-After") == "20");
  CHECK(blocked.body == R"({"error":{"code":"too_many_requests","message":)"
                        R"("too many failed authentications from this address; retry later"}})");
  // Even the right token waits: otherwise guessing would simply go on.
  CHECK(MUST(c.Api("GET", "/api/v1/repos")).status == 429);
  // What needs no token is served.
  CHECK(MUST(c.Fetch("GET", "/healthz")).status == 200);
}

TEST_CASE("/metrics requires the metrics token when one is set (from the config file)",
          "[e2e][security][metrics]") {
  const std::string token = "metrics-token-0123456789abcdef";
  char tmpl[] = "/tmp/assay-metrics-conf-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string conf_path = std::string(tmpl) + "/server.conf";
  {
    std::ofstream conf(conf_path);
    conf << "metrics-token = " << token << "\n";
  }
  // The token itself is never a flag (it would show in /proc/*/cmdline).
  Cluster with_token(Options({"--config", conf_path}));
  MUST(with_token.StartServer());
  HttpClientResponse none = MUST(with_token.Fetch("GET", "/metrics"));
  CHECK(none.status == 401);
  CHECK(none.Header("WWW-Authenticate") == "Bearer");
  HttpClientResponse admin = MUST(with_token.Api("GET", "/metrics"));
  CHECK(admin.status == 401);
  HttpClientResponse ok =
      MUST(with_token.Fetch("GET", "/metrics", {{"Authorization", "Bearer " + token}}));
  CHECK(ok.status == 200);
  CHECK(absl::StrContains(ok.body, "assay_webhooks_received_total"));
  std::remove(conf_path.c_str());
  rmdir(tmpl);
}

}  // namespace
}  // namespace assay::e2e
