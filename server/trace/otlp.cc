#include "server/trace/otlp.h"

#include <boost/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto/crypto.h"

namespace assay::trace {
namespace {

namespace json = boost::json;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr int kSpanInternal = 1;
constexpr int kStatusOk = 1;
constexpr int kStatusError = 2;

std::string Nanos(absl::Time t) { return std::to_string(absl::ToUnixNanos(t)); }

json::object Attr(std::string_view key, std::string_view value) {
  return {{"key", key}, {"value", json::object{{"stringValue", value}}}};
}
json::object Attr(std::string_view key, int64_t value) {
  return {{"key", key}, {"value", json::object{{"intValue", std::to_string(value)}}}};
}

// Strings in spans stay valid UTF-8 JSON whatever a job or agent wrote: boost::json escapes
// control characters; bytes of broken UTF-8 become '?'. At most 1,024 bytes each.
std::string Clean(std::string_view s) {
  std::string out;
  out.reserve(std::min<size_t>(s.size(), 1024));
  for (size_t i = 0; i < s.size() && out.size() < 1024;) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = n > 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (!ok) {
      out.push_back('?');
      ++i;
      continue;
    }
    out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

json::object Span(const std::string& trace_id, const std::string& span_id,
                  const std::string& parent, std::string_view name, absl::Time start,
                  absl::Time end, json::array attributes, bool error, std::string_view why) {
  if (end < start) end = start;
  json::object s{{"traceId", trace_id},
                 {"spanId", span_id},
                 {"name", Clean(name)},
                 {"kind", kSpanInternal},
                 {"startTimeUnixNano", Nanos(start)},
                 {"endTimeUnixNano", Nanos(end)},
                 {"attributes", std::move(attributes)}};
  if (!parent.empty()) s["parentSpanId"] = parent;
  json::object status{{"code", error ? kStatusError : kStatusOk}};
  if (error && !why.empty()) status["message"] = Clean(why);
  s["status"] = std::move(status);
  return s;
}

bool Bad(std::string_view state) {
  return state == "failed" || state == "timed_out" || state == "error" || state == "lost" ||
         state == "rolled_back" || state == "aborted";
}

}  // namespace

std::string TraceId(std::string_view kind, int64_t id, absl::Time finished_at) {
  return absl::BytesToHexString(
      Sha256(absl::StrCat("assay/", AV(kind), "/", id, "/", absl::ToUnixMicros(finished_at)))
          .substr(0, 16));
}

std::string SpanId(std::string_view trace_id, std::string_view what) {
  return absl::BytesToHexString(Sha256(absl::StrCat(AV(trace_id), "/", AV(what))).substr(0, 8));
}

json::array PipelineSpans(const store::PipelineTrace& p) {
  const std::string trace = TraceId("pipeline", p.id, p.finished_at);
  const std::string root = SpanId(trace, "pipeline");
  json::array spans;
  spans.push_back(Span(
      trace, root, "", "pipeline", p.created_at, p.finished_at,
      json::array{Attr("assay.pipeline.id", p.id), Attr("assay.repo", Clean(p.repo)),
                  Attr("assay.pipeline.event", Clean(p.event)),
                  Attr("vcs.ref.head.name", Clean(p.ref)),
                  Attr("vcs.ref.head.revision", Clean(p.commit_sha)), Attr("assay.state", p.state)},
      Bad(p.state) || p.state == "canceled", p.message));
  for (const store::JobTrace& j : p.jobs) {
    const std::string job_span = SpanId(trace, absl::StrCat("job/", j.id));
    const absl::Time start = j.queued_at.value_or(j.created_at);
    const absl::Time end = j.finished_at.value_or(p.finished_at);
    spans.push_back(
        Span(trace, job_span, root, absl::StrCat("job ", j.name), std::min(start, end), end,
             json::array{Attr("assay.job.id", j.id), Attr("assay.job.name", Clean(j.name)),
                         Attr("assay.state", j.state),
                         Attr("assay.job.attempts", static_cast<int64_t>(j.attempts.size()))},
             Bad(j.state), j.message));
    for (const store::AttemptTrace& a : j.attempts) {
      json::array attrs{Attr("assay.job.attempt", a.attempt), Attr("assay.agent", Clean(a.agent)),
                        Attr("assay.state", a.state)};
      if (a.exit_code) attrs.push_back(Attr("process.exit.code", *a.exit_code));
      spans.push_back(Span(trace, SpanId(trace, absl::StrCat("job/", j.id, "/", a.attempt)),
                           job_span, "attempt", a.assigned_at, a.finished_at.value_or(end),
                           std::move(attrs), Bad(a.state), a.message));
    }
  }
  return spans;
}

json::array DeploymentSpans(const store::DeploymentTrace& d) {
  const std::string trace = TraceId("deployment", d.id, d.finished_at);
  json::array attrs{Attr("assay.deployment.id", d.id),
                    Attr("assay.repo", Clean(d.repo)),
                    Attr("assay.environment", d.environment),
                    Attr("assay.state", d.state),
                    Attr("assay.deployment.strategy", d.strategy_kind),
                    Attr("assay.deployment.created_by", Clean(d.created_by))};
  if (!d.model.empty()) attrs.push_back(Attr("assay.model", Clean(d.model)));
  if (d.version) attrs.push_back(Attr("assay.model.version", *d.version));
  if (!d.image.empty()) attrs.push_back(Attr("assay.image", Clean(d.image)));
  if (d.pipeline_id) attrs.push_back(Attr("assay.pipeline.id", *d.pipeline_id));
  if (d.rollback_of) attrs.push_back(Attr("assay.deployment.rollback_of", *d.rollback_of));
  if (d.events_dropped > 0)
    attrs.push_back(Attr("assay.deployment.events_dropped", d.events_dropped));
  json::object span =
      Span(trace, SpanId(trace, "deployment"), "", "deployment", d.created_at, d.finished_at,
           std::move(attrs), Bad(d.state) || d.state == "failed", d.message);
  json::array events;
  for (const store::DeploymentEventTrace& e : d.events) {
    events.push_back(json::object{{"timeUnixNano", Nanos(e.at)},
                                  {"name", Clean(e.kind)},
                                  {"attributes", json::array{Attr("assay.deployment.step", e.step),
                                                             Attr("message", Clean(e.message))}}});
  }
  span["events"] = std::move(events);
  if (d.events_dropped > 0) span["droppedEventsCount"] = d.events_dropped;
  return json::array{std::move(span)};
}

std::string ExportRequest(const std::string& service_instance, json::array spans) {
  json::object resource{
      {"attributes", json::array{Attr("service.name", "assay-server"),
                                 Attr("service.instance.id", Clean(service_instance))}}};
  json::object scope_spans{{"scope", json::object{{"name", "assay"}}}, {"spans", std::move(spans)}};
  json::object request{
      {"resourceSpans",
       json::array{json::object{{"resource", std::move(resource)},
                                {"scopeSpans", json::array{std::move(scope_spans)}}}}}};
  return json::serialize(request);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseHeaders(
    std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  int n = 0;
  for (absl::string_view entry : absl::StrSplit(AV(text), ',', absl::SkipWhitespace())) {
    ++n;
    const size_t eq = entry.find('=');
    std::string key(absl::StripAsciiWhitespace(entry.substr(0, eq)));
    if (eq == absl::string_view::npos || key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("OTLP headers: entry ", n, " is not KEY=VALUE"));
    }
    for (char c : key) {
      if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) {
        return absl::InvalidArgumentError(
            absl::StrCat("OTLP headers: entry ", n, " has a name that is not a header name"));
      }
    }
    std::string value;
    absl::string_view raw = absl::StripAsciiWhitespace(entry.substr(eq + 1));
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '%' && i + 2 < raw.size() && absl::ascii_isxdigit(raw[i + 1]) &&
          absl::ascii_isxdigit(raw[i + 2])) {
        value.push_back(
            static_cast<char>(std::stoi(std::string(raw.substr(i + 1, 2)), nullptr, 16)));
        i += 2;
      } else {
        value.push_back(raw[i]);
      }
    }
    for (unsigned char c : value) {
      if (c < 0x20 || c == 0x7f) {
        return absl::InvalidArgumentError(
            absl::StrCat("OTLP headers: entry ", n, " has a control character in its value"));
      }
    }
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

}  // namespace assay::trace
