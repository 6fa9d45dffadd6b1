#include "server/trace/otlp_exporter.h"

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/net/https_client.h"
#include "server/metrics/metrics.h"
#include "server/trace/otlp.h"

namespace assay::trace {
namespace {

namespace json = boost::json;

bool TryAgain(int status) {
  return status == 429 || status == 502 || status == 503 || status == 504;
}

}  // namespace

absl::Status OtlpExporter::Post(const std::string& body, bool* rejected) {
  *rejected = false;
  std::vector<std::pair<std::string, std::string>> headers = options_.headers;
  headers.emplace_back("Content-Type", "application/json");
  TlsClientOptions tls;
  tls.ca_file = options_.ca_file;
  auto r = FetchHttpOrHttps("POST", options_.endpoint, headers, body, options_.timeout, tls);
  if (!r.ok()) return absl::UnavailableError(r.status().message());
  if (r->status >= 200 && r->status < 300) return absl::OkStatus();
  std::string said = r->body.substr(0, 200);
  for (char& c : said) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  if (TryAgain(r->status)) {
    return absl::UnavailableError(absl::StrCat("the collector answered ", r->status, ": ", said));
  }
  *rejected = true;
  LogWarn("trace", "the collector at ", options_.endpoint, " refused a batch for good (HTTP ",
          r->status, ": ", said, "); it is not sent again");
  return absl::OkStatus();
}

absl::StatusOr<int> OtlpExporter::ExportOnce() {
  auto skipped = store_->SkipOld(options_.max_age);
  if (!skipped.ok()) return skipped.status();
  if (*skipped > 0 && metrics_ != nullptr) metrics_->TraceExport("any", "skipped", *skipped);
  int total = 0;
  for (;;) {
    int round = 0;
    bool rejected = false;
    auto pipelines = store_->ExportPipelines(
        options_.batch, [&](const std::vector<store::PipelineTrace>& batch) {
          json::array spans;
          for (const store::PipelineTrace& p : batch) {
            for (json::value& s : PipelineSpans(p)) spans.push_back(std::move(s));
          }
          return Post(ExportRequest(options_.instance, std::move(spans)), &rejected);
        });
    if (!pipelines.ok()) {
      if (metrics_ != nullptr) metrics_->TraceExport("pipeline", "failed", 1);
      return pipelines.status();
    }
    if (metrics_ != nullptr && *pipelines > 0) {
      metrics_->TraceExport("pipeline", rejected ? "rejected" : "sent", *pipelines);
    }
    round += *pipelines;
    rejected = false;
    auto deployments = store_->ExportDeployments(
        options_.batch, [&](const std::vector<store::DeploymentTrace>& batch) {
          json::array spans;
          for (const store::DeploymentTrace& d : batch) {
            for (json::value& s : DeploymentSpans(d)) spans.push_back(std::move(s));
          }
          return Post(ExportRequest(options_.instance, std::move(spans)), &rejected);
        });
    if (!deployments.ok()) {
      if (metrics_ != nullptr) metrics_->TraceExport("deployment", "failed", 1);
      return deployments.status();
    }
    if (metrics_ != nullptr && *deployments > 0) {
      metrics_->TraceExport("deployment", rejected ? "rejected" : "sent", *deployments);
    }
    round += *deployments;
    total += round;
    if (round == 0) return total;
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return total;
  }
}

void OtlpExporter::Start() {
  thread_ = std::thread([this] { Run(); });
}

void OtlpExporter::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void OtlpExporter::Run() {
  int failures = 0;
  for (;;) {
    auto sent = ExportOnce();
    absl::Duration wait = options_.interval;
    if (sent.ok()) {
      failures = 0;
    } else {
      for (int i = 0; i < failures && wait < absl::Minutes(5); ++i) wait *= 2;
      wait = std::min(wait, absl::Minutes(5));
      ++failures;
      LogWarn("trace", "exporting traces to ", options_.endpoint, " failed, trying again in ",
              absl::FormatDuration(wait), ": ", sent.status().message());
    }
    std::unique_lock<std::mutex> l(mu_);
    if (cv_.wait_for(l, absl::ToChronoMilliseconds(wait), [&] { return stop_; })) return;
  }
}

}  // namespace assay::trace
