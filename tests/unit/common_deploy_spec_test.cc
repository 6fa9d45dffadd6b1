#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/deploy/spec.h"

namespace assay::deploy {
namespace {

namespace json = boost::json;

json::value J(std::string_view text) { return json::parse(text); }

Strategy StrategyOf(std::string_view text) {
  absl::StatusOr<Strategy> s = ParseStrategy(J(text), "strategy");
  INFO(text << " -> " << s.status().ToString());
  REQUIRE(s.ok());
  return *std::move(s);
}

// The kInvalidArgument message of parsing `text` as a strategy.
std::string StrategyErr(std::string_view text) {
  absl::StatusOr<Strategy> s = ParseStrategy(J(text), "strategy");
  INFO(text);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(s.status().message());
}

// The kInvalidArgument message of parsing `text` as a background analysis.
std::string AnalysisErr(std::string_view text) {
  absl::StatusOr<AnalysisSpec> a = ParseAnalysis(J(text), "analysis");
  INFO(text);
  REQUIRE_FALSE(a.ok());
  CHECK(a.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(a.status().message());
}

// A background analysis of the one metric `fields` (the inside of its object).
std::string OneMetric(const std::string& fields) {
  return absl::StrCat(R"({"metrics": [{)", fields, "}]}");
}

// A valid metric named `name`, as JSON.
std::string Metric(const std::string& name) {
  return absl::StrCat(R"({"name": ")", name,
                      R"(", "provider": {"prometheus": {"address": "http://prom:9090", )",
                      R"("query": "up"}}, "success_condition": "result < 0.02"})");
}

// The fields of a metric with a valid provider and condition, after `extra`.
std::string Fields(const std::string& extra) {
  return absl::StrCat(extra, R"("provider": {"prometheus": {"address": "http://prom:9090", )",
                      R"("query": "up"}}, "success_condition": "result < 0.02")");
}

// A metric named `name` with `provider` (JSON) and a success condition.
std::string WithProvider(const std::string& provider) {
  return OneMetric(absl::StrCat(R"("name": "m", "provider": )", provider,
                                R"(, "success_condition": "result < 0.02")"));
}

std::vector<int> Weights(const Strategy& s) {
  std::vector<int> out;
  for (const Step& step : s.steps) {
    out.push_back(step.kind == Step::Kind::kWeight ? step.weight : -1);
  }
  return out;
}

std::vector<Step::Kind> Kinds(const Strategy& s) {
  std::vector<Step::Kind> out;
  for (const Step& step : s.steps) out.push_back(step.kind);
  return out;
}

constexpr Step::Kind kW = Step::Kind::kWeight;
constexpr Step::Kind kP = Step::Kind::kPause;
constexpr Step::Kind kA = Step::Kind::kAnalysis;

// ---- ParseStrategy: what each strategy compiles to ----

TEST_CASE("deploy spec: canary steps compile as written", "[deploy]") {
  const Strategy s = StrategyOf(absl::StrCat(
      R"({"canary": {"steps": [{"weight": 10}, {"pause": "60s"}, {"weight": 50}, {"pause": {}},
          {"pause": {"duration": "5s"}}, {"analysis": {"metrics": [)",
      Metric("err"), R"(]}}, {"weight": 100}]}})"));
  CHECK(s.kind == StrategyKind::kCanary);
  REQUIRE(s.steps.size() == 7);
  CHECK(Kinds(s) == std::vector<Step::Kind>{kW, kP, kW, kP, kP, kA, kW});
  CHECK(s.steps[0].weight == 10);
  CHECK(s.steps[1].duration == absl::Seconds(60));
  CHECK(s.steps[2].weight == 50);
  CHECK(s.steps[3].duration == std::nullopt);  // {} waits for a person
  CHECK(s.steps[4].duration == absl::Seconds(5));
  REQUIRE(s.steps[5].analysis.metrics.size() == 1);
  const MetricSpec& m = s.steps[5].analysis.metrics[0];
  CHECK(m.name == "err");
  CHECK(m.provider == ProviderKind::kPrometheus);
  CHECK(m.address == "http://prom:9090");
  CHECK(m.query == "up");
  CHECK(m.count == 1);  // a step's analysis measures once unless told
  CHECK(m.interval == absl::Seconds(30));
  CHECK(m.initial_delay == absl::ZeroDuration());
  REQUIRE(m.success.has_value());
  CHECK(m.success->text() == "result < 0.02");
  CHECK_FALSE(m.failure.has_value());
  CHECK(m.failure_limit == 0);
  CHECK(m.inconclusive_limit == 0);
  CHECK(m.consecutive_error_limit == 4);
  CHECK(s.steps[6].weight == 100);
  CHECK(s.background.empty());
  CHECK(s.scale_down_delay == absl::ZeroDuration());
  CHECK(s.max_unavailable == 0);
}

TEST_CASE("deploy spec: canary background analysis, scale_down_delay and metric fields",
          "[deploy]") {
  const Strategy s = StrategyOf(
      R"js({"canary": {"steps": [{"weight": 20}], "scale_down_delay": "2m",
          "analysis": {"metrics": [
            {"name": "err.rate-1", "provider": {"prometheus": {"address": "https://prom:9090",
              "query": "sum(rate(x{v=\"{{version}}\"}[1m]))"}},
             "success_condition": "result < 0.02"},
            {"name": "latency", "provider": {"web": {"url": "http://m/metrics?d={{deployment}}",
              "json_path": "data.p99"}}, "interval": 10, "initial_delay": "0s", "count": 5,
             "failure_condition": "result > 800", "failure_limit": 2,
             "inconclusive_limit": 3, "consecutive_error_limit": 0}]}}})js");
  CHECK(s.scale_down_delay == absl::Minutes(2));
  REQUIRE(s.background.metrics.size() == 2);
  const MetricSpec& a = s.background.metrics[0];
  CHECK(a.name == "err.rate-1");
  CHECK(a.address == "https://prom:9090");
  CHECK(a.query == "sum(rate(x{v=\"{{version}}\"}[1m]))");
  CHECK(a.count == 0);  // background: until the deployment ends
  const MetricSpec& b = s.background.metrics[1];
  CHECK(b.provider == ProviderKind::kWeb);
  CHECK(b.url == "http://m/metrics?d={{deployment}}");
  CHECK(b.json_path == "data.p99");
  CHECK(b.interval == absl::Seconds(10));
  CHECK(b.initial_delay == absl::ZeroDuration());
  CHECK(b.count == 5);
  CHECK_FALSE(b.success.has_value());
  REQUIRE(b.failure.has_value());
  CHECK(b.failure->text() == "result > 800");
  CHECK(b.failure_limit == 2);
  CHECK(b.inconclusive_limit == 3);
  CHECK(b.consecutive_error_limit == 0);
}

TEST_CASE("deploy spec: blue_green compiles to weight 0, analyses, pause, weight 100", "[deploy]") {
  SECTION("bare: no pause (auto_promote unset), scale_down_delay 30s") {
    const Strategy s = StrategyOf(R"({"blue_green": {}})");
    CHECK(s.kind == StrategyKind::kBlueGreen);
    CHECK(Weights(s) == std::vector<int>{0, 100});
    CHECK(s.scale_down_delay == absl::Seconds(30));
    CHECK(s.background.empty());
  }
  SECTION("auto_promote true: no pause") {
    const Strategy s = StrategyOf(R"({"blue_green": {"auto_promote": true}})");
    CHECK(Weights(s) == std::vector<int>{0, 100});
  }
  SECTION("auto_promote false: an indefinite pause before the switch") {
    const Strategy s = StrategyOf(R"({"blue_green": {"auto_promote": false,
                                      "scale_down_delay": 0}})");
    CHECK(Kinds(s) == std::vector<Step::Kind>{kW, kP, kW});
    CHECK(Weights(s) == std::vector<int>{0, -1, 100});
    CHECK(s.steps[1].duration == std::nullopt);
    CHECK(s.scale_down_delay == absl::ZeroDuration());
  }
  SECTION("everything: pre analysis, pause, weight 100, post analysis") {
    const Strategy s = StrategyOf(
        absl::StrCat(R"({"blue_green": {"pre_promotion_analysis": {"metrics": [)", Metric("pre"),
                     R"(]}, "auto_promote": false, "post_promotion_analysis": {"metrics": [)",
                     Metric("post"), ",", Metric("post2"), R"(]}, "scale_down_delay": "1h"}})"));
    CHECK(Kinds(s) == std::vector<Step::Kind>{kW, kA, kP, kW, kA});
    CHECK(s.steps[0].weight == 0);
    REQUIRE(s.steps[1].analysis.metrics.size() == 1);
    CHECK(s.steps[1].analysis.metrics[0].name == "pre");
    CHECK(s.steps[1].analysis.metrics[0].count == 1);  // not a background analysis
    CHECK(s.steps[3].weight == 100);
    REQUIRE(s.steps[4].analysis.metrics.size() == 2);
    CHECK(s.steps[4].analysis.metrics[0].name == "post");
    CHECK(s.steps[4].analysis.metrics[1].name == "post2");
    CHECK(s.scale_down_delay == absl::Hours(1));
  }
  SECTION("pre analysis only, auto-promoted") {
    const Strategy s = StrategyOf(absl::StrCat(
        R"({"blue_green": {"pre_promotion_analysis": {"metrics": [)", Metric("pre"), "]}}}"));
    CHECK(Kinds(s) == std::vector<Step::Kind>{kW, kA, kW});
  }
}

TEST_CASE("deploy spec: rolling batches become weight steps", "[deploy]") {
  SECTION("default batch is 25%") {
    const Strategy s = StrategyOf(R"({"rolling": {}})");
    CHECK(s.kind == StrategyKind::kRolling);
    CHECK(Weights(s) == std::vector<int>{25, 50, 75, 100});
    CHECK(s.max_unavailable == 0);
    CHECK(s.scale_down_delay == absl::ZeroDuration());
  }
  SECTION("\"25%\"") {
    CHECK(Weights(StrategyOf(R"({"rolling": {"batch": "25%"}})")) ==
          std::vector<int>{25, 50, 75, 100});
  }
  SECTION("\"30%\": the last batch is cut to 100") {
    CHECK(Weights(StrategyOf(R"({"rolling": {"batch": "30%"}})")) ==
          std::vector<int>{30, 60, 90, 100});
  }
  SECTION("a number: 50") {
    CHECK(Weights(StrategyOf(R"({"rolling": {"batch": 50}})")) == std::vector<int>{50, 100});
  }
  SECTION("\"100%\" and \"1%\"") {
    CHECK(Weights(StrategyOf(R"({"rolling": {"batch": "100%"}})")) == std::vector<int>{100});
    const Strategy s = StrategyOf(R"({"rolling": {"batch": "1%"}})");
    REQUIRE(s.steps.size() == 100);
    CHECK(s.steps.front().weight == 1);
    CHECK(s.steps.back().weight == 100);
  }
  SECTION("pause between batches, none after 100") {
    const Strategy s = StrategyOf(
        R"({"rolling": {"batch": "30%", "pause": "10s", "max_unavailable": 2,
            "scale_down_delay": "5s"}})");
    CHECK(Weights(s) == std::vector<int>{30, -1, 60, -1, 90, -1, 100});
    for (const Step& step : s.steps) {
      if (step.kind == kP) CHECK(step.duration == absl::Seconds(10));
    }
    CHECK(s.max_unavailable == 2);
    CHECK(s.scale_down_delay == absl::Seconds(5));
  }
  SECTION("background analysis") {
    const Strategy s = StrategyOf(
        absl::StrCat(R"({"rolling": {"analysis": {"metrics": [)", Metric("err"), "]}}}"));
    REQUIRE(s.background.metrics.size() == 1);
    CHECK(s.background.metrics[0].count == 0);
  }
}

// ---- ParseStrategy: errors ----

TEST_CASE("deploy spec: strategy shape errors", "[deploy]") {
  CHECK(StrategyErr(R"("canary")") == "strategy: must be an object");
  CHECK(StrategyErr(R"({})") ==
        "strategy: must name exactly one strategy: canary, blue_green or rolling");
  CHECK(StrategyErr(R"({"canary": {"steps": [{"weight": 10}]}, "rolling": {}})") ==
        "strategy: must name exactly one strategy: canary, blue_green or rolling");
  CHECK(StrategyErr(R"({"linear": {}})") ==
        "strategy: unknown strategy 'linear' (expected canary, blue_green or rolling)");
  CHECK(StrategyErr(R"({"canary": []})") == "strategy.canary: must be an object");
  CHECK(StrategyErr(R"({"canary": {"steps": [{"weight": 10}], "batch": 1}})") ==
        "strategy.canary.batch: unknown field (expected steps, analysis, scale_down_delay)");
  CHECK(StrategyErr(R"({"blue_green": {"steps": []}})") ==
        "strategy.blue_green.steps: unknown field (expected pre_promotion_analysis, "
        "post_promotion_analysis, auto_promote, scale_down_delay)");
  CHECK(StrategyErr(R"({"rolling": {"steps": []}})") ==
        "strategy.rolling.steps: unknown field (expected batch, max_unavailable, pause, "
        "analysis, scale_down_delay)");
  CHECK(StrategyErr(R"({"blue_green": {"auto_promote": "yes"}})") ==
        "strategy.blue_green.auto_promote: must be true or false");
  CHECK(StrategyErr(R"({"blue_green": {"scale_down_delay": "31d"}})") ==
        "strategy.blue_green.scale_down_delay: invalid duration \"31d\": expected a number "
        "followed by s, m or h (e.g. 30s, 10m, 1h30m)");
  CHECK(StrategyErr(R"({"blue_green": {"scale_down_delay": -1}})") ==
        "strategy.blue_green.scale_down_delay: must be a duration such as \"30s\", \"10m\" or "
        "\"1h\"");
}

TEST_CASE("deploy spec: canary step errors", "[deploy]") {
  CHECK(StrategyErr(R"({"canary": {}})") == "strategy.canary.steps: is required");
  const std::string kNonEmpty =
      "strategy.canary.steps: must be a non-empty array, e.g. [{\"weight\": 10}, {\"pause\": "
      "\"60s\"}]";
  CHECK(StrategyErr(R"({"canary": {"steps": []}})") == kNonEmpty);
  CHECK(StrategyErr(R"({"canary": {"steps": {"weight": 10}}})") == kNonEmpty);

  std::string steps;
  for (int i = 0; i < kMaxSteps; ++i) absl::StrAppend(&steps, i ? "," : "", R"({"weight": 1})");
  CHECK(StrategyOf(absl::StrCat(R"({"canary": {"steps": [)", steps, "]}}")).steps.size() == 100);
  CHECK(StrategyErr(absl::StrCat(R"({"canary": {"steps": [)", steps, R"(,{"weight": 1}]}})")) ==
        "strategy.canary.steps: has more than 100 steps");

  CHECK(StrategyErr(R"({"canary": {"steps": [{"weight": 10, "pause": "1s"}]}})") ==
        "strategy.canary.steps[0]: must have exactly one of weight, pause, analysis");
  CHECK(StrategyErr(R"({"canary": {"steps": [{}]}})") ==
        "strategy.canary.steps[0]: must have exactly one of weight, pause, analysis");
  CHECK(StrategyErr(R"({"canary": {"steps": [10]}})") ==
        "strategy.canary.steps[0]: must be an object");
  CHECK(StrategyErr(R"({"canary": {"steps": [{"weight": 10}, {"wait": "1s"}]}})") ==
        "strategy.canary.steps[1]: unknown step 'wait' (expected weight, pause or analysis)");

  const std::string kRange = "strategy.canary.steps[0].weight: must be an integer from 0 to 100";
  CHECK(StrategyErr(R"({"canary": {"steps": [{"weight": 101}]}})") == kRange);
  CHECK(StrategyErr(R"({"canary": {"steps": [{"weight": -1}]}})") == kRange);
  CHECK(StrategyErr(R"({"canary": {"steps": [{"weight": 10.5}]}})") == kRange);
  CHECK(StrategyErr(R"({"canary": {"steps": [{"weight": "10"}]}})") == kRange);
  CHECK(StrategyOf(R"({"canary": {"steps": [{"weight": 10.0}]}})").steps[0].weight == 10);
  CHECK(
      StrategyErr(R"({"canary": {"steps": [{"weight": 50}, {"pause": "1s"}, {"weight": 20}]}})") ==
      "strategy.canary.steps[2].weight: must not go down (20 after 50); abort to roll back");
  // The same weight twice is not going down.
  CHECK(StrategyOf(R"({"canary": {"steps": [{"weight": 50}, {"weight": 50}]}})").steps.size() == 2);

  CHECK(StrategyErr(R"({"canary": {"steps": [{"pause": "soon"}]}})") ==
        "strategy.canary.steps[0].pause: invalid duration \"soon\": expected a number followed "
        "by s, m or h (e.g. 30s, 10m, 1h30m)");
  CHECK(StrategyErr(R"({"canary": {"steps": [{"pause": "0s"}]}})") ==
        "strategy.canary.steps[0].pause: must be from 1s to 30 days");
  CHECK(StrategyErr(R"({"canary": {"steps": [{"pause": {"duration": "721h"}}]}})") ==
        "strategy.canary.steps[0].pause.duration: must be from 1s to 30 days");
  CHECK(StrategyErr(R"({"canary": {"steps": [{"pause": {"until": "x"}}]}})") ==
        "strategy.canary.steps[0].pause.until: unknown field (expected duration)");
  CHECK(StrategyErr(R"({"canary": {"steps": [{"pause": true}]}})") ==
        "strategy.canary.steps[0].pause: must be a duration such as \"30s\", \"10m\" or \"1h\"");
}

TEST_CASE("deploy spec: rolling batch and max_unavailable errors", "[deploy]") {
  const std::string kPercent = "strategy.rolling.batch: must be a percentage from 1% to 100%";
  CHECK(StrategyErr(R"({"rolling": {"batch": "0%"}})") == kPercent);
  CHECK(StrategyErr(R"({"rolling": {"batch": "101%"}})") == kPercent);
  CHECK(StrategyErr(R"({"rolling": {"batch": "abc"}})") == kPercent);
  CHECK(StrategyErr(R"({"rolling": {"batch": "%"}})") == kPercent);
  CHECK(StrategyErr(R"({"rolling": {"batch": "25"}})") == kPercent);
  CHECK(StrategyErr(R"({"rolling": {"batch": "-5%"}})") == kPercent);
  CHECK(StrategyErr(R"({"rolling": {"batch": "1000%"}})") == kPercent);
  CHECK(StrategyErr(R"({"rolling": {"batch": 0}})") ==
        "strategy.rolling.batch: must be an integer from 1 to 100");
  CHECK(StrategyErr(R"({"rolling": {"batch": 101}})") ==
        "strategy.rolling.batch: must be an integer from 1 to 100");
  CHECK(StrategyErr(R"({"rolling": {"max_unavailable": 65}})") ==
        "strategy.rolling.max_unavailable: must be an integer from 0 to 64");
  CHECK(StrategyOf(R"({"rolling": {"max_unavailable": 64}})").max_unavailable == 64);
  CHECK(StrategyErr(R"({"rolling": {"pause": "0s"}})") ==
        "strategy.rolling.pause: must be from 1s to 30 days");
}

// ---- ParseAnalysis / metric errors ----

TEST_CASE("deploy spec: analysis metric list errors", "[deploy]") {
  CHECK(AnalysisErr(R"([])") == "analysis: must be an object");
  CHECK(AnalysisErr(R"({"metric": []})") == "analysis.metric: unknown field (expected metrics)");
  CHECK(AnalysisErr(R"({})") == "analysis.metrics: must be a non-empty array of metrics");
  CHECK(AnalysisErr(R"({"metrics": []})") ==
        "analysis.metrics: must be a non-empty array of metrics");

  std::string twenty;
  for (int i = 0; i < kMaxMetrics; ++i) {
    absl::StrAppend(&twenty, i ? "," : "", Metric(absl::StrCat("m", i)));
  }
  absl::StatusOr<AnalysisSpec> ok =
      ParseAnalysis(J(absl::StrCat(R"({"metrics": [)", twenty, "]}")), "analysis");
  REQUIRE(ok.ok());
  CHECK(ok->metrics.size() == 20);
  CHECK(AnalysisErr(absl::StrCat(R"({"metrics": [)", twenty, ",", Metric("m20"), "]}")) ==
        "analysis.metrics: has more than 20 metrics");

  CHECK(AnalysisErr(absl::StrCat(R"({"metrics": [)", Metric("a"), ",", Metric("err"), ",",
                                 Metric("err"), "]}")) ==
        "analysis.metrics[2].name: 'err' is used twice");

  // Inside a canary step, the path says where.
  CHECK(StrategyErr(R"({"canary": {"steps": [{"weight": 5}, {"analysis": {"metrics": []}}]}})") ==
        "strategy.canary.steps[1].analysis.metrics: must be a non-empty array of metrics");
  CHECK(StrategyErr(R"({"canary": {"steps": [{"weight": 5}], "analysis": {"metrics": [1]}}})") ==
        "strategy.canary.analysis.metrics[0]: must be an object");
  CHECK(StrategyErr(R"({"blue_green": {"post_promotion_analysis": {}}})") ==
        "strategy.blue_green.post_promotion_analysis.metrics: must be a non-empty array of "
        "metrics");
}

TEST_CASE("deploy spec: metric name errors", "[deploy]") {
  CHECK(AnalysisErr(OneMetric(Fields(""))) == "analysis.metrics[0].name: is required");
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "bad name", )"))) ==
        "analysis.metrics[0].name: must be 1 to 64 of A-Z a-z 0-9 _ . -");
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "err/rate", )"))) ==
        "analysis.metrics[0].name: must be 1 to 64 of A-Z a-z 0-9 _ . -");
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "", )"))) ==
        "analysis.metrics[0].name: must not be empty");
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": 7, )"))) ==
        "analysis.metrics[0].name: must be a string");
  CHECK(
      AnalysisErr(OneMetric(Fields(absl::StrCat(R"("name": ")", std::string(65, 'a'), "\", ")))) ==
      "analysis.metrics[0].name: is longer than 64 bytes");
  CHECK(ParseAnalysis(
            J(OneMetric(Fields(absl::StrCat(R"("name": ")", std::string(64, 'a'), "\", ")))),
            "analysis")
            .ok());
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "m", "threshold": 1, )"))) ==
        "analysis.metrics[0].threshold: unknown field (expected name, provider, interval, "
        "initial_delay, count, success_condition, failure_condition, failure_limit, "
        "inconclusive_limit, consecutive_error_limit)");
}

TEST_CASE("deploy spec: metric provider errors", "[deploy]") {
  CHECK(AnalysisErr(OneMetric(R"("name": "m", "success_condition": "result < 1")")) ==
        "analysis.metrics[0].provider: is required: {\"prometheus\": {...}} or {\"web\": {...}}");
  CHECK(AnalysisErr(WithProvider(R"({})")) ==
        "analysis.metrics[0].provider: must name exactly one provider: prometheus, web, drift, "
        "mann_whitney or job");
  CHECK(
      AnalysisErr(WithProvider(
          R"({"prometheus": {"address": "http://p", "query": "up"}, "web": {"url": "http://w"}})")) ==
      "analysis.metrics[0].provider: must name exactly one provider: prometheus, web, drift, "
      "mann_whitney or job");
  CHECK(
      AnalysisErr(WithProvider(R"({"datadog": {}})")) ==
      "analysis.metrics[0].provider: unknown provider 'datadog' (expected prometheus, web, drift, "
      "mann_whitney or job)");
  CHECK(AnalysisErr(WithProvider(R"("prometheus")")) ==
        "analysis.metrics[0].provider: must be an object");
  CHECK(AnalysisErr(WithProvider(R"({"prometheus": "http://p"})")) ==
        "analysis.metrics[0].provider.prometheus: must be an object");

  // Prometheus.
  CHECK(AnalysisErr(WithProvider(R"({"prometheus": {"query": "up"}})")) ==
        "analysis.metrics[0].provider.prometheus.address: is required (http://host:9090)");
  CHECK(AnalysisErr(WithProvider(R"({"prometheus": {"address": "http://p"}})")) ==
        "analysis.metrics[0].provider.prometheus.query: is required (a PromQL query)");
  CHECK(AnalysisErr(WithProvider(R"({"prometheus": {"address": "ftp://p", "query": "up"}})")) ==
        "analysis.metrics[0].provider.prometheus.address: must be an http:// or https:// URL");
  CHECK(AnalysisErr(WithProvider(R"({"prometheus": {"address": "prom:9090", "query": "up"}})")) ==
        "analysis.metrics[0].provider.prometheus.address: must be an http:// or https:// URL");
  CHECK(AnalysisErr(WithProvider(R"({"prometheus": {"address": "http://p q", "query": "up"}})")) ==
        "analysis.metrics[0].provider.prometheus.address: must be a URL without spaces or quotes");
  CHECK(AnalysisErr(WithProvider(
            R"({"prometheus": {"address": "http://p", "query": "up", "step": "1m"}})")) ==
        "analysis.metrics[0].provider.prometheus.step: unknown field (expected address, query)");
  const std::string long_query(kMaxQueryBytes + 1, 'x');
  CHECK(AnalysisErr(WithProvider(absl::StrCat(
            R"({"prometheus": {"address": "http://p", "query": ")", long_query, "\"}}"))) ==
        "analysis.metrics[0].provider.prometheus.query: is longer than 4096 bytes");
  CHECK(ParseAnalysis(
            J(WithProvider(absl::StrCat(R"({"prometheus": {"address": "http://p", "query": ")",
                                        std::string(kMaxQueryBytes, 'x'), "\"}}"))),
            "analysis")
            .ok());
  CHECK(AnalysisErr(WithProvider(R"({"prometheus": {"address": "http://p", "query": "up\nx"}})")) ==
        "analysis.metrics[0].provider.prometheus.query: must not contain control characters");
  CHECK(AnalysisErr(
            WithProvider(R"({"prometheus": {"address": "http://p", "query": "up\u007f"}})")) ==
        "analysis.metrics[0].provider.prometheus.query: must not contain control characters");
  CHECK(AnalysisErr(WithProvider(R"({"prometheus": {"address": "http://p", "query": ""}})")) ==
        "analysis.metrics[0].provider.prometheus.query: must not be empty");

  // Web.
  CHECK(AnalysisErr(WithProvider(R"({"web": {"json_path": "a"}})")) ==
        "analysis.metrics[0].provider.web.url: is required");
  CHECK(AnalysisErr(WithProvider(R"({"web": {"url": "file:///etc/passwd"}})")) ==
        "analysis.metrics[0].provider.web.url: must be an http:// or https:// URL");
  CHECK(AnalysisErr(WithProvider(R"({"web": {"url": "http://w", "headers": {}}})")) ==
        "analysis.metrics[0].provider.web.headers: unknown field (expected url, json_path)");
  const std::string kPath =
      "analysis.metrics[0].provider.web.json_path: must be a dotted path of at most 256 bytes";
  CHECK(AnalysisErr(WithProvider(absl::StrCat(R"({"web": {"url": "http://w", "json_path": ")",
                                              std::string(257, 'a'), "\"}}"))) == kPath);
  CHECK(AnalysisErr(WithProvider(R"({"web": {"url": "http://w", "json_path": 1}})")) == kPath);
  absl::StatusOr<AnalysisSpec> ok = ParseAnalysis(
      J(WithProvider(absl::StrCat(R"({"web": {"url": "http://w/{{version}} x", "json_path": ")",
                                  std::string(256, 'a'), "\"}}"))),
      "analysis");
  REQUIRE(ok.ok());
  CHECK(ok->metrics[0].url == "http://w/{{version}} x");  // placeholders may hold anything
  CHECK(ok->metrics[0].json_path.size() == 256);
}

TEST_CASE("deploy spec: metric interval, count, condition and limit errors", "[deploy]") {
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "m", "interval": "0s", )"))) ==
        "analysis.metrics[0].interval: must be from 1s to 30 days");
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "m", "interval": 0, )"))) ==
        "analysis.metrics[0].interval: must be from 1s to 30 days");
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "m", "interval": "721h", )"))) ==
        "analysis.metrics[0].interval: must be from 1s to 30 days");
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "m", "interval": 2592001, )"))) ==
        "analysis.metrics[0].interval: must be a duration such as \"30s\", \"10m\" or \"1h\"");
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "m", "initial_delay": "-1s", )"))) ==
        "analysis.metrics[0].initial_delay: invalid duration \"-1s\": expected a number followed "
        "by s, m or h (e.g. 30s, 10m, 1h30m)");

  // count: 0 is "until the end", allowed in a background analysis only.
  absl::StatusOr<AnalysisSpec> bg =
      ParseAnalysis(J(OneMetric(Fields(R"("name": "m", "count": 0, )"))), "analysis");
  REQUIRE(bg.ok());
  CHECK(bg->metrics[0].count == 0);
  CHECK(StrategyErr(absl::StrCat(R"({"canary": {"steps": [{"analysis": )",
                                 OneMetric(Fields(R"("name": "m", "count": 0, )")), "}]}}")) ==
        "strategy.canary.steps[0].analysis.metrics[0].count: must be an integer from 1 to 1000");
  CHECK(StrategyErr(absl::StrCat(R"({"blue_green": {"pre_promotion_analysis": )",
                                 OneMetric(Fields(R"("name": "m", "count": 0, )")), "}}")) ==
        "strategy.blue_green.pre_promotion_analysis.metrics[0].count: must be an integer from 1 "
        "to 1000");
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "m", "count": 1001, )"))) ==
        "analysis.metrics[0].count: must be an integer from 0 to 1000");

  // A bad condition: the field's path, then the condition's column.
  CHECK(AnalysisErr(OneMetric(R"("name": "m", "provider": {"web": {"url": "http://w"}},
                                 "success_condition": "result <")")) ==
        "analysis.metrics[0].success_condition: column 9: expected a value, got end of "
        "condition");
  CHECK(AnalysisErr(OneMetric(R"("name": "m", "provider": {"web": {"url": "http://w"}},
                                 "failure_condition": "result")")) ==
        "analysis.metrics[0].failure_condition: column 1: the condition must be true or false, "
        "e.g. 'result < 0.02'");
  CHECK(AnalysisErr(OneMetric(R"("name": "m", "provider": {"web": {"url": "http://w"}},
                                 "success_condition": 1)")) ==
        "analysis.metrics[0].success_condition: must be a string, e.g. 'result < 0.02'");
  CHECK(AnalysisErr(OneMetric(R"("name": "m", "provider": {"web": {"url": "http://w"}})")) ==
        "analysis.metrics[0]: needs a success_condition or a failure_condition");

  const std::string kLimit = "analysis.metrics[0].failure_limit: must be an integer from 0 to 1000";
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "m", "failure_limit": -1, )"))) == kLimit);
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "m", "failure_limit": 1001, )"))) == kLimit);
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "m", "failure_limit": "1", )"))) == kLimit);
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "m", "inconclusive_limit": 1.5, )"))) ==
        "analysis.metrics[0].inconclusive_limit: must be an integer from 0 to 1000");
  CHECK(AnalysisErr(OneMetric(Fields(R"("name": "m", "consecutive_error_limit": 5000, )"))) ==
        "analysis.metrics[0].consecutive_error_limit: must be an integer from 0 to 1000");
}

// ---- ParseDurationField ----

TEST_CASE("deploy spec: ParseDurationField", "[deploy]") {
  auto ok = [](std::string_view text, absl::Duration min = absl::Seconds(1)) {
    absl::StatusOr<absl::Duration> d = ParseDurationField(J(text), "d", min);
    INFO(text << " -> " << d.status().ToString());
    REQUIRE(d.ok());
    return *d;
  };
  auto err = [](std::string_view text, absl::Duration min = absl::Seconds(1)) {
    absl::StatusOr<absl::Duration> d = ParseDurationField(J(text), "d", min);
    INFO(text);
    REQUIRE_FALSE(d.ok());
    CHECK(d.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(d.status().message());
  };
  CHECK(ok(R"("30s")") == absl::Seconds(30));
  CHECK(ok("30") == absl::Seconds(30));
  CHECK(ok(R"("30")") == absl::Seconds(30));
  CHECK(ok("30.0") == absl::Seconds(30));
  CHECK(ok(R"("1h30m")") == absl::Minutes(90));
  CHECK(ok(R"("2h5m10s")") == absl::Seconds(2 * 3600 + 5 * 60 + 10));
  CHECK(ok(R"("720h")") == absl::Hours(720));
  CHECK(ok("2592000") == absl::Hours(720));
  CHECK(ok(R"("0s")", absl::ZeroDuration()) == absl::ZeroDuration());
  CHECK(ok(R"("0")", absl::ZeroDuration()) == absl::ZeroDuration());
  CHECK(ok("0", absl::ZeroDuration()) == absl::ZeroDuration());

  CHECK(err(R"("0s")") == "d: must be from 1s to 30 days");
  CHECK(err("0") == "d: must be from 1s to 30 days");
  CHECK(err(R"("5s")", absl::Seconds(10)) == "d: must be from 10s to 30 days");
  CHECK(err(R"("721h")", absl::ZeroDuration()) == "d: must be from 0 to 30 days");
  CHECK(err("-5") == "d: must be a duration such as \"30s\", \"10m\" or \"1h\"");
  CHECK(err("1.5") == "d: must be a duration such as \"30s\", \"10m\" or \"1h\"");
  CHECK(err("2592001") == "d: must be a duration such as \"30s\", \"10m\" or \"1h\"");
  CHECK(err("null") == "d: must be a duration such as \"30s\", \"10m\" or \"1h\"");
  CHECK(err(R"("10x")") ==
        "d: invalid duration \"10x\": expected a number followed by s, m or h (e.g. 30s, 10m, "
        "1h30m)");
  CHECK(err(R"("")") ==
        "d: invalid duration \"\": expected a number followed by s, m or h (e.g. 30s, 10m, "
        "1h30m)");
  CHECK(err(R"("30m1h")") ==
        "d: invalid duration \"30m1h\": units must appear in the order h, m, s, each at most once");
  CHECK(err(R"("99999999999999999999s")") ==
        "d: invalid duration \"99999999999999999999s\": too large");
  CHECK(err(R"("2562047788015203h")") == "d: must be from 1s to 30 days");
}

// The header: a duration "within [min, 30 days]". With min 0, a zero written with another unit
// is as much a zero as "0s", which is accepted.
TEST_CASE("deploy spec: ParseDurationField takes any spelling of zero when min is 0", "[deploy]") {
  for (const char* zero : {R"("0m")", R"("0h")", R"("0h0m0s")"}) {
    absl::StatusOr<absl::Duration> d = ParseDurationField(J(zero), "d", absl::ZeroDuration());
    INFO(zero << " -> " << d.status().ToString());
    REQUIRE(d.ok());
    CHECK(*d == absl::ZeroDuration());
  }
}

// ---- Substitute ----

TEST_CASE("deploy spec: Substitute replaces the four placeholders", "[deploy]") {
  const Placeholders p{"7", "6", "production", "42"};
  CHECK(Substitute("v={{version}} prev={{previous_version}} env={{environment}} "
                   "d={{deployment}}",
                   p) == "v=7 prev=6 env=production d=42");
  CHECK(Substitute("{{version}}{{version}}-{{version}}", p) == "77-7");
  CHECK(Substitute("rate(http_requests_total[5m])", p) == "rate(http_requests_total[5m])");
  CHECK(Substitute("", p) == "");
  CHECK(Substitute("{{ version }} {{Version}} {version} {{unknown}}", p) ==
        "{{ version }} {{Version}} {version} {{unknown}}");
  // A replacement is not scanned again: a value cannot smuggle in another placeholder.
  const Placeholders q{"{{environment}}", "", "prod", ""};
  CHECK(Substitute("{{version}}/{{environment}}", q) == "{{environment}}/prod");
  CHECK(Substitute("{{previous_version}}|", Placeholders{}) == "|");
}

// ---- SplitWeights ----

TEST_CASE("deploy spec: SplitWeights", "[deploy]") {
  auto split = [](int w, int n, int o) {
    const ServerWeights s = SplitWeights(w, n, o);
    return std::vector<int>{s.new_each, s.old_each};
  };
  // One server a side: 256 shared by percent.
  CHECK(split(0, 1, 1) == std::vector<int>{0, 256});
  CHECK(split(100, 1, 1) == std::vector<int>{256, 0});
  CHECK(split(10, 1, 1) == std::vector<int>{26, 230});
  CHECK(split(20, 1, 1) == std::vector<int>{51, 205});
  CHECK(split(50, 1, 1) == std::vector<int>{128, 128});
  // Per server, so that each side's total holds the share: 2*64 vs 1*128 is 50%.
  CHECK(split(50, 2, 1) == std::vector<int>{64, 128});
  CHECK(split(50, 1, 2) == std::vector<int>{128, 64});
  CHECK(split(25, 2, 3) == std::vector<int>{64, 128});  // 2*64=128 of 512: 25%
  CHECK(split(50, 4, 4) == std::vector<int>{128, 128});
  CHECK(split(100, 64, 1) == std::vector<int>{4, 0});
  CHECK(split(50, 64, 64) == std::vector<int>{128, 128});
  // A side with a share > 0 never gets 0, even when its exact share rounds to 0.
  CHECK(split(1, 64, 1) == std::vector<int>{1, 253});
  CHECK(split(99, 1, 64) == std::vector<int>{253, 1});
  for (int w = 0; w <= 100; ++w) {
    for (int n : {1, 2, 3, 7, 64}) {
      for (int o : {1, 2, 5, 64}) {
        const ServerWeights s = SplitWeights(w, n, o);
        INFO("weight " << w << " new " << n << " old " << o);
        CHECK(s.new_each >= (w > 0 ? 1 : 0));
        CHECK(s.new_each <= (w > 0 ? 256 : 0));
        CHECK(s.old_each >= (w < 100 ? 1 : 0));
        CHECK(s.old_each <= (w < 100 ? 256 : 0));
      }
    }
  }
  // Only new servers, or only old ones.
  CHECK(split(50, 3, 0) == std::vector<int>{100, 0});
  CHECK(split(100, 3, 0) == std::vector<int>{100, 0});
  CHECK(split(0, 3, 0) == std::vector<int>{0, 0});
  CHECK(split(50, 0, 3) == std::vector<int>{0, 100});
  CHECK(split(0, 0, 3) == std::vector<int>{0, 100});
  CHECK(split(100, 0, 3) == std::vector<int>{0, 0});
  CHECK(split(50, 0, 0) == std::vector<int>{0, 0});
  CHECK(split(50, -1, -1) == std::vector<int>{0, 0});
  // The weight is clamped to 0..100.
  CHECK(split(-5, 1, 1) == std::vector<int>{0, 256});
  CHECK(split(150, 1, 1) == std::vector<int>{256, 0});
}

TEST_CASE("deploy spec: an image by digest, for the API, the deploy step and kubernetes",
          "[deploy]") {
  const std::string hex(64, 'a');
  CHECK(ImageByDigest("registry.example.com:5000/acme/app@sha256:" + hex));
  CHECK_FALSE(ImageByDigest("@sha256:" + hex));                          // no name
  CHECK_FALSE(ImageByDigest("app:latest"));                              // a tag
  CHECK_FALSE(ImageByDigest("app@sha256:" + std::string(63, 'a')));      // short
  CHECK_FALSE(ImageByDigest("app@sha256:" + std::string(64, 'A')));      // not lowercase hex
  CHECK_FALSE(ImageByDigest("app@sha256:" + hex + "0"));                 // long
  CHECK_FALSE(ImageByDigest("a pp@sha256:" + hex));                      // a space
  CHECK_FALSE(ImageByDigest("a\"pp@sha256:" + hex));                     // a quote
  CHECK_FALSE(ImageByDigest("a\\pp@sha256:" + hex));                     // a backslash
  CHECK_FALSE(ImageByDigest("a\npp@sha256:" + hex));                     // a control character
  CHECK_FALSE(ImageByDigest(std::string(440, 'a') + "@sha256:" + hex));  // 512 bytes
  CHECK(ImageByDigest(std::string(439, 'a') + "@sha256:" + hex));        // 511
}

}  // namespace
TEST_CASE("deploy spec: a job metric runs a deploy hook and passes on exit 0", "[deploy]") {
  auto a = ParseAnalysis(
      json::parse(R"({"metrics": [{"name": "smoke", "provider": {"job": {"command": ["smoke-test",
        "--version", "{{version}}"], "timeout": "20s"}}}]})"),
      "analysis");
  REQUIRE(a.ok());
  const MetricSpec& m = a->metrics[0];
  CHECK(m.provider == ProviderKind::kJob);
  CHECK(m.command == std::vector<std::string>{"smoke-test", "--version", "{{version}}"});
  CHECK(m.job_timeout == absl::Seconds(20));
  REQUIRE(m.success.has_value());
  CHECK(!m.failure.has_value());
  std::string why;
  CHECK(Judge(m.success, m.failure, {1}, &why) == Phase::kSuccessful);
  CHECK(Judge(m.success, m.failure, {0}, &why) == Phase::kFailed);

  auto defaults = ParseAnalysis(
      json::parse(R"({"metrics": [{"name": "s", "provider": {"job": {"command": ["s"]}}}]})"),
      "analysis");
  REQUIRE(defaults.ok());
  CHECK(defaults->metrics[0].job_timeout == absl::Seconds(30));
}

TEST_CASE("deploy spec: a job metric's command names a hook, never a path", "[deploy]") {
  auto err = [](const std::string& job) {
    auto a = ParseAnalysis(json::parse(absl::StrCat(
                               R"({"metrics": [{"name": "s", "provider": {"job": )", job, "}}]}")),
                           "analysis");
    return a.ok() ? std::string("ok") : std::string(a.status().message());
  };
  const std::string at = "analysis.metrics[0].provider.job";
  CHECK(err(R"({})") == at + ".command: is required");
  CHECK(err(R"({"command": []})") ==
        at + ".command: must be a list: a program of the server's deploy hooks directory, then "
             "its arguments, e.g. [\"switch-traffic\", \"--env\", \"{{environment}}\"]");
  const std::string not_a_path =
      ": must name a program of the server's deploy hooks directory: 1 to 64 of A-Z a-z 0-9 _ . "
      "- (not a path, not starting with '.')";
  CHECK(err(R"({"command": ["/bin/sh", "-c", "id"]})") == at + ".command[0]" + not_a_path);
  CHECK(err(R"({"command": ["../../bin/sh"]})") == at + ".command[0]" + not_a_path);
  CHECK(err(R"({"command": [".hidden"]})") == at + ".command[0]" + not_a_path);
  CHECK(err(R"({"command": ["a b"]})") == at + ".command[0]" + not_a_path);
  CHECK(err(R"({"command": ["ok", 3]})") == at + ".command[1]: must be a string");
  CHECK(err(R"({"command": ["ok", "a\nb"]})") ==
        at + ".command[1]: must not contain control characters");
  CHECK(err(absl::StrCat(R"({"command": ["ok", ")", std::string(1025, 'x'), R"("]})")) ==
        at + ".command[1]: is longer than 1024 bytes");
  std::string many = R"({"command": ["ok")";
  for (int i = 0; i < 33; ++i) many += R"(, "a")";
  CHECK(err(many + "]}") == at + ".command: has more than 32 arguments");
  CHECK(err(R"({"command": ["ok"], "timeout": "61s"})") ==
        at + ".timeout: must be at most 60s: the controller waits for it; a longer check belongs "
             "in a pipeline job before the deploy");
  CHECK(err(R"({"command": ["ok"], "shell": true})") ==
        at + ".shell: unknown field (expected command, timeout)");
}

}  // namespace assay::deploy
