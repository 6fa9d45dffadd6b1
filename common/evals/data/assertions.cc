#include "common/evals/data/assertions.h"

#include <cmath>
#include <cstdint>
#include <utility>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/evals/data/json_schema.h"
#include "common/evals/data/json_strict.h"
#include "common/evals/data/text.h"

namespace assay::evals {
namespace {

namespace json = boost::json;

bool IsKnownType(std::string_view type) {
  for (std::string_view t : kAssertionTypes) {
    if (t == type) return true;
  }
  return false;
}

std::string KnownTypes() {
  return absl::StrCat(absl::StrJoin(std::begin(kAssertionTypes), std::end(kAssertionTypes), ", ",
                                    [](std::string* out, std::string_view t) { out->append(t); }),
                      "; each also as not-TYPE");
}

// JavaScript's String(x) for a JSON number (JavaScript holds every number as a double).
std::string NumberText(const json::value& v) {
  if (v.is_int64()) return JsNumberToString(static_cast<double>(v.get_int64()));
  if (v.is_uint64()) return JsNumberToString(static_cast<double>(v.get_uint64()));
  return JsNumberToString(v.get_double());
}

absl::Status Invalid(std::string_view where, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Av(where), ": ", Av(what)));
}

}  // namespace

absl::StatusOr<Assertion> ParseAssertion(const json::value& v, std::string_view where) {
  const json::object* obj = v.if_object();
  if (obj == nullptr) return Invalid(where, "must be an object {type, value, threshold, weight}");
  for (const auto& kv : *obj) {
    const std::string_view k(kv.key().data(), kv.key().size());
    if (k != "type" && k != "value" && k != "threshold" && k != "weight") {
      return Invalid(where, absl::StrCat("unknown key \"", Av(k),
                                         "\" (allowed: type, value, threshold, weight)"));
    }
  }
  Assertion a;
  const json::value* type = obj->if_contains("type");
  if (type == nullptr) return Invalid(where, "key \"type\" is missing");
  if (!type->is_string()) return Invalid(where, "key \"type\": must be a string");
  std::string_view t(type->get_string().data(), type->get_string().size());
  if (t.substr(0, 4) == "not-") {
    a.negate = true;
    t.remove_prefix(4);
  }
  if (!IsKnownType(t)) {
    return Invalid(where, absl::StrCat("unknown assertion type \"", type->get_string().c_str(),
                                       "\" (known: ", KnownTypes(), ")"));
  }
  a.type = std::string(t);
  if (t == "equals" && !obj->contains("value")) return Invalid(where, "key \"value\" is missing");
  if (const json::value* value = obj->if_contains("value"); value != nullptr) {
    const bool numbers_ok = t == "equals" || t == "contains" || t == "icontains";
    if (value->is_string()) {
      a.value = std::string(value->get_string().data(), value->get_string().size());
    } else if (value->is_number() && numbers_ok) {
      a.value = NumberText(*value);
    } else if (value->is_bool() && t == "equals") {
      a.value = value->get_bool() ? "true" : "false";
    } else if (t == "is-json" && (value->is_object() || value->is_bool())) {
      a.value = json::serialize(*value);  // A JSON schema, kept as its JSON text.
    } else if (!value->is_null() || t != "is-json") {
      return Invalid(
          where, absl::StrCat("key \"value\": must be a string", numbers_ok ? " or a number" : "",
                              t == "equals" ? " or a boolean" : "", " for ", Av(t)));
    }
  }
  for (const char* key : {"threshold", "weight"}) {
    const json::value* n = obj->if_contains(key);
    if (n == nullptr) continue;
    if (!n->is_number()) return Invalid(where, absl::StrCat("key \"", key, "\": must be a number"));
    const double d = n->to_number<double>();
    if (std::string_view(key) == "threshold") {
      a.threshold = d;
    } else {
      a.weight = d;
    }
  }
  if (absl::Status s = ValidateAssertion(a); !s.ok()) return Invalid(where, Sv(s.message()));
  return a;
}

absl::Status ValidateAssertion(const Assertion& a) {
  const std::string name = absl::StrCat(a.negate ? "not-" : "", a.type);
  if (absl::StartsWith(a.type, "not-")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "assertion type \"", a.type, "\": the not- prefix belongs in `negate`, not `type`"));
  }
  if (!IsKnownType(a.type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown assertion type \"", name, "\" (known: ", KnownTypes(), ")"));
  }
  if (a.type == "is-json") {
    if (!a.value.empty()) {
      if (absl::StatusOr<JsonSchema> schema = JsonSchema::Compile(a.value); !schema.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ": key \"value\": ", schema.status().message()));
      }
    }
  } else if (a.type != "equals" && a.value.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": key \"value\": must be a non-empty string"));
  }
  if (a.type == "regex") {
    if (absl::StatusOr<SafeRegex> re = SafeRegex::Compile(a.value); !re.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": key \"value\": ", re.status().message()));
    }
  }
  if (a.threshold.has_value() &&
      !(std::isfinite(*a.threshold) && *a.threshold >= 0 && *a.threshold <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": key \"threshold\": must be between 0 and 1, not ",
                     JsNumberToString(*a.threshold)));
  }
  if (!(std::isfinite(a.weight) && a.weight >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": key \"weight\": must be a number >= 0, not ", JsNumberToString(a.weight)));
  }
  return absl::OkStatus();
}

absl::StatusOr<AssertionSet> AssertionSet::Compile(std::vector<Assertion> assertions) {
  AssertionSet set;
  set.regexes_.resize(assertions.size());
  set.schemas_.resize(assertions.size());
  set.lowered_.resize(assertions.size());
  for (size_t i = 0; i < assertions.size(); ++i) {
    const Assertion& a = assertions[i];
    if (absl::Status s = ValidateAssertion(a); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("assert[", i, "]: ", s.message()));
    }
    if (a.type == "regex") {
      absl::StatusOr<SafeRegex> re = SafeRegex::Compile(a.value);
      if (!re.ok()) return re.status();  // Not reached: ValidateAssertion compiled it.
      set.regexes_[i] = *std::move(re);
    }
    if (a.type == "icontains") set.lowered_[i] = JsToLowerCase(a.value);
    if (a.type == "is-json" && !a.value.empty()) {
      absl::StatusOr<JsonSchema> schema = JsonSchema::Compile(a.value);
      if (!schema.ok()) return schema.status();  // Not reached: ValidateAssertion compiled it.
      set.schemas_[i] = *std::move(schema);
    }
  }
  set.assertions_ = std::move(assertions);
  return set;
}

std::vector<AssertionResult> AssertionSet::Check(std::string_view output) const {
  std::vector<AssertionResult> results;
  results.reserve(assertions_.size());
  for (size_t i = 0; i < assertions_.size(); ++i) {
    const Assertion& a = assertions_[i];
    bool holds = false;  // Whether the base (not negated) check holds.
    std::string reason;
    const std::string_view neg = a.negate ? "not " : "";
    if (a.type == "equals") {
      holds = output == a.value;
      reason = absl::StrCat("Expected output \"", Abbreviate(output), "\" to ", Av(neg), "equal \"",
                            Abbreviate(a.value), "\"");
    } else if (a.type == "contains") {
      holds = absl::StrContains(Av(output), a.value);
      reason =
          absl::StrCat("Expected output to ", Av(neg), "contain \"", Abbreviate(a.value), "\"");
    } else if (a.type == "icontains") {
      holds = absl::StrContains(JsToLowerCase(output), lowered_[i]);
      reason =
          absl::StrCat("Expected output to ", Av(neg), "contain \"", Abbreviate(a.value), "\"");
    } else if (a.type == "starts-with") {
      holds = absl::StartsWith(Av(output), a.value);
      reason =
          absl::StrCat("Expected output to ", Av(neg), "start with \"", Abbreviate(a.value), "\"");
    } else if (a.type == "regex") {
      holds = regexes_[i]->PartialMatch(output);
      reason =
          absl::StrCat("Expected output to ", Av(neg), "match regex \"", Abbreviate(a.value), "\"");
    } else if (a.type == "is-json" && !schemas_[i].has_value()) {
      holds = IsJson(output);
      reason = absl::StrCat("Expected output to ", Av(neg), "be valid JSON");
    } else if (a.type == "is-json") {
      // promptfoo: JSON.parse, then the schema (Ajv) on what it parsed.
      json::parse_options opt;
      opt.max_depth = kIsJsonMaxDepth;
      opt.allow_invalid_utf8 = true;
      json::error_code ec;
      const json::value parsed =
          json::parse(json::string_view(output.data(), output.size()), ec, {}, opt);
      std::string why;
      if (ec) {
        reason = "Expected output to be valid JSON";
      } else if (schemas_[i]->Validate(parsed, &why)) {
        holds = true;
        reason = "Output is JSON that conforms to the provided schema";
      } else {
        reason = absl::StrCat("JSON does not conform to the provided schema. Errors: ", why);
      }
    }
    AssertionResult r;
    r.pass = holds != a.negate;
    r.score = r.pass ? 1 : 0;
    r.reason = r.pass ? "Assertion passed" : std::move(reason);
    if (a.weight == 0) r.pass = true;  // promptfoo: a weight-0 assertion cannot fail.
    results.push_back(std::move(r));
  }
  return results;
}

AssertionVerdict AssertionSet::Verdict(std::vector<AssertionResult> results,
                                       std::optional<double> threshold) const {
  AssertionVerdict v;
  if (assertions_.empty()) {
    v.reason = "No assertions";
    return v;
  }
  double total = 0;
  double weights = 0;
  std::string failed;
  bool any_failed = false;
  for (size_t i = 0; i < results.size() && i < assertions_.size(); ++i) {
    total += results[i].score * assertions_[i].weight;
    weights += assertions_[i].weight;
    if (!results[i].pass) {
      any_failed = true;
      failed = results[i].reason;
    }
  }
  v.score = weights > 0 ? total / weights : 0;
  v.pass = !any_failed;
  v.reason = any_failed ? failed : "All assertions passed";
  if (threshold.has_value() && !std::isnan(*threshold)) {
    v.pass = v.score >= *threshold;
    v.reason = absl::StrFormat("Aggregate score %.2f %s %s threshold", v.score,
                               v.pass ? "\xE2\x89\xA5" : "<", JsNumberToString(*threshold));
  }
  v.results = std::move(results);
  return v;
}

}  // namespace assay::evals
