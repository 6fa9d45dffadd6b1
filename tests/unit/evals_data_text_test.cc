// Text helpers, SafeRegex and the JSON checks of common/evals/data.
#include <catch2/catch.hpp>
#include <string>

#include "common/evals/data/json_strict.h"
#include "common/evals/data/safe_regex.h"
#include "common/evals/data/text.h"

namespace assay::evals {
namespace {

std::string ErrorOf(const absl::Status& s) {
  REQUIRE(s.code() == absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

TEST_CASE("JsToLowerCase lowers as JavaScript's toLowerCase does") {
  CHECK(JsToLowerCase("BONJOUR Le Monde 42!") == "bonjour le monde 42!");
  CHECK(JsToLowerCase("\xC3\x89T\xC3\x89") == "\xC3\xA9t\xC3\xA9");  // ÉTÉ -> été
  CHECK(JsToLowerCase("\xC3\x97\xC3\x9F") == "\xC3\x97\xC3\x9F");    // × ß unchanged
  CHECK(JsToLowerCase("\xC5\x81\xC3\x93"
                      "D\xC5\xB9") ==
        "\xC5\x82\xC3\xB3"
        "d\xC5\xBA");                              // ŁÓDŹ
  CHECK(JsToLowerCase("\xC5\xB8") == "\xC3\xBF");  // Ÿ -> ÿ
  CHECK(JsToLowerCase("\xD0\x9C\xD0\x9E\xD0\xA1\xD0\x9A\xD0\x92\xD0\x90") ==
        "\xD0\xBC\xD0\xBE\xD1\x81\xD0\xBA\xD0\xB2\xD0\xB0");  // МОСКВА -> москва
  CHECK(JsToLowerCase("\xD0\x81") == "\xD1\x91");             // Ё -> ё
  // İ becomes "i" and a combining dot (two code points), as in JavaScript.
  CHECK(JsToLowerCase("\xC4\xB0") == "i\xCC\x87");
  // Greek capital sigma: final form at the end of a word, medial form elsewhere.
  CHECK(JsToLowerCase("\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3") ==
        "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82");  // ΟΔΟΣ -> οδος (final ς)
  CHECK(JsToLowerCase("\xCE\xA3\xCE\x91") == "\xCF\x83\xCE\xB1");  // ΣΑ -> σα
  CHECK(JsToLowerCase("\xEF\xBC\xA1") == "\xEF\xBD\x81");          // fullwidth Ａ -> ａ
  // Invalid UTF-8 passes through byte for byte.
  CHECK(JsToLowerCase(std::string("A\xFF"
                                  "B\0C",
                                  5)) == std::string("a\xFF"
                                                     "b\0c",
                                                     5));
}

TEST_CASE("JsNumberToString prints numbers as JavaScript's String(x)") {
  CHECK(JsNumberToString(3.0) == "3");
  CHECK(JsNumberToString(-0.0) == "0");
  CHECK(JsNumberToString(0.1) == "0.1");
  CHECK(JsNumberToString(0.5) == "0.5");
  CHECK(JsNumberToString(-2.25) == "-2.25");
  CHECK(JsNumberToString(123456789012) == "123456789012");
  CHECK(JsNumberToString(1e21) == "1e+21");
  CHECK(JsNumberToString(1.5e21) == "1.5e+21");
  CHECK(JsNumberToString(1e20) == "100000000000000000000");
  CHECK(JsNumberToString(0.000001) == "0.000001");
  CHECK(JsNumberToString(1.5e-7) == "1.5e-7");
  CHECK(JsNumberToString(0.1 + 0.2) == "0.30000000000000004");
  CHECK(JsNumberToString(9007199254740993.0) == "9007199254740992");
  CHECK(JsNumberToString(1.0 / 0.0) == "Infinity");
}

TEST_CASE("IsValidUtf8 finds the first bad sequence") {
  size_t at = 99;
  CHECK(IsValidUtf8("caf\xC3\xA9 \xE2\x9C\x93"));
  CHECK_FALSE(IsValidUtf8("ab\xC3", &at));
  CHECK(at == 2);
  CHECK_FALSE(IsValidUtf8("\xC0\xAF", &at));  // Overlong "/".
  CHECK(at == 0);
  CHECK_FALSE(IsValidUtf8("x\xED\xA0\x80", &at));  // A surrogate.
  CHECK(at == 1);
  CHECK_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // Past U+10FFFF.
}

TEST_CASE("Abbreviate cuts on a character boundary") {
  CHECK(Abbreviate("short", 10) == "short");
  CHECK(Abbreviate("abcdef", 3) == "abc...");
  CHECK(Abbreviate("ab\xC3\xA9"
                   "cd",
                   3) == "ab...");  // Does not split é.
}

TEST_CASE("SafeRegex matches like RegExp.test and says what is wrong with a pattern") {
  absl::StatusOr<SafeRegex> re = SafeRegex::Compile("\\d{4}");
  REQUIRE(re.ok());
  CHECK(re->PartialMatch("Order 2024-117 shipped"));
  CHECK_FALSE(re->PartialMatch("Order 24-117"));
  CHECK(re->pattern() == "\\d{4}");
  absl::StatusOr<SafeRegex> anchored = SafeRegex::Compile("^Par");
  REQUIRE(anchored.ok());
  CHECK(anchored->PartialMatch("Paris"));
  CHECK_FALSE(anchored->PartialMatch("In Paris"));
  // `$` is the end of the text only, as in JavaScript without the m flag.
  absl::StatusOr<SafeRegex> end = SafeRegex::Compile("a$");
  REQUIRE(end.ok());
  CHECK_FALSE(end->PartialMatch("a\n"));
  CHECK(ErrorOf(SafeRegex::Compile("(a").status()) == "regex \"(a\": missing ): (a");
  CHECK(ErrorOf(SafeRegex::Compile("(?=x)").status()) ==
        "regex \"(?=x)\": invalid perl operator: (?= (RE2 has no lookaround)");
  CHECK(ErrorOf(SafeRegex::Compile("(a)\\1").status()) ==
        "regex \"(a)\\1\": invalid escape sequence: \\1 (RE2 has no backreferences)");
  CHECK(ErrorOf(SafeRegex::Compile("(?<y>\\d+)").status()) ==
        "regex \"(?<y>\\d+)\": invalid perl operator: (?< (RE2 has no lookbehind; a named "
        "group is written (?P<name>...))");
  CHECK(ErrorOf(SafeRegex::Compile(std::string(SafeRegex::kMaxPatternBytes + 1, 'a')).status()) ==
        "regex of 65537 bytes is longer than the limit of 65536 bytes");
  // A program past the memory bound is refused rather than built.
  CHECK(ErrorOf(SafeRegex::Compile("((((a{100}){100}){100}){100})").status()) ==
        "regex \"((((a{100}){100}){100}){100})\": invalid repetition size: {100}");
  CHECK(ErrorOf(SafeRegex::Compile("(\\pL{1000}){1}").status()) ==
        "regex \"(\\pL{1000}){1}\": pattern too large - compile failed (over the 8 MiB a "
        "compiled regex may use)");
}

TEST_CASE("SafeRegex runs a pattern that is catastrophic for backtracking in linear time") {
  absl::StatusOr<SafeRegex> re = SafeRegex::Compile("(a+)+$");
  REQUIRE(re.ok());
  // A backtracking engine takes ~2^30 steps here; RE2 answers at once. (No timing is
  // asserted: the test would hang, not fail, if this regressed.)
  CHECK_FALSE(re->PartialMatch(std::string(30, 'a') + "!"));
  CHECK(re->PartialMatch(std::string(30, 'a')));
  absl::StatusOr<SafeRegex> nested = SafeRegex::Compile("^(([a-z])+.)+[A-Z]([a-z])+$");
  REQUIRE(nested.ok());
  CHECK_FALSE(nested->PartialMatch(std::string(100000, 'a') + "!"));
}

TEST_CASE("IsJson is JSON.parse: any value, JSON whitespace around it, no fences") {
  CHECK(IsJson("{\"latitude\": 48.85, \"longitude\": 2.35}"));
  CHECK(IsJson(" \t\r\n[1, 2]\n"));
  CHECK(IsJson("42"));
  CHECK(IsJson("\"text\""));
  CHECK(IsJson("null"));
  CHECK(IsJson("{\"a\": 1, \"a\": 2}"));  // JSON.parse keeps the last.
  CHECK(IsJson("{\"s\": \"\xFF\"}"));     // JavaScript would hold U+FFFD.
  CHECK(IsJson("1e400"));                 // Infinity to JSON.parse, and valid.
  CHECK(IsJson("123456789012345678901234567890"));
  CHECK_FALSE(IsJson("\"\\ud800\""));  // A lone surrogate: JSON.parse accepts it, Boost not.
  CHECK_FALSE(IsJson(""));
  CHECK_FALSE(IsJson("```json\n{\"a\": 1}\n```"));
  CHECK_FALSE(IsJson("{'a': 1}"));
  CHECK_FALSE(IsJson("{\"a\": 1,}"));
  CHECK_FALSE(IsJson("[1] [2]"));
  CHECK_FALSE(IsJson("\xC2\xA0{}"));  // A no-break space is not JSON whitespace.
  CHECK_FALSE(IsJson("// c\n{}"));
  CHECK_FALSE(IsJson(std::string("{}\0", 3)));
  CHECK(IsJson(std::string(kIsJsonMaxDepth, '[') + std::string(kIsJsonMaxDepth, ']')));
  CHECK_FALSE(
      IsJson(std::string(kIsJsonMaxDepth + 1, '[') + std::string(kIsJsonMaxDepth + 1, ']')));
}

TEST_CASE("ParseStrictJson refuses repeated keys, deep nesting, bad UTF-8 and trailing data") {
  absl::StatusOr<boost::json::value> v = ParseStrictJson("{\"a\": {\"b\": [1, {\"b\": 2}]}}", 4);
  REQUIRE(v.ok());
  CHECK(v->at("a").at("b").at(1).at("b").as_int64() == 2);
  // The same key in two different objects is fine; in one object it is not.
  CHECK(ErrorOf(ParseStrictJson("{\"a\": 1, \"b\": {\"a\": 2}, \"a\": 3}", 8).status()) ==
        "duplicate key \"a\"");
  CHECK(ErrorOf(ParseStrictJson("[{\"k\": 1}, {\"k\": 2, \"k\": 3}]", 8).status()) ==
        "duplicate key \"k\"");
  // Escapes are decoded before keys are compared.
  CHECK(ErrorOf(ParseStrictJson("{\"id\": 1, \"\\u0069d\": 2}", 8).status()) ==
        "duplicate key \"id\"");
  CHECK(ErrorOf(ParseStrictJson("[[[1]]]", 2).status()) ==
        "nested deeper than 2 levels (max_depth)");
  CHECK(ErrorOf(ParseStrictJson("{\"a\": \"\xC3\"}", 8).status()) ==
        "not JSON: invalid UTF-8 at column 8");
  CHECK(ErrorOf(ParseStrictJson("{\"a\": 1} x", 8).status()) ==
        "not JSON: extra data at column 10");
  CHECK(ErrorOf(ParseStrictJson(std::string("{\"a\":\0}", 7), 8).status()) ==
        "not JSON: control character U+0000 at column 6");
  CHECK(ErrorOf(ParseStrictJson("{\"a\": tru}", 8).status()) ==
        "not JSON: syntax error at column 7");
}

}  // namespace
}  // namespace assay::evals
