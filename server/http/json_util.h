#pragma once
// JSON helpers for HTTP handlers: body parsing with positioned errors, typed field
// getters whose errors name the field, and absl::Status → HTTP error responses.
//
// Typical handler:
//   Response err;
//   auto body = ParseJsonBody(req, &err);
//   if (!body) return err;
//   auto url = RequiredString(*body, "clone_url");
//   if (!url.ok()) return StatusToResponse(url.status());

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/http/http_server.h"

namespace assay::http {

// Parses `text` as one JSON value that must be an object. Errors (kInvalidArgument):
//   "body is empty; expected a JSON object"
//   "body is not valid JSON: <what> at offset N"   (N = byte offset of the problem)
//   "body must be a JSON object, got array"        (or string, number, ...)
absl::StatusOr<boost::json::object> ParseJsonObject(std::string_view text);

// ParseJsonObject(req.body); on failure sets *error to 400
// {"error":{"code":"invalid_json","message":<the message above>}} and returns nullopt.
std::optional<boost::json::object> ParseJsonBody(const Request& req, Response* error);

// kInvalidArgument "field 'F' is required and must be a string" if absent, null or
// not a string; "field 'F' must not contain a NUL character" (OptionalString too).
absl::StatusOr<std::string> RequiredString(const boost::json::object& obj, std::string_view field);
// nullopt if absent or null; kInvalidArgument "field 'F' must be a string" otherwise.
// kInvalidArgument "unknown field 'K' (allowed: a, b)" for the first key of `obj` that is not
// in `allowed` (listed in that order in the message).
absl::Status OnlyFields(const boost::json::object& obj, const std::vector<std::string>& allowed);

absl::StatusOr<std::optional<std::string>> OptionalString(const boost::json::object& obj,
                                                          std::string_view field);
// kInvalidArgument "field 'F' is required and must be an integer". Integral doubles
// (3.0) are accepted; anything outside int64 is not.
absl::StatusOr<int64_t> RequiredInt(const boost::json::object& obj, std::string_view field);
// nullopt if absent or null; kInvalidArgument "field 'F' must be an integer" otherwise.
absl::StatusOr<std::optional<int64_t>> OptionalInt(const boost::json::object& obj,
                                                   std::string_view field);
// nullopt if absent or null; kInvalidArgument "field 'F' must be a boolean" otherwise.
absl::StatusOr<std::optional<bool>> OptionalBool(const boost::json::object& obj,
                                                 std::string_view field);

// Error response {"error":{"code":...,"message":status.message()}}:
//   kInvalidArgument → 400 invalid_argument      kNotFound → 404 not_found
//   kAlreadyExists → 409 already_exists          kFailedPrecondition → 409 failed_precondition
//   kUnauthenticated → 401 unauthenticated       kPermissionDenied → 403 permission_denied
//   kUnavailable → 503 unavailable
// Any other code (OK included), and any status marked HasInternalDetail (a database's own
// text), never shows its message: a marked kUnavailable → 503 unavailable "service
// temporarily unavailable; retry" with Retry-After: 1, everything else
// InternalErrorResponse(); the status is logged with CurrentRequestId().
Response StatusToResponse(const absl::Status& status);

}  // namespace assay::http
