// Prompt templates (common/evals/data/prompt_template.h).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/evals/data/prompt_template.h"

namespace assay::evals {
namespace {

Example QA() {
  Example ex;
  ex.id = "q1";
  ex.input = "Capital of France?";
  ex.expected = "Paris";
  ex.vars = {{"city", "Lyon"}, {"tricky", "{{ city }}"}};
  return ex;
}

std::string RenderError(std::string_view tmpl, const Example& ex, size_t max = kMaxRenderedBytes) {
  absl::StatusOr<std::string> r = RenderTemplate(tmpl, ex, max);
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

TEST_CASE("RenderTemplate fills input, expected and vars, with or without spaces") {
  CHECK(RenderTemplate("Q: {{ input }}\nA:", QA()).value() == "Q: Capital of France?\nA:");
  CHECK(RenderTemplate("{{input}}|{{  expected\t}}|{{\ncity\n}}", QA()).value() ==
        "Capital of France?|Paris|Lyon");
  CHECK(RenderTemplate("no placeholders } { }} {", QA()).value() == "no placeholders } { }} {");
  CHECK(RenderTemplate("", QA()).value().empty());
  CHECK(RenderTemplate("{{city}}{{city}}", QA()).value() == "LyonLyon");
}

TEST_CASE("RenderTemplate does not expand a value's own placeholders") {
  CHECK(RenderTemplate("[{{ tricky }}]", QA()).value() == "[{{ city }}]");
}

TEST_CASE("RenderTemplate names an unknown or missing name with its line and column") {
  CHECK(RenderError("Hello\n  {{ cty }}", QA()) ==
        "template line 2, column 3: unknown variable \"cty\" (known: input, expected, city, "
        "tricky)");
  Example no_expected = QA();
  no_expected.expected.reset();
  CHECK(RenderError("{{ expected }}", no_expected) ==
        "template line 1, column 1: the example has no \"expected\"");
  Example chat;
  chat.messages = {Message{"user", "hi"}};
  CHECK(RenderError("x {{input}}", chat) ==
        "template line 1, column 3: the example has no \"input\" (it is given as \"messages\")");
  Example vars_only;
  vars_only.vars = {{"a", "1"}};
  CHECK(RenderError("{{input}}", vars_only) ==
        "template line 1, column 1: the example has no \"input\"");
}

TEST_CASE("RenderTemplate and ValidateTemplate refuse malformed placeholders") {
  CHECK(RenderError("Q: {{ input", QA()) ==
        "template line 1, column 4: \"{{\" without a closing \"}}\"");
  CHECK(RenderError("a\nb {{ input | upper }}", QA()) ==
        "template line 2, column 3: only a name may stand between {{ and }}, not \"input | "
        "upper\"");
  CHECK(RenderError("{{ }}", QA()) ==
        "template line 1, column 1: only a name may stand between {{ and }}, not \"\"");
  CHECK(RenderError("{{ 1x }}", QA()) ==
        "template line 1, column 1: only a name may stand between {{ and }}, not \"1x\"");
  CHECK(RenderError("{% if x %}y{% endif %}", QA()) ==
        "template line 1, column 1: {% ... %} tags and {# ... #} comments are not supported");
  CHECK(RenderError("ok\n{# note #}", QA()) ==
        "template line 2, column 1: {% ... %} tags and {# ... #} comments are not supported");
  CHECK(ValidateTemplate("{{ a }} and {{b_2}}").ok());
  CHECK(ValidateTemplate("{{ a ").message() ==
        "template line 1, column 1: \"{{\" without a closing \"}}\"");
}

TEST_CASE("RenderTemplate bounds the rendered size") {
  Example big = QA();
  big.vars = {{"blob", std::string(600, 'x')}};
  CHECK(RenderTemplate("{{blob}}{{blob}}", big, 1200).value().size() == 1200);
  CHECK(RenderError("{{blob}}{{blob}}!", big, 1200) ==
        "rendered prompt is over 1200 bytes (max_bytes)");
  // A template that repeats a large var many times stops at the bound, not after it.
  std::string many;
  for (int i = 0; i < 5000; ++i) many += "{{blob}}";
  CHECK(RenderError(many, big) == "rendered prompt is over 1048576 bytes (max_bytes)");
}

TEST_CASE("TemplateVariables lists each name once in order of first use") {
  CHECK(TemplateVariables("{{b}} {{ a }} {{b}} {{input}}").value() ==
        std::vector<std::string>{"b", "a", "input"});
  CHECK(TemplateVariables("{{").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("RenderAssertionValues renders values as promptfoo does, then validates them") {
  std::vector<Assertion> in = {
      Assertion{"equals", false, "{{ expected }}", std::nullopt, 1},
      Assertion{"contains", true, "{{city}}", std::nullopt, 1},
      Assertion{"is-json", false, "", std::nullopt, 1},
  };
  absl::StatusOr<std::vector<Assertion>> out = RenderAssertionValues(in, QA());
  REQUIRE(out.ok());
  CHECK((*out)[0].value == "Paris");
  CHECK((*out)[1].value == "Lyon");
  CHECK((*out)[2].value.empty());

  absl::StatusOr<std::vector<Assertion>> bad =
      RenderAssertionValues({Assertion{"contains", false, "{{ nope }}", std::nullopt, 1}}, QA());
  CHECK(bad.status().message() ==
        "assert[0]: value: template line 1, column 1: unknown variable \"nope\" (known: input, "
        "expected, city, tricky)");
  Example ex = QA();
  ex.vars = {{"pat", "(unclosed"}};
  bad = RenderAssertionValues({Assertion{"regex", false, "{{pat}}", std::nullopt, 1}}, ex);
  CHECK(bad.status().message() ==
        "assert[0]: regex: key \"value\": regex \"(unclosed\": missing ): (unclosed");
  ex.vars = {{"empty", ""}};
  bad = RenderAssertionValues({Assertion{"contains", false, "{{empty}}", std::nullopt, 1}}, ex);
  CHECK(bad.status().message() == "assert[0]: contains: key \"value\": must be a non-empty string");
}

}  // namespace
}  // namespace assay::evals
