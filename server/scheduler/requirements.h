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
// "gpu_model", and "untrusted": true for a job of an untrusted pipeline (a fork's pull
// request: only agents that accept untrusted jobs may run it; the claim checks it too).
// `executor` non-empty adds "executor": it, e.g. "container" for a job with `image:` (only an
// agent offering that executor may take it).
std::string RequirementsJson(const RunsOnSpec& runs_on, bool untrusted = false,
                             std::string_view executor = "");

// The inverse; a malformed or empty document gives the defaults (one CPU, nothing else).
JobRequirements RequirementsFromJson(const std::vector<std::string>& labels, std::string_view json);

}  // namespace assay
