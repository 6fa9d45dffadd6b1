// Fuzzes prompt templates (common/evals/data/prompt_template.h): a template file comes from
// the repository. Input: the template, then "\x01", then the value of the var `v`. Contract:
// never a crash; Render, Validate and TemplateVariables agree on what is valid; the result
// is at most max_bytes; a template without "{{" renders to itself; a value is never expanded.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/evals/data/prompt_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace assay::evals;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t cut = in.find('\x01');
  const std::string_view tmpl = in.substr(0, cut);
  const std::string_view value = cut == std::string_view::npos ? "" : in.substr(cut + 1);
  Example ex;
  ex.input = "IN";
  ex.expected = "EX";
  ex.vars = {{"v", std::string(value)}};
  constexpr size_t kMax = 8192;
  absl::StatusOr<std::string> out = RenderTemplate(tmpl, ex, kMax);
  const bool valid = ValidateTemplate(tmpl).ok();
  if (valid != TemplateVariables(tmpl).ok()) std::abort();
  if (out.ok()) {
    if (!valid || out->size() > kMax) std::abort();
    if (tmpl.find("{{") == std::string_view::npos && *out != tmpl) std::abort();
    // `{{v}}` alone renders to the value itself, whatever the value holds.
    if (tmpl == "{{v}}" && *out != value) std::abort();
  } else if (out.status().code() != absl::StatusCode::kInvalidArgument) {
    std::abort();
  }
  return 0;
}
