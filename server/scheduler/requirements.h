#pragma once
// A job's `runs_on` as stored in jobs.requirements (JSON) and as the scheduler reads it.
// Labels live in their own column (jobs.labels) and are passed separately.

#include <string>
#include <string_view>
#include <vector>

#include "common/pipeline/spec.h"
#include "server/scheduler/fit.h"

namespace assay {

// {"cpus":1} plus, when asked, "memory_gb", "gpus", "gpu_shared", "gpu_memory_gb",
// "gpu_model".
std::string RequirementsJson(const RunsOnSpec& runs_on);

// The inverse; a malformed or empty document gives the defaults (one CPU, nothing else).
JobRequirements RequirementsFromJson(const std::vector<std::string>& labels, std::string_view json);

}  // namespace assay
