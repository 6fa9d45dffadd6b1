#pragma once
// What each API route asks of its caller (docs/access.md), written out by hand: the db tier
// checks that it names exactly the routes the server registers, and the e2e tier calls every
// route as every kind of caller against it. A route added without a line here fails both.

#include <string>
#include <vector>

namespace assay::testing {

struct RouteAccess {
  std::string method;
  std::string pattern;
  // public | read | user | repo-write | maintainer | admin (server/auth/access.h LevelName)
  std::string level;
};

inline const std::vector<RouteAccess>& AccessTable() {
  static const std::vector<RouteAccess> kTable = {
      // Not under Authed: health, metrics (its own token), webhooks (signatures), login.
      {"GET", "/healthz", "public"},
      {"GET", "/metrics", "public"},
      {"POST", "/hooks/github", "public"},
      {"POST", "/hooks/github/{repo}", "public"},
      {"POST", "/hooks/gitlab", "public"},
      {"POST", "/hooks/gitlab/{repo}", "public"},
      {"POST", "/hooks/gitea", "public"},
      {"POST", "/hooks/gitea/{repo}", "public"},
      {"POST", "/api/v1/session", "public"},
      // The dashboard's shell and files (they hold no data; the API calls they make do).
      {"GET", "/", "public"},
      {"GET", "/ui", "public"},
      {"GET", "/ui/{path...}", "public"},
      {"GET", "/assets/{name}", "public"},
      {"GET", "/api/v1/openapi.json", "public"},
      {"GET", "/badge/{path...}", "read"},
      // Repositories.
      {"POST", "/api/v1/repos", "admin"},
      {"PATCH", "/api/v1/repos/{id}", "repo-write"},
      {"GET", "/api/v1/repos", "read"},
      {"PUT", "/api/v1/repos/{id}/commit-status", "repo-write"},
      {"DELETE", "/api/v1/repos/{id}/commit-status", "repo-write"},
      {"GET", "/api/v1/repos/{id}/deliveries", "read"},
      {"POST", "/api/v1/repos/{id}/test-delivery", "repo-write"},
      {"GET", "/api/v1/repos/{id}/secrets", "repo-write"},
      {"PUT", "/api/v1/repos/{id}/secrets/{name}", "repo-write"},
      {"DELETE", "/api/v1/repos/{id}/secrets/{name}", "repo-write"},
      {"GET", "/api/v1/repos/{id}/caches", "read"},
      {"DELETE", "/api/v1/repos/{id}/caches/{entry}", "repo-write"},
      {"GET", "/api/v1/repos/{id}/maintainers", "read"},
      {"PUT", "/api/v1/repos/{id}/maintainers/{user}", "admin"},
      {"DELETE", "/api/v1/repos/{id}/maintainers/{user}", "admin"},
      // Pipelines and jobs.
      {"POST", "/api/v1/repos/{id}/pipelines", "repo-write"},
      {"GET", "/api/v1/pipelines", "read"},
      {"GET", "/api/v1/pipelines/{id}", "read"},
      {"POST", "/api/v1/pipelines/{id}/cancel", "repo-write"},
      {"POST", "/api/v1/pipelines/{id}/retry", "repo-write"},
      {"POST", "/api/v1/pipelines/{id}/rerun", "repo-write"},
      {"GET", "/api/v1/pipelines/{id}/sweeps", "read"},
      {"GET", "/api/v1/jobs/{id}", "read"},
      {"POST", "/api/v1/jobs/{id}/cancel", "repo-write"},
      {"POST", "/api/v1/jobs/{id}/retry", "repo-write"},
      {"GET", "/api/v1/jobs/{id}/log", "read"},
      {"GET", "/api/v1/jobs/{id}/artifacts", "read"},
      {"GET", "/api/v1/jobs/{id}/artifacts/{path...}", "read"},
      {"GET", "/api/v1/jobs/{id}/evals", "read"},
      {"GET", "/api/v1/jobs/{id}/train", "read"},
      {"GET", "/api/v1/queue", "read"},
      {"GET", "/api/v1/events", "read"},
      {"GET", "/api/v1/artifacts/usage", "read"},
      {"GET", "/api/v1/caches/usage", "read"},
      // Agents.
      {"GET", "/api/v1/agents", "read"},
      {"POST", "/api/v1/agents/{name}/drain", "admin"},
      {"POST", "/api/v1/agents/{name}/resume", "admin"},
      {"POST", "/api/v1/agents/enrollment-tokens", "admin"},
      {"POST", "/api/v1/agents/{name}/revoke", "admin"},
      {"POST", "/api/v1/agents/{name}/disable", "admin"},
      {"POST", "/api/v1/agents/{name}/enable", "admin"},
      // Evals.
      {"GET", "/api/v1/evals", "read"},
      {"GET", "/api/v1/evals/{id}", "read"},
      {"GET", "/api/v1/evals/{id}/diff", "read"},
      // The model registry.
      {"POST", "/api/v1/models", "maintainer"},
      {"GET", "/api/v1/models", "read"},
      {"GET", "/api/v1/models/{name}", "read"},
      {"PATCH", "/api/v1/models/{name}", "maintainer"},
      {"DELETE", "/api/v1/models/{name}", "maintainer"},
      {"PUT", "/api/v1/models/{name}/tags/{key}", "maintainer"},
      {"DELETE", "/api/v1/models/{name}/tags/{key}", "maintainer"},
      {"POST", "/api/v1/models/{name}/versions", "maintainer"},
      {"GET", "/api/v1/models/{name}/versions", "read"},
      {"GET", "/api/v1/models/{name}/versions/{v}", "read"},
      {"PATCH", "/api/v1/models/{name}/versions/{v}", "maintainer"},
      {"PUT", "/api/v1/models/{name}/versions/{v}/tags/{key}", "maintainer"},
      {"DELETE", "/api/v1/models/{name}/versions/{v}/tags/{key}", "maintainer"},
      {"GET", "/api/v1/models/{name}/versions/{v}/files", "read"},
      {"GET", "/api/v1/models/{name}/versions/{v}/files/{path...}", "read"},
      {"GET", "/api/v1/models/{name}/aliases/{alias}", "read"},
      {"PUT", "/api/v1/models/{name}/aliases/{alias}", "maintainer"},
      {"DELETE", "/api/v1/models/{name}/aliases/{alias}", "maintainer"},
      {"GET", "/api/v1/models/{name}/aliases/{alias}/history", "read"},
      {"GET", "/api/v1/models/{name}/aliases/{alias}/files", "read"},
      {"GET", "/api/v1/models/{name}/aliases/{alias}/files/{path...}", "read"},
      // Issue 12, deployments.
      {"GET", "/api/v1/repos/{id}/environments", "read"},
      {"GET", "/api/v1/repos/{id}/environments/{name}", "read"},
      {"PUT", "/api/v1/repos/{id}/environments/{name}", "maintainer"},
      {"DELETE", "/api/v1/repos/{id}/environments/{name}", "maintainer"},
      {"POST", "/api/v1/repos/{id}/environments/{name}/rollback", "maintainer"},
      {"POST", "/api/v1/deployments", "maintainer"},
      {"GET", "/api/v1/deployments", "read"},
      {"GET", "/api/v1/deployments/{id}", "read"},
      {"GET", "/api/v1/deployments/{id}/events", "read"},
      {"POST", "/api/v1/deployments/{id}/approve", "maintainer"},
      {"POST", "/api/v1/deployments/{id}/pause", "maintainer"},
      {"POST", "/api/v1/deployments/{id}/resume", "maintainer"},
      {"POST", "/api/v1/deployments/{id}/promote", "maintainer"},
      {"POST", "/api/v1/deployments/{id}/abort", "maintainer"},
      // Users and access.
      {"DELETE", "/api/v1/session", "user"},
      {"GET", "/api/v1/me", "user"},
      {"PUT", "/api/v1/me/password", "user"},
      {"GET", "/api/v1/users", "admin"},
      {"POST", "/api/v1/users", "admin"},
      {"GET", "/api/v1/users/{id}", "admin"},
      {"PATCH", "/api/v1/users/{id}", "admin"},
      {"DELETE", "/api/v1/users/{id}", "admin"},
      {"GET", "/api/v1/tokens", "user"},
      {"POST", "/api/v1/tokens", "user"},
      {"DELETE", "/api/v1/tokens/{id}", "user"},
      {"GET", "/api/v1/audit", "admin"},
  };
  return kTable;
}

}  // namespace assay::testing
