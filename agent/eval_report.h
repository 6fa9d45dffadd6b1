#pragma once
// The eval driver's calls to the server (issue 10): ReportEval in pieces, and EvalBaseline for
// a relative gate. Each call carries the job's attempt token; a call that fails for a
// transient reason (UNAVAILABLE, DEADLINE_EXCEEDED) is retried up to 3 times, each within
// 30 s.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "agent/eval_step.h"
#include "assay/v1/agent.grpc.pb.h"

namespace assay {

struct EvalCallTarget {
  v1::AgentService::StubInterface* stub = nullptr;
  std::string bearer;
  int64_t job_id = 0;
  std::string attempt_token;
  int step_index = 0;
};

// Sends `report` as pieces of at most 1,000 examples and about 4 MiB, the summary last.
// Returns the run's id.
absl::StatusOr<int64_t> SendEvalReport(const EvalCallTarget& t, const EvalReport& report);

absl::StatusOr<std::optional<EvalBaseline>> FetchEvalBaseline(const EvalCallTarget& t,
                                                              const std::string& name,
                                                              const std::string& vs);

// The report's metrics, verdicts and pass@k as EvalSummary.report_json holds them.
std::string EvalReportJson(const EvalReport& report);

}  // namespace assay
