#pragma once
// How the REST API shows the stored rows: one JSON encoder per resource. Pure functions of
// the row; no I/O.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "absl/time/time.h"
#include "server/store/agents.h"
#include "server/store/jobs.h"
#include "server/store/pipelines.h"
#include "server/store/repos.h"

namespace assay::api {

// RFC 3339 UTC with milliseconds ("2026-01-02T03:04:05.678Z"); null for InfinitePast.
boost::json::value TimeJson(absl::Time t);

boost::json::object RepoJson(const store::Repo& r);
boost::json::object JobJson(const store::JobRow& j);
boost::json::object PipelineJson(const store::PipelineRow& p);
boost::json::object AgentJson(const store::AgentRow& a);

}  // namespace assay::api
