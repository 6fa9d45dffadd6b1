#include "common/evals/data/json_schema.h"

#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "absl/strings/str_cat.h"
#include "common/evals/data/json_strict.h"
#include "common/evals/data/safe_regex.h"
#include "common/evals/data/text.h"

namespace assay::evals {

namespace json = boost::json;

struct JsonSchema::Node {
  std::optional<bool> constant;  // A `true` or `false` schema.
  std::vector<std::string> types;
  std::optional<json::array> enum_values;
  std::optional<json::value> const_value;
  std::vector<std::string> required;
  std::vector<std::pair<std::string, std::unique_ptr<Node>>> properties;
  std::optional<bool> additional_bool;
  std::unique_ptr<Node> additional;
  std::optional<size_t> min_properties, max_properties;
  std::unique_ptr<Node> items;
  std::optional<size_t> min_items, max_items;
  std::optional<size_t> min_length, max_length;
  std::optional<SafeRegex> pattern;
  std::optional<double> minimum, maximum, exclusive_minimum, exclusive_maximum;
  std::vector<Node> all_of, any_of, one_of;
  std::unique_ptr<Node> not_;
};

namespace {

using Node = JsonSchema::Node;

constexpr std::string_view kSupported =
    "type, enum, const, required, properties, additionalProperties, minProperties, "
    "maxProperties, items, minItems, maxItems, minLength, maxLength, pattern, minimum, maximum, "
    "exclusiveMinimum, exclusiveMaximum, allOf, anyOf, oneOf, not";

absl::Status Bad(std::string_view at, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("schema ", at.empty() ? "/" : Av(at), ": ", Av(what)));
}

absl::StatusOr<size_t> Count(const json::value& v, std::string_view at, std::string_view key) {
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<size_t>(v.get_int64());
  if (v.is_uint64()) return static_cast<size_t>(v.get_uint64());
  return Bad(at, absl::StrCat("\"", Av(key), "\" must be a non-negative integer"));
}

absl::Status CompileNode(const json::value& v, const std::string& at, Node* out);

absl::Status CompileList(const json::value& v, const std::string& at, std::string_view key,
                         std::vector<Node>* out) {
  if (!v.is_array() || v.get_array().empty()) {
    return Bad(at, absl::StrCat("\"", Av(key), "\" must be a non-empty array of schemas"));
  }
  const json::array& arr = v.get_array();
  out->resize(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    absl::Status s = CompileNode(arr[i], absl::StrCat(at, "/", Av(key), "/", i), &(*out)[i]);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CompileNode(const json::value& v, const std::string& at, Node* out) {
  if (v.is_bool()) {
    out->constant = v.get_bool();
    return absl::OkStatus();
  }
  if (!v.is_object()) return Bad(at, "a schema is an object or a boolean");
  for (const auto& kv : v.get_object()) {
    const std::string_view key = kv.key();
    const json::value& val = kv.value();
    if (key == "title" || key == "description" || key == "default" || key == "examples" ||
        key == "$comment" || key == "$schema" || key == "$id") {
      continue;
    } else if (key == "type") {
      std::vector<const json::value*> names;
      if (val.is_string()) {
        names.push_back(&val);
      } else if (val.is_array()) {
        for (const json::value& n : val.get_array()) names.push_back(&n);
      }
      if (names.empty()) return Bad(at, "\"type\" must be a type name or a list of them");
      for (const json::value* n : names) {
        const std::string_view t = n->is_string() ? std::string_view(n->get_string()) : "";
        if (t != "object" && t != "array" && t != "string" && t != "number" && t != "integer" &&
            t != "boolean" && t != "null") {
          return Bad(at, absl::StrCat("unknown type ", json::serialize(*n)));
        }
        out->types.emplace_back(t);
      }
    } else if (key == "enum") {
      if (!val.is_array()) return Bad(at, "\"enum\" must be an array");
      out->enum_values = val.get_array();
    } else if (key == "const") {
      out->const_value = val;
    } else if (key == "required") {
      if (!val.is_array()) return Bad(at, "\"required\" must be an array of strings");
      for (const json::value& r : val.get_array()) {
        if (!r.is_string()) return Bad(at, "\"required\" must be an array of strings");
        out->required.emplace_back(std::string_view(r.get_string()));
      }
    } else if (key == "properties") {
      if (!val.is_object()) return Bad(at, "\"properties\" must be an object of schemas");
      for (const auto& p : val.get_object()) {
        out->properties.emplace_back(std::string(std::string_view(p.key())),
                                     std::make_unique<Node>());
        absl::Status s = CompileNode(p.value(), absl::StrCat(at, "/properties/", Av(p.key())),
                                     out->properties.back().second.get());
        if (!s.ok()) return s;
      }
    } else if (key == "additionalProperties") {
      if (val.is_bool()) {
        out->additional_bool = val.get_bool();
      } else {
        out->additional = std::make_unique<Node>();
        absl::Status s =
            CompileNode(val, absl::StrCat(at, "/additionalProperties"), out->additional.get());
        if (!s.ok()) return s;
      }
    } else if (key == "items") {
      if (val.is_array()) return Bad(at, "\"items\" as a list (tuple) is not supported");
      out->items = std::make_unique<Node>();
      absl::Status s = CompileNode(val, absl::StrCat(at, "/items"), out->items.get());
      if (!s.ok()) return s;
    } else if (key == "not") {
      out->not_ = std::make_unique<Node>();
      absl::Status s = CompileNode(val, absl::StrCat(at, "/not"), out->not_.get());
      if (!s.ok()) return s;
    } else if (key == "allOf" || key == "anyOf" || key == "oneOf") {
      std::vector<Node>* list = key == "allOf"   ? &out->all_of
                                : key == "anyOf" ? &out->any_of
                                                 : &out->one_of;
      absl::Status s = CompileList(val, at, key, list);
      if (!s.ok()) return s;
    } else if (key == "pattern") {
      if (!val.is_string()) return Bad(at, "\"pattern\" must be a string");
      absl::StatusOr<SafeRegex> re = SafeRegex::Compile(std::string_view(val.get_string()));
      if (!re.ok()) return Bad(at, Sv(re.status().message()));
      out->pattern = *std::move(re);
    } else if (key == "minimum" || key == "maximum" || key == "exclusiveMinimum" ||
               key == "exclusiveMaximum") {
      if (!val.is_number()) return Bad(at, absl::StrCat("\"", Av(key), "\" must be a number"));
      const double d = val.to_number<double>();
      (key == "minimum"            ? out->minimum
       : key == "maximum"          ? out->maximum
       : key == "exclusiveMinimum" ? out->exclusive_minimum
                                   : out->exclusive_maximum) = d;
    } else if (key == "minProperties" || key == "maxProperties" || key == "minItems" ||
               key == "maxItems" || key == "minLength" || key == "maxLength") {
      absl::StatusOr<size_t> n = Count(val, at, key);
      if (!n.ok()) return n.status();
      (key == "minProperties"   ? out->min_properties
       : key == "maxProperties" ? out->max_properties
       : key == "minItems"      ? out->min_items
       : key == "maxItems"      ? out->max_items
       : key == "minLength"     ? out->min_length
                                : out->max_length) = *n;
    } else {
      return Bad(at, absl::StrCat("keyword \"", Av(key),
                                  "\" is not supported (supported: ", Av(kSupported), ")"));
    }
  }
  return absl::OkStatus();
}

// JavaScript's deep equality of JSON values (fast-deep-equal, as Ajv uses): numbers by value.
bool DeepEqual(const json::value& a, const json::value& b) {
  if (a.is_number() && b.is_number()) return a.to_number<double>() == b.to_number<double>();
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case json::kind::null: return true;
    case json::kind::bool_: return a.get_bool() == b.get_bool();
    case json::kind::string: return a.get_string() == b.get_string();
    case json::kind::array: {
      const json::array& x = a.get_array();
      const json::array& y = b.get_array();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!DeepEqual(x[i], y[i])) return false;
      }
      return true;
    }
    case json::kind::object: {
      const json::object& x = a.get_object();
      const json::object& y = b.get_object();
      if (x.size() != y.size()) return false;
      for (const auto& kv : x) {
        const json::value* other = y.if_contains(kv.key());
        if (other == nullptr || !DeepEqual(kv.value(), *other)) return false;
      }
      return true;
    }
    default: return false;
  }
}

bool HasType(const json::value& v, std::string_view t) {
  if (t == "null") return v.is_null();
  if (t == "boolean") return v.is_bool();
  if (t == "string") return v.is_string();
  if (t == "array") return v.is_array();
  if (t == "object") return v.is_object();
  if (t == "number") return v.is_number();
  if (t == "integer") {
    if (v.is_int64() || v.is_uint64()) return true;
    return v.is_double() && std::isfinite(v.get_double()) &&
           v.get_double() == std::floor(v.get_double());
  }
  return false;
}

size_t CodePoints(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

bool Check(const Node& n, const json::value& v, const std::string& path, std::string* err);

bool Fail(std::string* err, const std::string& path, std::string_view what) {
  if (err != nullptr) *err = absl::StrCat("data", path, " ", Av(what));
  return false;
}

bool Check(const Node& n, const json::value& v, const std::string& path, std::string* err) {
  if (n.constant.has_value()) {
    return *n.constant || Fail(err, path, "boolean schema is false");
  }
  if (!n.types.empty()) {
    bool any = false;
    for (const std::string& t : n.types) any = any || HasType(v, t);
    if (!any) {
      std::string list;
      for (const std::string& t : n.types) absl::StrAppend(&list, list.empty() ? "" : ",", t);
      return Fail(err, path, absl::StrCat("must be ", list));
    }
  }
  if (n.enum_values.has_value()) {
    bool any = false;
    for (const json::value& e : *n.enum_values) any = any || DeepEqual(v, e);
    if (!any) return Fail(err, path, "must be equal to one of the allowed values");
  }
  if (n.const_value.has_value() && !DeepEqual(v, *n.const_value)) {
    return Fail(err, path, "must be equal to constant");
  }
  if (v.is_number()) {
    const double d = v.to_number<double>();
    const auto num = [](double x) { return JsNumberToString(x); };
    if (n.maximum && !(d <= *n.maximum)) {
      return Fail(err, path, absl::StrCat("must be <= ", num(*n.maximum)));
    }
    if (n.minimum && !(d >= *n.minimum)) {
      return Fail(err, path, absl::StrCat("must be >= ", num(*n.minimum)));
    }
    if (n.exclusive_maximum && !(d < *n.exclusive_maximum)) {
      return Fail(err, path, absl::StrCat("must be < ", num(*n.exclusive_maximum)));
    }
    if (n.exclusive_minimum && !(d > *n.exclusive_minimum)) {
      return Fail(err, path, absl::StrCat("must be > ", num(*n.exclusive_minimum)));
    }
  }
  if (v.is_string()) {
    const std::string_view s = v.get_string();
    const size_t len = CodePoints(s);
    if (n.max_length && len > *n.max_length) {
      return Fail(err, path,
                  absl::StrCat("must NOT have more than ", *n.max_length, " characters"));
    }
    if (n.min_length && len < *n.min_length) {
      return Fail(err, path,
                  absl::StrCat("must NOT have fewer than ", *n.min_length, " characters"));
    }
    if (n.pattern && !n.pattern->PartialMatch(s)) {
      return Fail(err, path, absl::StrCat("must match pattern \"", n.pattern->pattern(), "\""));
    }
  }
  if (v.is_array()) {
    const json::array& arr = v.get_array();
    if (n.max_items && arr.size() > *n.max_items) {
      return Fail(err, path, absl::StrCat("must NOT have more than ", *n.max_items, " items"));
    }
    if (n.min_items && arr.size() < *n.min_items) {
      return Fail(err, path, absl::StrCat("must NOT have fewer than ", *n.min_items, " items"));
    }
    if (n.items) {
      for (size_t i = 0; i < arr.size(); ++i) {
        if (!Check(*n.items, arr[i], absl::StrCat(path, "/", i), err)) return false;
      }
    }
  }
  if (v.is_object()) {
    const json::object& obj = v.get_object();
    if (n.max_properties && obj.size() > *n.max_properties) {
      return Fail(err, path,
                  absl::StrCat("must NOT have more than ", *n.max_properties, " properties"));
    }
    if (n.min_properties && obj.size() < *n.min_properties) {
      return Fail(err, path,
                  absl::StrCat("must NOT have fewer than ", *n.min_properties, " properties"));
    }
    for (const std::string& r : n.required) {
      if (!obj.contains(r)) {
        return Fail(err, path, absl::StrCat("must have required property '", r, "'"));
      }
    }
    for (const auto& kv : obj) {
      const std::string_view k = kv.key();
      const std::string sub = absl::StrCat(path, "/", Av(k));
      const Node* prop = nullptr;
      for (const auto& [name, node] : n.properties) {
        if (name == k) prop = node.get();
      }
      if (prop != nullptr) {
        if (!Check(*prop, kv.value(), sub, err)) return false;
      } else if (n.additional_bool.has_value() && !*n.additional_bool) {
        return Fail(err, path, "must NOT have additional properties");
      } else if (n.additional && !Check(*n.additional, kv.value(), sub, err)) {
        return false;
      }
    }
  }
  for (const Node& s : n.all_of) {
    if (!Check(s, v, path, err)) return false;
  }
  if (!n.any_of.empty()) {
    bool any = false;
    for (const Node& s : n.any_of) any = any || Check(s, v, path, nullptr);
    if (!any) return Fail(err, path, "must match a schema in anyOf");
  }
  if (!n.one_of.empty()) {
    int matched = 0;
    for (const Node& s : n.one_of) matched += Check(s, v, path, nullptr);
    if (matched != 1) return Fail(err, path, "must match exactly one schema in oneOf");
  }
  if (n.not_ && Check(*n.not_, v, path, nullptr)) return Fail(err, path, "must NOT be valid");
  return true;
}

}  // namespace

absl::StatusOr<JsonSchema> JsonSchema::Compile(std::string_view schema_json) {
  absl::StatusOr<json::value> v = ParseStrictJson(schema_json, 32);
  if (!v.ok()) return absl::InvalidArgumentError(absl::StrCat("schema: ", v.status().message()));
  auto root = std::make_shared<Node>();
  absl::Status s = CompileNode(*v, "", root.get());
  if (!s.ok()) return s;
  return JsonSchema(std::move(root));
}

bool JsonSchema::Validate(const json::value& data, std::string* error) const {
  return Check(*root_, data, "", error);
}

}  // namespace assay::evals
