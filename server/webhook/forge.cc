#include "server/webhook/forge.h"

#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "server/webhook/gitea.h"
#include "server/webhook/github.h"
#include "server/webhook/gitlab.h"
#include "server/webhook/payload_util.h"

namespace assay::webhook {

const HookHeaders* HeadersFor(std::string_view provider) {
  static const HookHeaders kGithub{"X-GitHub-Event", "X-GitHub-Delivery"};
  static const HookHeaders kGitlab{"X-Gitlab-Event", "X-Gitlab-Event-UUID"};
  static const HookHeaders kGitea{"X-Gitea-Event", "X-Gitea-Delivery"};
  if (provider == "github") return &kGithub;
  if (provider == "gitlab") return &kGitlab;
  if (provider == "gitea") return &kGitea;
  return nullptr;
}

absl::Status VerifyDelivery(std::string_view provider,
                            const std::function<std::string(std::string_view)>& header,
                            std::string_view secret, const std::string& body) {
  if (provider == "github") {
    absl::Status s =
        VerifyHmacSha256Signature(header("X-Hub-Signature-256"), "sha256=", secret, body);
    if (s.ok()) return s;
    return absl::UnauthenticatedError(
        absl::StrCat("X-Hub-Signature-256: ", std::string(s.message())));
  }
  if (provider == "gitlab") return VerifyGitlabToken(header("X-Gitlab-Token"), secret);
  if (provider == "gitea") {
    return VerifyGiteaSignature(header("X-Gitea-Signature"), header("X-Forgejo-Signature"), secret,
                                body);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown provider '", std::string(provider), "'"));
}

absl::StatusOr<ForgeEvent> ParseDelivery(std::string_view provider, std::string_view event,
                                         std::string_view delivery, const std::string& body) {
  absl::StatusOr<ForgeEvent> e;
  if (provider == "github") {
    e = ParseGithubEvent(event, delivery, body);
  } else if (provider == "gitlab") {
    e = ParseGitlabEvent(event, delivery, body);
  } else if (provider == "gitea") {
    e = ParseGiteaEvent(event, delivery, body);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown provider '", std::string(provider), "'"));
  }
  if (!e.ok()) return e;
  if (auto payload = internal::ParseObject(body); payload.ok()) {
    const boost::json::object* repo = internal::Obj(*payload, "repository");
    if (provider == "gitlab") repo = internal::Obj(*payload, "project");
    if (repo != nullptr) e->default_branch = internal::Str(*repo, "default_branch");
  }
  return e;
}

}  // namespace assay::webhook
