#include "server/webhook/gitea.h"

#include "absl/strings/str_cat.h"
#include "common/base/status.h"
#include "common/crypto/crypto.h"
#include "server/webhook/github.h"
#include "server/webhook/payload_util.h"

namespace assay::webhook {

absl::Status VerifyGiteaSignature(std::string_view gitea_signature,
                                  std::string_view forgejo_signature, std::string_view secret,
                                  const std::string& body) {
  if (secret.empty()) return absl::UnauthenticatedError("webhook secret is not configured");
  std::string_view header = !forgejo_signature.empty() ? forgejo_signature : gitea_signature;
  return VerifyHmacSha256Signature(header, "", secret, body);
}

absl::StatusOr<ForgeEvent> ParseGiteaEvent(std::string_view event_header, std::string_view delivery,
                                           const std::string& body) {
  if (event_header.empty()) return absl::InvalidArgumentError("header X-Gitea-Event is required");
  ASSAY_ASSIGN_OR_RETURN(boost::json::object payload, internal::ParseObject(body));
  ForgeEvent e;
  e.provider = "gitea";
  e.delivery_id = std::string(delivery);
  const std::string event(event_header);
  auto candidates = RepoCandidates(body);
  if (candidates.ok()) e.repo_candidates = *std::move(candidates);
  if (event == "push") {
    if (!candidates.ok()) return candidates.status();
    ASSAY_RETURN_IF_ERROR(FillPush(body, payload, &e));
    return e;
  }
  if (event == "pull_request" || event == "pull_request_sync") {
    e.kind = "pull_request";
    ASSAY_RETURN_IF_ERROR(
        internal::FillGithubStylePullRequest(payload, {"opened", "synchronized", "reopened"}, &e));
    if (e.kind == "pull_request" && !candidates.ok()) return candidates.status();
    return e;
  }
  e.kind = "ignored";
  e.ignore_reason = absl::StrCat("event '", event, "' is not handled");
  return e;
}

}  // namespace assay::webhook
