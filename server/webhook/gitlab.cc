#include "server/webhook/gitlab.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/status.h"
#include "common/crypto/crypto.h"
#include "common/git/git.h"
#include "server/webhook/payload_util.h"

namespace assay::webhook {
namespace {

using internal::Int;
using internal::Obj;
using internal::Str;

absl::Status ProjectCandidates(const boost::json::object& payload, ForgeEvent* e) {
  const boost::json::object* project = Obj(payload, "project");
  if (project == nullptr) {
    return absl::InvalidArgumentError("payload: field 'project' must be an object");
  }
  internal::AppendCandidates(*project,
                             {"git_http_url", "git_ssh_url", "web_url", "path_with_namespace"},
                             &e->repo_candidates);
  if (e->repo_candidates.empty()) {
    return absl::InvalidArgumentError(
        "payload: 'project' has none of git_http_url, git_ssh_url, web_url, path_with_namespace");
  }
  return absl::OkStatus();
}

// Push Hook and Tag Push Hook share a shape; `prefix` is "refs/heads/" or "refs/tags/".
absl::Status FillPush(const boost::json::object& payload, absl::string_view prefix, ForgeEvent* e) {
  e->ref = Str(payload, "ref");
  if (!absl::StartsWith(e->ref, prefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat("push payload: field 'ref' must start with ", prefix, ", got '", e->ref, "'"));
  }
  std::string name = e->ref.substr(prefix.size());
  (prefix == "refs/tags/" ? e->tag : e->branch) = name;
  e->before = Str(payload, "before");
  e->after = Str(payload, "after");
  if (!IsHexSha(e->after)) {
    return absl::InvalidArgumentError(
        "push payload: field 'after' must be a 40-character hex commit id");
  }
  e->deleted = internal::IsZeroSha(e->after);
  const boost::json::value* commits = payload.if_contains("commits");
  std::optional<int64_t> total = Int(payload, "total_commits_count");
  const bool complete = commits != nullptr && commits->is_array() &&
                        (!total || *total <= static_cast<int64_t>(commits->as_array().size()));
  if (complete) e->changed_paths = internal::ChangedPaths(commits);
  return absl::OkStatus();
}

absl::Status FillMergeRequest(const boost::json::object& payload, ForgeEvent* e) {
  const boost::json::object* attrs = Obj(payload, "object_attributes");
  if (attrs == nullptr) {
    return absl::InvalidArgumentError(
        "merge_request payload: field 'object_attributes' must be an object");
  }
  e->pr_action = Str(*attrs, "action");
  e->before = Str(*attrs, "oldrev");
  std::optional<int64_t> iid = Int(*attrs, "iid");
  e->pr_number = iid.value_or(0);
  e->head_branch = Str(*attrs, "source_branch");
  e->base_branch = Str(*attrs, "target_branch");
  e->branch = e->head_branch;
  e->ref = absl::StrCat("refs/merge-requests/", e->pr_number, "/head");
  const boost::json::object* last = Obj(*attrs, "last_commit");
  e->after = last != nullptr ? Str(*last, "id") : "";
  std::optional<int64_t> source = Int(*attrs, "source_project_id");
  std::optional<int64_t> target = Int(*attrs, "target_project_id");
  e->fork = !source || !target || *source != *target;

  if (e->pr_action == "update" && e->before.empty()) {
    e->kind = "ignored";
    e->ignore_reason = "merge_request update without new commits does not start a build";
    return absl::OkStatus();
  }
  if (e->pr_action != "open" && e->pr_action != "reopen" && e->pr_action != "update") {
    e->kind = "ignored";
    e->ignore_reason =
        absl::StrCat("merge_request action '", e->pr_action, "' does not start a build");
    return absl::OkStatus();
  }
  if (!iid || *iid <= 0) {
    return absl::InvalidArgumentError(
        "merge_request payload: field 'object_attributes.iid' must be an integer");
  }
  if (!IsHexSha(e->after)) {
    return absl::InvalidArgumentError(
        "merge_request payload: field 'object_attributes.last_commit.id' must be a "
        "40-character hex commit id");
  }
  if (e->base_branch.empty()) {
    return absl::InvalidArgumentError(
        "merge_request payload: field 'object_attributes.target_branch' is missing");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status VerifyGitlabToken(std::string_view header, std::string_view secret) {
  if (secret.empty()) return absl::UnauthenticatedError("webhook secret is not configured");
  if (header.empty()) return absl::UnauthenticatedError("header X-Gitlab-Token is missing");
  // Hash both so the comparison's time depends on neither the position of the first
  // difference nor the secret's length.
  if (!ConstantTimeEquals(Sha256(header), Sha256(secret))) {
    return absl::UnauthenticatedError("header X-Gitlab-Token does not match the webhook secret");
  }
  return absl::OkStatus();
}

absl::StatusOr<ForgeEvent> ParseGitlabEvent(std::string_view event_header,
                                            std::string_view event_uuid, const std::string& body) {
  if (event_header.empty()) return absl::InvalidArgumentError("header X-Gitlab-Event is required");
  ASSAY_ASSIGN_OR_RETURN(boost::json::object payload, internal::ParseObject(body));
  ForgeEvent e;
  e.provider = "gitlab";
  e.delivery_id = std::string(event_uuid);
  const std::string event(event_header);
  if (event == "Push Hook" || event == "Tag Push Hook") {
    const bool tag = event == "Tag Push Hook";
    e.kind = tag ? "tag" : "push";
    ASSAY_RETURN_IF_ERROR(ProjectCandidates(payload, &e));
    ASSAY_RETURN_IF_ERROR(FillPush(payload, tag ? "refs/tags/" : "refs/heads/", &e));
    return e;
  }
  if (event == "Merge Request Hook") {
    e.kind = "pull_request";
    ASSAY_RETURN_IF_ERROR(FillMergeRequest(payload, &e));
    absl::Status candidates = ProjectCandidates(payload, &e);
    if (e.kind == "pull_request" && !candidates.ok()) return candidates;
    return e;
  }
  if (const auto* project = Obj(payload, "project"); project != nullptr) {
    internal::AppendCandidates(*project,
                               {"git_http_url", "git_ssh_url", "web_url", "path_with_namespace"},
                               &e.repo_candidates);
  }
  e.kind = "ignored";
  e.ignore_reason = absl::StrCat("event '", event, "' is not handled");
  return e;
}

}  // namespace assay::webhook
