// Ingest of lm-evaluation-harness results and JUnit XML (common/evals/data/ingest.h), and the
// XML reader under the latter (common/evals/data/xml_reader.h).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/evals/data/ingest.h"
#include "common/evals/data/xml_reader.h"
#include "tests/unit/fixture.h"

namespace assay::evals {
namespace {

std::string LmError(std::string_view json, const LmEvalLimits& limits = {}) {
  absl::StatusOr<std::vector<IngestedMetric>> r = ParseLmEvalResults(json, "results.json", limits);
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

std::string JunitError(std::string_view xml, const JunitLimits& limits = {}) {
  absl::StatusOr<JunitReport> r = ParseJunitXml(xml, "junit.xml", limits);
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

IngestedMetric M(std::string task, std::string metric, double value,
                 std::optional<double> stderr_value, std::string alias, bool group) {
  return IngestedMetric{task, metric, "none", value, stderr_value, alias, group};
}

TEST_CASE("ParseLmEvalResults reads every metric of the lm-evaluation-harness example") {
  const std::string json =
      assay::testing::ReadFixture("tests/fixtures/metrics/lm_eval_results_example.json");
  absl::StatusOr<std::vector<IngestedMetric>> r = ParseLmEvalResults(json, "results.json");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  // The numbers are the fixture's, read back exactly (the same decimal text parsed twice).
  const std::vector<IngestedMetric> expected = {
      M("regression_arc", "acc", 0.15, std::nullopt, "regression_arc", true),
      M("regression_arc", "acc_norm", 0.05, std::nullopt, "regression_arc", true),
      M("arc_challenge", "acc", 0.0, std::nullopt, "arc_challenge", false),
      M("arc_challenge", "acc_norm", 0.0, std::nullopt, "arc_challenge", false),
      M("arc_easy", "acc", 0.3, std::nullopt, "arc_easy", false),
      M("arc_easy", "acc_norm", 0.1, std::nullopt, "arc_easy", false),
      M("lambada_openai", "acc", 0.1, std::nullopt, "lambada_openai", false),
      M("lambada_openai", "perplexity", 605.5452047779999, std::nullopt, "lambada_openai", false),
      M("mmlu_abstract_algebra", "acc", 0.34, 0.047609522856952344, "abstract_algebra", false),
  };
  REQUIRE(r->size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO(expected[i].task << " " << expected[i].metric);
    CHECK((*r)[i] == expected[i]);
  }
}

TEST_CASE("ParseLmEvalResults: filters, N/A, Python's NaN and the keys that are not metrics") {
  const std::string json = R"({"results": {"gsm8k": {
      "alias": " - gsm8k", "samples": 1319,
      "exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.0119,
      "exact_match,flexible-extract": 0.5, "exact_match_stderr,flexible-extract": NaN,
      "bleu,none": " ", "bleu_stderr,none": "N/A",
      "ter,none": -Infinity, "chrf,none": null, "f1,none": Infinity,
      "note": {"x": [1, "a,b"]}, "text": "NaN, in a string"}}})";
  absl::StatusOr<std::vector<IngestedMetric>> r = ParseLmEvalResults(json, "results.json");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(r->size() == 2);
  CHECK((*r)[0] ==
        IngestedMetric{"gsm8k", "exact_match", "strict-match", 0.25, 0.0119, " - gsm8k", false});
  CHECK((*r)[1] == IngestedMetric{"gsm8k", "exact_match", "flexible-extract", 0.5, std::nullopt,
                                  " - gsm8k", false});
}

TEST_CASE("ParseLmEvalResults names what is wrong") {
  CHECK(LmError("[]") == "results.json: must be a JSON object with \"results\"");
  CHECK(LmError("{}") == "results.json: key \"results\" is missing");
  CHECK(LmError(R"({"results": []})") == "results.json: key \"results\": must be an object");
  CHECK(LmError(R"({"results": {"arc": 1}})") ==
        "results.json: key \"results.arc\": must be an object");
  CHECK(LmError(R"({"results": {"arc": {"acc,none": true}}})") ==
        "results.json: key \"results.arc.acc,none\": must be a number, a string (\"N/A\") or "
        "null");
  CHECK(LmError(R"({"results": {"arc": {",none": 1}}})") ==
        "results.json: key \"results.arc.,none\": no metric name");
  CHECK(LmError(R"({"results": {"arc": {"acc,none": 1, "acc,none": 2}}})") ==
        "results.json: duplicate key \"acc,none\"");
  CHECK(LmError(R"({"results": {"arc": {"acc,none": 1}})") ==
        "results.json: not JSON: incomplete JSON at column 37");
  LmEvalLimits small;
  small.max_bytes = 10;
  CHECK(LmError(R"({"results": {}})", small) ==
        "results.json: 15 bytes is over the limit of 10 bytes (max_bytes)");
  LmEvalLimits few;
  few.max_metrics = 1;
  CHECK(LmError(R"({"results": {"a": {"x,none": 1, "y,none": 2}}})", few) ==
        "results.json: more than 1 metrics (max_metrics)");
  LmEvalLimits shallow;
  shallow.max_depth = 3;
  CHECK(LmError(R"({"results": {"a": {"x": [1]}}})", shallow) ==
        "results.json: nested deeper than 3 levels (max_depth)");
}

TEST_CASE("ParseJunitXml reads pytest's --junitxml output (xunit2)") {
  const std::string xml = assay::testing::ReadFixture("tests/fixtures/junit/pytest_junit.xml");
  absl::StatusOr<JunitReport> r = ParseJunitXml(xml, "pytest_junit.xml");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->tests == 8);
  CHECK(r->failures == 2);
  CHECK(r->errors == 1);
  CHECK(r->skipped == 2);
  REQUIRE(r->cases.size() == 8);
  const std::vector<std::pair<std::string, std::string>> names_status = {
      {"test_passes", "passed"},
      {"test_fails", "failed"},
      {"test_errors_in_setup", "error"},
      {"test_skipped", "skipped"},
      {"test_xfail", "skipped"},
      {"test_param[a<b]", "passed"},
      {"test_param[say \"hi\"]", "failed"},
      {"test_param[caf\\xe9 \\u2713]", "passed"},
  };
  for (size_t i = 0; i < names_status.size(); ++i) {
    INFO(i);
    CHECK(r->cases[i].suite == "pytest");
    CHECK(r->cases[i].classname == "test_sample");
    CHECK(r->cases[i].name == names_status[i].first);
    CHECK(r->cases[i].status == names_status[i].second);
    CHECK(r->cases[i].time_s == 0);
  }
  CHECK(r->cases[1].message ==
        "AssertionError: capitals differ\nassert 'Paris' == 'paris'\n  - paris\n  ? ^\n"
        "  + Paris\n  ? ^");
  CHECK(r->cases[1].details.rfind("def test_fails():\n>       assert \"Paris\"", 0) == 0);
  CHECK(r->cases[1].details.size() > 40);
  CHECK(r->cases[1].details.substr(r->cases[1].details.size() - 33) ==
        "test_sample.py:11: AssertionError");
  CHECK(r->cases[2].message ==
        "failed on setup with \"RuntimeError: fixture <setup> failed & stopped\"");
  CHECK(r->cases[3].message == "no GPU here");
  CHECK(r->cases[3].details == "/tmp/junitgen/test_sample.py:24: no GPU here");
  CHECK(r->cases[4].message == "known bug #12");
  CHECK(r->cases[4].details.empty());
  CHECK(r->cases[0].message.empty());
}

TEST_CASE("ParseJunitXml reads pytest's xunit1 output with system-out") {
  const std::string xml =
      assay::testing::ReadFixture("tests/fixtures/junit/pytest_junit_xunit1.xml");
  absl::StatusOr<JunitReport> r = ParseJunitXml(xml, "pytest_junit_xunit1.xml");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->tests == 8);
  CHECK(r->failures == 2);
  CHECK(r->errors == 1);
  CHECK(r->skipped == 2);
  CHECK(r->cases[0].suite == "sample");
  CHECK(r->cases[0].status == "passed");
  CHECK(r->cases[0].details.empty());  // <system-out> is not an outcome.
}

TEST_CASE("ParseJunitXml: a lone testsuite, nested suites, times, error over failure") {
  const std::string xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<!-- written by hand in Surefire's shape -->
<testsuite name="outer" tests="4">
  <properties><property name="java.version" value="17"/></properties>
  <testcase classname="a.B" name="ok" time="1,234.5"/>
  <testsuite name="inner">
    <testcase classname="a.C" name="both" time="0.25">
      <failure message="first">trace</failure>
      <error message="teardown" type="IOError"><![CDATA[x < y & "z"]]></error>
    </testcase>
    <testcase name="skip"><skipped/></testcase>
  </testsuite>
  <testcase name="failed"><failure>no message attribute</failure>
    <system-err>e</system-err></testcase>
</testsuite>
)";
  absl::StatusOr<JunitReport> r = ParseJunitXml(xml, "junit.xml");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->tests == 4);
  CHECK(r->failures == 1);
  CHECK(r->errors == 1);
  CHECK(r->skipped == 1);
  REQUIRE(r->cases.size() == 4);
  CHECK(r->cases[0] == JunitCase{"outer", "a.B", "ok", "passed", "", "", 1234.5});
  CHECK(r->cases[1] ==
        JunitCase{"inner", "a.C", "both", "error", "teardown", "x < y & \"z\"", 0.25});
  CHECK(r->cases[2] == JunitCase{"inner", "", "skip", "skipped", "", "", 0});
  CHECK(r->cases[3] == JunitCase{"outer", "", "failed", "failed", "", "no message attribute", 0});
}

TEST_CASE("ParseJunitXml: a testcase directly under testsuites") {
  absl::StatusOr<JunitReport> r = ParseJunitXml(
      "<testsuites name=\"all\"><testcase name=\"a\"/><testsuite name=\"s\"><testcase "
      "name=\"b\"><error/></testcase></testsuite></testsuites>",
      "junit.xml");
  REQUIRE(r.ok());
  REQUIRE(r->cases.size() == 2);
  CHECK(r->cases[0] == JunitCase{"all", "", "a", "passed", "", "", 0});
  CHECK(r->cases[1] == JunitCase{"s", "", "b", "error", "", "", 0});
  CHECK(r->errors == 1);
}

TEST_CASE("ParseJunitXml names what is wrong with line and column") {
  CHECK(JunitError("<results/>") ==
        "junit.xml:1:1: the root element is <results>, not <testsuites> or <testsuite>");
  CHECK(JunitError("<testsuite>\n  <testcase classname=\"x\"/>\n</testsuite>") ==
        "junit.xml:2:3: <testcase> without a name attribute");
  CHECK(JunitError("<testsuite><testcase name=\"a\" time=\"fast\"/></testsuite>") ==
        "junit.xml:1:12: <testcase> time \"fast\" is not a number of seconds");
  CHECK(JunitError("<testsuite><testcase name=\"a\" time=\"-1\"/></testsuite>") ==
        "junit.xml:1:12: <testcase> time \"-1\" is not a number of seconds");
  CHECK(JunitError("<testsuite>\n<testcase name=\"a&nbsp;b\"/></testsuite>") ==
        "junit.xml:2:18: unknown entity \"&nbsp;\"");
  CHECK(JunitError("<testsuite></testsuites>") ==
        "junit.xml:1:12: </testsuites> closes <testsuite>");
  CHECK(JunitError("<testsuite>") == "junit.xml:1:1: <testsuite> is not closed");
  JunitLimits few;
  few.max_cases = 1;
  CHECK(JunitError("<testsuite><testcase name=\"a\"/><testcase name=\"b\"/></testsuite>", few) ==
        "junit.xml:1:32: more than 1 test cases (max_cases)");
}

TEST_CASE("ParseJunitXml refuses DOCTYPE, entity bombs and other hostile documents") {
  const std::string bomb = R"(<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<testsuite><testcase name="&lol3;"/></testsuite>)";
  CHECK(JunitError(bomb) == "junit.xml:2:1: DOCTYPE and ENTITY declarations are not accepted");
  CHECK(JunitError("<testsuite><!ENTITY x \"y\"></testsuite>") ==
        "junit.xml:1:12: DOCTYPE and ENTITY declarations are not accepted");
  // An external entity (XXE) needs a DOCTYPE too.
  CHECK(JunitError("<!DOCTYPE t [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><testsuite/>") ==
        "junit.xml:1:1: DOCTYPE and ENTITY declarations are not accepted");
  CHECK(JunitError(std::string("<testsuite>\0</testsuite>", 24)) ==
        "junit.xml:1:12: character U+0000 is not allowed in XML");
  CHECK(JunitError("<testsuite name=\"caf\xC3\"/>") == "junit.xml:1:21: not valid UTF-8");
  CHECK(JunitError("<?xml version=\"1.0\" encoding=\"UTF-16\"?><testsuite/>") ==
        "junit.xml:1:1: encoding \"utf-16\" is not supported (UTF-8 only)");

  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "<testsuite>";
  for (int i = 0; i < 40; ++i) deep += "</testsuite>";
  CHECK(JunitError(deep) == "junit.xml:1:353: elements nested deeper than 32 levels (max_depth)");

  JunitLimits small;
  small.max_bytes = 16;
  CHECK(JunitError("<testsuite></testsuite>", small) ==
        "junit.xml:1:1: document of 23 bytes is over the limit of 16 bytes (max_bytes)");
  JunitLimits elements;
  elements.max_elements = 3;
  CHECK(JunitError("<testsuite><a/><b/><c/></testsuite>", elements) ==
        "junit.xml:1:20: more than 3 elements (max_elements)");
  JunitLimits attrs;
  attrs.max_attributes = 2;
  CHECK(JunitError("<testsuite a=\"1\" b=\"2\" c=\"3\"/>", attrs) ==
        "junit.xml:1:24: more than 2 attributes (max_attributes)");
}

TEST_CASE("ParseXml: entities, character references, CDATA, comments and normalization") {
  absl::StatusOr<XmlElement> r = ParseXml(
      "\xEF\xBB\xBF<?xml version='1.0'?>\n<r a='x&#10;y\tz' b=\"&lt;&gt;&amp;&quot;&apos;\">"
      "t&#x41;&#66;<!-- c --><![CDATA[<&>]]><c/>u<?pi x?></r>\n<!-- after -->\n");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->name == "r");
  CHECK(*r->Attribute("a") ==
        "x\ny z");  // A reference keeps its newline; a literal tab is a space.
  CHECK(*r->Attribute("b") == "<>&\"'");
  CHECK(r->Attribute("zz") == nullptr);
  CHECK(r->text == "tAB<&>u");
  REQUIRE(r->children.size() == 1);
  CHECK(r->children[0].name == "c");
  CHECK(r->children[0].line == 2);
  CHECK(r->children[0].column == 85);
  CHECK(ParseXml("<r>&#x1F600;</r>")->text == "\xF0\x9F\x98\x80");
}

TEST_CASE("ParseXml refuses malformed documents") {
  const auto error = [](std::string_view xml) {
    absl::StatusOr<XmlElement> r = ParseXml(xml);
    REQUIRE_FALSE(r.ok());
    return std::string(r.status().message());
  };
  CHECK(error("") == "1:1: no root element");
  CHECK(error("text<r/>") == "1:1: text before the root element");
  CHECK(error("<r/><s/>") == "1:5: content after the root element");
  CHECK(error("<r a=\"1\" a=\"2\"/>") == "1:10: attribute a repeats");
  CHECK(error("<r a=1/>") == "1:6: attribute a: value must be quoted");
  CHECK(error("<r a/>") == "1:5: attribute a has no value");
  CHECK(error("<r a=\"<\"/>") == "1:7: \"<\" in an attribute value (write &lt;)");
  CHECK(error("<r>a & b</r>") == "1:6: \"&\" not followed by an entity reference (write &amp;)");
  CHECK(error("<r>&#0;</r>") == "1:4: bad character reference \"&#0;\"");
  CHECK(error("<r>&#xD800;</r>") == "1:4: bad character reference \"&#xD800;\"");
  CHECK(error("<r>&#x110000;</r>") == "1:4: bad character reference \"&#x110000;\"");
  CHECK(error("<r><!-- open </r>") == "1:4: comment without \"-->\"");
  CHECK(error("<r><![CDATA[x</r>") == "1:4: CDATA without \"]]>\"");
  CHECK(error("<r><!foo></r>") == "1:4: unexpected \"<!\"");
  CHECK(error("< r/>") == "1:2: expected a name");
}

}  // namespace
}  // namespace assay::evals
