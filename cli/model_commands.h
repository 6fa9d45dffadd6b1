#pragma once
// `assay models ...` (issue 10, docs/models.md): the model registry from the command line.
//
//   models list [--name GLOB] [--tag K=V]... [--limit N]
//   models show NAME | NAME@VERSION | NAME@ALIAS
//   models versions NAME [--alias A] [--tag K=V]... [--limit N]
//   models register NAME --job ID [--path model/] [--param K=V]... [--metric K=V]...
//                        [--parent N|ALIAS] [--tag K=V]... [--description TEXT]
//   models alias NAME ALIAS VERSION --reason TEXT
//   models alias-rm NAME ALIAS [--reason TEXT]
//   models history NAME ALIAS
//   models tag NAME[@REF] KEY=VALUE...      models untag NAME[@REF] KEY...
//   models download NAME@REF [-o DIR]
//
// Alias changes send `actor` = the user's $USER (recorded as claimed, not verified).

#include <ostream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "cli/api_client.h"

namespace assay::cli {

struct ModelsArgs {
  std::vector<std::string> positional;                       // after "models"
  std::vector<std::pair<std::string, std::string>> options;  // "--name" → value, in order
  std::string user;  // $USER, sent as the actor of alias changes ("" : none)
};

// The exit code (0, or 1 with the message on `err`), or a usage error's message (exit 2).
std::variant<int, std::string> ModelsCommand(const ModelsArgs& args, const ApiClient& api,
                                             std::ostream& out, std::ostream& err);

}  // namespace assay::cli
