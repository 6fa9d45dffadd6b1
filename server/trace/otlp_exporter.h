#pragma once
// Sends the traces of finished pipelines and deployments (server/trace/otlp.h) to an
// OpenTelemetry collector over OTLP/HTTP JSON (docs/operations.md "Traces"). A thread in every
// replica; each batch is claimed under row locks and marked exported in the same transaction
// once the collector took it, so a batch is sent at least once, by one replica at a time, and a
// collector that is down loses nothing: the batch is sent again after a backoff (the interval,
// doubling to 5 minutes). The collector's answers follow the OTLP/HTTP specification: 2xx is
// done; 429, 502, 503 and 504 (and no answer) are tried again; any other answer is a refusal
// for good (the batch is logged and counted as rejected, not sent again).

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/traces.h"

namespace assay {
class Metrics;
}

namespace assay::trace {

struct OtlpExporterOptions {
  std::string endpoint;  // the traces URL: http(s)://collector:4318/v1/traces
  std::vector<std::pair<std::string, std::string>> headers;
  std::string instance;  // this replica ("host:pid"), the resource's service.instance.id
  std::string ca_file;   // extra CAs for an https collector
  absl::Duration interval = absl::Seconds(5);
  absl::Duration timeout = absl::Seconds(10);  // one POST
  // Finished longer ago than this when first seen: not sent (a collector configured late does
  // not receive the whole history).
  absl::Duration max_age = absl::Hours(1);
  int batch = 20;  // pipelines or deployments per request
};

class OtlpExporter {
 public:
  // `metrics` may be null. Both must outlive the exporter.
  OtlpExporter(store::TraceStore* store, Metrics* metrics, OtlpExporterOptions options)
      : store_(store), metrics_(metrics), options_(std::move(options)) {}
  ~OtlpExporter() { Stop(); }
  OtlpExporter(const OtlpExporter&) = delete;
  OtlpExporter& operator=(const OtlpExporter&) = delete;

  void Start();
  void Stop();

  // One round: skips what is too old, then sends batches until nothing is due. How many
  // pipelines and deployments were sent; the collector's or database's error otherwise (what
  // was not sent stays due).
  absl::StatusOr<int> ExportOnce();

 private:
  // POSTs one request: OK when taken, or refused for good (*rejected set); kUnavailable when it
  // is to be tried again.
  absl::Status Post(const std::string& body, bool* rejected);
  void Run();

  store::TraceStore* store_;
  Metrics* metrics_;
  OtlpExporterOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace assay::trace
