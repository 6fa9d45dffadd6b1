#pragma once
// `assay deploy`, `assay deployments ...` and `assay environments ...` (issue 12,
// docs/deployments.md):
//
//   deploy ENV --repo ID (--model NAME@VERSION|NAME@ALIAS | --image NAME@sha256:HEX)
//          --endpoint ADDRESS... --strategy JSON|@FILE [--ref BRANCH] [--supersede]
//   deployments list [--repo ID] [--environment ENV] [--state STATE] [--limit N]
//   deployments show ID                    the deployment and its history
//   deployments approve ID
//   deployments pause|resume|abort ID [--reason TEXT]
//   deployments promote ID [--full] [--reason TEXT]
//   deployments wait ID [--timeout 10m]    until it ends or is promoted: exit 0 promoted,
//                                          1 otherwise (rolled back, failed, aborted, paused)
//   environments list --repo ID
//   environments show ENV --repo ID
//   environments set ENV --repo ID --config JSON|@FILE
//   environments rollback ENV --repo ID --to DEPLOYMENT [--supersede]

#include <functional>
#include <ostream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/time/time.h"
#include "cli/api_client.h"

namespace assay::cli {

struct DeployArgs {
  std::string command;                                       // deploy | deployments | environments
  std::vector<std::string> positional;                       // after the command
  std::vector<std::pair<std::string, std::string>> options;  // "--repo" → value, in order
  // Reads @FILE arguments; sleeps between polls of `deployments wait`. Tests may replace them.
  std::function<absl::StatusOr<std::string>(const std::string&)> read_file;
  std::function<void(absl::Duration)> sleep;
};

// The exit code (0, or 1 with the message on `err`), or a usage error's message (exit 2).
std::variant<int, std::string> DeployCommand(const DeployArgs& args, const ApiClient& api,
                                             std::ostream& out, std::ostream& err);

}  // namespace assay::cli
