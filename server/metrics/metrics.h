#pragma once
// The server's Prometheus metrics (prometheus-cpp), served as text at GET /metrics.
// Thread-safe: prometheus-cpp metrics are atomic.

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/synchronization/mutex.h"

#include <memory>
#include <set>
#include <string>
#include <vector>

namespace assay {

class Metrics {
 public:
  Metrics();
  // provider: github, gitlab, gitea; result: accepted, duplicate, ignored, bad_signature,
  // unknown_repo, bad_request. Each of these 18 series is exported from the start, at 0.
  void WebhookReceived(const std::string& provider, const std::string& result);
  void ObserveDispatchLatency(double seconds);  // job queued → assignment sent
  void ObserveJobDuration(double seconds);
  void SetConnectedAgents(int n);
  // Replaces the job-state gauges with a fresh count (taken at scrape time).
  void SetJobStates(const std::vector<std::pair<std::string, int64_t>>& counts);
  // A commit status event: delivered, failed, dropped (assay_commit_statuses_total{result}) or
  // retried (assay_commit_status_retries_total).
  void CommitStatusEvent(const std::string& event);
  // assay_artifact_bytes{repo}: bytes of committed artifacts per repository (taken at scrape
  // time). A repository seen before and missing from `bytes` goes to 0.
  void SetArtifactBytes(const std::vector<std::pair<std::string, int64_t>>& bytes);
  // assay_cache_bytes{repo}: bytes of cache entries per repository (issue 9), the same way.
  void SetCacheBytes(const std::vector<std::pair<std::string, int64_t>>& bytes);
  // assay_model_versions{model}: versions per registered model (issue 10, taken at scrape
  // time). A model seen before and missing from `counts` (deleted) goes to 0.
  void SetModelVersions(const std::vector<std::pair<std::string, int64_t>>& counts);
  // Issue 12, deployments: assay_deployments_total{environment,outcome} (promoted,
  // rolled_back, failed, aborted, superseded), assay_deployment_rollbacks_total{environment,
  // reason} (analysis, watch, manual), assay_deployment_analysis_runs_total{environment,phase}
  // (successful, failed, inconclusive, error) and assay_deployment_active{environment,state}
  // (taken at scrape time; pairs seen before and missing go to 0).
  void DeploymentEnded(const std::string& environment, const std::string& outcome);
  void DeploymentRollback(const std::string& environment, const std::string& reason);
  void AnalysisRun(const std::string& environment, const std::string& phase);
  void SetActiveDeployments(
      const std::vector<std::pair<std::pair<std::string, std::string>, int64_t>>& counts);
  // assay_trace_exports_total{kind,outcome}: pipelines and deployments whose traces were sent
  // (sent), refused for good by the collector (rejected), or skipped as too old (skipped); and
  // failed attempts, tried again (failed).
  void TraceExport(const std::string& kind, const std::string& outcome, int64_t n);
  std::string Serialize();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& webhooks_;
  prometheus::Histogram& dispatch_latency_;
  prometheus::Histogram& job_duration_;
  prometheus::Gauge& connected_agents_;
  prometheus::Family<prometheus::Gauge>& jobs_;
  prometheus::Gauge& queue_depth_;
  prometheus::Family<prometheus::Counter>& commit_statuses_;
  prometheus::Counter& commit_status_retries_;
  prometheus::Family<prometheus::Gauge>& artifact_bytes_;
  absl::Mutex artifact_mu_;
  std::set<std::string> artifact_repos_ ABSL_GUARDED_BY(artifact_mu_);
  prometheus::Family<prometheus::Gauge>& cache_bytes_;
  std::set<std::string> cache_repos_ ABSL_GUARDED_BY(artifact_mu_);
  prometheus::Family<prometheus::Gauge>& model_versions_;
  std::set<std::string> models_ ABSL_GUARDED_BY(artifact_mu_);
  prometheus::Family<prometheus::Counter>& deployments_;
  prometheus::Family<prometheus::Counter>& rollbacks_;
  prometheus::Family<prometheus::Counter>& analysis_runs_;
  prometheus::Family<prometheus::Gauge>& active_deployments_;
  prometheus::Family<prometheus::Counter>& trace_exports_;
  std::set<std::pair<std::string, std::string>> active_seen_ ABSL_GUARDED_BY(artifact_mu_);
};

}  // namespace assay
