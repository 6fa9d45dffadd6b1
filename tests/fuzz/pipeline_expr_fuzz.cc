// Fuzzes the `if:` expression parser and evaluator, and the `${{ }}` placeholders, with any
// text. Contract: a Status or a value, never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/pipeline/expr.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  assay::ExprContext ctx;
  ctx.branch = "main";
  ctx.event = "push";
  ctx.inputs["name"] = "x";
  ctx.env["CI"] = "true";
  ctx.evals["qa"] = true;
  if (auto e = assay::Expr::Parse(text); e.ok()) (void)e->Evaluate(ctx);
  // A promote step's `if`, which may name evals (issue 10).
  if (auto e = assay::Expr::Parse(text, assay::ExprOptions{.allow_evals = true}); e.ok()) {
    (void)e->Evaluate(ctx);
  }
  for (bool allow_matrix : {false, true}) {
    (void)assay::ValidatePlaceholders(text, allow_matrix);
  }
  (void)assay::SubstitutePlaceholders(text, ctx, {{"os", "linux"}});
  return 0;
}
