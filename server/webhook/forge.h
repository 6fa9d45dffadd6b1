#pragma once
// Per-forge facts the webhook endpoint and the planner share: which headers carry the event,
// the delivery id and the signature, how to verify it, and how to parse a delivery.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/webhook/event.h"

namespace assay::webhook {

struct HookHeaders {
  std::string event;     // e.g. X-GitHub-Event
  std::string delivery;  // e.g. X-GitHub-Delivery
};

// The endpoints: github, gitlab, gitea (also Forgejo). nullptr for an unknown provider.
const HookHeaders* HeadersFor(std::string_view provider);

// Verifies a delivery's authenticity with the repository's secret, in constant time.
// `header` looks a request header up by (case-insensitive) name.
absl::Status VerifyDelivery(std::string_view provider,
                            const std::function<std::string(std::string_view)>& header,
                            std::string_view secret, const std::string& body);

// Parses a stored delivery with its provider's adapter.
absl::StatusOr<ForgeEvent> ParseDelivery(std::string_view provider, std::string_view event,
                                         std::string_view delivery, const std::string& body);

}  // namespace assay::webhook
