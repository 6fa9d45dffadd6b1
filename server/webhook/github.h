#pragma once
// GitHub webhook adapter: turns a verified delivery's JSON into a push event. Pure functions
// with no I/O, so they are unit-tested against the real payloads in tests/fixtures.

#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "absl/status/statusor.h"
#include "server/webhook/event.h"

namespace assay::webhook {

// What a push delivery asks for.
struct PushEvent {
  std::string ref;     // "refs/heads/main"
  std::string branch;  // "main" (empty for tags)
  std::string tag;     // "v1" (empty for branches)
  std::string after;   // the pushed commit (40 hex)
  std::string before;
  bool deleted = false;  // a branch or tag was deleted: nothing to build
};

// The repository identifiers a payload carries (clone_url, full_name, html_url, ssh_url,
// git_url), in that order, for matching against registered repositories.
// kInvalidArgument when the body is not a JSON object with a "repository" object.
absl::StatusOr<std::vector<std::string>> RepoCandidates(const std::string& body);

// kInvalidArgument naming the missing or malformed field (e.g. "push payload: field 'after'
// must be a 40-character hex commit id").
absl::StatusOr<PushEvent> ParsePush(const std::string& body);

// Fills the push fields of `e` (kind push or tag, ref, branch, tag, before, after, deleted,
// changed paths) from a GitHub-format push payload; Gitea and Forgejo send the same format.
absl::Status FillPush(const std::string& body, const boost::json::object& payload, ForgeEvent* e);

// Any verified GitHub delivery as a ForgeEvent (provider "github", delivery_id = `delivery`).
// `event_header` is X-GitHub-Event:
//   "push"          kind "push" or "tag" exactly as ParsePush reads it (same errors), plus
//                   changed_paths from "commits"; a deletion keeps its kind with deleted = true.
//   "pull_request"  actions opened, synchronize, reopened → kind "pull_request" building
//                   pull_request.head.sha, ref "refs/pull/N/head", branch = head branch,
//                   before = payload "before" (synchronize only); fork when head.repo is null or
//                   head.repo.full_name != base.repo.full_name. Other actions → kind "ignored",
//                   reason "pull_request action 'closed' does not start a build" (PR fields
//                   filled as far as present). Errors (kInvalidArgument): "pull_request payload:
//                   field 'pull_request' must be an object", "... field 'number' must be an
//                   integer", "... field 'pull_request.head.sha' must be a 40-character hex
//                   commit id", "... field 'pull_request.base.ref' is missing".
//   "ping"          kind "ping".
//   anything else   kind "ignored", reason "event 'create' is not handled".
// repo_candidates is RepoCandidates(body) (required for push and pull_request; best effort for
// ping and ignored events, which may carry no repository). Empty `event_header` →
// kInvalidArgument "header X-GitHub-Event is required"; malformed JSON as RepoCandidates.
absl::StatusOr<ForgeEvent> ParseGithubEvent(std::string_view event_header,
                                            std::string_view delivery, const std::string& body);

}  // namespace assay::webhook
