#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/net/address_policy.h"
#include "server/deploy/analysis.h"

namespace assay::deploy {
namespace {

const double kInf = std::numeric_limits<double>::infinity();

std::vector<double> Prom(int http_status, const std::string& body) {
  absl::StatusOr<std::vector<double>> v = ParsePrometheusAnswer(http_status, body);
  INFO(body.substr(0, 200) << " -> " << v.status().ToString());
  REQUIRE(v.ok());
  return *std::move(v);
}

absl::Status PromErr(int http_status, const std::string& body) {
  absl::StatusOr<std::vector<double>> v = ParsePrometheusAnswer(http_status, body);
  INFO(body.substr(0, 200));
  REQUIRE_FALSE(v.ok());
  return v.status();
}

std::vector<double> Web(const std::string& body, const std::string& path) {
  absl::StatusOr<std::vector<double>> v = ParseWebAnswer(body, path);
  INFO(body.substr(0, 200) << " at '" << path << "' -> " << v.status().ToString());
  REQUIRE(v.ok());
  return *std::move(v);
}

// The kFailedPrecondition message of ParseWebAnswer.
std::string WebErr(const std::string& body, const std::string& path) {
  absl::StatusOr<std::vector<double>> v = ParseWebAnswer(body, path);
  INFO(body.substr(0, 200) << " at '" << path << "'");
  REQUIRE_FALSE(v.ok());
  CHECK(v.status().code() == absl::StatusCode::kFailedPrecondition);
  return std::string(v.status().message());
}

std::string Vector(const std::string& series) {
  return absl::StrCat(R"({"status": "success", "data": {"resultType": "vector", "result": [)",
                      series, "]}}");
}

std::string Series(const std::string& value) {
  return absl::StrCat(R"({"metric": {"pod": "a"}, "value": [1700000000.123, )", value, "]}");
}

std::string Nested(int depth, const std::string& inner) {
  std::string s;
  for (int i = 0; i < depth; ++i) s += "[";
  s += inner;
  for (int i = 0; i < depth; ++i) s += "]";
  return s;
}

// ---- ParsePrometheusAnswer ----

TEST_CASE("deploy analysis: prometheus vectors and scalars", "[deploy]") {
  const std::vector<double> v =
      Prom(200, Vector(absl::StrCat(Series(R"("0.02")"), ",", Series(R"("NaN")"))));
  REQUIRE(v.size() == 2);
  CHECK(v[0] == 0.02);
  CHECK(std::isnan(v[1]));

  CHECK(Prom(200, R"({"status": "success", "data": {"resultType": "scalar",
                      "result": [1700000000.1, "3.5"]}})") == std::vector<double>{3.5});
  CHECK(Prom(200, Vector("")).empty());  // an empty vector: no data
  CHECK(Prom(200, Vector(absl::StrCat(Series(R"("+Inf")"), ",", Series(R"("-Inf")"), ",",
                                      Series(R"("Inf")")))) ==
        std::vector<double>{kInf, -kInf, kInf});
  CHECK(Prom(200, Vector(Series(R"("1e3")"))) == std::vector<double>{1000});
  CHECK(Prom(200, Vector(Series("7"))) == std::vector<double>{7});  // a number is taken too
}

TEST_CASE("deploy analysis: prometheus answers that are refused", "[deploy]") {
  SECTION("a matrix") {
    const absl::Status s = PromErr(200, R"({"status": "success", "data": {"resultType": "matrix",
        "result": [{"metric": {}, "values": [[1, "1"], [2, "2"]]}]}})");
    CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(s.message() ==
          "prometheus: the query gives a matrix; an analysis needs an instant vector or a scalar");
  }
  SECTION("prometheus's own error, with HTTP 400 or 200") {
    const std::string body =
        R"({"status": "error", "errorType": "bad_data", "error": "parse error"})";
    for (int http : {400, 200, 422}) {
      const absl::Status s = PromErr(http, body);
      CHECK(s.code() == absl::StatusCode::kInvalidArgument);
      CHECK(s.message() == "prometheus refused the query (bad_data): parse error");
    }
    CHECK(PromErr(400, R"({"status": "error"})").message() == "prometheus refused the query (): ");
  }
  SECTION("HTTP 503 with a body that is not JSON") {
    const absl::Status s = PromErr(503, "Service Unavailable\n");
    CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(s.message() == "prometheus answered HTTP 503: Service Unavailable ");
  }
  SECTION("a long answer is cut at 200 bytes, never inside a character") {
    // 199 ASCII bytes, then "é" (2 bytes) and "€" (3): the cut falls inside "é".
    const std::string body = std::string(199, 'x') + "\xC3\xA9\xE2\x82\xAC tail";
    CHECK(PromErr(503, body).message() ==
          absl::StrCat("prometheus answered HTTP 503: ", std::string(199, 'x')));
    // 198 bytes and "é": whole at 200, kept.
    CHECK(PromErr(503, std::string(198, 'x') + "\xC3\xA9 tail").message() ==
          absl::StrCat("prometheus answered HTTP 503: ", std::string(198, 'x'), "\xC3\xA9"));
    // Inside "€" at 200 (198 + 2 of its 3 bytes): dropped whole.
    CHECK(PromErr(503, std::string(198, 'x') + "\xE2\x82\xAC").message() ==
          absl::StrCat("prometheus answered HTTP 503: ", std::string(198, 'x')));
  }
  SECTION("HTTP 502 with JSON that is not an error") {
    const absl::Status s = PromErr(502, Vector(""));
    CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(s.message() == absl::StrCat("prometheus answered HTTP 502: ", Vector("")));
  }
  SECTION("not JSON at 200") {
    const absl::Status s = PromErr(200, "<html>hi</html>");
    CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(s.message() == "prometheus: the answer is not JSON (syntax error): <html>hi</html>");
  }
  SECTION("JSON of the wrong shape") {
    CHECK(PromErr(200, "[1]").message() == "prometheus: the answer is not an object");
    CHECK(PromErr(200, R"({"status": "success"})").message() ==
          "prometheus: the answer has no 'data'");
    CHECK(PromErr(200, R"({"data": {"result": []}})").message() ==
          "prometheus: the answer has no resultType or result");
    CHECK(PromErr(200, R"({"data": {"resultType": "vector", "result": {}}})").message() ==
          "prometheus: result is not a list");
    CHECK(PromErr(200, Vector(R"({"metric": {}})")).message() ==
          "prometheus: a series has no value");
    CHECK(PromErr(200, Vector("1")).message() == "prometheus: a series has no value");
  }
  SECTION("a sample that is not [t, v]") {
    for (const char* bad :
         {R"({"metric": {}, "value": ["0.1"]})", R"({"metric": {}, "value": [1, "0.1", 2]})",
          R"({"metric": {}, "value": "0.1"})"}) {
      const absl::Status s = PromErr(200, Vector(bad));
      CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
      CHECK(s.message() == "prometheus: a sample is not [time, value]");
    }
    CHECK(PromErr(200, R"({"data": {"resultType": "scalar", "result": "1"}})").message() ==
          "prometheus: a sample is not [time, value]");
    CHECK(PromErr(200, Vector(Series(R"("fast")"))).message() ==
          "prometheus: a sample value is not a number");
    CHECK(PromErr(200, Vector(Series("null"))).message() ==
          "prometheus: a sample value is not a number");
  }
}

TEST_CASE("deploy analysis: prometheus answer limits", "[deploy]") {
  SECTION("more than 10,000 series: the first 10,000 are kept") {
    std::string series;
    for (int i = 0; i < 10005; ++i) {
      absl::StrAppend(&series, i ? "," : "", R"({"metric": {}, "value": [1, ")", i, "\"]}");
    }
    const std::vector<double> v = Prom(200, Vector(series));
    REQUIRE(v.size() == 10000);
    CHECK(v.front() == 0);
    CHECK(v.back() == 9999);
  }
  SECTION("a sample past 10,000 is still checked") {
    std::string series;
    for (int i = 0; i < 10000; ++i) absl::StrAppend(&series, Series(R"("1")"), ",");
    absl::StrAppend(&series, Series(R"("x")"));
    CHECK(PromErr(200, Vector(series)).message() == "prometheus: a sample value is not a number");
  }
  SECTION("JSON nested deeper than 64 levels is refused, however deep") {
    CHECK(Prom(200, absl::StrCat(R"({"data": {"resultType": "scalar", "result": [1, "2"]}, "x": )",
                                 Nested(62, "1"), "}")) == std::vector<double>{2});
    for (int depth : {65, 100000}) {
      const std::string body = Nested(depth, "1");
      const absl::Status s = PromErr(200, body);
      CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
      // The first 120 bytes of the answer follow the reason.
      CHECK(s.message() ==
            absl::StrCat("prometheus: the answer is not JSON (too deep): ", body.substr(0, 120)));
    }
  }
  SECTION("an answer over 16 MiB is refused unread") {
    const std::string big = Vector(std::string(16 << 20, ' '));
    const absl::Status s = PromErr(200, big);
    CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(s.message() == "prometheus: the answer is larger than 16777216 bytes");
  }
}

// ---- ParseWebAnswer ----

TEST_CASE("deploy analysis: web answers by json_path", "[deploy]") {
  CHECK(Web(R"({"data": {"error_rate": 0.01}})", "data.error_rate") == std::vector<double>{0.01});
  CHECK(Web(R"({"data": {"p": [1, 2.5, -3]}})", "data.p") == std::vector<double>{1, 2.5, -3});
  CHECK(Web(R"({"items": [{"value": 1}, {"value": 2}]})", "items.1.value") ==
        std::vector<double>{2});
  CHECK(Web(R"({"items": [[10, 20], [30]]})", "items.0.1") == std::vector<double>{20});
  CHECK(Web(R"({"1": {"x": 4}})", "1.x") == std::vector<double>{4});  // a key that is a number
  CHECK(Web(R"({"data": {"error_rate": null}})", "data.error_rate").empty());  // no data
  CHECK(Web(R"({"data": [null, 1, null]})", "data") == std::vector<double>{1});
  CHECK(Web(R"({"data": []})", "data").empty());
  CHECK(Web(R"({"data": {"error_rate": "0.5"}})", "data.error_rate") == std::vector<double>{0.5});
  CHECK(Web(R"({"v": "NaN"})", "v").size() == 1);
  CHECK(std::isnan(Web(R"({"v": "NaN"})", "v")[0]));
  CHECK(Web(R"({"v": ["+Inf", "-Inf"]})", "v") == std::vector<double>{kInf, -kInf});
  // "": the whole answer.
  CHECK(Web("0.25", "") == std::vector<double>{0.25});
  CHECK(Web("[1, 2, 3]", "") == std::vector<double>{1, 2, 3});
  CHECK(Web("null", "").empty());

  std::string many = "[";
  for (int i = 0; i < 10003; ++i) absl::StrAppend(&many, i ? "," : "", i);
  many += "]";
  const std::vector<double> kept = Web(many, "");
  REQUIRE(kept.size() == 10000);
  CHECK(kept.back() == 9999);
}

TEST_CASE("deploy analysis: web answers that are refused", "[deploy]") {
  CHECK(WebErr(R"({"items": [{"value": 1}]})", "items.3.value") ==
        "web: 'items.3.value': index 3 is past the end");
  CHECK(WebErr(R"({"data": {}})", "data.error_rate") ==
        "web: the answer has nothing at 'data.error_rate' ('error_rate')");
  CHECK(WebErr(R"({"data": 1})", "data.x") == "web: the answer has nothing at 'data.x' ('x')");
  CHECK(WebErr(R"({"items": [1]})", "items.first") ==
        "web: the answer has nothing at 'items.first' ('first')");
  CHECK(WebErr(R"({"items": [1]})", "items.-1") ==
        "web: the answer has nothing at 'items.-1' ('-1')");
  CHECK(WebErr(R"({"data": {"error_rate": "low"}})", "data.error_rate") ==
        "web: the value at 'data.error_rate' is not a number");
  CHECK(WebErr(R"({"data": {"error_rate": true}})", "data.error_rate") ==
        "web: the value at 'data.error_rate' is not a number");
  CHECK(WebErr(R"({"data": {"error_rate": {"v": 1}}})", "data.error_rate") ==
        "web: the value at 'data.error_rate' is not a number");
  CHECK(WebErr(R"({"data": [1, "x"]})", "data") == "web: the value at 'data' is not a number");
  CHECK(WebErr(R"({"data": [[1]]})", "data") == "web: the value at 'data' is not a number");
  CHECK(WebErr(R"({"a": 1})", "") == "web: the value at '' is not a number");
  CHECK(WebErr("not json", "a") == "web: the answer is not JSON (syntax error): not json");
  CHECK(WebErr(Nested(100000, ""), "a") ==
        absl::StrCat("web: the answer is not JSON (too deep): ", std::string(120, '[')));
}

// ---- QueryEscape ----

TEST_CASE("deploy analysis: QueryEscape", "[deploy]") {
  CHECK(QueryEscape("") == "");
  CHECK(QueryEscape("AZaz09-_.~") == "AZaz09-_.~");
  CHECK(QueryEscape("a b") == "a%20b");
  CHECK(QueryEscape("+&=/?#%") == "%2B%26%3D%2F%3F%23%25");
  CHECK(QueryEscape(R"(sum(rate(x{job="a"}[5m])))") ==
        "sum%28rate%28x%7Bjob%3D%22a%22%7D%5B5m%5D%29%29");
  CHECK(QueryEscape("\xc3\xa9t\xc3\xa9") == "%C3%A9t%C3%A9");  // "été" in UTF-8
  CHECK(QueryEscape(std::string("\0\n\x7f\xff", 4)) == "%00%0A%7F%FF");
}

// ---- Measure: a provider that cannot be reached ----

MetricSpec PromMetric(const std::string& address, const std::string& query) {
  MetricSpec m;
  m.name = "err";
  m.provider = ProviderKind::kPrometheus;
  m.address = address;
  m.query = query;
  m.success = *Condition::Parse("result < 0.02");
  return m;
}

TEST_CASE("deploy analysis: Measure names the address a provider cannot be reached at",
          "[deploy]") {
  const Placeholders p{"7", "6", "production", "42"};
  SECTION("prometheus, connection refused") {
    // Port 1 on loopback: refused at once, no network needed. The trailing '/' is dropped
    // from the URL, and the query is substituted and escaped.
    const Measurement m = Measure(PromMetric("http://127.0.0.1:1/", R"(up{v="{{version}}"})"), p,
                                  Providers{nullptr, absl::Seconds(5)});
    CHECK(m.phase == Phase::kError);
    CHECK(m.values.empty());
    CHECK(m.message ==
          "prometheus at http://127.0.0.1:1/: GET "
          "http://127.0.0.1:1/api/v1/query?query=up%7Bv%3D%227%22%7D: cannot connect to "
          "127.0.0.1:1: Connection refused");
    absl::StatusOr<std::vector<double>> f =
        Fetch(PromMetric("http://127.0.0.1:1", "up"), p, Providers{nullptr, absl::Seconds(5)});
    REQUIRE_FALSE(f.ok());
    CHECK(f.status().code() == absl::StatusCode::kUnavailable);
  }
  SECTION("web, connection refused") {
    MetricSpec metric = PromMetric("", "");
    metric.provider = ProviderKind::kWeb;
    metric.url = "http://127.0.0.1:1/metrics/{{deployment}}";
    metric.json_path = "a";
    const Measurement m = Measure(metric, p, Providers{nullptr, absl::Seconds(5)});
    CHECK(m.phase == Phase::kError);
    CHECK(m.message ==
          "GET http://127.0.0.1:1/metrics/42: cannot connect to 127.0.0.1:1: Connection refused");
  }
  SECTION("an address the policy refuses is never connected to") {
    absl::StatusOr<AddressPolicy> policy = AddressPolicy::Parse("");
    REQUIRE(policy.ok());
    absl::StatusOr<std::vector<double>> f =
        Fetch(PromMetric("http://127.0.0.1:1", "up"), p, Providers{&*policy, absl::Seconds(5)});
    REQUIRE_FALSE(f.ok());
    CHECK(f.status().code() == absl::StatusCode::kPermissionDenied);
    CHECK(f.status().message() ==
          "prometheus at http://127.0.0.1:1: GET http://127.0.0.1:1/api/v1/query?query=up: plain "
          "http:// to '127.0.0.1' is refused: use https://, or allow the host with "
          "--allow-private-hosts");
  }
}

// https:// providers are fetched over TLS (verified against the system's CAs): a refused
// connection is an error naming the address, as for http.
TEST_CASE("deploy analysis: an https provider is fetched over TLS", "[deploy]") {
  const Measurement m = Measure(PromMetric("https://127.0.0.1:1", "up"), Placeholders{},
                                Providers{nullptr, absl::Seconds(5)});
  CHECK(m.phase == Phase::kError);
  CHECK(m.message ==
        "prometheus at https://127.0.0.1:1: GET https://127.0.0.1:1/api/v1/query?query=up: "
        "cannot connect to 127.0.0.1:1: Connection refused");
  absl::StatusOr<std::vector<double>> f =
      Fetch(PromMetric("https://127.0.0.1:1", "up"), Placeholders{},
            Providers{nullptr, absl::Seconds(5)});
  REQUIRE_FALSE(f.ok());
  CHECK(f.status().code() == absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace assay::deploy
