#pragma once
// GitHub webhook adapter: turns a verified delivery's JSON into a push event. Pure functions
// with no I/O, so they are unit-tested against the real payloads in shared/fixtures.

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace assay::webhook {

// What a push delivery asks for.
struct PushEvent {
  std::string ref;         // "refs/heads/main"
  std::string branch;      // "main" (empty for tags)
  std::string tag;         // "v1" (empty for branches)
  std::string after;       // the pushed commit (40 hex)
  std::string before;
  bool deleted = false;    // a branch or tag was deleted: nothing to build
};

// The repository identifiers a payload carries (clone_url, full_name, html_url, ssh_url,
// git_url), in that order, for matching against registered repositories.
// kInvalidArgument when the body is not a JSON object with a "repository" object.
absl::StatusOr<std::vector<std::string>> RepoCandidates(const std::string& body);

// kInvalidArgument naming the missing or malformed field (e.g. "push payload: field 'after'
// must be a 40-character hex commit id").
absl::StatusOr<PushEvent> ParsePush(const std::string& body);

}  // namespace assay::webhook
