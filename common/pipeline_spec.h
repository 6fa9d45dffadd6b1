#pragma once
// The `.assay.yml` pipeline file: its model, validation and parsing.
//
// The format as it stands (see docs/pipeline.md):
//
//   jobs:                       # required, non-empty mapping of job name -> job
//     build:                    # name: [A-Za-z0-9_.-]{1,64}
//       needs: [lint]           # optional: list of job names, or a single name
//       env: { A: "1" }         # optional: mapping name -> scalar (kept as text)
//       timeout: 10m            # optional, default 60m (see common/duration.h)
//       steps:                  # required, non-empty list
//         - name: compile       # optional, default "step N" (1-based)
//           run: make           # required, non-empty string
//         - make test           # a plain string means { run: "make test" }
//
// Why a hand-written validator over yaml-cpp nodes rather than yaml-cpp's `as<T>`:
// the user gets every problem at once, each with its line, column and key path, and
// duplicate keys (which yaml-cpp silently accepts) are reported.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace assay {

inline constexpr int64_t kDefaultJobTimeoutSeconds = 3600;

struct StepSpec {
  std::string name;  // "step N" (1-based) when the file gives none.
  std::string run;   // Shell command; never empty.

  bool operator==(const StepSpec&) const = default;
};

struct JobSpec {
  std::string name;
  std::vector<std::string> needs;  // In file order, no duplicates, all defined jobs.
  std::vector<std::pair<std::string, std::string>> env;  // In file order, unique names.
  int64_t timeout_s = kDefaultJobTimeoutSeconds;
  std::vector<StepSpec> steps;  // Never empty.
  int line = 0;                 // 1-based line of the job's name in the file.

  bool operator==(const JobSpec&) const = default;
};

struct PipelineSpec {
  std::vector<JobSpec> jobs;  // In file order.

  bool operator==(const PipelineSpec&) const = default;
};

// One problem in a pipeline file. `line` and `column` are 1-based.
struct SpecError {
  std::string file;
  int line = 0;
  int column = 0;
  std::string key;  // Dotted path, e.g. "jobs.build.steps[0].run"; empty for file-level errors.
  std::string message;

  // "FILE:LINE:COL: KEY: MESSAGE", or "FILE:LINE:COL: MESSAGE" when `key` is empty.
  std::string ToString() const;
  bool operator==(const SpecError&) const = default;
};

// Validates `yaml_text` and returns every problem found, sorted by position (line,
// then column; ties keep discovery order). Empty when the file is valid. `file` is
// only used to label the errors.
std::vector<SpecError> LintPipelineSpec(std::string_view yaml_text,
                                        std::string_view file = ".assay.yml");

// Parses and validates. On any problem returns kInvalidArgument whose message is the
// first SpecError's ToString(), followed by " (and N more errors)" ("1 more error")
// when there are others.
absl::StatusOr<PipelineSpec> ParsePipelineSpec(std::string_view yaml_text,
                                               std::string_view file = ".assay.yml");

// Job names in dependency order: every job comes after all of its needs, and among
// jobs that are ready at the same time the one earlier in the file comes first.
// Meant for a spec from ParsePipelineSpec; for any other, needs naming undefined jobs
// are ignored and jobs on a cycle (and those behind it) are appended in file order.
std::vector<std::string> TopologicalOrder(const PipelineSpec& spec);

}  // namespace assay
