#pragma once
// Gitea / Forgejo webhook adapter: signature check and event parsing. Pure functions, no I/O.
//
// Gitea signs the raw body with HMAC-SHA256 under the hook secret and sends the bare lowercase
// hex digest (no "sha256=" prefix) in X-Gitea-Signature; Forgejo sends the same value in
// X-Forgejo-Signature too. The event is X-Gitea-Event / X-Forgejo-Event, the delivery id
// X-Gitea-Delivery / X-Forgejo-Delivery. Payloads are GitHub-shaped (docs.gitea.com "Webhooks").

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/webhook/event.h"

namespace assay::webhook {

// Checks whichever signature header is present (X-Forgejo-Signature first, then
// X-Gitea-Signature; pass "" for an absent header) with VerifyHmacSha256Signature(prefix "").
// kUnauthenticated: "webhook secret is not configured" for an empty secret, otherwise exactly
// VerifyHmacSha256Signature's messages ("signature header is missing", "signature must be 64
// hex characters after the prefix, got N", "signature is not hexadecimal", "signature does not
// match the body").
absl::Status VerifyGiteaSignature(std::string_view gitea_signature,
                                  std::string_view forgejo_signature, std::string_view secret,
                                  const std::string& body);

// A verified Gitea/Forgejo delivery as a ForgeEvent (provider "gitea").
//   "push"                             as ParsePush in github.h (same errors): kind "push" or
//                                      "tag", deleted for an all-zero after, changed_paths from
//                                      "commits".
//   "pull_request", "pull_request_sync" actions opened, synchronized, reopened → kind
//                                      "pull_request" building pull_request.head.sha, ref
//                                      "refs/pull/N/head" (fields and errors as GitHub's);
//                                      other actions → ignored, "pull_request action 'closed'
//                                      does not start a build".
//   anything else                      kind "ignored", reason "event 'create' is not handled".
// repo_candidates as RepoCandidates in github.h (clone_url, full_name, html_url, ssh_url).
// Empty `event_header` → kInvalidArgument "header X-Gitea-Event is required".
absl::StatusOr<ForgeEvent> ParseGiteaEvent(std::string_view event_header, std::string_view delivery,
                                           const std::string& body);

}  // namespace assay::webhook
