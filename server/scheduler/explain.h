#pragma once
// "Why is it waiting?" for the API and `assay queue`: the whole cluster as the database sees
// it (agents of every server, every live attempt), and one sentence per waiting job. Pure
// functions over store rows; the caller reads the rows.

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/scheduler/fit.h"
#include "server/store/agents.h"
#include "server/store/jobs.h"
#include "server/store/pipelines.h"

namespace assay {

struct ClusterView {
  std::vector<AgentCapacity> agents;            // online and seen within `fresh`, usage applied
  std::map<std::string, int64_t> group_holder;  // concurrency key → the live job holding it
  std::map<std::string, int> parallel_running;  // parallel key → live jobs
};

// Issue 9, lifecycle: why an agent takes no job, as AgentCapacity::not_accepting says it.
// An admin's drain wins: "draining (drained by an admin)" or "draining (drained by an admin:
// REASON)"; else the agent's own phrase (`agent_reason`, e.g. "draining (SIGTERM)"); "" when
// it takes jobs.
std::string NotAcceptingPhrase(const store::AgentDrain& drain, const std::string& agent_reason);

// Agents that take no job (an admin's drain, or their own AgentState) carry not_accepting.
ClusterView BuildClusterView(const std::vector<store::AgentRow>& agents,
                             const std::vector<store::LiveUsage>& live, absl::Time now,
                             absl::Duration fresh);

// One sentence for a queued or pending job ("" for any other state):
//   pending: "waiting for the jobs it needs: build (running), lint (queued)"
//   queued, in this order:
//     "waiting for concurrency group 'deploy-main': job 12 holds it"
//     "waiting for max_parallel: 2 of 2 jobs of 'train' are running"
//     ExplainWait(...) over the cluster (see fit.h), e.g. "no agent has 2 free GPUs with
//     >= 40 GB: 3 agents carry label gpu, most free GPUs on one agent is 1"
// `jobs_of_pipeline`: the job's pipeline (for needs' states); may be empty for queued jobs.
std::string WhyWaiting(const store::JobRow& job, const ClusterView& view,
                       const std::vector<store::JobRow>& jobs_of_pipeline);

}  // namespace assay
