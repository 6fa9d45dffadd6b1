// The Prometheus text the server exposes: exact sample lines.

#include <algorithm>
#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "server/metrics/metrics.h"

namespace assay {
namespace {

// The sample lines (no comments) of a Prometheus text exposition.
std::vector<std::string> Samples(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') out.push_back(line);
  }
  return out;
}

bool Has(const std::vector<std::string>& lines, const std::string& line) {
  for (const auto& l : lines) {
    if (l == line) return true;
  }
  return false;
}

TEST_CASE("metrics: webhook counters by provider and result", "[unit][metrics]") {
  Metrics m;
  m.WebhookReceived("github", "accepted");
  m.WebhookReceived("github", "accepted");
  m.WebhookReceived("github", "bad_signature");
  m.WebhookReceived("gitea", "duplicate");
  const std::string text = m.Serialize();
  auto lines = Samples(text);
  INFO(text);
  CHECK(Has(lines, "assay_webhooks_received_total{provider=\"github\",result=\"accepted\"} 2"));
  CHECK(
      Has(lines, "assay_webhooks_received_total{provider=\"github\",result=\"bad_signature\"} 1"));
  CHECK(Has(lines, "assay_webhooks_received_total{provider=\"gitea\",result=\"duplicate\"} 1"));
  CHECK(text.find("# TYPE assay_webhooks_received_total counter") != std::string::npos);
  CHECK(Has(lines, "assay_connected_agents 0"));
}

TEST_CASE("metrics: every webhook series exists at zero before the first delivery",
          "[unit][metrics]") {
  Metrics m;
  const std::vector<std::string> lines = Samples(m.Serialize());
  std::vector<std::string> webhook_lines;
  for (const auto& l : lines) {
    if (l.rfind("assay_webhooks_received_total", 0) == 0) webhook_lines.push_back(l);
  }
  // Exactly these 18 lines, in whatever order prometheus-cpp writes them.
  const std::vector<std::string> want = {
      "assay_webhooks_received_total{provider=\"github\",result=\"accepted\"} 0",
      "assay_webhooks_received_total{provider=\"github\",result=\"duplicate\"} 0",
      "assay_webhooks_received_total{provider=\"github\",result=\"ignored\"} 0",
      "assay_webhooks_received_total{provider=\"github\",result=\"bad_signature\"} 0",
      "assay_webhooks_received_total{provider=\"github\",result=\"unknown_repo\"} 0",
      "assay_webhooks_received_total{provider=\"github\",result=\"bad_request\"} 0",
      "assay_webhooks_received_total{provider=\"gitlab\",result=\"accepted\"} 0",
      "assay_webhooks_received_total{provider=\"gitlab\",result=\"duplicate\"} 0",
      "assay_webhooks_received_total{provider=\"gitlab\",result=\"ignored\"} 0",
      "assay_webhooks_received_total{provider=\"gitlab\",result=\"bad_signature\"} 0",
      "assay_webhooks_received_total{provider=\"gitlab\",result=\"unknown_repo\"} 0",
      "assay_webhooks_received_total{provider=\"gitlab\",result=\"bad_request\"} 0",
      "assay_webhooks_received_total{provider=\"gitea\",result=\"accepted\"} 0",
      "assay_webhooks_received_total{provider=\"gitea\",result=\"duplicate\"} 0",
      "assay_webhooks_received_total{provider=\"gitea\",result=\"ignored\"} 0",
      "assay_webhooks_received_total{provider=\"gitea\",result=\"bad_signature\"} 0",
      "assay_webhooks_received_total{provider=\"gitea\",result=\"unknown_repo\"} 0",
      "assay_webhooks_received_total{provider=\"gitea\",result=\"bad_request\"} 0",
  };
  std::vector<std::string> sorted_got = webhook_lines, sorted_want = want;
  std::sort(sorted_got.begin(), sorted_got.end());
  std::sort(sorted_want.begin(), sorted_want.end());
  CHECK(sorted_got == sorted_want);
  // Every other family is there from the start too.
  for (const char* line :
       {"assay_connected_agents 0", "assay_queue_depth 0", "assay_jobs{state=\"queued\"} 0",
        "assay_dispatch_latency_seconds_count 0", "assay_job_duration_seconds_count 0",
        "assay_commit_status_retries_total 0"}) {
    CHECK(Has(lines, line));
  }
}

TEST_CASE("metrics: commit status results and retries", "[unit][metrics]") {
  Metrics m;
  auto lines = Samples(m.Serialize());
  // Present from the start, at zero.
  CHECK(Has(lines, "assay_commit_statuses_total{result=\"delivered\"} 0"));
  CHECK(Has(lines, "assay_commit_statuses_total{result=\"failed\"} 0"));
  CHECK(Has(lines, "assay_commit_statuses_total{result=\"dropped\"} 0"));
  CHECK(Has(lines, "assay_commit_status_retries_total 0"));
  for (const char* e : {"delivered", "delivered", "retried", "retried", "retried", "failed"}) {
    m.CommitStatusEvent(e);
  }
  lines = Samples(m.Serialize());
  CHECK(Has(lines, "assay_commit_statuses_total{result=\"delivered\"} 2"));
  CHECK(Has(lines, "assay_commit_statuses_total{result=\"failed\"} 1"));
  CHECK(Has(lines, "assay_commit_statuses_total{result=\"dropped\"} 0"));
  CHECK(Has(lines, "assay_commit_status_retries_total 3"));
}

TEST_CASE("metrics: job-state gauges are replaced on every count", "[unit][metrics]") {
  Metrics m;
  m.SetJobStates({{"queued", 3}, {"running", 2}, {"succeeded", 10}});
  auto lines = Samples(m.Serialize());
  CHECK(Has(lines, "assay_jobs{state=\"queued\"} 3"));
  CHECK(Has(lines, "assay_jobs{state=\"running\"} 2"));
  CHECK(Has(lines, "assay_jobs{state=\"succeeded\"} 10"));
  CHECK(Has(lines, "assay_jobs{state=\"pending\"} 0"));
  CHECK(Has(lines, "assay_jobs{state=\"skipped\"} 0"));
  CHECK(Has(lines, "assay_queue_depth 3"));

  // A state missing from the next count drops to zero; unknown states are not exported.
  m.SetJobStates({{"running", 1}, {"bogus", 5}});
  lines = Samples(m.Serialize());
  CHECK(Has(lines, "assay_jobs{state=\"queued\"} 0"));
  CHECK(Has(lines, "assay_jobs{state=\"running\"} 1"));
  CHECK(Has(lines, "assay_jobs{state=\"succeeded\"} 0"));
  CHECK(Has(lines, "assay_queue_depth 0"));
  int job_lines = 0;
  for (const auto& l : lines) job_lines += l.rfind("assay_jobs{", 0) == 0;
  CHECK(job_lines == 10);

  m.SetConnectedAgents(4);
  m.ObserveDispatchLatency(0.003);
  m.ObserveJobDuration(12);
  lines = Samples(m.Serialize());
  CHECK(Has(lines, "assay_connected_agents 4"));
  CHECK(Has(lines, "assay_dispatch_latency_seconds_count 1"));
  CHECK(Has(lines, "assay_dispatch_latency_seconds_bucket{le=\"0.002\"} 0"));
  CHECK(Has(lines, "assay_dispatch_latency_seconds_bucket{le=\"0.005\"} 1"));
  CHECK(Has(lines, "assay_job_duration_seconds_count 1"));
  CHECK(Has(lines, "assay_job_duration_seconds_sum 12"));
  CHECK(Has(lines, "assay_job_duration_seconds_bucket{le=\"+Inf\"} 1"));
}

}  // namespace
}  // namespace assay
