#pragma once
// Traces of Assay's own work in OTLP/HTTP JSON (opentelemetry-proto's ExportTraceServiceRequest
// as JSON: ids in hex, 64-bit integers as strings, enums as numbers), sent to a collector by
// OtlpExporter (docs/operations.md "Traces").
//
// A finished pipeline is one trace: a `pipeline` span from creation to end, a `job NAME` span
// per job (queued to finished) and an `attempt` span per attempt (assigned to finished, on its
// agent). A finished deployment is one trace: a `deployment` span from creation to end, its
// events (each step, measurement, traffic change) as span events. Ids are derived from what
// they trace (SHA-256 of the kind, id and end time), so a batch sent twice after a crash
// carries the same ids, and a pipeline retried in place that finishes again is a new trace.

#include <string>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/traces.h"

namespace assay::trace {

// 32 and 16 hex digits.
std::string TraceId(std::string_view kind, int64_t id, absl::Time finished_at);
std::string SpanId(std::string_view trace_id, std::string_view what);

// The spans of one pipeline's or deployment's trace.
boost::json::array PipelineSpans(const store::PipelineTrace& p);
boost::json::array DeploymentSpans(const store::DeploymentTrace& d);

// {"resourceSpans": [{"resource": {service.name, service.instance.id}, "scopeSpans": [{"scope":
// {"name": "assay"}, "spans": [...]}]}]}
std::string ExportRequest(const std::string& service_instance, boost::json::array spans);

// "k1=v1,k2=v2" (OTEL_EXPORTER_OTLP_HEADERS: values percent-decoded, blanks trimmed).
// kInvalidArgument naming the entry (never its value, which may be a secret) otherwise.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseHeaders(
    std::string_view text);

}  // namespace assay::trace
