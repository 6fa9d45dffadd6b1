#pragma once
// `assay secret set|rm|list` (issue 9, docs/secrets.md). A value is read from stdin or a file,
// never from the command line. Each returns the exit code: 0, or 1 when the request failed
// (message already on `err`).

#include <optional>
#include <ostream>
#include <string>

#include "cli/api_client.h"

namespace assay::cli {

struct SecretSetOptions {
  std::string repo;  // a name, or an id when no repository has that name
  std::string name;
  std::string environment;  // "" : repository-wide
  std::string value;
};

// PUT /api/v1/repos/ID/secrets/NAME {"value"[, "environment"]}; prints
// "secret NAME of REPO: created" (or "updated"), with " (environment E)" when scoped.
int SecretSet(const ApiClient& api, const SecretSetOptions& options, std::ostream& out,
              std::ostream& err);

// DELETE /api/v1/repos/ID/secrets/NAME[?environment=E]; prints "secret NAME of REPO: removed".
int SecretRemove(const ApiClient& api, const std::string& repo, const std::string& name,
                 const std::string& environment, std::ostream& out, std::ostream& err);

// GET /api/v1/repos/ID/secrets; prints a table NAME ENVIRONMENT UPDATED ("-" for
// repository-wide).
int SecretList(const ApiClient& api, const std::string& repo, std::ostream& out, std::ostream& err);

}  // namespace assay::cli
