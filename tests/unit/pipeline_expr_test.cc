#include <catch2/catch.hpp>
#include <string>

#include "common/pipeline/expr.h"

namespace assay {
namespace {

ExprContext Ctx() {
  ExprContext c;
  c.branch = "main";
  c.event = "push";
  c.inputs = {{"model", "llama-3"}, {"dry_run", "true"}, {"empty", ""}};
  c.env = {{"STAGE", "prod"}};
  return c;
}

bool Eval(const std::string& text, const ExprContext& c = Ctx()) {
  absl::StatusOr<Expr> e = Expr::Parse(text);
  INFO(text << " -> " << e.status().ToString());
  REQUIRE(e.ok());
  CHECK(e->text() == text);
  return e->Evaluate(c);
}

std::string Err(const std::string& text) {
  absl::StatusOr<Expr> e = Expr::Parse(text);
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(e.status().message());
}

TEST_CASE("expr: literals, identifiers and comparisons") {
  CHECK(Eval("true"));
  CHECK_FALSE(Eval("false"));
  CHECK(Eval("'x'"));
  CHECK_FALSE(Eval("''"));
  CHECK(Eval("branch == 'main'"));
  CHECK(Eval("branch == \"main\""));
  CHECK_FALSE(Eval("branch != 'main'"));
  CHECK(Eval("branch != 'dev'"));
  CHECK_FALSE(Eval("branch == 'Main'"));
  CHECK(Eval("event == 'push'"));
  CHECK_FALSE(Eval("tag"));
  CHECK(Eval("tag == ''"));
  CHECK(Eval("inputs.model == 'llama-3'"));
  CHECK(Eval("inputs.dry_run == true"));
  CHECK_FALSE(Eval("inputs.empty"));
  CHECK_FALSE(Eval("inputs.missing"));
  CHECK(Eval("env.STAGE == 'prod'"));
  CHECK(Eval("env.NOPE == ''"));
  CHECK(Eval("\"it's\" == \"it's\""));
}

TEST_CASE("expr: logic, precedence and functions") {
  CHECK(Eval("branch == 'main' && event == 'push'"));
  CHECK_FALSE(Eval("branch == 'main' && event == 'manual'"));
  CHECK(Eval("branch == 'dev' || event == 'push'"));
  CHECK(Eval("!false"));
  CHECK(Eval("!!branch"));
  CHECK(Eval("!(branch == 'dev')"));
  // && binds tighter than ||.
  CHECK(Eval("true || false && false"));
  CHECK_FALSE(Eval("(true || false) && false"));
  CHECK(Eval("startsWith(branch, 'ma')"));
  CHECK_FALSE(Eval("startsWith(branch, 'release/')"));
  CHECK(Eval("contains(inputs.model, 'llama')"));
  CHECK_FALSE(Eval("contains(env.STAGE, 'dev')"));
  CHECK(Eval("startsWith(branch, '')"));
  CHECK(Eval("startsWith(branch, 'ma') == true"));
  ExprContext release = Ctx();
  release.branch = "release/1.2";
  CHECK(Eval("startsWith(branch, 'release/') && !contains(branch, 'rc')", release));
}

TEST_CASE("expr: exact parse errors") {
  CHECK(Err("startsWith(branch, 'x'") == "column 23: expected ')' after arguments to startsWith");
  CHECK(Err("contains(a") ==
        "column 10: unknown identifier 'a' (expected branch, tag, event, inputs.NAME or env.NAME)");
  CHECK(Err("startsWith(branch 'x')") == "column 19: expected ',' between arguments to startsWith");
  CHECK(Err("startsWith == 'x'") == "column 12: expected '(' after startsWith");
  CHECK(Err("foo(branch, 'x')") ==
        "column 1: unknown function 'foo' (expected startsWith or contains)");
  CHECK(Err("branch == 'main") == "column 11: unterminated string");
  CHECK(Err("branch = 'main'") == "column 8: unexpected character '='");
  CHECK(Err("branch ==") == "column 10: expected a value, got end of expression");
  CHECK(Err("") == "column 1: expected a value, got end of expression");
  CHECK(Err("&& true") == "column 1: expected a value, got '&&'");
  CHECK(Err("(branch == 'x'") == "column 15: expected ')' to close '(' at column 1");
  CHECK(Err("branch == 'x')") == "column 14: unexpected ')' after the expression");
  CHECK(Err("branch 'x'") == "column 8: unexpected string 'x' after the expression");
  CHECK(Err("inputs.") == "column 8: expected a name after 'inputs.'");
  CHECK(Err("env.A.B") == "column 5: expected a name after 'env.'");
  CHECK(Err("matrix.os == 'x'") ==
        "column 1: unknown identifier 'matrix.os' (expected branch, tag, event, inputs.NAME or "
        "env.NAME)");
}

// `n` times `open`, "true", `n` times `close`.
std::string Nested(const std::string& open, int n, const std::string& close) {
  std::string s;
  for (int i = 0; i < n; ++i) s += open;
  s += "true";
  for (int i = 0; i < n; ++i) s += close;
  return s;
}

// Without limits, deep nesting overflowed the stack (the parser and the evaluator recurse),
// and an `if:` is user input: it must be an error, never a crash.
TEST_CASE("expr: nesting limit") {
  CHECK(Eval(Nested("(", 64, ")")));
  CHECK(Err(Nested("(", 65, ")")) == "column 65: expression nested deeper than 64 levels");
  CHECK(Eval(Nested("!", 64, "")));
  CHECK(Err(Nested("!", 65, "")) == "column 65: expression nested deeper than 64 levels");
  CHECK(Err(Nested("contains(branch, ", 65, ")")) ==
        "column 1089: expression nested deeper than 64 levels");
}

TEST_CASE("expr: token limit (100000 nested levels overflowed the stack)") {
  CHECK(Err(Nested("(", 100000, ")")) == "column 1025: expression has more than 1024 tokens");
  CHECK(Err(Nested("!", 100000, "")) == "column 1025: expression has more than 1024 tokens");

  std::string chain = "true";
  for (int i = 0; i < 511; ++i) chain += " && true";  // 1023 tokens
  CHECK(Eval(chain));
  chain += " && true";
  CHECK(Err(chain) == "column 4097: expression has more than 1024 tokens");
}

TEST_CASE("expr: placeholders") {
  CHECK(ValidatePlaceholders("ci-${{ branch }}-${{matrix.py}}", true).ok());
  CHECK(ValidatePlaceholders("no placeholders", false).ok());
  CHECK(ValidatePlaceholders("x-${{ matrix.py }}", false).message() ==
        "column 3: unknown placeholder 'matrix.py' (expected branch, tag, event, inputs.NAME, "
        "env.NAME)");
  CHECK(ValidatePlaceholders("${{ nope }}", true).message() ==
        "column 1: unknown placeholder 'nope' (expected branch, tag, event, inputs.NAME, "
        "env.NAME or matrix.NAME)");
  CHECK(ValidatePlaceholders("${{ }}", true).message() ==
        "column 1: unknown placeholder '' (expected branch, tag, event, inputs.NAME, "
        "env.NAME or matrix.NAME)");
  CHECK(ValidatePlaceholders("ab${{ branch", true).message() ==
        "column 3: unterminated placeholder '${{'");
  const std::map<std::string, std::string> matrix = {{"py", "3.11"}};
  CHECK(SubstitutePlaceholders("deploy-${{ branch }}/${{matrix.py}}/${{ inputs.model }}"
                               "/${{ env.X }}/${{ tag }}/${{ event }}",
                               Ctx(), matrix) == "deploy-main/3.11/llama-3///push");
  CHECK(SubstitutePlaceholders("keep ${{ nope }} and ${{", Ctx(), matrix) ==
        "keep ${{ nope }} and ${{");
}

}  // namespace
}  // namespace assay

namespace assay {
namespace {

TEST_CASE("expr: evals.NAME.passed, only where allowed, is a boolean") {
  ExprContext c;
  c.branch = "main";
  c.evals = {{"qa", true}, {"safety", false}, {"multi-part_x", true}};
  auto eval = [&](const std::string& text) {
    absl::StatusOr<Expr> e = Expr::Parse(text, ExprOptions{.allow_evals = true});
    INFO(text << " -> " << e.status().ToString());
    REQUIRE(e.ok());
    return e->Evaluate(c);
  };
  CHECK(eval("evals.qa.passed"));
  CHECK_FALSE(eval("evals.safety.passed"));
  CHECK_FALSE(eval("evals.missing.passed"));  // no run: false, never a pass
  CHECK(eval("evals.multi-part_x.passed"));
  CHECK(eval("evals.qa.passed && !evals.safety.passed && branch == 'main'"));
  CHECK(eval("evals.qa.passed == 'true'"));
  CHECK_FALSE(eval("evals.safety.passed == 'true'"));
  CHECK(Expr::Parse("evals.qa.passed").status().message() ==
        "column 1: unknown identifier 'evals.qa.passed' (expected branch, tag, event, inputs.NAME "
        "or env.NAME)");
  for (const char* bad : {"evals.qa", "evals..passed", "evals.qa.score", "evals.qa.passed.x"}) {
    INFO(bad);
    CHECK(Expr::Parse(bad, ExprOptions{.allow_evals = true}).status().message() ==
          "column 1: expected evals.NAME.passed");
  }
}

}  // namespace
}  // namespace assay
