#pragma once
// Webhook intake: what happens to one delivery POSTed to /hooks/{provider}[/{repo id}],
// without HTTP. The routes in server/api/api.cc only adapt requests to Admit and Complete
// and results to responses.
//
// Order (each step's failure answers at once and stores nothing):
//   Admit, from the headers alone: event and delivery headers present and printable (400)
//   → the credential header present and well-formed → the candidate repositories: the one
//   the URL names, or (the shared /hooks/{provider} URL) every repository registered for
//   this provider → for a token (GitLab), it equals a candidate's secret.
//   Complete, after the body: its signature verifies, on the raw bytes, under a candidate's
//   secret → only now is it parsed, once (400 for a bad payload) → the repository it names
//   is one whose secret verified it → stored, deduplicated on (provider, delivery id) and on
//   the SHA-256 of the body per repository within `dedupe_window` → pushes, tags and pull
//   requests go to `enqueue`.
// Unknown repository, wrong forge, a repository without a secret, a missing, malformed or
// wrong signature or token: all get exactly the same answer, kNotAuthenticated below, so that
// nothing about which repositories exist can be learned without a secret. What it was goes to
// the server log.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/crypto/sealed.h"
#include "server/metrics/metrics.h"
#include "server/store/deliveries.h"
#include "server/store/repos.h"
#include "server/webhook/verify.h"

namespace assay::webhook {

// The one answer to every delivery that cannot be authenticated (http 401, error_code
// "unauthenticated").
inline constexpr char kNotAuthenticated[] = "webhook delivery could not be authenticated";
// The shared /hooks/{provider} URL checks a delivery against at most this many repositories'
// secrets; beyond that it refuses (kNotAuthenticated, and the log says to use per-repository
// URLs). Why small: each candidate costs one HMAC over the whole body, on an I/O thread, for
// anyone who sends a well-formed signature; the per-repository URL costs exactly one.
inline constexpr size_t kMaxSharedUrlRepos = 16;

struct IntakeResult {
  int http_status = 0;  // 200 (ping), 202, 400 or 401
  // The assay_webhooks_received_total result label counted for this delivery: accepted,
  // duplicate, ignored, bad_signature, unknown_repo or bad_request.
  std::string result;
  // 2xx: the stored delivery's id and what becomes of it: queued, ignored, duplicate, pong
  // (duplicate: the id of the delivery it repeats).
  int64_t delivery = 0;
  std::string status;
  // 4xx: the error's short code (e.g. bad_signature) and message; nothing was stored.
  std::string error_code;
  std::string message;
};

class Intake {
 public:
  struct Deps {
    store::RepoStore* repos;
    store::DeliveryStore* deliveries;
    Metrics* metrics;
    KeyRing secret_key;  // opens the repositories' sealed webhook secrets
    // Called with a stored delivery's id that is to be planned (the planner's Enqueue).
    std::function<void(int64_t)> enqueue;
    // A body seen again for the same repository within this window is a duplicate, whatever
    // its delivery id (a replay). Zero: only the delivery id deduplicates.
    absl::Duration dedupe_window = absl::Hours(24);
  };

  // What Admit decides from the headers: a refusal, or a verifier to feed the body to.
  struct Admission {
    std::optional<IntakeResult> refusal;
    std::unique_ptr<DeliveryVerifier> verifier;
  };
  // Every pointer in `deps` must outlive this Intake.
  explicit Intake(Deps deps) : deps_(std::move(deps)) {}

  using Headers = std::vector<std::pair<std::string, std::string>>;

  // The head stage of one delivery for `provider` (github, gitlab or gitea) with the
  // request's headers (names matched ASCII case-insensitively). `repo` is the URL's
  // repository segment (a repository id) or nullopt for the shared URL. A non-OK status only
  // when the database or the secret store fails (the caller answers it as such); every
  // verdict on the delivery itself is an IntakeResult. Thread-safe.
  absl::StatusOr<Admission> Admit(const std::string& provider,
                                  const std::optional<std::string>& repo,
                                  const Headers& headers) const;
  // The body stage: `verifier` (from Admit) has been fed every byte of `body`.
  absl::StatusOr<IntakeResult> Complete(const std::string& provider, const Headers& headers,
                                        const std::string& body, DeliveryVerifier& verifier) const;
  // Admit and Complete in one, for a body already whole (tests, tools).
  absl::StatusOr<IntakeResult> Receive(const std::string& provider, const Headers& headers,
                                       const std::string& body,
                                       const std::optional<std::string>& repo = std::nullopt) const;
  // The kNotAuthenticated answer, counted under `result` (bad_signature or unknown_repo) and
  // logged with `why`.
  IntakeResult NotAuthenticated(const std::string& provider, const std::string& result,
                                std::string_view why) const;

 private:
  Deps deps_;
};

}  // namespace assay::webhook
