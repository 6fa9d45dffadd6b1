#pragma once
// `assay evals ...` (issue 10, docs/evals.md): eval runs from the command line.
//
//   evals list [--repo NAME] [--job ID] [--name EVAL] [--branch B] [--limit N]
//   evals show ID [--examples failed|all|none]      the report, then the examples (failed)
//   evals diff ID [--against ID|BRANCH]             what regressed, got fixed, stayed wrong

#include <ostream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "cli/api_client.h"

namespace assay::cli {

struct EvalsArgs {
  std::vector<std::string> positional;                       // after "evals"
  std::vector<std::pair<std::string, std::string>> options;  // "--repo" → value, in order
};

// The exit code (0, or 1 with the message on `err`), or a usage error's message (exit 2).
std::variant<int, std::string> EvalsCommand(const EvalsArgs& args, const ApiClient& api,
                                            std::ostream& out, std::ostream& err);

}  // namespace assay::cli
