#include "common/evals/data/prompt_template.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/evals/data/assertions.h"
#include "common/evals/data/text.h"

namespace assay::evals {
namespace {

// One piece of a template: literal text, or a placeholder's name.
struct Piece {
  bool is_var = false;
  std::string_view text;  // The literal, or the name.
  size_t offset = 0;      // Byte offset of the piece ("{{" for a placeholder).
};

bool IsNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string Where(std::string_view tmpl, size_t offset) {
  size_t line = 1;
  size_t col = 1;
  for (size_t i = 0; i < offset && i < tmpl.size(); ++i) {
    if (tmpl[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return absl::StrCat("template line ", line, ", column ", col);
}

absl::Status ErrorAt(std::string_view tmpl, size_t offset, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Where(tmpl, offset), ": ", Av(what)));
}

absl::StatusOr<std::vector<Piece>> Split(std::string_view tmpl) {
  std::vector<Piece> pieces;
  size_t literal_start = 0;
  size_t i = 0;
  while (i + 1 < tmpl.size()) {
    if (tmpl[i] != '{' || (tmpl[i + 1] != '{' && tmpl[i + 1] != '%' && tmpl[i + 1] != '#')) {
      ++i;
      continue;
    }
    if (tmpl[i + 1] != '{') {
      return ErrorAt(tmpl, i, "{% ... %} tags and {# ... #} comments are not supported");
    }
    const size_t close = tmpl.find("}}", i + 2);
    if (close == std::string_view::npos) {
      return ErrorAt(tmpl, i, "\"{{\" without a closing \"}}\"");
    }
    std::string_view inner = tmpl.substr(i + 2, close - i - 2);
    while (!inner.empty() && IsSpace(inner.front())) inner.remove_prefix(1);
    while (!inner.empty() && IsSpace(inner.back())) inner.remove_suffix(1);
    bool ok = !inner.empty() && IsNameStart(inner.front());
    for (char c : inner) ok = ok && IsNameChar(c);
    if (!ok) {
      return ErrorAt(tmpl, i,
                     absl::StrCat("only a name may stand between {{ and }}, not \"",
                                  Abbreviate(inner, 60), "\""));
    }
    if (i > literal_start) {
      pieces.push_back(Piece{false, tmpl.substr(literal_start, i - literal_start), literal_start});
    }
    pieces.push_back(Piece{true, inner, i});
    i = close + 2;
    literal_start = i;
  }
  if (literal_start < tmpl.size()) {
    pieces.push_back(Piece{false, tmpl.substr(literal_start), literal_start});
  }
  return pieces;
}

}  // namespace

absl::StatusOr<std::string> RenderTemplate(std::string_view tmpl, const Example& example,
                                           size_t max_bytes) {
  absl::StatusOr<std::vector<Piece>> pieces = Split(tmpl);
  if (!pieces.ok()) return pieces.status();
  std::string out;
  for (const Piece& p : *pieces) {
    std::optional<std::string_view> value;
    if (!p.is_var) {
      value = p.text;
    } else if (p.text == "input") {
      if (example.input.empty()) {
        return ErrorAt(tmpl, p.offset,
                       example.messages.empty()
                           ? "the example has no \"input\""
                           : "the example has no \"input\" (it is given as \"messages\")");
      }
      value = example.input;
    } else if (p.text == "expected") {
      if (!example.expected.has_value()) {
        return ErrorAt(tmpl, p.offset, "the example has no \"expected\"");
      }
      value = *example.expected;
    } else {
      for (const auto& [name, v] : example.vars) {
        if (name == p.text) {
          value = v;
          break;
        }
      }
      if (!value.has_value()) {
        std::vector<std::string> known = {"input", "expected"};
        for (const auto& [name, v] : example.vars) known.push_back(name);
        return ErrorAt(tmpl, p.offset,
                       absl::StrCat("unknown variable \"", Av(p.text),
                                    "\" (known: ", absl::StrJoin(known, ", "), ")"));
      }
    }
    if (out.size() + value->size() > max_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("rendered prompt is over ", max_bytes, " bytes (max_bytes)"));
    }
    out.append(value->data(), value->size());
  }
  return out;
}

absl::Status ValidateTemplate(std::string_view tmpl) { return Split(tmpl).status(); }

absl::StatusOr<std::vector<std::string>> TemplateVariables(std::string_view tmpl) {
  absl::StatusOr<std::vector<Piece>> pieces = Split(tmpl);
  if (!pieces.ok()) return pieces.status();
  std::vector<std::string> names;
  for (const Piece& p : *pieces) {
    if (!p.is_var) continue;
    bool seen = false;
    for (const std::string& n : names) seen = seen || n == p.text;
    if (!seen) names.emplace_back(p.text);
  }
  return names;
}

absl::StatusOr<std::vector<Assertion>> RenderAssertionValues(
    const std::vector<Assertion>& assertions, const Example& example) {
  std::vector<Assertion> out = assertions;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].value.find("{{") == std::string::npos) continue;
    absl::StatusOr<std::string> v = RenderTemplate(out[i].value, example);
    if (!v.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("assert[", i, "]: value: ", v.status().message()));
    }
    out[i].value = *std::move(v);
    if (absl::Status s = ValidateAssertion(out[i]); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("assert[", i, "]: ", s.message()));
    }
  }
  return out;
}

}  // namespace assay::evals
