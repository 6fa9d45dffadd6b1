#include "server/webhook/github.h"

#include <boost/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/status.h"
#include "common/git/git.h"
#include "server/webhook/payload_util.h"

namespace assay::webhook {
namespace {

std::string StringField(const boost::json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RepoCandidates(const std::string& body) {
  auto obj = internal::ParseObject(body);
  if (!obj.ok()) return obj.status();
  const auto* repo = obj->if_contains("repository");
  if (repo == nullptr || !repo->is_object()) {
    return absl::InvalidArgumentError("payload: field 'repository' must be an object");
  }
  std::vector<std::string> out;
  for (const char* k : {"clone_url", "full_name", "html_url", "ssh_url", "git_url"}) {
    std::string v = StringField(repo->as_object(), k);
    if (!v.empty()) out.push_back(std::move(v));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        "payload: 'repository' has none of clone_url, full_name, html_url");
  }
  return out;
}

absl::StatusOr<PushEvent> ParsePush(const std::string& body) {
  auto obj = internal::ParseObject(body);
  if (!obj.ok()) return obj.status();
  PushEvent e;
  e.ref = StringField(*obj, "ref");
  e.after = StringField(*obj, "after");
  e.before = StringField(*obj, "before");
  if (const auto* d = obj->if_contains("deleted"); d != nullptr && d->is_bool()) {
    e.deleted = d->as_bool();
  }
  if (e.ref.empty()) return absl::InvalidArgumentError("push payload: field 'ref' is missing");
  if (absl::StartsWith(e.ref, "refs/heads/")) {
    e.branch = e.ref.substr(11);
  } else if (absl::StartsWith(e.ref, "refs/tags/")) {
    e.tag = e.ref.substr(10);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "push payload: field 'ref' must start with refs/heads/ or refs/tags/, got '", e.ref, "'"));
  }
  if (!IsHexSha(e.after)) {
    return absl::InvalidArgumentError(
        "push payload: field 'after' must be a 40-character hex commit id");
  }
  if (e.after == std::string(40, '0')) e.deleted = true;
  return e;
}

absl::Status FillPush(const std::string& body, const boost::json::object& payload, ForgeEvent* e) {
  ASSAY_ASSIGN_OR_RETURN(PushEvent push, ParsePush(body));
  e->kind = push.tag.empty() ? "push" : "tag";
  e->ref = push.ref;
  e->branch = push.branch;
  e->tag = push.tag;
  e->before = push.before;
  e->after = push.after;
  e->deleted = push.deleted;
  e->changed_paths = internal::ChangedPaths(payload.if_contains("commits"));
  return absl::OkStatus();
}

absl::StatusOr<ForgeEvent> ParseGithubEvent(std::string_view event_header,
                                            std::string_view delivery, const std::string& body) {
  if (event_header.empty()) return absl::InvalidArgumentError("header X-GitHub-Event is required");
  ASSAY_ASSIGN_OR_RETURN(boost::json::object payload, internal::ParseObject(body));
  ForgeEvent e;
  e.provider = "github";
  e.delivery_id = std::string(delivery);
  const std::string event(event_header);
  auto candidates = RepoCandidates(body);
  if (candidates.ok()) e.repo_candidates = *std::move(candidates);
  if (event == "push") {
    if (!candidates.ok()) return candidates.status();
    ASSAY_RETURN_IF_ERROR(FillPush(body, payload, &e));
    return e;
  }
  if (event == "pull_request") {
    e.kind = "pull_request";
    ASSAY_RETURN_IF_ERROR(
        internal::FillGithubStylePullRequest(payload, {"opened", "synchronize", "reopened"}, &e));
    if (e.kind == "pull_request" && !candidates.ok()) return candidates.status();
    return e;
  }
  if (event == "ping") {
    e.kind = "ping";
    return e;
  }
  e.kind = "ignored";
  e.ignore_reason = absl::StrCat("event '", event, "' is not handled");
  return e;
}

}  // namespace assay::webhook
