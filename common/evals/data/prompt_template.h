#pragma once
// Prompt templates (docs/eval-datasets.md "Templates"): text with `{{ name }}` placeholders
// filled from one example. Deliberately small: a placeholder holds one name, nothing else
// (no filters, tags or expressions), and a value is inserted as is, never expanded again.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/evals/example.h"

namespace assay::evals {

inline constexpr size_t kMaxRenderedBytes = size_t{1} << 20;

// Fills `tmpl`'s placeholders: `{{name}}`, `{{ name }}` (spaces, tabs and newlines around the
// name are allowed); name = [A-Za-z_][A-Za-z0-9_]*. `input` is the example's input, `expected`
// its expected answer, any other name one of its vars. A value containing `{{ x }}` is copied
// literally (no recursion). Errors (kInvalidArgument), each with the 1-based line and column
// (in bytes) of the `{{`:
//   `template line 2, column 5: unknown variable "cty" (known: input, expected, city)`
//   `template line 1, column 9: "{{" without a closing "}}"`
//   `template line 1, column 1: only a name may stand between {{ and }}, not "x | upper"`
//   `template line 3, column 1: {% ... %} tags and {# ... #} comments are not supported`
//   `template line 1, column 1: the example has no "expected"` (likewise no "input", as for
//   an example given as `messages`)
//   `rendered prompt is over 1048576 bytes (max_bytes)`
absl::StatusOr<std::string> RenderTemplate(std::string_view tmpl, const Example& example,
                                           size_t max_bytes = kMaxRenderedBytes);

// The template's syntax alone (for `assay lint`): the errors of RenderTemplate that do not
// depend on an example.
absl::Status ValidateTemplate(std::string_view tmpl);

// The names the template uses, each once, in order of first use (so a runner can check that
// every example has them before it starts).
absl::StatusOr<std::vector<std::string>> TemplateVariables(std::string_view tmpl);

// promptfoo renders assertion values as templates too (`value: "{{ expected }}"`): returns the
// assertions with each value that contains "{{" rendered against `example`, then validated
// again (a rendered regex must compile). Errors begin "assert[i]: ".
absl::StatusOr<std::vector<Assertion>> RenderAssertionValues(
    const std::vector<Assertion>& assertions, const Example& example);

}  // namespace assay::evals
