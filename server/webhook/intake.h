#pragma once
// Webhook intake: what happens to one delivery POSTed to /hooks/{provider}, without HTTP.
// The route in server/api/api.cc only adapts a request to Receive and its result to a
// response.
//
// Order (each step's failure answers at once and stores nothing):
//   event and delivery headers present (400) → payload parses and names a repository (400)
//   → the repository is registered (404) for this provider (400) with a secret (401)
//   → the signature verifies (401) → the raw delivery is stored, deduplicated on
//   (provider, delivery id) → pushes, tags and pull requests go to `enqueue`.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/crypto/sealed.h"
#include "server/metrics/metrics.h"
#include "server/store/deliveries.h"
#include "server/store/repos.h"

namespace assay::webhook {

struct IntakeResult {
  int http_status = 0;  // 200 (ping), 202, 400, 401 or 404
  // The assay_webhooks_received_total result label counted for this delivery: accepted,
  // duplicate, ignored, bad_signature, unknown_repo or bad_request.
  std::string result;
  // 2xx: the stored delivery's id and what becomes of it: queued, ignored, duplicate, pong.
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
  };
  // Every pointer in `deps` must outlive this Intake.
  explicit Intake(Deps deps) : deps_(std::move(deps)) {}

  // One delivery for `provider` (github, gitlab or gitea) with the request's headers (names
  // matched ASCII case-insensitively) and raw body. A non-OK status only when the database
  // or the secret store fails (the caller answers it as such); every verdict on the delivery
  // itself is an IntakeResult. Thread-safe.
  absl::StatusOr<IntakeResult> Receive(
      const std::string& provider, const std::vector<std::pair<std::string, std::string>>& headers,
      const std::string& body) const;

 private:
  Deps deps_;
};

}  // namespace assay::webhook
