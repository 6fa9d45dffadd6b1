#include "server/metrics/metrics.h"

#include <prometheus/text_serializer.h>

namespace assay {
namespace {
const std::vector<std::string> kStates = {"pending",   "queued", "assigned",  "running",
                                          "succeeded", "failed", "timed_out", "canceled",
                                          "skipped",   "error"};
// Every label value WebhookReceived is called with (see metrics.h and webhook/intake.h).
const std::vector<std::string> kProviders = {"github", "gitlab", "gitea"};
const std::vector<std::string> kWebhookResults = {"accepted",      "duplicate",    "ignored",
                                                  "bad_signature", "unknown_repo", "bad_request"};
}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      webhooks_(prometheus::BuildCounter()
                    .Name("assay_webhooks_received_total")
                    .Help("Webhook deliveries received, by provider and result")
                    .Register(*registry_)),
      dispatch_latency_(
          prometheus::BuildHistogram()
              .Name("assay_dispatch_latency_seconds")
              .Help("Time from a job becoming queued to its assignment being sent")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.002, 0.005, 0.01, 0.025,
                                                               0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                                                               30, 60, 300})),
      job_duration_(
          prometheus::BuildHistogram()
              .Name("assay_job_duration_seconds")
              .Help("Run time of finished jobs as reported by agents")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.1, 0.5, 1, 5, 10, 30, 60,
                                                               300, 900, 1800, 3600, 7200, 21600})),
      connected_agents_(prometheus::BuildGauge()
                            .Name("assay_connected_agents")
                            .Help("Agents with an open stream to this server")
                            .Register(*registry_)
                            .Add({})),
      jobs_(prometheus::BuildGauge()
                .Name("assay_jobs")
                .Help("Jobs by state (all pipelines)")
                .Register(*registry_)),
      queue_depth_(prometheus::BuildGauge()
                       .Name("assay_queue_depth")
                       .Help("Jobs queued and waiting for an agent")
                       .Register(*registry_)
                       .Add({})),
      commit_statuses_(prometheus::BuildCounter()
                           .Name("assay_commit_statuses_total")
                           .Help("Commit statuses sent to forges, by result (delivered, failed, "
                                 "dropped)")
                           .Register(*registry_)),
      commit_status_retries_(prometheus::BuildCounter()
                                 .Name("assay_commit_status_retries_total")
                                 .Help("Commit status requests retried after a 5xx, 429 or "
                                       "transport error")
                                 .Register(*registry_)
                                 .Add({})),
      artifact_bytes_(prometheus::BuildGauge()
                          .Name("assay_artifact_bytes")
                          .Help("Bytes of committed artifact files per repository (before "
                                "deduplication)")
                          .Register(*registry_)),
      cache_bytes_(prometheus::BuildGauge()
                       .Name("assay_cache_bytes")
                       .Help("Bytes of cache entries per repository (before deduplication)")
                       .Register(*registry_)),
      model_versions_(prometheus::BuildGauge()
                          .Name("assay_model_versions")
                          .Help("Versions per registered model")
                          .Register(*registry_)),
      deployments_(prometheus::BuildCounter()
                       .Name("assay_deployments_total")
                       .Help("Deployments ended, by environment and outcome (promoted, "
                             "rolled_back, failed, aborted, superseded)")
                       .Register(*registry_)),
      rollbacks_(prometheus::BuildCounter()
                     .Name("assay_deployment_rollbacks_total")
                     .Help("Rollbacks by environment and reason (analysis, watch, manual)")
                     .Register(*registry_)),
      analysis_runs_(prometheus::BuildCounter()
                         .Name("assay_deployment_analysis_runs_total")
                         .Help("Deployment analysis runs ended, by environment and phase "
                               "(successful, failed, inconclusive, error)")
                         .Register(*registry_)),
      active_deployments_(prometheus::BuildGauge()
                              .Name("assay_deployment_active")
                              .Help("Deployments not ended, by environment and state")
                              .Register(*registry_)),
      trace_exports_(prometheus::BuildCounter()
                         .Name("assay_trace_exports_total")
                         .Help("Traces exported over OTLP, by kind (pipeline, deployment) and "
                               "outcome (sent, rejected, skipped, failed)")
                         .Register(*registry_)) {
  // Why every known label set now, at zero: a series that first appears at its first event
  // has no earlier sample, so rate() and increase() miss that event and alerts on them
  // cannot fire before it.
  for (const auto& p : kProviders) {
    for (const auto& r : kWebhookResults) webhooks_.Add({{"provider", p}, {"result", r}});
  }
  for (const auto& s : kStates) jobs_.Add({{"state", s}});
  for (const char* r : {"delivered", "failed", "dropped"}) commit_statuses_.Add({{"result", r}});
}

void Metrics::WebhookReceived(const std::string& provider, const std::string& result) {
  webhooks_.Add({{"provider", provider}, {"result", result}}).Increment();
}
void Metrics::ObserveDispatchLatency(double seconds) { dispatch_latency_.Observe(seconds); }
void Metrics::ObserveJobDuration(double seconds) { job_duration_.Observe(seconds); }
void Metrics::SetConnectedAgents(int n) { connected_agents_.Set(n); }

void Metrics::SetJobStates(const std::vector<std::pair<std::string, int64_t>>& counts) {
  for (const auto& s : kStates) {
    int64_t n = 0;
    for (const auto& [state, count] : counts) {
      if (state == s) n = count;
    }
    jobs_.Add({{"state", s}}).Set(static_cast<double>(n));
    if (s == "queued") queue_depth_.Set(static_cast<double>(n));
  }
}

void Metrics::SetArtifactBytes(const std::vector<std::pair<std::string, int64_t>>& bytes) {
  absl::MutexLock l(&artifact_mu_);
  std::set<std::string> now;
  for (const auto& [repo, n] : bytes) {
    artifact_bytes_.Add({{"repo", repo}}).Set(static_cast<double>(n));
    now.insert(repo);
  }
  for (const auto& repo : artifact_repos_) {
    if (!now.contains(repo)) artifact_bytes_.Add({{"repo", repo}}).Set(0);
  }
  artifact_repos_.insert(now.begin(), now.end());
}

void Metrics::DeploymentEnded(const std::string& environment, const std::string& outcome) {
  deployments_.Add({{"environment", environment}, {"outcome", outcome}}).Increment();
}

void Metrics::DeploymentRollback(const std::string& environment, const std::string& reason) {
  rollbacks_.Add({{"environment", environment}, {"reason", reason}}).Increment();
}

void Metrics::TraceExport(const std::string& kind, const std::string& outcome, int64_t n) {
  trace_exports_.Add({{"kind", kind}, {"outcome", outcome}}).Increment(static_cast<double>(n));
}

void Metrics::AnalysisRun(const std::string& environment, const std::string& phase) {
  analysis_runs_.Add({{"environment", environment}, {"phase", phase}}).Increment();
}

void Metrics::SetActiveDeployments(
    const std::vector<std::pair<std::pair<std::string, std::string>, int64_t>>& counts) {
  absl::MutexLock l(&artifact_mu_);
  std::set<std::pair<std::string, std::string>> now;
  for (const auto& [key, n] : counts) {
    active_deployments_.Add({{"environment", key.first}, {"state", key.second}})
        .Set(static_cast<double>(n));
    now.insert(key);
  }
  for (const auto& key : active_seen_) {
    if (!now.contains(key)) {
      active_deployments_.Add({{"environment", key.first}, {"state", key.second}}).Set(0);
    }
  }
  active_seen_.insert(now.begin(), now.end());
}

void Metrics::SetModelVersions(const std::vector<std::pair<std::string, int64_t>>& counts) {
  absl::MutexLock l(&artifact_mu_);
  std::set<std::string> now;
  for (const auto& [model, n] : counts) {
    model_versions_.Add({{"model", model}}).Set(static_cast<double>(n));
    now.insert(model);
  }
  for (const auto& model : models_) {
    if (!now.contains(model)) model_versions_.Add({{"model", model}}).Set(0);
  }
  models_.insert(now.begin(), now.end());
}

void Metrics::SetCacheBytes(const std::vector<std::pair<std::string, int64_t>>& bytes) {
  absl::MutexLock l(&artifact_mu_);
  std::set<std::string> now;
  for (const auto& [repo, n] : bytes) {
    cache_bytes_.Add({{"repo", repo}}).Set(static_cast<double>(n));
    now.insert(repo);
  }
  for (const auto& repo : cache_repos_) {
    if (!now.contains(repo)) cache_bytes_.Add({{"repo", repo}}).Set(0);
  }
  cache_repos_.insert(now.begin(), now.end());
}

void Metrics::CommitStatusEvent(const std::string& event) {
  if (event == "retried") {
    commit_status_retries_.Increment();
  } else {
    commit_statuses_.Add({{"result", event}}).Increment();
  }
}

std::string Metrics::Serialize() {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry_->Collect());
}

}  // namespace assay
