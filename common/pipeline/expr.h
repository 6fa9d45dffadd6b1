#pragma once
// The `if:` expression language of `.assay.yml` jobs, and `${{ NAME }}` placeholders.
// Pure; no I/O.
//
//   expr     := or
//   or       := and ('||' and)*
//   and      := unary ('&&' unary)*
//   unary    := '!' unary | compare
//   compare  := primary (('==' | '!=') primary)*
//   primary  := 'str' | "str" | true | false | branch | tag | event
//             | inputs.NAME | env.NAME | startsWith(expr, expr) | contains(expr, expr)
//             | evals.NAME.passed             (only with ExprOptions::allow_evals)
//             | '(' expr ')'
//
// Values are strings or booleans. A string is truthy when non-empty. `==`/`!=` compare
// text (a boolean reads "true"/"false"), case-sensitively. startsWith(a, b) and
// contains(a, b) test whether text a starts with / contains text b. Missing inputs and
// env names read as "". Strings have no escapes; use the other quote to embed one.

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace assay {

struct ExprContext {
  std::string branch;
  std::string tag;
  std::string event;  // push, tag, pull_request, schedule, manual.
  std::map<std::string, std::string> inputs;
  std::map<std::string, std::string> env;
  // Issue 10, a `promote:` step's `if`: the evals of the pipeline by name, whether each passed
  // (every complete run of that name passed). evals.NAME.passed is a boolean: false when NAME
  // is not here.
  std::map<std::string, bool> evals;
};

struct ExprOptions {
  bool allow_evals = false;  // evals.NAME.passed (a promote step's `if`; never a job's)
};

class Expr {
 public:
  struct Node;

  // kInvalidArgument "column N: MESSAGE" (N 1-based into `text`) on error, e.g.
  //   "column 9: expected ')' after arguments to startsWith"
  //   "column 1: unknown identifier 'foo' (expected branch, tag, event, inputs.NAME or env.NAME)"
  //   "column 1: unknown function 'foo' (expected startsWith or contains)"
  //   "column N: unterminated string"             "column N: unexpected character '='"
  //   "column N: expected a value, got '&&'"      "column N: expected a value, got end of
  //   expression" "column N: expected ')' to close '(' at column M" "column N: unexpected ')' after
  //   the expression" "column N: expected ',' between arguments to contains" "column N: expected
  //   '(' after startsWith"   "column N: expected a name after 'inputs.'" "column N: expression has
  //   more than 1024 tokens" "column N: expression nested deeper than 64 levels"   ('(', '!' and
  //   calls count)
  //   "column N: expected evals.NAME.passed"    (with allow_evals)
  static absl::StatusOr<Expr> Parse(std::string_view text, ExprOptions options = {});

  bool Evaluate(const ExprContext& context) const;

  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::shared_ptr<const Node> root_;  // Immutable; shared by copies.
};

// `${{ NAME }}` placeholders (spaces inside the braces optional) in job fields. NAME is
// branch, tag, event, inputs.X, env.X, or (only when `allow_matrix`) matrix.X.
// kInvalidArgument on error, with the 1-based column of the placeholder:
//   "column N: unterminated placeholder '${{'"
//   "column N: unknown placeholder 'foo' (expected branch, tag, event, inputs.NAME, env.NAME or
//   matrix.NAME)"
//   ("... or env.NAME)" when matrix is not allowed)
absl::Status ValidatePlaceholders(std::string_view text, bool allow_matrix);

// Replaces every placeholder with its value ("" when missing). Unknown or unterminated
// placeholders (which ValidatePlaceholders rejects) are left as they are.
std::string SubstitutePlaceholders(std::string_view text, const ExprContext& context,
                                   const std::map<std::string, std::string>& matrix);

}  // namespace assay
