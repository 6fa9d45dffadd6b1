#include "common/evals/data/dataset.h"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "common/evals/data/assertions.h"
#include "common/evals/data/json_strict.h"
#include "common/evals/data/text.h"

namespace assay::evals {
namespace {

namespace json = boost::json;

constexpr std::string_view kAllowedKeys = "input, messages, expected, id, tags, vars, assert";

std::string_view View(const json::string& s) { return std::string_view(s.data(), s.size()); }

std::string JsonTypeName(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_: return "a number";
    case json::kind::string: return "a string";
    case json::kind::array: return "an array";
    case json::kind::object: return "an object";
  }
  return "a value";
}

bool IsVarName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsBlank(std::string_view line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

// Parses one line's object into `ex`; errors carry no location prefix (the caller adds it).
class LineParser {
 public:
  LineParser(const DatasetLimits& limits, std::string where)
      : limits_(limits), where_(std::move(where)) {}

  absl::Status Parse(const json::object& obj, Example* ex) {
    for (const auto& kv : obj) {
      const std::string_view k = kv.key();
      if (k != "input" && k != "messages" && k != "expected" && k != "id" && k != "tags" &&
          k != "vars" && k != "assert") {
        return Error(absl::StrCat("unknown key \"", Av(k), "\" (allowed: ", Av(kAllowedKeys), ")"));
      }
    }
    if (const json::value* v = obj.if_contains("input")) {
      if (!v->is_string()) return KeyError("input", "must be a string", *v);
      if (v->get_string().empty()) return KeyError("input", "must not be empty");
      ex->input = std::string(View(v->get_string()));
    }
    if (const json::value* v = obj.if_contains("messages")) {
      if (obj.contains("input")) {
        return Error("has both \"input\" and \"messages\" (give one of them)");
      }
      absl::Status s = ParseMessages(*v, &ex->messages);
      if (!s.ok()) return s;
    }
    if (const json::value* v = obj.if_contains("expected")) {
      if (v->is_number()) {
        const std::string n = JsNumberToString(v->to_number<double>());
        return KeyError("expected",
                        absl::StrCat("must be a string (write ", n, " as \"", n, "\")"));
      }
      if (!v->is_string()) return KeyError("expected", "must be a string", *v);
      ex->expected = std::string(View(v->get_string()));
    }
    if (const json::value* v = obj.if_contains("id")) {
      if (v->is_string()) {
        ex->id = std::string(View(v->get_string()));
        if (ex->id.empty()) return KeyError("id", "must not be empty");
      } else if (v->is_int64() || v->is_uint64()) {
        ex->id = v->is_int64() ? absl::StrCat(v->get_int64()) : absl::StrCat(v->get_uint64());
      } else {
        return KeyError("id", "must be a string or an integer", *v);
      }
      if (ex->id.size() > limits_.max_id_bytes) {
        return KeyError(
            "id", absl::StrCat("longer than ", limits_.max_id_bytes, " bytes (max_id_bytes)"));
      }
    }
    if (const json::value* v = obj.if_contains("tags")) {
      absl::Status s = ParseTags(*v, &ex->tags);
      if (!s.ok()) return s;
    }
    if (const json::value* v = obj.if_contains("vars")) {
      absl::Status s = ParseVars(*v, &ex->vars);
      if (!s.ok()) return s;
    }
    if (const json::value* v = obj.if_contains("assert")) {
      absl::Status s = ParseAsserts(*v, &ex->asserts);
      if (!s.ok()) return s;
    }
    if (ex->input.empty() && ex->messages.empty() && ex->vars.empty()) {
      return Error("needs \"input\", \"messages\" or \"vars\"");
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(where_, ": ", Av(what)));
  }
  absl::Status KeyError(std::string_view key, std::string_view what) const {
    return Error(absl::StrCat("key \"", Av(key), "\": ", Av(what)));
  }
  absl::Status KeyError(std::string_view key, std::string_view what, const json::value& v) const {
    return KeyError(key, absl::StrCat(Av(what), ", not ", JsonTypeName(v)));
  }

  absl::Status ParseMessages(const json::value& v, std::vector<Message>* out) {
    const json::array* arr = v.if_array();
    if (arr == nullptr) return KeyError("messages", "must be an array", v);
    if (arr->empty()) return KeyError("messages", "must not be empty");
    if (arr->size() > limits_.max_messages) {
      return KeyError("messages", absl::StrCat(arr->size(), " messages is over the limit of ",
                                               limits_.max_messages, " (max_messages)"));
    }
    for (size_t i = 0; i < arr->size(); ++i) {
      const std::string key = absl::StrCat("messages[", i, "]");
      const json::object* m = (*arr)[i].if_object();
      if (m == nullptr) return KeyError(key, "must be an object {role, content}", (*arr)[i]);
      for (const auto& kv : *m) {
        if (kv.key() != "role" && kv.key() != "content") {
          return KeyError(
              key, absl::StrCat("unknown key \"", Av(kv.key()), "\" (allowed: role, content)"));
        }
      }
      const json::value* role = m->if_contains("role");
      const json::value* content = m->if_contains("content");
      if (role == nullptr || !role->is_string()) {
        return KeyError(key, "\"role\" must be a string: system, user or assistant");
      }
      const std::string_view r = View(role->get_string());
      if (r != "system" && r != "user" && r != "assistant") {
        return KeyError(
            key, absl::StrCat("unknown role \"", Av(r), "\" (allowed: system, user, assistant)"));
      }
      if (content == nullptr || !content->is_string()) {
        return KeyError(key, "\"content\" must be a string");
      }
      out->push_back(Message{std::string(r), std::string(View(content->get_string()))});
    }
    return absl::OkStatus();
  }

  absl::Status ParseTags(const json::value& v, std::vector<std::string>* out) {
    const json::array* arr = v.if_array();
    if (arr == nullptr) return KeyError("tags", "must be an array of strings", v);
    if (arr->size() > limits_.max_tags) {
      return KeyError("tags", absl::StrCat(arr->size(), " tags is over the limit of ",
                                           limits_.max_tags, " (max_tags)"));
    }
    for (size_t i = 0; i < arr->size(); ++i) {
      const json::value& t = (*arr)[i];
      const std::string key = absl::StrCat("tags[", i, "]");
      if (!t.is_string()) return KeyError(key, "must be a string", t);
      if (t.get_string().empty()) return KeyError(key, "must not be empty");
      out->emplace_back(View(t.get_string()));
    }
    return absl::OkStatus();
  }

  absl::Status ParseVars(const json::value& v,
                         std::vector<std::pair<std::string, std::string>>* out) {
    const json::object* obj = v.if_object();
    if (obj == nullptr) return KeyError("vars", "must be an object {name: value}", v);
    if (obj->size() > limits_.max_vars) {
      return KeyError("vars", absl::StrCat(obj->size(), " vars is over the limit of ",
                                           limits_.max_vars, " (max_vars)"));
    }
    for (const auto& kv : *obj) {
      const std::string_view name = kv.key();
      const std::string key = absl::StrCat("vars.", Av(name));
      if (!IsVarName(name)) {
        return KeyError(key, "a name is letters, digits and _, not starting with a digit");
      }
      if (name == "input" || name == "expected") {
        return KeyError(key, "is reserved (templates take it from the example's own key)");
      }
      const json::value& val = kv.value();
      std::string text;
      if (val.is_string()) {
        text = std::string(View(val.get_string()));
      } else if (val.is_int64()) {
        text = JsNumberToString(static_cast<double>(val.get_int64()));
      } else if (val.is_uint64()) {
        text = JsNumberToString(static_cast<double>(val.get_uint64()));
      } else if (val.is_double()) {
        text = JsNumberToString(val.get_double());
      } else if (val.is_bool()) {
        text = val.get_bool() ? "true" : "false";
      } else {
        return KeyError(key, "must be a string, a number or a boolean", val);
      }
      out->emplace_back(std::string(name), std::move(text));
    }
    return absl::OkStatus();
  }

  absl::Status ParseAsserts(const json::value& v, std::vector<Assertion>* out) {
    const json::array* arr = v.if_array();
    if (arr == nullptr) return KeyError("assert", "must be an array of assertions", v);
    if (arr->size() > limits_.max_asserts) {
      return KeyError("assert", absl::StrCat(arr->size(), " assertions is over the limit of ",
                                             limits_.max_asserts, " (max_asserts)"));
    }
    for (size_t i = 0; i < arr->size(); ++i) {
      absl::StatusOr<Assertion> a =
          ParseAssertion((*arr)[i], absl::StrCat(where_, ": assert[", i, "]"));
      if (!a.ok()) return a.status();
      out->push_back(*std::move(a));
    }
    return absl::OkStatus();
  }

  const DatasetLimits& limits_;
  const std::string where_;
};

}  // namespace

absl::StatusOr<std::vector<Example>> ParseJsonlDataset(std::string_view bytes,
                                                       std::string_view file_name,
                                                       const DatasetLimits& limits) {
  if (bytes.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(Av(file_name), ": ", bytes.size(),
                                                   " bytes is over the limit of ", limits.max_bytes,
                                                   " bytes (max_bytes)"));
  }
  if (bytes.substr(0, 3) == "\xEF\xBB\xBF") bytes.remove_prefix(3);
  std::vector<Example> out;
  std::unordered_map<std::string, int> id_lines;  // id -> the line that has it
  int line_no = 0;
  while (!bytes.empty()) {
    ++line_no;
    const size_t nl = bytes.find('\n');
    std::string_view line = bytes.substr(0, nl);
    bytes.remove_prefix(nl == std::string_view::npos ? bytes.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (IsBlank(line)) continue;
    const std::string where = absl::StrCat(Av(file_name), ":", line_no);
    if (out.size() >= limits.max_examples) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": more than ", limits.max_examples, " examples (max_examples)"));
    }
    if (line.size() > limits.max_line_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": line of ", line.size(), " bytes is over the limit of ",
                       limits.max_line_bytes, " bytes (max_line_bytes)"));
    }
    absl::StatusOr<json::value> v = ParseStrictJson(line, limits.max_depth);
    if (!v.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", v.status().message()));
    }
    const json::object* obj = v->if_object();
    if (obj == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": must be a JSON object, not ", JsonTypeName(*v)));
    }
    Example ex;
    ex.line = line_no;
    LineParser parser(limits, where);
    if (absl::Status s = parser.Parse(*obj, &ex); !s.ok()) return s;
    const bool generated = ex.id.empty();
    if (generated) ex.id = absl::StrCat("line-", line_no);
    auto [it, inserted] = id_lines.emplace(ex.id, line_no);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": id \"", ex.id, "\"", generated ? " (the default of a line without id)" : "",
          " repeats line ", it->second));
    }
    out.push_back(std::move(ex));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(Av(file_name), ": no examples"));
  }
  return out;
}

std::string DatasetDigest(std::string_view bytes) { return HexSha256(bytes); }

}  // namespace assay::evals
