// End to end: GET /api/v1/events (issue 11) streams a pushed pipeline's life as it happens,
// to a signed-in dashboard, through the database's notifications.

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/e2e/e2e.h"
#include "tests/support/stream_reader.h"

namespace assay::e2e {
namespace {

int PortOf(const std::string& url) {
  int port = 0;
  REQUIRE(absl::SimpleAtoi(url.substr(url.rfind(':') + 1), &port));
  return port;
}

TEST_CASE("events: a dashboard sees a pushed pipeline and its job from queued to succeeded",
          "[e2e]") {
  Cluster c(Options({"--password-cost", "10"}));
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.Api("POST", "/api/v1/users",
             R"({"username":"victor","password":"pw-victor-123","role":"viewer"})"));
  HttpClientResponse login =
      MUST(c.Fetch("POST", "/api/v1/session", {{"Content-Type", "application/json"}},
                   R"({"username":"victor","password":"pw-victor-123"})"));
  REQUIRE(login.status == 200);
  std::string cookie;
  for (const auto& [k, v] : login.headers) {
    if (k == "Set-Cookie" && v.rfind("assay_session=", 0) == 0) cookie = v.substr(0, v.find(';'));
  }
  REQUIRE(!cookie.empty());
  const int port = PortOf(c.http_url());
  // No credential: refused, no stream.
  testing::StreamReader anon = MUST(testing::StreamReader::Open(port, "/api/v1/events", {}));
  MUST(anon.WaitFor("HTTP/1.1 401", 0, absl::Seconds(10)).status());

  testing::StreamReader s =
      MUST(testing::StreamReader::Open(port, "/api/v1/events", {{"Cookie", cookie}}));
  size_t at = MUST(s.WaitFor("event: hello", 0, absl::Seconds(10)));
  CHECK(s.data().find("Content-Type: text/event-stream") != std::string::npos);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const int64_t pipeline = PushFiles(c, repo, {{".assay.yml", R"yml(jobs:
  build:
    steps:
      - run: echo hi
)yml"}});
  const std::string p = absl::StrCat("\"type\":\"pipeline\",\"id\":", pipeline);
  at = MUST(s.WaitFor(p + ",\"repo_id\":1,\"state\":\"running\"", at, absl::Seconds(30)));
  // The job's states in order, then the pipeline's end.
  const int64_t job = MUST(c.QueryInt("SELECT id FROM jobs"));
  const std::string j =
      absl::StrCat("\"type\":\"job\",\"id\":", job, ",\"pipeline_id\":", pipeline, ",\"state\":");
  at = MUST(s.WaitFor(j + "\"queued\"", 0, absl::Seconds(30)));
  at = MUST(s.WaitFor(j + "\"running\"", at, absl::Seconds(60)));
  at = MUST(s.WaitFor(j + "\"succeeded\"", at, absl::Seconds(60)));
  MUST(s.WaitFor(p + ",\"repo_id\":1,\"state\":\"succeeded\"", at, absl::Seconds(60)).status());
}

}  // namespace
}  // namespace assay::e2e
