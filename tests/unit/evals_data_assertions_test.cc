// promptfoo-style assertions (common/evals/data/assertions.h): parsing, validation, each
// type's exact semantics, and promptfoo's weighted score and threshold.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>

#include "common/evals/data/assertions.h"
#include "tests/unit/fixture.h"

namespace assay::evals {
namespace {

Assertion A(std::string type, std::string value, double weight = 1) {
  Assertion a;
  if (type.rfind("not-", 0) == 0) {
    a.negate = true;
    type = type.substr(4);
  }
  a.type = type;
  a.value = value;
  a.weight = weight;
  return a;
}

absl::StatusOr<Assertion> ParseText(std::string_view json) {
  return ParseAssertion(boost::json::parse(std::string(json)), "t.jsonl:3: assert[0]");
}

std::string ParseError(std::string_view json) {
  absl::StatusOr<Assertion> a = ParseText(json);
  REQUIRE_FALSE(a.ok());
  REQUIRE(a.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(a.status().message());
}

std::string ValidateError(const Assertion& a) {
  absl::Status s = ValidateAssertion(a);
  REQUIRE(s.code() == absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

// pass of one assertion over `output`.
bool Passes(const Assertion& a, std::string_view output) {
  absl::StatusOr<AssertionSet> set = AssertionSet::Compile({a});
  INFO(set.status().ToString());
  REQUIRE(set.ok());
  return set->Check(output).at(0).pass;
}

TEST_CASE("ParseAssertion reads type, value, threshold and weight") {
  absl::StatusOr<Assertion> a =
      ParseText(R"({"type": "not-icontains", "value": "Lyon", "threshold": 0.5, "weight": 2})");
  REQUIRE(a.ok());
  CHECK(*a == Assertion{"icontains", true, "Lyon", 0.5, 2});
  a = ParseText(R"({"type": "is-json"})");
  REQUIRE(a.ok());
  CHECK(*a == Assertion{"is-json", false, "", std::nullopt, 1});
  a = ParseText(R"({"type": "is-json", "value": null})");
  REQUIRE(a.ok());
  // Numbers become JavaScript's String(x); equals also takes booleans.
  a = ParseText(R"({"type": "contains", "value": 3.0})");
  REQUIRE(a.ok());
  CHECK(a->value == "3");
  a = ParseText(R"({"type": "equals", "value": 0.25})");
  REQUIRE(a.ok());
  CHECK(a->value == "0.25");
  a = ParseText(R"({"type": "equals", "value": false})");
  REQUIRE(a.ok());
  CHECK(a->value == "false");
  a = ParseText(R"({"type": "equals", "value": ""})");
  REQUIRE(a.ok());
  CHECK(a->value.empty());
}

TEST_CASE("ParseAssertion and ValidateAssertion refuse what promptfoo would not run") {
  CHECK(ParseError(R"("contains")") ==
        "t.jsonl:3: assert[0]: must be an object {type, value, threshold, weight}");
  CHECK(ParseError(R"({"type": "contains", "value": "a", "metric": "m"})") ==
        "t.jsonl:3: assert[0]: unknown key \"metric\" (allowed: type, value, threshold, weight)");
  CHECK(ParseError(R"({"value": "a"})") == "t.jsonl:3: assert[0]: key \"type\" is missing");
  CHECK(ParseError(R"({"type": 1})") == "t.jsonl:3: assert[0]: key \"type\": must be a string");
  CHECK(ParseError(R"({"type": "not-llm-rubric", "value": "x"})") ==
        "t.jsonl:3: assert[0]: unknown assertion type \"not-llm-rubric\" (known: equals, "
        "contains, icontains, regex, starts-with, is-json; each also as not-TYPE)");
  CHECK(ParseError(R"({"type": "equals"})") == "t.jsonl:3: assert[0]: key \"value\" is missing");
  CHECK(ParseError(R"({"type": "contains"})") ==
        "t.jsonl:3: assert[0]: contains: key \"value\": must be a non-empty string");
  CHECK(ParseError(R"({"type": "starts-with", "value": ""})") ==
        "t.jsonl:3: assert[0]: starts-with: key \"value\": must be a non-empty string");
  CHECK(ParseError(R"({"type": "starts-with", "value": 1})") ==
        "t.jsonl:3: assert[0]: key \"value\": must be a string for starts-with");
  CHECK(ParseError(R"({"type": "contains", "value": true})") ==
        "t.jsonl:3: assert[0]: key \"value\": must be a string or a number for contains");
  CHECK(ParseError(R"({"type": "equals", "value": {"a": 1}})") ==
        "t.jsonl:3: assert[0]: key \"value\": must be a string or a number or a boolean for "
        "equals");
  CHECK(ParseError(R"({"type": "is-json", "value": {"format": "email"}})")
            .rfind("t.jsonl:3: assert[0]: is-json: key \"value\": schema /: keyword \"format\" is "
                   "not supported (supported: type, ",
                   0) == 0);
  CHECK(ParseError(R"({"type": "is-json", "value": "{not json"})") ==
        "t.jsonl:3: assert[0]: is-json: key \"value\": schema: not JSON: syntax error at column 2");
  CHECK(ParseError(R"({"type": "is-json", "value": 3})") ==
        "t.jsonl:3: assert[0]: key \"value\": must be a string for is-json");
  CHECK(ParseError(R"({"type": "regex", "value": "(?=a)b"})") ==
        "t.jsonl:3: assert[0]: regex: key \"value\": regex \"(?=a)b\": invalid perl operator: "
        "(?= (RE2 has no lookaround)");
  CHECK(ParseError(R"({"type": "not-regex", "value": "[z-a]"})") ==
        "t.jsonl:3: assert[0]: not-regex: key \"value\": regex \"[z-a]\": invalid character "
        "class range: z-a");
  CHECK(ParseError(R"({"type": "contains", "value": "a", "threshold": 1.5})") ==
        "t.jsonl:3: assert[0]: contains: key \"threshold\": must be between 0 and 1, not 1.5");
  CHECK(ParseError(R"({"type": "contains", "value": "a", "threshold": "0.5"})") ==
        "t.jsonl:3: assert[0]: key \"threshold\": must be a number");
  CHECK(ParseError(R"({"type": "contains", "value": "a", "weight": -1})") ==
        "t.jsonl:3: assert[0]: contains: key \"weight\": must be a number >= 0, not -1");

  Assertion prefixed = A("contains", "x");
  prefixed.type = "not-contains";
  CHECK(ValidateError(prefixed) ==
        "assertion type \"not-contains\": the not- prefix belongs in `negate`, not `type`");
  CHECK(ValidateError(A("similar", "x")) ==
        "unknown assertion type \"similar\" (known: equals, contains, icontains, regex, "
        "starts-with, is-json; each also as not-TYPE)");
  CHECK(ValidateError(A("is-json", "{\"$ref\": \"#\"}"))
            .rfind("is-json: key \"value\": schema /: keyword \"$ref\" is not supported", 0) == 0);
  Assertion nan_weight = A("contains", "x");
  nan_weight.weight = std::numeric_limits<double>::quiet_NaN();
  CHECK(ValidateError(nan_weight) == "contains: key \"weight\": must be a number >= 0, not NaN");
  CHECK(ValidateAssertion(A("equals", "")).ok());
  CHECK(ValidateAssertion(A("not-is-json", "")).ok());
}

TEST_CASE("equals compares exactly: no trimming, case-sensitive") {
  CHECK(Passes(A("equals", "Paris"), "Paris"));
  CHECK_FALSE(Passes(A("equals", "Paris"), "Paris\n"));
  CHECK_FALSE(Passes(A("equals", "Paris"), " Paris"));
  CHECK_FALSE(Passes(A("equals", "Paris"), "paris"));
  CHECK(Passes(A("not-equals", "paris"), "Paris"));
  CHECK(Passes(A("equals", ""), ""));
  CHECK(Passes(A("equals", "3"), "3"));
  CHECK_FALSE(Passes(A("equals", "3"), "3.0"));
}

TEST_CASE("contains and icontains find substrings, icontains lowers both sides") {
  const std::string out = "Bonjour le monde, comment allez-vous?";
  CHECK(Passes(A("contains", "Bonjour le monde"), out));
  CHECK_FALSE(Passes(A("contains", "bonjour le monde"), out));
  CHECK(Passes(A("icontains", "BONJOUR LE MONDE"), out));
  CHECK(Passes(A("not-contains", "Lyon"), out));
  CHECK_FALSE(Passes(A("not-icontains", "COMMENT"), out));
  CHECK(Passes(A("icontains", "\xC3\x89T\xC3\x89"), "un \xC3\xA9t\xC3\xA9 chaud"));       // ÉTÉ
  CHECK(Passes(A("icontains", "\xD0\x9C\xD0\x98\xD0\xA0"), "\xD0\xBC\xD0\xB8\xD1\x80"));  // МИР
  CHECK_FALSE(Passes(A("contains", "x"), ""));
}

TEST_CASE("starts-with checks the first bytes without trimming") {
  CHECK(Passes(A("starts-with", "Par"), "Paris"));
  CHECK_FALSE(Passes(A("starts-with", "Par"), " Paris"));
  CHECK_FALSE(Passes(A("starts-with", "par"), "Paris"));
  CHECK(Passes(A("not-starts-with", "{"), "[1]"));
  CHECK_FALSE(Passes(A("starts-with", "Paris!"), "Paris"));
}

TEST_CASE("regex searches anywhere, as RegExp.test without flags") {
  CHECK(Passes(A("regex", "\\d{4}"), "Order 2024-117 shipped"));
  CHECK(Passes(A("not-regex", "\\b[0-9a-f]{8}\\b"), "Order 2024-117 shipped"));
  CHECK_FALSE(Passes(A("not-regex", "\\b[0-9a-f]{8}\\b"), "id deadbeef ok"));
  CHECK_FALSE(Passes(A("regex", "^paris$"), "Paris"));
  CHECK(Passes(A("regex", "(?i)^paris$"), "Paris"));
  // Catastrophic for a backtracking engine; linear under RE2.
  CHECK_FALSE(Passes(A("regex", "(a+)+$"), std::string(30, 'a') + "!"));
}

TEST_CASE("is-json passes on anything JSON.parse accepts") {
  CHECK(Passes(A("is-json", ""), "{\"latitude\": 48.85, \"longitude\": 2.35}"));
  CHECK(Passes(A("is-json", ""), " 42 "));
  CHECK_FALSE(Passes(A("is-json", ""), "```json\n{}\n```"));
  CHECK_FALSE(Passes(A("is-json", ""), "{\"a\": }"));
  CHECK(Passes(A("not-is-json", ""), "Sure! {\"a\": 1}"));
}

TEST_CASE("Check gives promptfoo's scores and reasons") {
  absl::StatusOr<AssertionSet> set = AssertionSet::Compile(
      {A("equals", "Paris"), A("not-contains", "Paris"), A("icontains", "lyon"),
       A("starts-with", "X"), A("not-regex", "z+"), A("is-json", ""), A("not-equals", "Paris")});
  REQUIRE(set.ok());
  const std::vector<AssertionResult> r = set->Check("Paris");
  const std::vector<AssertionResult> expected = {
      {true, 1, "Assertion passed"},
      {false, 0, "Expected output to not contain \"Paris\""},
      {false, 0, "Expected output to contain \"lyon\""},
      {false, 0, "Expected output to start with \"X\""},
      {true, 1, "Assertion passed"},
      {false, 0, "Expected output to be valid JSON"},
      {false, 0, "Expected output \"Paris\" to not equal \"Paris\""},
  };
  REQUIRE(r.size() == expected.size());
  for (size_t i = 0; i < r.size(); ++i) {
    INFO("assertion " << i);
    CHECK(r[i].pass == expected[i].pass);
    CHECK(r[i].score == expected[i].score);
    CHECK(r[i].reason == expected[i].reason);
  }
  // Long outputs are quoted up to 200 bytes.
  absl::StatusOr<AssertionSet> eq = AssertionSet::Compile({A("equals", "a")});
  REQUIRE(eq.ok());
  CHECK(eq->Check(std::string(300, 'b')).at(0).reason ==
        "Expected output \"" + std::string(200, 'b') + "...\" to equal \"a\"");
}

TEST_CASE("Verdict: weighted mean score, all-must-pass, weight 0 never fails, threshold") {
  absl::StatusOr<AssertionSet> set =
      AssertionSet::Compile({A("contains", "a", 3), A("contains", "b", 1), A("contains", "c", 0)});
  REQUIRE(set.ok());
  AssertionVerdict v = set->Run("a c");
  CHECK_FALSE(v.pass);
  CHECK(v.score == 0.75);  // (1*3 + 0*1 + 1*0) / 4, exact in binary.
  CHECK(v.reason == "Expected output to contain \"b\"");
  REQUIRE(v.results.size() == 3);

  // A weight-0 assertion that fails is reported as passing and does not move the score.
  v = set->Run("a b");
  CHECK(v.pass);
  CHECK(v.score == 1);
  CHECK(v.reason == "All assertions passed");
  CHECK(v.results[2] == AssertionResult{true, 0, "Expected output to contain \"c\""});

  // The last failure gives the reason.
  v = set->Run("zzz");
  CHECK(v.reason == "Expected output to contain \"b\"");
  CHECK(v.score == 0);

  // A test-level threshold replaces all-must-pass.
  v = set->Run("a c", 0.75);
  CHECK(v.pass);
  CHECK(v.reason == "Aggregate score 0.75 \xE2\x89\xA5 0.75 threshold");
  v = set->Run("a c", 0.8);
  CHECK_FALSE(v.pass);
  CHECK(v.reason == "Aggregate score 0.75 < 0.8 threshold");
  v = set->Run("", 0);
  CHECK(v.pass);
  CHECK(v.score == 0);

  // Every weight 0: score 0, and nothing can fail.
  absl::StatusOr<AssertionSet> zero = AssertionSet::Compile({A("contains", "a", 0)});
  REQUIRE(zero.ok());
  v = zero->Run("b");
  CHECK(v.pass);
  CHECK(v.score == 0);

  // No assertions at all.
  absl::StatusOr<AssertionSet> none = AssertionSet::Compile({});
  REQUIRE(none.ok());
  v = none->Run("x", 0.9);
  CHECK(v.pass);
  CHECK(v.score == 1);
  CHECK(v.reason == "No assertions");
}

TEST_CASE("AssertionSet::Compile names the assertion that is wrong") {
  absl::StatusOr<AssertionSet> set = AssertionSet::Compile({A("contains", "a"), A("regex", "(")});
  REQUIRE(set.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(set.status().message() == "assert[1]: regex: key \"value\": regex \"(\": missing ): (");
}

// The tests of tests/fixtures/metrics/promptfoo_example.yaml, re-written by hand as the JSON a
// dataset line's "assert" holds; the outputs are its vars.output (the echo provider returns
// the prompt "{{output}}"), and the expected outcomes its "expect:" comments.
// The config's is-json with a schema (its YAML value as JSON).
const std::string kSchemaAssert = R"({"type": "is-json", "value": {
    "required": ["latitude", "longitude"], "type": "object",
    "properties": {"latitude": {"type": "number", "minimum": -90, "maximum": 90},
                   "longitude": {"type": "number", "minimum": -180, "maximum": 180}}}})";

TEST_CASE("The promptfoo example config's assertions give its expected outcomes") {
  const std::string yaml =
      assay::testing::ReadFixture("tests/fixtures/metrics/promptfoo_example.yaml");
  REQUIRE(yaml.find("value: \"\\\\d{4}\"") != std::string::npos);  // The fixture we mirror.
  struct Case {
    std::string output;
    std::string asserts;
    std::vector<bool> expect;
  };
  const std::vector<Case> cases = {
      {"Paris",
       R"([{"type": "equals", "value": "Paris"}, {"type": "starts-with", "value": "Par"},
           {"type": "not-equals", "value": "paris"}])",
       {true, true, true}},
      {"Bonjour le monde, comment allez-vous?",
       R"([{"type": "contains", "value": "Bonjour le monde"},
           {"type": "icontains", "value": "BONJOUR LE MONDE"},
           {"type": "contains", "value": "bonjour le monde"}])",
       {true, true, false}},
      {"Order 2024-117 shipped",
       R"([{"type": "regex", "value": "\\d{4}"},
           {"type": "not-regex", "value": "\\b[0-9a-f]{8}\\b"}])",
       {true, true}},
      {R"({"latitude": 48.85, "longitude": 2.35})",
       R"([{"type": "is-json"}, )" + kSchemaAssert + R"(, {"type": "starts-with", "value": "{"}])",
       {true, true, true}},
      // Not in the config: the same assertions over an output out of the schema's range.
      {R"({"latitude": 91, "longitude": 2.35})",
       R"([{"type": "is-json"}, )" + kSchemaAssert + "]",
       {true, false}},
  };
  for (const Case& c : cases) {
    INFO(c.output);
    std::vector<Assertion> asserts;
    const boost::json::array arr = boost::json::parse(c.asserts).as_array();
    for (size_t i = 0; i < arr.size(); ++i) {
      absl::StatusOr<Assertion> a = ParseAssertion(arr[i], "promptfoo_example");
      REQUIRE(a.ok());
      asserts.push_back(*a);
    }
    absl::StatusOr<AssertionSet> set = AssertionSet::Compile(asserts);
    REQUIRE(set.ok());
    const AssertionVerdict v = set->Run(c.output);
    std::vector<bool> got;
    for (const AssertionResult& r : v.results) got.push_back(r.pass);
    CHECK(got == c.expect);
  }
  absl::StatusOr<Assertion> schema_assert =
      ParseAssertion(boost::json::parse(kSchemaAssert), "promptfoo_example");
  REQUIRE(schema_assert.ok());
  absl::StatusOr<AssertionSet> set = AssertionSet::Compile({*schema_assert});
  REQUIRE(set.ok());
  CHECK(set->Check(R"({"latitude": 91, "longitude": 2.35})").at(0).reason ==
        "JSON does not conform to the provided schema. Errors: data/latitude must be <= 90");
  CHECK(set->Check("not json").at(0).reason == "Expected output to be valid JSON");
  Assertion negated = *schema_assert;
  negated.negate = true;
  set = AssertionSet::Compile({negated});
  REQUIRE(set.ok());
  CHECK(set->Check(R"({"latitude": 1, "longitude": 2})").at(0) ==
        AssertionResult{false, 0, "Output is JSON that conforms to the provided schema"});
  CHECK(set->Check("not json").at(0).pass);
  CHECK(set->Check(R"({"latitude": 91, "longitude": 2})").at(0).pass);
}

}  // namespace
}  // namespace assay::evals
