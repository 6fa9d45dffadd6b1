#pragma once
// `assay train JOB_ID [--series NAME]` (issue 10, docs/train.md): a job's train steps, their
// metric series (count, steps, last and best value), attempts and resumes, and the version
// registered; with --series, every point of one series (STEP VALUE ATTEMPT).

#include <ostream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "cli/api_client.h"

namespace assay::cli {

struct TrainArgs {
  std::vector<std::string> positional;                       // after "train"
  std::vector<std::pair<std::string, std::string>> options;  // "--series" → value
};

// The exit code (0, or 1 with the message on `err`), or a usage error's message (exit 2).
std::variant<int, std::string> TrainCommand(const TrainArgs& args, const ApiClient& api,
                                            std::ostream& out, std::ostream& err);

// `assay sweep PIPELINE_ID` (docs/train.md "Sweeps"): per sweep a line (metric, goal, the best
// trial and the version registered, or why none) and a table of its trials: TRIAL JOB STATE
// PARAMS STEP VALUE, the best marked "*", a trial stopped early "stopped".
std::variant<int, std::string> SweepCommand(const TrainArgs& args, const ApiClient& api,
                                            std::ostream& out, std::ostream& err);

}  // namespace assay::cli
