#pragma once
// promptfoo's deterministic assertions (docs/eval-datasets.md "Assertions"): parsing them from
// JSON, checking them (the pipeline linter calls ValidateAssertion for inline `tests:`), and
// running a compiled set over one model output with promptfoo's scoring. No I/O.
//
// Semantics, as promptfoo's src/assertions/{equals,contains,startsWith,regex,json}.ts and
// assertionsResult.ts define them (read at promptfoo/promptfoo main, 2026):
//   equals       output == value, byte for byte: no trimming, case-sensitive.
//   contains     value occurs in output, case-sensitive.
//   icontains    the same after JavaScript's toLowerCase of both (see JsToLowerCase).
//   starts-with  output begins with value, case-sensitive, no trimming.
//   regex        the pattern matches somewhere in output (RegExp.test, no flags); RE2 syntax.
//   is-json      JSON.parse(output) succeeds (see IsJson); with a `value`, the parsed output
//                also conforms to that JSON schema (json_schema.h: Ajv's subset we support).
//   not-TYPE     the opposite pass/fail of TYPE.
// Every one scores 1 when it passes and 0 when it fails. An assertion of weight 0 always
// passes (it is reported, not gating), as in promptfoo.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/evals/data/json_schema.h"
#include "common/evals/data/safe_regex.h"
#include "common/evals/example.h"

namespace assay::evals {

// The base types (each also as not-TYPE), in the order error messages list them.
inline constexpr std::string_view kAssertionTypes[] = {"equals", "contains",    "icontains",
                                                       "regex",  "starts-with", "is-json"};

// Parses one `{type, value, threshold, weight}` object. `type` may carry the `not-` prefix
// (then the result has negate = true and the base type). `value`: a string; for equals,
// contains and icontains also a number (JavaScript's String(x): 3.0 -> "3"), for equals also
// a boolean ("true"/"false"); for is-json a JSON schema (an object or boolean, kept in `value`
// as its JSON text; or that JSON text as a string). Any other key is refused, naming the allowed
// ones. The result is validated (ValidateAssertion). Errors are kInvalidArgument and begin with
// `where` (e.g. "qa.jsonl:7: assert[1]"): `qa.jsonl:7: assert[1]: unknown assertion type "similar"
// (...)`.
absl::StatusOr<Assertion> ParseAssertion(const boost::json::value& v, std::string_view where);

// Checks an assertion built in code or parsed elsewhere (YAML `tests:`): `type` is a base
// type (not "not-..."; negation is `negate`); contains, icontains, starts-with and regex need
// a non-empty value (promptfoo refuses an empty one too); regex compiles under SafeRegex;
// is-json's value, when not empty, is a JSON schema JsonSchema compiles; threshold, when set, is in
// [0, 1]; weight is finite and >= 0. The per-assertion threshold is accepted for promptfoo
// compatibility but does not change these 0-or-1 assertions (promptfoo uses it only for
// scored types such as `similar`). Errors (kInvalidArgument) name the type and the key.
absl::Status ValidateAssertion(const Assertion& a);

struct AssertionResult {
  bool pass = false;
  double score = 0;    // 1 or 0.
  std::string reason;  // promptfoo's wording: "Assertion passed", "Expected output to ...".

  bool operator==(const AssertionResult&) const = default;
};

// A test's outcome over all its assertions.
struct AssertionVerdict {
  bool pass = true;
  double score = 1;  // Weighted mean of the scores (0 when every weight is 0).
  std::string reason;
  std::vector<AssertionResult> results;  // One per assertion, in order.
};

// Assertions compiled once (regexes included) and run over many outputs. Copyable; Check and
// Run are const and safe to call from several threads at once.
class AssertionSet {
 public:
  // Validates each assertion; the error names its index: "assert[2]: regex ...".
  static absl::StatusOr<AssertionSet> Compile(std::vector<Assertion> assertions);

  // One result per assertion, in order.
  std::vector<AssertionResult> Check(std::string_view output) const;

  // promptfoo's aggregate (AssertionsResult.testResult): score = sum(score * weight) /
  // sum(weight), 0 when the weights sum to 0; without `threshold` the test passes when every
  // assertion passed and its reason is the last failure's reason ("All assertions passed"
  // otherwise); with a test-level `threshold` it passes when score >= threshold, and the
  // reason is "Aggregate score 0.67 < 0.8 threshold". No assertions: pass, score 1,
  // "No assertions". `results` must come from Check on this set.
  AssertionVerdict Verdict(std::vector<AssertionResult> results,
                           std::optional<double> threshold = std::nullopt) const;

  // Check, then Verdict.
  AssertionVerdict Run(std::string_view output,
                       std::optional<double> threshold = std::nullopt) const {
    return Verdict(Check(output), threshold);
  }

  const std::vector<Assertion>& assertions() const { return assertions_; }

 private:
  std::vector<Assertion> assertions_;
  std::vector<std::optional<SafeRegex>> regexes_;   // Set for each regex assertion.
  std::vector<std::optional<JsonSchema>> schemas_;  // Set for each is-json with a schema.
  std::vector<std::string> lowered_;                // icontains: the value, lowered once.
};

}  // namespace assay::evals
