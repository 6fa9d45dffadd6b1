#include "server/http/json_util.h"

#include <algorithm>

#include <boost/json/stream_parser.hpp>
#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/log.h"
#include "common/base/status.h"

namespace assay::http {
namespace {

// Debian's Abseil has its own absl::string_view, distinct from std::string_view.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string_view KindName(boost::json::kind k) {
  switch (k) {
    case boost::json::kind::null: return "null";
    case boost::json::kind::bool_: return "boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_: return "number";
    case boost::json::kind::string: return "string";
    case boost::json::kind::array: return "array";
    case boost::json::kind::object: return "object";
  }
  return "value";
}

// The field's value, or nullptr when absent or null.
const boost::json::value* Find(const boost::json::object& obj, std::string_view field) {
  const auto it = obj.find(boost::json::string_view(field.data(), field.size()));
  if (it == obj.end() || it->value().is_null()) return nullptr;
  return &it->value();
}

std::optional<int64_t> AsInt(const boost::json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    if (v.get_uint64() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<int64_t>(v.get_uint64());
  }
  if (v.is_double()) {
    const double d = v.get_double();
    // 2^63 is exactly representable; anything >= it does not fit.
    if (std::isfinite(d) && std::trunc(d) == d && d >= -9223372036854775808.0 &&
        d < 9223372036854775808.0) {
      return static_cast<int64_t>(d);
    }
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<boost::json::object> ParseJsonObject(std::string_view text) {
  if (absl::StripAsciiWhitespace(AV(text)).empty()) {
    return absl::InvalidArgumentError("body is empty; expected a JSON object");
  }
  boost::json::stream_parser parser;
  boost::json::error_code ec;
  const std::size_t consumed = parser.write_some(text.data(), text.size(), ec);
  if (!ec && consumed < text.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "body is not valid JSON: unexpected data after the value at offset ", consumed));
  }
  if (!ec) parser.finish(ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("body is not valid JSON: ", ec.message(), " at offset ", consumed));
  }
  boost::json::value value = parser.release();
  if (!value.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("body must be a JSON object, got ", AV(KindName(value.kind()))));
  }
  return std::move(value.get_object());
}

std::optional<boost::json::object> ParseJsonBody(const Request& req, Response* error) {
  auto parsed = ParseJsonObject(req.body);
  if (!parsed.ok()) {
    *error = ErrorResponse(400, "invalid_json", std::string(parsed.status().message()));
    return std::nullopt;
  }
  return std::move(*parsed);
}

// Why refuse NUL: PostgreSQL text cannot hold it, and no name, URL or token needs it.
static absl::Status HasNul(std::string_view field) {
  return absl::InvalidArgumentError(
      absl::StrCat("field '", AV(field), "' must not contain a NUL character"));
}

absl::StatusOr<std::string> RequiredString(const boost::json::object& obj, std::string_view field) {
  const boost::json::value* v = Find(obj, field);
  if (v == nullptr || !v->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("field '", AV(field), "' is required and must be a string"));
  }
  if (v->get_string().find('\0') != boost::json::string::npos) return HasNul(field);
  return std::string(v->get_string());
}

absl::StatusOr<std::optional<std::string>> OptionalString(const boost::json::object& obj,
                                                          std::string_view field) {
  const boost::json::value* v = Find(obj, field);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("field '", AV(field), "' must be a string"));
  }
  if (v->get_string().find('\0') != boost::json::string::npos) return HasNul(field);
  return std::optional<std::string>(std::string(v->get_string()));
}

absl::StatusOr<int64_t> RequiredInt(const boost::json::object& obj, std::string_view field) {
  const boost::json::value* v = Find(obj, field);
  std::optional<int64_t> n = v == nullptr ? std::nullopt : AsInt(*v);
  if (!n) {
    return absl::InvalidArgumentError(
        absl::StrCat("field '", AV(field), "' is required and must be an integer"));
  }
  return *n;
}

absl::StatusOr<std::optional<int64_t>> OptionalInt(const boost::json::object& obj,
                                                   std::string_view field) {
  const boost::json::value* v = Find(obj, field);
  if (v == nullptr) return std::optional<int64_t>();
  std::optional<int64_t> n = AsInt(*v);
  if (!n) {
    return absl::InvalidArgumentError(absl::StrCat("field '", AV(field), "' must be an integer"));
  }
  return n;
}

absl::StatusOr<std::optional<bool>> OptionalBool(const boost::json::object& obj,
                                                 std::string_view field) {
  const boost::json::value* v = Find(obj, field);
  if (v == nullptr) return std::optional<bool>();
  if (!v->is_bool()) {
    return absl::InvalidArgumentError(absl::StrCat("field '", AV(field), "' must be a boolean"));
  }
  return std::optional<bool>(v->get_bool());
}

absl::Status OnlyFields(const boost::json::object& obj, const std::vector<std::string>& allowed) {
  for (const auto& [k, v] : obj) {
    const std::string key(k);
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown field '", key, "' (allowed: ", absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

Response StatusToResponse(const absl::Status& status) {
  const std::string message(status.message());
  const absl::StatusCode code = status.code();
  const bool client_error =
      code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kNotFound ||
      code == absl::StatusCode::kAlreadyExists || code == absl::StatusCode::kFailedPrecondition ||
      code == absl::StatusCode::kUnauthenticated || code == absl::StatusCode::kPermissionDenied ||
      code == absl::StatusCode::kUnavailable;  // "try again later" messages are ours
  if (!client_error || HasInternalDetail(status)) {
    // Why generic: these messages may carry database text, paths or addresses; the request
    // id lets an operator find the details in the log.
    LogError("http", "request ", CurrentRequestId(), ": ", status.ToString());
    if (code == absl::StatusCode::kUnavailable) {
      Response r = ErrorResponse(503, "unavailable", "service temporarily unavailable; retry");
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    return InternalErrorResponse();
  }
  switch (code) {
    case absl::StatusCode::kInvalidArgument: return ErrorResponse(400, "invalid_argument", message);
    case absl::StatusCode::kNotFound: return ErrorResponse(404, "not_found", message);
    case absl::StatusCode::kAlreadyExists: return ErrorResponse(409, "already_exists", message);
    case absl::StatusCode::kFailedPrecondition:
      return ErrorResponse(409, "failed_precondition", message);
    case absl::StatusCode::kUnauthenticated: return ErrorResponse(401, "unauthenticated", message);
    case absl::StatusCode::kUnavailable: return ErrorResponse(503, "unavailable", message);
    default: return ErrorResponse(403, "permission_denied", message);
  }
}

}  // namespace assay::http
