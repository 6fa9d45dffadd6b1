#pragma once
// `assay agents ...`: list agents, make enrollment tokens, revoke, disable and enable
// (issue 8). Each returns the exit code: 0 on success, 1 when the request failed (message
// already on `err`).

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "cli/api_client.h"

namespace assay::cli {

struct TokenCreateOptions {
  std::optional<std::string> name;
  std::vector<std::string> labels;
  std::optional<std::string> expires;  // a duration, "1h"
};

// POST /api/v1/agents/enrollment-tokens. Prints the token alone on `out` (so a script can
// capture it; it is shown only this once) and what it allows on `err`.
int AgentTokenCreate(const ApiClient& api, const TokenCreateOptions& options, std::ostream& out,
                     std::ostream& err);

// POST /api/v1/agents/NAME/{revoke,disable,enable}; prints "agent NAME: revoked" etc.
int AgentChangeAccess(const ApiClient& api, const std::string& name, const std::string& action,
                      std::ostream& out, std::ostream& err);

// POST /api/v1/agents/NAME/drain {"reason"?, "timeout"?} (issue 9); prints what it did.
int AgentDrain(const ApiClient& api, const std::string& name,
               const std::optional<std::string>& reason, const std::optional<std::string>& timeout,
               std::ostream& out, std::ostream& err);
// POST /api/v1/agents/NAME/resume.
int AgentResume(const ApiClient& api, const std::string& name, std::ostream& out,
                std::ostream& err);

// GET /api/v1/agents; prints a table NAME STATE ACCESS LABELS SLOTS LAST_SEEN.
int AgentList(const ApiClient& api, std::ostream& out, std::ostream& err);

}  // namespace assay::cli
