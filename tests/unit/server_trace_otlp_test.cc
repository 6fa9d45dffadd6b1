// OTLP/HTTP JSON of Assay's traces (server/trace/otlp.h): the exact spans of a pipeline and a
// deployment, ids derived from what they trace, hostile strings kept valid, headers parsed.
#include <catch2/catch.hpp>
#include <string>

#include <boost/json.hpp>

#include "absl/time/time.h"
#include "server/trace/otlp.h"

namespace assay::trace {
namespace {

namespace json = boost::json;

absl::Time At(int64_t s) { return absl::FromUnixSeconds(1'800'000'000 + s); }
std::string Ns(int64_t s) { return std::to_string((1'800'000'000 + s) * 1'000'000'000LL); }

std::string Str(const json::value& v) { return std::string(v.as_string()); }

std::string Attr(const json::object& span, const std::string& key) {
  for (const json::value& a : span.at("attributes").as_array()) {
    if (a.at("key").as_string() != key) continue;
    const json::object& v = a.at("value").as_object();
    if (v.contains("stringValue")) return std::string(v.at("stringValue").as_string());
    return std::string(v.at("intValue").as_string());
  }
  return "<none>";
}

TEST_CASE("otlp: ids come from what they trace", "[trace]") {
  const std::string t = TraceId("pipeline", 7, At(10));
  CHECK(t.size() == 32);
  CHECK(t.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(TraceId("pipeline", 7, At(10)) == t);  // sent again after a crash: the same trace
  CHECK(TraceId("pipeline", 7, At(11)) != t);  // finished again after a retry: a new one
  CHECK(TraceId("deployment", 7, At(10)) != t);
  CHECK(SpanId(t, "pipeline").size() == 16);
  CHECK(SpanId(t, "job/1") != SpanId(t, "job/2"));
}

TEST_CASE("otlp: a pipeline is a pipeline span, a span per job and one per attempt", "[trace]") {
  store::PipelineTrace p;
  p.id = 12;
  p.repo = "acme/app";
  p.event = "push";
  p.ref = "refs/heads/main";
  p.commit_sha = std::string(40, 'a');
  p.state = "failed";
  p.message = "job test failed";
  p.created_at = At(0);
  p.finished_at = At(60);
  store::JobTrace build;
  build.id = 100;
  build.name = "build";
  build.state = "succeeded";
  build.created_at = At(0);
  build.queued_at = At(1);
  build.finished_at = At(20);
  build.attempts.push_back({1, "gpu-1", "succeeded", "", At(2), At(3), At(20), 0});
  store::JobTrace test;
  test.id = 101;
  test.name = "test";
  test.state = "failed";
  test.message = "exit 1";
  test.created_at = At(0);
  test.queued_at = At(21);
  test.finished_at = At(59);
  test.attempts.push_back({1, "cpu-1", "lost", "agent went away", At(22), At(23), At(30), {}});
  test.attempts.push_back({2, "cpu-2", "failed", "exit 1", At(31), At(32), At(59), 1});
  store::JobTrace skipped;
  skipped.id = 102;
  skipped.name = "deploy";
  skipped.state = "skipped";
  skipped.created_at = At(0);
  p.jobs = {build, test, skipped};

  json::array spans = PipelineSpans(p);
  REQUIRE(spans.size() == 7);
  const std::string trace = TraceId("pipeline", 12, At(60));
  const json::object& root = spans[0].as_object();
  CHECK(Str(root.at("traceId")) == trace);
  CHECK(Str(root.at("spanId")) == SpanId(trace, "pipeline"));
  CHECK_FALSE(root.contains("parentSpanId"));
  CHECK(Str(root.at("name")) == "pipeline");
  CHECK(root.at("kind").as_int64() == 1);
  CHECK(Str(root.at("startTimeUnixNano")) == Ns(0));
  CHECK(Str(root.at("endTimeUnixNano")) == Ns(60));
  CHECK(root.at("status") == json::parse(R"({"code": 2, "message": "job test failed"})"));
  CHECK(Attr(root, "assay.pipeline.id") == "12");
  CHECK(Attr(root, "assay.repo") == "acme/app");
  CHECK(Attr(root, "vcs.ref.head.name") == "refs/heads/main");
  CHECK(Attr(root, "vcs.ref.head.revision") == std::string(40, 'a'));
  CHECK(Attr(root, "assay.state") == "failed");

  // Each job under the pipeline, each attempt under its job.
  const std::vector<std::tuple<std::string, std::string, int64_t, int64_t, int>> want = {
      {"job build", SpanId(trace, "pipeline"), 1, 20, 1},
      {"attempt", SpanId(trace, "job/100"), 2, 20, 1},
      {"job test", SpanId(trace, "pipeline"), 21, 59, 2},
      {"attempt", SpanId(trace, "job/101"), 22, 30, 2},
      {"attempt", SpanId(trace, "job/101"), 31, 59, 2},
      {"job deploy", SpanId(trace, "pipeline"), 0, 60, 1},
  };
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(json::serialize(spans[i + 1]));
    const json::object& s = spans[i + 1].as_object();
    const auto& [name, parent, start, end, code] = want[i];
    CHECK(Str(s.at("traceId")) == trace);
    CHECK(Str(s.at("name")) == name);
    CHECK(Str(s.at("parentSpanId")) == parent);
    CHECK(Str(s.at("startTimeUnixNano")) == Ns(start));
    CHECK(Str(s.at("endTimeUnixNano")) == Ns(end));
    CHECK(s.at("status").at("code").as_int64() == code);
  }
  CHECK(Str(spans[1].at("spanId")) == SpanId(trace, "job/100"));
  CHECK(Str(spans[2].at("spanId")) == SpanId(trace, "job/100/1"));
  CHECK(Attr(spans[2].as_object(), "assay.agent") == "gpu-1");
  CHECK(Attr(spans[2].as_object(), "process.exit.code") == "0");
  CHECK(Attr(spans[4].as_object(), "assay.state") == "lost");
  CHECK(Attr(spans[4].as_object(), "process.exit.code") == "<none>");
  CHECK(Str(spans[4].at("status").at("message")) == "agent went away");
  CHECK(Attr(spans[5].as_object(), "process.exit.code") == "1");
  CHECK(Attr(spans[3].as_object(), "assay.job.attempts") == "2");
}

TEST_CASE("otlp: a deployment is one span with its events", "[trace]") {
  store::DeploymentTrace d;
  d.id = 5;
  d.repo = "acme/llm";
  d.environment = "production";
  d.state = "rolled_back";
  d.message = "metric 'error-rate' failed";
  d.created_by = "alice";
  d.strategy_kind = "canary";
  d.model = "bot";
  d.version = 3;
  d.pipeline_id = 40;
  d.created_at = At(0);
  d.started_at = At(1);
  d.finished_at = At(30);
  d.events = {{At(0), 0, "created", "created by alice"},
              {At(1), 0, "weight", "step 1 of 2: 10% of traffic"},
              {At(29), 1, "rolled_back", "rolled back: metric 'error-rate' failed"}};
  json::array spans = DeploymentSpans(d);
  REQUIRE(spans.size() == 1);
  const json::object& s = spans[0].as_object();
  CHECK(Str(s.at("traceId")) == TraceId("deployment", 5, At(30)));
  CHECK(Str(s.at("name")) == "deployment");
  CHECK(s.at("status") == json::parse(R"({"code": 2, "message": "metric 'error-rate' failed"})"));
  CHECK(Attr(s, "assay.environment") == "production");
  CHECK(Attr(s, "assay.model") == "bot");
  CHECK(Attr(s, "assay.model.version") == "3");
  CHECK(Attr(s, "assay.image") == "<none>");
  CHECK(Attr(s, "assay.pipeline.id") == "40");
  CHECK(Attr(s, "assay.deployment.strategy") == "canary");
  const json::array& events = s.at("events").as_array();
  REQUIRE(events.size() == 3);
  CHECK(events[1] == json::parse(R"({"timeUnixNano": ")" + Ns(1) +
                                 R"(", "name": "weight", "attributes": [
      {"key": "assay.deployment.step", "value": {"intValue": "0"}},
      {"key": "message", "value": {"stringValue": "step 1 of 2: 10% of traffic"}}]})"));
  CHECK_FALSE(s.contains("droppedEventsCount"));

  d.state = "succeeded";
  d.events_dropped = 4;
  json::array ok = DeploymentSpans(d);
  CHECK(ok[0].at("status") == json::parse(R"({"code": 1})"));
  CHECK(ok[0].at("droppedEventsCount").as_int64() == 4);
}

TEST_CASE("otlp: hostile strings stay valid and bounded", "[trace]") {
  store::PipelineTrace p;
  p.id = 1;
  p.repo = "a\xff\xfe/b";
  p.ref = std::string("refs/heads/\x01\n\"x\"") + std::string(5000, 'r');
  p.state = "succeeded";
  p.created_at = At(0);
  p.finished_at = At(1);
  const std::string body = ExportRequest("host:1", PipelineSpans(p));
  json::value v = json::parse(body);  // valid JSON
  const json::object& root =
      v.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").at(0).as_object();
  CHECK(Attr(root, "assay.repo") ==
        "a?"
        "?/b");
  CHECK(Attr(root, "vcs.ref.head.name").size() == 1024);
  CHECK(Attr(root, "vcs.ref.head.name").substr(0, 16) == "refs/heads/\x01\n\"x\"");
  CHECK(v.at("resourceSpans").at(0).at("resource") == json::parse(R"({"attributes": [
      {"key": "service.name", "value": {"stringValue": "assay-server"}},
      {"key": "service.instance.id", "value": {"stringValue": "host:1"}}]})"));
  CHECK(v.at("resourceSpans").at(0).at("scopeSpans").at(0).at("scope") ==
        json::parse(R"({"name": "assay"})"));
}

TEST_CASE("otlp: headers as OTEL_EXPORTER_OTLP_HEADERS writes them", "[trace]") {
  auto h = ParseHeaders(" api-key = s%3Dcret%2C1 , X_Team=ml ");
  REQUIRE(h.ok());
  CHECK(*h == std::vector<std::pair<std::string, std::string>>{{"api-key", "s=cret,1"},
                                                               {"X_Team", "ml"}});
  CHECK(ParseHeaders("")->empty());
  CHECK(ParseHeaders("a=1,novalue").status().message() == "OTLP headers: entry 2 is not KEY=VALUE");
  CHECK(ParseHeaders("=secret").status().message() == "OTLP headers: entry 1 is not KEY=VALUE");
  CHECK(ParseHeaders("bad name=secret").status().message() ==
        "OTLP headers: entry 1 has a name that is not a header name");
  CHECK(ParseHeaders("a=x%0d%0aInjected: yes").status().message() ==
        "OTLP headers: entry 1 has a control character in its value");
  CHECK(*ParseHeaders("a=100%") == std::vector<std::pair<std::string, std::string>>{{"a", "100%"}});
}

}  // namespace
}  // namespace assay::trace
