#pragma once
// How the REST API shows the stored rows: one JSON encoder per resource. Pure functions of
// the row; no I/O, no exceptions: a stored JSON column that does not parse is an error
// status (the handler answers 500 with its message), not a throw.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/agents.h"
#include "server/store/jobs.h"
#include "server/store/pipelines.h"
#include "server/store/repos.h"

namespace assay::api {

// RFC 3339 UTC with milliseconds ("2026-01-02T03:04:05.678Z"); null for InfinitePast.
boost::json::value TimeJson(absl::Time t);
// `text`, a JSON column of row `what` (e.g. "pipeline 7"), parsed; kDataLoss if it does not
// parse. Why not json::parse(text): it throws, and a throw in a handler is an opaque 500.
absl::StatusOr<boost::json::value> StoredJson(const std::string& text, const std::string& what,
                                              const char* column);

boost::json::object RepoJson(const store::Repo& r);
// A stored runs_on that is not a JSON object shows as {} plus the job's labels.
boost::json::object JobJson(const store::JobRow& j);
// "errors": the problems of a pipeline in error, one per line of its message (for a bad
// pipeline file, the lines `assay lint` prints); [] for any other state. kDataLoss naming
// the pipeline when its stored inputs are not JSON.
absl::StatusOr<boost::json::object> PipelineJson(const store::PipelineRow& p);
// kDataLoss naming the agent when its stored GPU list is not JSON.
absl::StatusOr<boost::json::object> AgentJson(const store::AgentRow& a);

}  // namespace assay::api
