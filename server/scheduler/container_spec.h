#pragma once
// The container keys of a job (issue 9, docs/executors.md) on their way from the planned job to
// jobs.spec (JSON) and from there into the agent's Assignment (fields 13-16).

#include <boost/json.hpp>

#include "absl/status/status.h"
#include "assay/v1/agent.pb.h"
#include "common/pipeline/plan.h"

namespace assay {

// Adds "image", "services" and "container_limits" ({cpus, memory_mb} from runs_on) to `spec`
// when the job has an image; nothing otherwise.
void AddContainerSpec(const PlannedJob& job, boost::json::object& spec);

// Sets a.image, a.services, a.cpus and a.memory_mb from a spec written by AddContainerSpec.
// No "image" in `spec`: leaves `a` as it is. Throws what boost::json throws for a malformed
// document (the caller reports it).
void ContainerSpecToAssignment(const boost::json::object& spec, v1::Assignment& a);

// Issue 9, build_image: a step's `build_image` in jobs.spec ({context, file, tags, push,
// registry_secret}) and back into Step.build_image (throws what boost::json throws).
boost::json::object BuildImageJson(const BuildImageSpec& b);
void BuildImageFromJson(const boost::json::value& v, v1::BuildImageStep& out);

}  // namespace assay
