#pragma once
// Small JSON helpers shared by the forge adapters (internal to server/webhook). All are pure and
// never throw: a missing or mistyped field reads as empty/absent and the adapter decides whether
// that is an error.

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/webhook/event.h"

namespace assay::webhook::internal {

// kInvalidArgument "payload is not valid JSON: <what>" or "payload is not a JSON object".
absl::StatusOr<boost::json::object> ParseObject(const std::string& body);

// The string at `key`, "" when absent, null or not a string.
std::string Str(const boost::json::object& o, std::string_view key);
// The object at `key`, nullptr when absent or not an object.
const boost::json::object* Obj(const boost::json::object& o, std::string_view key);
// The integer at `key` (integral doubles accepted), nullopt otherwise.
std::optional<int64_t> Int(const boost::json::object& o, std::string_view key);
// The bool at `key`, false when absent or not a bool.
bool Bool(const boost::json::object& o, std::string_view key);

// Sorted, de-duplicated union of the string entries of "added", "modified" and "removed" of each
// object in the array `commits` (nullptr or a non-array gives {}).
std::vector<std::string> ChangedPaths(const boost::json::value* commits);

// Appends Str(o, key) for each key that is a non-empty string, skipping values already present.
void AppendCandidates(const boost::json::object& o, std::initializer_list<const char*> keys,
                      std::vector<std::string>* out);

bool IsZeroSha(std::string_view sha);

// Fills e's pull-request fields from a GitHub-shaped payload (GitHub and Gitea share it):
// action, number, pull_request.{head,base}.{sha,ref,repo.full_name}. An action not in
// `build_actions` sets kind "ignored" with reason "pull_request action 'A' does not start a
// build" and fills what is present without validating. Errors as documented in github.h.
absl::Status FillGithubStylePullRequest(const boost::json::object& payload,
                                        std::initializer_list<std::string_view> build_actions,
                                        ForgeEvent* e);

}  // namespace assay::webhook::internal
