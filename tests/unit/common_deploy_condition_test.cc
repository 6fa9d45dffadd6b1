#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "common/deploy/condition.h"

namespace assay::deploy {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

bool Eval(const std::string& text, const std::vector<double>& result = {0.01}) {
  absl::StatusOr<Condition> c = Condition::Parse(text);
  INFO(text << " -> " << c.status().ToString());
  REQUIRE(c.ok());
  CHECK(c->text() == text);
  absl::StatusOr<bool> v = c->Evaluate(result);
  INFO(v.status().ToString());
  REQUIRE(v.ok());
  return *v;
}

std::string Err(const std::string& text) {
  absl::StatusOr<Condition> c = Condition::Parse(text);
  INFO(text);
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(c.status().message());
}

// The kOutOfRange message of evaluating `text` (which parses) on `result`.
std::string EvalErr(const std::string& text, const std::vector<double>& result) {
  absl::StatusOr<Condition> c = Condition::Parse(text);
  REQUIRE(c.ok());
  absl::StatusOr<bool> v = c->Evaluate(result);
  INFO(text);
  REQUIRE_FALSE(v.ok());
  CHECK(v.status().code() == absl::StatusCode::kOutOfRange);
  return std::string(v.status().message());
}

std::string Nested(const std::string& open, int n, const std::string& inner,
                   const std::string& close) {
  std::string s;
  for (int i = 0; i < n; ++i) s += open;
  s += inner;
  for (int i = 0; i < n; ++i) s += close;
  return s;
}

TEST_CASE("deploy condition: each comparison operator") {
  CHECK(Eval("result < 0.02", {0.01}));
  CHECK_FALSE(Eval("result < 0.02", {0.02}));
  CHECK(Eval("result <= 0.02", {0.02}));
  CHECK_FALSE(Eval("result <= 0.02", {0.021}));
  CHECK(Eval("result > 0.5", {0.6}));
  CHECK_FALSE(Eval("result > 0.5", {0.5}));
  CHECK(Eval("result >= 0.5", {0.5}));
  CHECK_FALSE(Eval("result >= 0.5", {0.49}));
  CHECK(Eval("result == 3", {3}));
  CHECK_FALSE(Eval("result == 3", {3.0000001}));
  CHECK(Eval("result != 3", {2}));
  CHECK_FALSE(Eval("result != 3", {3}));
  CHECK(Eval("true == true"));
  CHECK(Eval("false != true"));
  CHECK_FALSE(Eval("true == false"));
  CHECK(Eval("isNaN(result) == false", {1}));
}

TEST_CASE("deploy condition: number literals") {
  CHECK(Eval("0.02 == 2e-2"));
  CHECK(Eval("800 == 8E2"));
  CHECK(Eval("1e-3 == 0.001"));
  CHECK(Eval(".5 == 0.5"));
  CHECK(Eval("5. == 5"));
  CHECK(Eval("1e+2 == 100"));
  CHECK(Eval("007 == 7"));
}

TEST_CASE("deploy condition: arithmetic and precedence") {
  CHECK(Eval("1 + 2 * 3 == 7"));
  CHECK(Eval("(1 + 2) * 3 == 9"));
  CHECK(Eval("10 - 4 - 3 == 3"));  // left to right
  CHECK(Eval("8 / 4 / 2 == 1"));
  CHECK(Eval("-2 * 3 == -6"));
  CHECK(Eval("1 - -1 == 2"));
  CHECK(Eval("--3 == 3"));
  CHECK(Eval("-result < 0", {2}));
  CHECK(Eval("result * 100 < 2", {0.01}));
  CHECK(Eval("result[0] / result[1] > 0.9", {95, 100}));
  CHECK(Eval("1 + 2 < 4"));  // arithmetic binds tighter than comparison
  CHECK(Eval("abs(-2.5) == 2.5"));
  CHECK(Eval("abs(result - 1) < 0.1", {1.05}));
}

TEST_CASE("deploy condition: logic, and/or/not words, precedence") {
  CHECK(Eval("true && true"));
  CHECK_FALSE(Eval("true && false"));
  CHECK(Eval("false || true"));
  CHECK_FALSE(Eval("false || false"));
  CHECK(Eval("!false"));
  CHECK_FALSE(Eval("!true"));
  CHECK(Eval("true and true"));
  CHECK_FALSE(Eval("true and false"));
  CHECK(Eval("false or true"));
  CHECK(Eval("not false"));
  CHECK(Eval("not not true"));
  // '!' binds tighter than '||' and '&&': (!true) || true.
  CHECK(Eval("!true || true"));
  CHECK(Eval("not true or true"));
  CHECK_FALSE(Eval("!(true || true)"));
  // '&&' binds tighter than '||'.
  CHECK(Eval("true || false && false"));
  CHECK(Eval("true or false and false"));
  CHECK_FALSE(Eval("(true || false) && false"));
  // '!' applies to a whole comparison (like expr.h's `if:`): !(result < 0.5).
  CHECK(Eval("!result < 0.5", {0.7}));
  CHECK(Eval("result >= 0.95 and result < 1 or false", {0.97}));
  // Words need word boundaries: 'android' is a name, not 'and'.
  CHECK(Err("true android") == "column 6: unexpected 'android' after the condition");
}

TEST_CASE("deploy condition: result, indexing and list functions") {
  const std::vector<double> r = {0.97, 750, 3};
  CHECK(Eval("result[0] >= 0.95 && result[1] < 800", r));
  CHECK(Eval("result == 0.97", r));  // result as a number is result[0]
  CHECK(Eval("result[2] == 3", r));
  CHECK(Eval("result[ 1 ] == 750", r));
  CHECK(Eval("len(result) == 3", r));
  CHECK(Eval("len((result)) == 3", r));
  CHECK(Eval("(result) < 1", r));
  CHECK(Eval("len(result) == 0", {}));
  CHECK(Eval("min(result) == 0.97", r));
  CHECK(Eval("max(result) == 750", r));
  CHECK(Eval("sum(result) == 753.97", r));
  CHECK(Eval("sum(result) == 0", {}));
  CHECK(Eval("avg(result) == 2", {1, 2, 3}));
  CHECK(Eval("min(result) == -1 && max(result) == 4", {4, -1, 2}));
  CHECK(Eval("isNaN(result[1])", {1, kNaN}));
  CHECK_FALSE(Eval("isNaN(result[0])", {1, kNaN}));
  CHECK(Eval("isInf(result)", {-kInf}));
  CHECK_FALSE(Eval("isInf(result)", {1e308}));
  // Short-circuit: a missing result[1] is never read.
  CHECK_FALSE(Eval("len(result) > 1 && result[1] < 800", {0.9}));
  CHECK(Eval("len(result) < 2 || result[1] < 800", {0.9}));
}

TEST_CASE("deploy condition: NaN compares false except with '!=', division is IEEE") {
  CHECK_FALSE(Eval("result < 1", {kNaN}));
  CHECK_FALSE(Eval("result <= 1", {kNaN}));
  CHECK_FALSE(Eval("result > 1", {kNaN}));
  CHECK_FALSE(Eval("result >= 1", {kNaN}));
  CHECK_FALSE(Eval("result == result", {kNaN}));
  CHECK(Eval("result != result", {kNaN}));
  CHECK(Eval("isNaN(result)", {kNaN}));
  CHECK(Eval("isNaN(result) || result > 0.02", {kNaN}));
  // min, max, sum and avg are NaN when any value is, whatever the order.
  CHECK(Eval("isNaN(min(result)) && isNaN(max(result))", {kNaN, 1}));
  CHECK(Eval("isNaN(min(result)) && isNaN(max(result))", {1, kNaN}));
  CHECK(Eval("isNaN(sum(result)) && isNaN(avg(result))", {1, kNaN}));
  CHECK(Eval("isInf(1 / 0) && 1 / 0 > 0"));
  CHECK(Eval("-1 / 0 < 0"));
  CHECK(Eval("isNaN(0 / 0)"));
  CHECK(Eval("isNaN(result / result)", {0}));
}

TEST_CASE("deploy condition: syntax errors name their column") {
  CHECK(Err("") == "column 1: expected a value, got end of condition");
  CHECK(Err("result <") == "column 9: expected a value, got end of condition");
  CHECK(Err("&& true") == "column 1: expected a value, got '&&'");
  CHECK(Err("(result < 1") == "column 12: expected ')' to close '(' at column 1");
  CHECK(Err("result < 1)") == "column 11: unexpected ')' after the condition");
  CHECK(Err("result = 1") == "column 8: unexpected character '=' (compare with '==')");
  CHECK(Err("true & true") == "column 6: unexpected character '&' (use '&&' or 'and')");
  CHECK(Err("true | true") == "column 6: unexpected character '|' (use '||' or 'or')");
  CHECK(Err("result < 'x'") == "column 10: unexpected character '''");
  CHECK(Err("result < 1e") == "column 10: malformed number '1e'");
  CHECK(Err("result < 1e+") == "column 10: malformed number '1e+'");
  CHECK(Err("result < 0x1f") == "column 10: malformed number '0x1f'");
  CHECK(Err("result < 1.2.3") == "column 10: malformed number '1.2.3'");
  CHECK(Err("result < 1e999") == "column 10: number '1e999' is out of range");
  CHECK(Err("foo < 1") == "column 1: unknown identifier 'foo' (expected result, true or false)");
  CHECK(Err("count(result) > 1") ==
        "column 1: unknown function 'count' (expected len, isNaN, isInf, abs, min, max, sum or "
        "avg)");
  CHECK(Err("len result") == "column 5: expected '(' after len");
  CHECK(Err("len(result") == "column 11: expected ')' after the argument to len");
  CHECK(Err("abs(1, 2) < 3") == "column 6: expected ')' after the argument to abs");
  CHECK(Err("abs() < 3") == "column 5: expected a value, got ')'");
  CHECK(Err("result[1.5] < 1") ==
        "column 8: expected an index from 0 to 999999 inside result[...], got '1.5'");
  CHECK(Err("result[-1] < 1") ==
        "column 8: expected an index from 0 to 999999 inside result[...], got '-'");
  CHECK(Err("result[] < 1") ==
        "column 8: expected an index from 0 to 999999 inside result[...], got ']'");
  CHECK(Err("result[1 < 1") == "column 10: expected ']' to close '[' at column 7");
  CHECK(Err("0 < result < 1") ==
        "column 12: comparisons do not chain; join them with '&&', e.g. "
        "'0 < result && result < 1'");
}

TEST_CASE("deploy condition: type errors are parse errors") {
  const std::string not_bool =
      "column 1: the condition must be true or false, e.g. 'result < 0.02'";
  CHECK(Err("result") == not_bool);
  CHECK(Err("result[0]") == not_bool);
  CHECK(Err("1 + 2") == not_bool);
  CHECK(Err("len(result)") == not_bool);
  CHECK(Err("(result)") == not_bool);
  CHECK(Err("result && 1") == "column 1: '&&' needs true or false, got a number");
  CHECK(Err("true && 1") == "column 9: '&&' needs true or false, got a number");
  CHECK(Err("true and result") == "column 10: 'and' needs true or false, got a number");
  CHECK(Err("result || true") == "column 1: '||' needs true or false, got a number");
  CHECK(Err("false or 2") == "column 10: 'or' needs true or false, got a number");
  CHECK(Err("!result") == "column 2: '!' needs true or false, got a number");
  CHECK(Err("not 1") == "column 5: 'not' needs true or false, got a number");
  CHECK(Err("true + 1 > 0") == "column 1: '+' needs a number, got true or false");
  CHECK(Err("1 * false > 0") == "column 5: '*' needs a number, got true or false");
  CHECK(Err("-true < 0") == "column 2: '-' needs a number, got true or false");
  CHECK(Err("true < 1") == "column 1: '<' needs a number, got true or false");
  CHECK(Err("1 >= (1 < 2)") == "column 6: '>=' needs a number, got true or false");
  CHECK(Err("result == true") == "column 8: '==' cannot compare a number with true or false");
  CHECK(Err("false != 0") == "column 7: '!=' cannot compare a number with true or false");
  CHECK(Err("isNaN(true)") == "column 7: isNaN needs a number, got true or false");
  CHECK(Err("abs(1 < 2) > 0") == "column 5: abs needs a number, got true or false");
  CHECK(Err("len(result[0]) > 0") == "column 5: len takes result, e.g. 'len(result)'");
  CHECK(Err("max(1) > 0") == "column 5: max takes result, e.g. 'max(result)'");
  CHECK(Err("avg(result + 1) > 0") == "column 5: avg takes result, e.g. 'avg(result)'");
}

TEST_CASE("deploy condition: evaluation reads only values that are there") {
  CHECK(EvalErr("result < 1", {}) == "result is empty");
  CHECK(EvalErr("result[0] < 1", {}) == "result is empty");
  CHECK(EvalErr("result[3] < 1", {1, 2}) == "result[3] is out of range (result has 2 values)");
  CHECK(EvalErr("result[1] < 1", {1}) == "result[1] is out of range (result has 1 value)");
  CHECK(EvalErr("result[999999] < 1", {1}) ==
        "result[999999] is out of range (result has 1 value)");
  CHECK(EvalErr("min(result) < 1", {}) == "result is empty");
  CHECK(EvalErr("max(result) < 1", {}) == "result is empty");
  CHECK(EvalErr("avg(result) < 1", {}) == "result is empty");
  CHECK(EvalErr("true && isNaN(result[2])", {1}) ==
        "result[2] is out of range (result has 1 value)");

  // A copy shares the parsed condition; text() is the source.
  absl::StatusOr<Condition> c = Condition::Parse(" result < 0.02 ");
  REQUIRE(c.ok());
  const Condition copy = *c;
  CHECK(copy.text() == " result < 0.02 ");
  CHECK(*copy.Evaluate({0.01}));
}

// Without limits, deep nesting overflows the stack (the parser and Evaluate recurse), and a
// condition is user input: it must be an error, never a crash.
TEST_CASE("deploy condition: size, token and nesting limits") {
  CHECK(Eval(Nested("(", 64, "true", ")")));
  CHECK(Err(Nested("(", 65, "true", ")")) == "column 65: condition nested deeper than 64 levels");
  CHECK(Eval(Nested("!", 64, "true", "")));
  CHECK(Err(Nested("!", 65, "true", "")) == "column 65: condition nested deeper than 64 levels");
  CHECK(Eval(Nested("not ", 64, "true", "")));
  CHECK(Err(Nested("not ", 65, "true", "")) ==
        "column 257: condition nested deeper than 64 levels");
  CHECK(Eval(Nested("-", 64, "1", "") + " == 1"));
  CHECK(Err(Nested("-", 65, "1", "") + " == 1") ==
        "column 65: condition nested deeper than 64 levels");
  CHECK(Err(Nested("abs(", 65, "1", ")") + " > 0") ==
        "column 257: condition nested deeper than 64 levels");

  // 1024 tokens pass, the 1025th is an error at its column.
  std::string chain = "-1";
  for (int i = 0; i < 510; ++i) chain += "+1";
  chain += "<1e9";  // 2 + 1020 + 2 = 1024 tokens
  CHECK(Eval(chain));
  chain += "+1";
  CHECK(Err(chain) == "column 1027: condition has more than 1024 tokens");
  CHECK(Err(Nested("(", 100000, "true", ")")) ==
        "column 4097: condition is longer than 4096 bytes");
  CHECK(Err(Nested("(", 2000, "true", ")")) == "column 1025: condition has more than 1024 tokens");

  // 4096 bytes pass (spaces are not tokens); 4097 do not.
  std::string padded = "result < 1" + std::string(4096 - 10, ' ');
  REQUIRE(padded.size() == 4096);
  CHECK(Eval(padded));
  padded += " ";
  CHECK(Err(padded) == "column 4097: condition is longer than 4096 bytes");

  // The deepest tree the limits allow evaluates: a 512-long chain inside 64 parentheses.
  std::string deep = "1";
  for (int i = 0; i < 400; ++i) deep += "+1";
  CHECK(Eval(Nested("(", 64, deep, ")") + " == 401"));
}

TEST_CASE("deploy condition: hostile input is an error, never a crash") {
  CHECK(Err("result < 0.02 &&") == "column 17: expected a value, got end of condition");
  CHECK(Err("((((") == "column 5: expected a value, got end of condition");
  CHECK(Err("result[") ==
        "column 8: expected an index from 0 to 999999 inside result[...], got end of condition");
  CHECK(Err("result[99999999999999999999] < 1") ==
        "column 8: expected an index from 0 to 999999 inside result[...], got "
        "'99999999999999999999'");
  CHECK(Err("result[1000000] < 1") ==
        "column 8: expected an index from 0 to 999999 inside result[...], got '1000000'");
  CHECK(Err("1e999 > 0") == "column 1: number '1e999' is out of range");
  CHECK(Err("1e-400 < 1") == "column 1: number '1e-400' is out of range");
  CHECK(Eval("1e-310 > 0"));  // subnormal, still a double
  CHECK(Err(std::string("result < \xff\xfe", 11)) == "column 10: unexpected byte 0xFF");
  CHECK(Err(std::string("result <\0 1", 10)) == "column 9: unexpected byte 0x00");
  CHECK(Err("result < 1 \x1b[31m") == "column 12: unexpected byte 0x1B");
  CHECK(Err("result\t<\n0.02 ;") == "column 15: unexpected character ';'");
  CHECK(Eval("result\t<\n0.02", {0.01}));
  CHECK(Err("résult < 1") == "column 2: unexpected byte 0xC3");
  CHECK(Err(std::string(5000, '9')) == "column 4097: condition is longer than 4096 bytes");
  // A number of 4096 digits overflows a double.
  CHECK(Err(std::string(4096, '9')) ==
        "column 1: number '" + std::string(4096, '9') + "' is out of range");
}

Phase Judged(const char* success, const char* failure, const std::vector<double>& result,
             std::string* why) {
  std::optional<Condition> s, f;
  if (success != nullptr) {
    absl::StatusOr<Condition> c = Condition::Parse(success);
    REQUIRE(c.ok());
    s = *c;
  }
  if (failure != nullptr) {
    absl::StatusOr<Condition> c = Condition::Parse(failure);
    REQUIRE(c.ok());
    f = *c;
  }
  return Judge(s, f, result, why);
}

TEST_CASE("deploy condition: Judge follows Argo's rules") {
  std::string why;
  SECTION("neither condition is an error, whatever the data") {
    CHECK(Judged(nullptr, nullptr, {1}, &why) == Phase::kError);
    CHECK(why == "no success_condition or failure_condition");
    CHECK(Judged(nullptr, nullptr, {}, &why) == Phase::kError);
  }
  SECTION("no data is inconclusive, never a pass") {
    CHECK(Judged("result < 0.02", nullptr, {}, &why) == Phase::kInconclusive);
    CHECK(why == "no data");
    CHECK(Judged(nullptr, "result > 0.02", {}, &why) == Phase::kInconclusive);
    CHECK(why == "no data");
    CHECK(Judged("len(result) == 0", nullptr, {}, &why) == Phase::kInconclusive);
  }
  SECTION("success only") {
    CHECK(Judged("result < 0.02", nullptr, {0.01}, &why) == Phase::kSuccessful);
    CHECK(why == "result 0.01 passes 'result < 0.02'");
    CHECK(Judged("result < 0.02", nullptr, {0.031}, &why) == Phase::kFailed);
    CHECK(why == "result 0.031 fails 'result < 0.02'");
  }
  SECTION("failure only") {
    CHECK(Judged(nullptr, "result > 0.02", {0.031}, &why) == Phase::kFailed);
    CHECK(why == "result 0.031 meets failure_condition 'result > 0.02'");
    CHECK(Judged(nullptr, "result > 0.02", {0.01}, &why) == Phase::kSuccessful);
    CHECK(why == "result 0.01 does not meet failure_condition 'result > 0.02'");
  }
  SECTION("both: failure is checked first, neither holding is inconclusive") {
    CHECK(Judged("result < 0.05", "result > 0.02", {0.03}, &why) == Phase::kFailed);
    CHECK(why == "result 0.03 meets failure_condition 'result > 0.02'");
    CHECK(Judged("result < 0.02", "result > 0.05", {0.01}, &why) == Phase::kSuccessful);
    CHECK(why == "result 0.01 passes 'result < 0.02'");
    CHECK(Judged("result < 0.02", "result > 0.05", {0.03}, &why) == Phase::kInconclusive);
    CHECK(why ==
          "result 0.03 fails 'result < 0.02' but does not meet failure_condition 'result > 0.05'");
  }
  SECTION("an evaluation error is an error, with its message") {
    CHECK(Judged("result[1] < 800", nullptr, {0.9}, &why) == Phase::kError);
    CHECK(why == "'result[1] < 800': result[1] is out of range (result has 1 value)");
    CHECK(Judged("result < 1", "result[2] > 1", {0.9, 1}, &why) == Phase::kError);
    CHECK(why == "'result[2] > 1': result[2] is out of range (result has 2 values)");
  }
  SECTION("NaN: comparisons are false") {
    // success only: fails.
    CHECK(Judged("result < 0.02", nullptr, {kNaN}, &why) == Phase::kFailed);
    CHECK(why == "result nan fails 'result < 0.02'");
    // both: neither holds, inconclusive.
    CHECK(Judged("result < 0.02", "result > 0.05", {kNaN}, &why) == Phase::kInconclusive);
    // failure only: does not fail, so it passes, unless the condition tests isNaN.
    CHECK(Judged(nullptr, "result > 0.02", {kNaN}, &why) == Phase::kSuccessful);
    CHECK(Judged(nullptr, "isNaN(result) || result > 0.02", {kNaN}, &why) == Phase::kFailed);
  }
  SECTION("several values, and a null why") {
    CHECK(Judged("result[0] >= 0.95 && result[1] < 800", nullptr, {0.97, 750}, &why) ==
          Phase::kSuccessful);
    CHECK(why == "result [0.97, 750] passes 'result[0] >= 0.95 && result[1] < 800'");
    CHECK(Judged("max(result) < 10", nullptr, {1, 2, 3, 4, 5, 6, 70}, &why) == Phase::kFailed);
    CHECK(why == "result [1, 2, 3, 4, 5, ... (7 values)] fails 'max(result) < 10'");
    CHECK(Judged("result < 1", nullptr, {0.5}, nullptr) == Phase::kSuccessful);
  }
  CHECK(PhaseName(Phase::kSuccessful) == "Successful");
  CHECK(PhaseName(Phase::kFailed) == "Failed");
  CHECK(PhaseName(Phase::kInconclusive) == "Inconclusive");
  CHECK(PhaseName(Phase::kError) == "Error");
}

}  // namespace
}  // namespace assay::deploy
