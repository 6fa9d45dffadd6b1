#pragma once
// GitLab webhook adapter: token check and event parsing. Pure functions, no I/O.
//
// GitLab does not sign bodies; it sends the hook's secret token verbatim in X-Gitlab-Token.
// The event type is the X-Gitlab-Event header ("Push Hook", ...), the delivery id is
// X-Gitlab-Event-UUID. Payload shapes follow docs.gitlab.com "Webhook events".

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/webhook/event.h"

namespace assay::webhook {

// OK when `header` (X-Gitlab-Token) equals `secret`. The comparison takes the same time
// wherever the values differ and whatever their lengths (both are hashed first).
// kUnauthenticated, exactly:
//   "webhook secret is not configured"            (empty secret: never accept)
//   "header X-Gitlab-Token is missing"            (empty header)
//   "header X-Gitlab-Token does not match the webhook secret"
absl::Status VerifyGitlabToken(std::string_view header, std::string_view secret);

// A verified GitLab delivery as a ForgeEvent (provider "gitlab", delivery_id = `event_uuid`).
//   "Push Hook"          kind "push": ref refs/heads/B, branch, before, after; after all zeros →
//                        deleted. changed_paths from "commits" — left empty when
//                        total_commits_count exceeds the listed commits (GitLab lists at most
//                        20), because a partial list would wrongly skip path-filtered pipelines.
//   "Tag Push Hook"      kind "tag": ref refs/tags/T, tag, after; after all zeros → deleted.
//   "Merge Request Hook" object_attributes.action open, reopen, or update WITH "oldrev" (new
//                        commits) → kind "pull_request" building last_commit.id, ref
//                        "refs/merge-requests/IID/head", pr_number = iid, branch = head_branch
//                        = source_branch, base_branch = target_branch, before = oldrev, fork
//                        when source_project_id != target_project_id (or either is missing).
//                        "update" without oldrev (title, labels...) → ignored, reason
//                        "merge_request update without new commits does not start a build";
//                        other actions → "merge_request action 'close' does not start a build".
//   anything else        kind "ignored", reason "event 'Note Hook' is not handled".
// repo_candidates: project.git_http_url, git_ssh_url, web_url, path_with_namespace (for merge
// requests the target project), required for the three handled events.
// Errors (kInvalidArgument), exactly:
//   "header X-Gitlab-Event is required"
//   "payload is not valid JSON: <what>" / "payload is not a JSON object"
//   "payload: field 'project' must be an object"
//   "payload: 'project' has none of git_http_url, git_ssh_url, web_url, path_with_namespace"
//   "push payload: field 'ref' must start with refs/heads/, got 'X'" (refs/tags/ for tag pushes)
//   "push payload: field 'after' must be a 40-character hex commit id"
//   "merge_request payload: field 'object_attributes' must be an object"
//   "merge_request payload: field 'object_attributes.iid' must be an integer"
//   "merge_request payload: field 'object_attributes.last_commit.id' must be a 40-character hex
//    commit id"
//   "merge_request payload: field 'object_attributes.target_branch' is missing"
absl::StatusOr<ForgeEvent> ParseGitlabEvent(std::string_view event_header,
                                            std::string_view event_uuid, const std::string& body);

}  // namespace assay::webhook
