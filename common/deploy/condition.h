#pragma once
// The condition language of a deployment analysis metric (Argo Rollouts' successCondition and
// failureCondition): `result < 0.02`, `result[0] >= 0.95 && result[1] < 800`,
// `len(result) == 0`, `isNaN(result)`. Pure; no I/O.
//
//   condition := or                                  (must be true or false)
//   or        := and (('||' | 'or') and)*
//   and       := not (('&&' | 'and') not)*
//   not       := ('!' | 'not') not | compare
//   compare   := sum (('<' | '<=' | '>' | '>=' | '==' | '!=') sum)?     (comparisons do not chain)
//   sum       := product (('+' | '-') product)*
//   product   := negate (('*' | '/') negate)*
//   negate    := '-' negate | primary
//   primary   := NUMBER | true | false | result | result '[' INDEX ']' | '(' or ')'
//              | len(result) | min(result) | max(result) | sum(result) | avg(result)
//              | isNaN(number) | isInf(number) | abs(number)
//
// Values are numbers (doubles: 0.02, 800, 1e-3, .5) and booleans. `result` is the measurement,
// a list of doubles (one per series of a Prometheus vector; one for a scalar). Used as a number,
// `result` means result[0]. INDEX is a whole number from 0 to 999999. len/min/max/sum/avg take
// result itself and look at all of it; isNaN/isInf test a number; abs is its magnitude.
// `==` and `!=` compare two numbers or two booleans; `<`..`>=` and arithmetic take numbers;
// `!`, `&&` and `||` take booleans. Every type error is a parse error. `&&` and `||`
// short-circuit, so `len(result) > 1 && result[1] < 800` never reads a missing result[1].
//
// Arithmetic and comparisons are IEEE 754, as in Go (and so in Argo): x/0 is +-inf, 0/0 is NaN,
// every comparison with NaN is false except `!=`, which is true. min, max, sum and avg are NaN
// when any value is NaN. Only isNaN(x) tells NaN apart.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace assay::deploy {

class Condition {
 public:
  struct Node;

  // Limits on a hostile condition (the parser and Evaluate recurse).
  static constexpr size_t kMaxBytes = 4096;
  static constexpr size_t kMaxTokens = 1024;
  static constexpr int kMaxNesting = 64;  // '(', '!', 'not', unary '-' and calls inside one another

  // kInvalidArgument "column N: MESSAGE" (N 1-based into `text`) on error, e.g.
  //   "column 1: the condition must be true or false, e.g. 'result < 0.02'"
  //   "column 1: '&&' needs true or false, got a number"      (`result && 1`)
  //   "column 1: '+' needs a number, got true or false"        (`true + 1`)
  //   "column 8: '==' cannot compare a number with true or false"  (`result == true`)
  //   "column 12: comparisons do not chain; join them with '&&', e.g. '0 < result && result < 1'"
  //                                                            (`0 < result < 1`)
  //   "column 5: len takes result, e.g. 'len(result)'"         (also min, max, sum, avg)
  //   "column 7: isNaN needs a number, got true or false"      (also isInf, abs)
  //   "column 8: expected an index from 0 to 999999 inside result[...], got '1.5'"
  //   "column 9: expected ']' to close '[' at column 7"     (`result[1`)
  //   "column N: expected ')' to close '(' at column M"
  //   "column N: expected ')' after the argument to abs"
  //   "column N: expected '(' after len"
  //   "column 1: unknown function 'foo' (expected len, isNaN, isInf, abs, min, max, sum or avg)"
  //   "column 1: unknown identifier 'foo' (expected result, true or false)"
  //   "column N: expected a value, got '&&'"   "column N: expected a value, got end of condition"
  //   "column N: unexpected ')' after the condition"
  //   "column N: unexpected character '='" (with a hint for '=', '&' and '|')
  //   "column N: unexpected byte 0xFF"          (not printable ASCII)
  //   "column N: malformed number '1e'"         "column N: number '1e999' is out of range"
  //                                             (also '1e-400': a double underflows)
  //   "column 4097: condition is longer than 4096 bytes"
  //   "column N: condition has more than 1024 tokens"
  //   "column N: condition nested deeper than 64 levels"
  static absl::StatusOr<Condition> Parse(std::string_view text);

  // Whether the condition holds for `result`. kOutOfRange when it reads a value that is not
  // there: "result is empty" (result, result[i], min, max or avg of an empty result), or
  // "result[3] is out of range (result has 2 values)". len and sum of an empty result are 0.
  // kFailedPrecondition on a moved-from Condition.
  absl::StatusOr<bool> Evaluate(const std::vector<double>& result) const;

  const std::string& text() const { return text_; }

 private:
  Condition() = default;

  std::string text_;
  std::shared_ptr<const Node> root_;  // Immutable; shared by copies.
};

// The outcome of one measurement of an analysis metric.
enum class Phase { kSuccessful, kFailed, kInconclusive, kError };

// Judges one measurement by Argo Rollouts' rules, in this order:
//   1. neither condition given                → kError "no success_condition or
//      failure_condition" (a configuration error, whatever the data);
//   2. `result` empty (no data)               → kInconclusive "no data": never a pass;
//   3. failure given and it cannot be evaluated, or is true → kError (the message) / kFailed;
//   4. success given and it cannot be evaluated → kError; true → kSuccessful; false →
//      kInconclusive when failure was also given (neither held), else kFailed;
//   5. only failure given and it is false     → kSuccessful.
// NaN in `result` (Prometheus' 0/0, e.g. an error rate with no traffic) makes a comparison that
// reads it false (and `!=` true), so, unless the condition tests isNaN:
//   - success `result < 0.02` is false: kFailed, or kInconclusive when failure is also given;
//   - failure `result > 0.02` is false: not kFailed; with only a failure condition that is
//     kSuccessful. Write `isNaN(result) || result > 0.02` to fail on NaN instead.
// When `why` is not null it gets a short sentence naming the value and the condition, e.g.
// "result 0.031 fails 'result < 0.02'", "result [0.97, 750] passes 'result[0] >= 0.95'".
Phase Judge(const std::optional<Condition>& success, const std::optional<Condition>& failure,
            const std::vector<double>& result, std::string* why);

// "Successful", "Failed", "Inconclusive", "Error" (Argo's names).
std::string_view PhaseName(Phase phase);

}  // namespace assay::deploy
