#include "common/evals/data/json_strict.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>

#include "absl/strings/str_cat.h"
#include "common/evals/data/text.h"

namespace assay::evals {
namespace {

namespace json = boost::json;

// A SAX handler that builds nothing: it only checks repeated keys (when asked) and records the
// first one it meets.
struct CheckHandler {
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);

  bool check_duplicates = false;
  std::vector<std::unordered_set<std::string>> keys;  // One set per open object.
  std::string key;                                    // The key being read, in parts.
  std::string duplicate;                              // The first repeated key.
  bool has_duplicate = false;

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t, json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    if (check_duplicates) keys.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    if (check_duplicates) keys.pop_back();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    if (check_duplicates) key.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
    if (!check_duplicates) return true;
    key.append(s.data(), s.size());
    if (!keys.back().insert(key).second) {
      duplicate = key;
      has_duplicate = true;
      ec = json::error::syntax;  // Stops the parse; `has_duplicate` says why.
      return false;
    }
    key.clear();
    return true;
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(int64_t, json::string_view, json::error_code&) { return true; }
  bool on_uint64(uint64_t, json::string_view, json::error_code&) { return true; }
  bool on_double(double, json::string_view, json::error_code&) { return true; }
  bool on_bool(bool, json::error_code&) { return true; }
  bool on_null(json::error_code&) { return true; }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }
};

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

struct CheckResult {
  json::error_code ec;
  size_t consumed = 0;
  bool duplicate = false;
  std::string duplicate_key;
};

// Runs the checking parser over all of `text`; `ec` is set on any error, extra data included.
CheckResult Check(std::string_view text, int max_depth, bool check_duplicates,
                  bool allow_invalid_utf8) {
  json::parse_options opt;
  opt.max_depth = static_cast<std::size_t>(max_depth);
  opt.allow_invalid_utf8 = allow_invalid_utf8;
  json::basic_parser<CheckHandler> p(opt);
  p.handler().check_duplicates = check_duplicates;
  CheckResult r;
  r.consumed = p.write_some(false, text.data(), text.size(), r.ec);
  if (!r.ec) {
    for (size_t i = r.consumed; i < text.size(); ++i) {
      if (!IsJsonSpace(text[i])) {
        r.ec = json::error::extra_data;
        r.consumed = i;
        break;
      }
    }
  }
  r.duplicate = p.handler().has_duplicate;
  r.duplicate_key = p.handler().duplicate;
  return r;
}

}  // namespace

absl::StatusOr<boost::json::value> ParseStrictJson(std::string_view text, int max_depth) {
  const CheckResult r = Check(text, max_depth, /*check_duplicates=*/true,
                              /*allow_invalid_utf8=*/false);
  if (r.duplicate) {
    return absl::InvalidArgumentError(absl::StrCat("duplicate key \"", r.duplicate_key, "\""));
  }
  if (r.ec == json::error::too_deep) {
    return absl::InvalidArgumentError(
        absl::StrCat("nested deeper than ", max_depth, " levels (max_depth)"));
  }
  if (r.ec) {
    // Boost.JSON says "syntax error" for these two; name them.
    std::string what = r.ec.message();
    size_t bad = 0;
    const unsigned char at = r.consumed < text.size() ? text[r.consumed] : 0;
    if (r.ec != json::error::syntax) {
      // Keep Boost.JSON's own words.
    } else if (!IsValidUtf8(text.substr(r.consumed), &bad) && bad == 0) {
      what = "invalid UTF-8";
    } else if (r.consumed < text.size() && at < 0x20) {
      what = absl::StrCat("control character U+00", at < 0x10 ? "0" : "", absl::Hex(at));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("not JSON: ", what, " at column ", r.consumed + 1));
  }
  json::parse_options opt;
  opt.max_depth = static_cast<std::size_t>(max_depth);
  json::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec, {}, opt);
  if (ec) {  // Not expected after the check above; reported rather than trusted.
    return absl::InvalidArgumentError(absl::StrCat("not JSON: ", ec.message()));
  }
  return v;
}

bool IsJson(std::string_view text) {
  return !Check(text, kIsJsonMaxDepth, /*check_duplicates=*/false, /*allow_invalid_utf8=*/true).ec;
}

}  // namespace assay::evals
