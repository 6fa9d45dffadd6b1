// Traces (issue 12): a server with --otlp-endpoint sends each finished pipeline and deployment
// to an OpenTelemetry collector as OTLP/HTTP JSON. The collector here is a local endpoint that
// records exactly what it was sent (no OpenTelemetry collector is packaged for Debian 12); it
// answers 503 to the first request, and the same trace arrives again.
#include <sys/stat.h>

#include <condition_variable>
#include <deque>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>

#include "absl/strings/match.h"
#include "server/http/http_server.h"
#include "tests/e2e/e2e.h"
#include "tests/support/recording_server.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

using testing::RecordingServer;

// Waits (bounded) until `done(requests)`; every request then. FAILs naming `what` otherwise.
std::vector<http::Request> WaitFor(
    Cluster& c, RecordingServer& collector, const std::string& what,
    const std::function<bool(const std::vector<http::Request>&)>& done) {
  if (!collector.WaitFor(done)) {
    std::ostringstream got;
    for (const auto& r : collector.requests()) {
      got << r.method << " " << r.target << " " << r.body << "\n";
    }
    FAIL("no " << what << " among the collector's requests:\n" << got.str() << c.LogTails());
  }
  return collector.requests();
}

std::string Header(const http::Request& r, const std::string& name) {
  return RecordingServer::Header(r, name);
}

// The spans of a request's one resource and scope.
json::array Spans(const http::Request& r) {
  json::value v = json::parse(r.body);
  const json::array& rs = v.at("resourceSpans").as_array();
  REQUIRE(rs.size() == 1);
  return rs[0].at("scopeSpans").at(0).at("spans").as_array();
}

std::string Str(const json::value& v) { return std::string(v.as_string()); }

std::string Attr(const json::object& span, const std::string& key) {
  for (const json::value& a : span.at("attributes").as_array()) {
    if (a.at("key").as_string() != key) continue;
    const json::object& v = a.at("value").as_object();
    return Str(v.contains("stringValue") ? v.at("stringValue") : v.at("intValue"));
  }
  return "<none>";
}

TEST_CASE(
    "traces: finished pipelines and deployments reach an OTLP collector, again after it "
    "was down",
    "[e2e]") {
  RecordingServer collector({{503, R"({"code": 14, "message": "try later"})"}});
  Cluster c(
      Options({"--otlp-endpoint", collector.url() + "/v1/traces", "--otlp-interval", "200ms"}));
  const std::string hooks = c.dir() + "/hooks";
  REQUIRE(mkdir(hooks.c_str(), 0755) == 0);
  std::ofstream(hooks + "/ok") << "#!/bin/sh\nexit 0\n";
  REQUIRE(chmod((hooks + "/ok").c_str(), 0755) == 0);
  c.AddServerFlags({"--deploy-hooks", hooks});
  // A secret option: from a file (or the environment), never the command line.
  const std::string headers = c.dir() + "/otlp-headers";
  std::ofstream(headers) << "authorization=Bearer%20collector-token\n";
  REQUIRE(chmod(headers.c_str(), 0600) == 0);
  c.AddServerFlags({"--otlp-headers-file", headers});
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const int64_t id = PushFiles(c, repo, {{".assay.yml", R"yml(jobs:
  build:
    steps:
      - run: echo built
  test:
    needs: [build]
    steps:
      - run: exit 3
)yml"}});
  json::object p = MUST(c.WaitForPipelineDone(id));
  REQUIRE(JsonString(p, "state") == "failed");

  // The first answer was 503: the same trace came again until the collector took it.
  std::vector<http::Request> got =
      WaitFor(c, collector, "second request", [](const auto& rs) { return rs.size() >= 2; });
  REQUIRE(got.size() >= 2);
  CHECK(got[0].body == got[1].body);
  const http::Request& r = got[1];
  CHECK(r.method == "POST");
  CHECK(r.target == "/v1/traces");
  CHECK(Header(r, "Content-Type") == "application/json");
  CHECK(Header(r, "Authorization") == "Bearer collector-token");
  json::value body = json::parse(r.body);
  const json::object& resource = body.at("resourceSpans").at(0).at("resource").as_object();
  CHECK(Attr(resource, "service.name") == "assay-server");
  json::array spans = Spans(r);
  REQUIRE(spans.size() == 5);
  const json::object& root = spans[0].as_object();
  CHECK(Str(root.at("name")) == "pipeline");
  CHECK(Attr(root, "assay.pipeline.id") == std::to_string(id));
  CHECK(Attr(root, "assay.repo") == kRepoName);
  CHECK(Attr(root, "vcs.ref.head.revision") == JsonString(p, "commit_sha"));
  CHECK(root.at("status").at("code").as_int64() == 2);
  const std::string trace = Str(root.at("traceId"));
  const std::string root_id = Str(root.at("spanId"));
  std::vector<std::string> names;
  for (const json::value& s : spans) {
    CHECK(Str(s.at("traceId")) == trace);
    names.push_back(Str(s.at("name")));
  }
  CHECK(names ==
        std::vector<std::string>{"pipeline", "job build", "attempt", "job test", "attempt"});
  CHECK(Str(spans[1].at("parentSpanId")) == root_id);
  CHECK(Str(spans[2].at("parentSpanId")) == Str(spans[1].at("spanId")));
  CHECK(Str(spans[3].at("parentSpanId")) == root_id);
  CHECK(Str(spans[4].at("parentSpanId")) == Str(spans[3].at("spanId")));
  CHECK(Attr(spans[2].as_object(), "assay.agent") == "a1");
  CHECK(Attr(spans[2].as_object(), "process.exit.code") == "0");
  CHECK(Attr(spans[4].as_object(), "process.exit.code") == "3");
  CHECK(spans[1].at("status").at("code").as_int64() == 1);
  CHECK(spans[3].at("status").at("code").as_int64() == 2);
  CHECK(MUST(c.QueryInt(absl::StrCat("SELECT count(*) FROM pipelines WHERE id = ", id,
                                     " AND traced_at = finished_at"))) == 1);

  // A deployment: one span, its events as span events, in the order of its history.
  const int64_t repo_id = MUST(c.QueryInt("SELECT id FROM repos"));
  auto env = MUST(c.Api("PUT", absl::StrCat("/api/v1/repos/", repo_id, "/environments/staging"),
                        R"({"target": {"kind": "command", "command": ["ok"]}})"));
  INFO(env.body);
  REQUIRE(env.status == 200);
  const std::string image = "registry.example.com/acme/app@sha256:" + std::string(64, 'c');
  auto made = MUST(c.Api(
      "POST", "/api/v1/deployments",
      json::serialize(json::object{{"repo_id", repo_id},
                                   {"environment", "staging"},
                                   {"image", image},
                                   {"servers", json::array{"127.0.0.1:8201"}},
                                   {"strategy", json::parse(R"({"blue_green": {"auto_promote": true,
                                 "scale_down_delay": "0s"}})")}})));
  INFO(made.body);
  REQUIRE(made.status == 201);
  const int64_t deployment = json::parse(made.body).at("id").as_int64();
  got = WaitFor(c, collector, "deployment span", [](const std::vector<http::Request>& rs) {
    for (const http::Request& x : rs) {
      if (absl::StrContains(x.body, "\"name\":\"deployment\"")) return true;
    }
    return false;
  });
  const http::Request* dr = nullptr;
  for (const http::Request& x : got) {
    if (absl::StrContains(x.body, "\"name\":\"deployment\"")) dr = &x;
  }
  REQUIRE(dr != nullptr);
  json::array dspans = Spans(*dr);
  REQUIRE(dspans.size() == 1);
  const json::object& ds = dspans[0].as_object();
  CHECK(Attr(ds, "assay.deployment.id") == std::to_string(deployment));
  CHECK(Attr(ds, "assay.environment") == "staging");
  CHECK(Attr(ds, "assay.image") == image);
  CHECK(Attr(ds, "assay.state") == "succeeded");
  CHECK(Attr(ds, "assay.deployment.strategy") == "blue_green");
  CHECK(ds.at("status").at("code").as_int64() == 1);
  std::vector<std::string> want, kinds;
  const json::object history =
      MUST(c.ApiObject("GET", absl::StrCat("/api/v1/deployments/", deployment, "/events")));
  for (const json::value& e : history.at("events").as_array()) {
    want.push_back(JsonString(e.as_object(), "kind"));
  }
  for (const json::value& e : ds.at("events").as_array()) kinds.push_back(Str(e.at("name")));
  CHECK(kinds == want);
  CHECK(want.back() == "succeeded");
}

}  // namespace
}  // namespace assay::e2e
