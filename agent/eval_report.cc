#include "agent/eval_report.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace assay {
namespace {

namespace json = boost::json;

constexpr size_t kPiece = 1000;
// Why a byte bound too: the server takes messages of at most 8 MiB, and 1,000 examples with
// their texts (4 KiB each kept) could be 16 MiB.
constexpr size_t kPieceBytes = 4 << 20;
constexpr int kAttempts = 3;

absl::Status FromGrpc(std::string_view call, const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(s.error_code());
  return absl::Status(code, absl::StrCat(std::string(call), ": ", s.error_message()));
}

template <typename Fn>
grpc::Status WithRetries(const EvalCallTarget& t, Fn call) {
  grpc::Status s;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (attempt > 0) sleep(1);
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + t.bearer);
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    s = call(&ctx);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      break;
    }
  }
  return s;
}

}  // namespace

std::string EvalReportJson(const EvalReport& r) {
  json::array metrics;
  for (const EvalMetricSummary& m : r.metrics) {
    metrics.push_back(
        json::object{{"name", m.name}, {"value", m.value}, {"lo", m.lo}, {"hi", m.hi}, {"n", m.n}});
  }
  json::array verdicts;
  for (const EvalGateVerdict& v : r.verdicts) {
    verdicts.push_back(json::object{
        {"metric", v.gate.metric}, {"passed", v.passed}, {"explanation", v.explanation}});
  }
  json::object pass_at;
  for (const auto& [name, v] : r.pass_at) pass_at[name] = v;
  return json::serialize(json::object{
      {"metrics", std::move(metrics)}, {"verdicts", std::move(verdicts)}, {"pass_at", pass_at}});
}

absl::StatusOr<int64_t> SendEvalReport(const EvalCallTarget& t, const EvalReport& r) {
  int64_t id = 0;
  size_t pos = 0;
  do {
    v1::EvalReportPiece piece;
    piece.set_job_id(t.job_id);
    piece.set_attempt_token(t.attempt_token);
    piece.set_step_index(t.step_index);
    piece.set_name(r.name);
    const size_t end = std::min(r.examples.size(), pos + kPiece);
    size_t bytes = 0;
    for (; pos < end && (bytes < kPieceBytes || piece.examples_size() == 0); ++pos) {
      const EvalExampleOutcome& e = r.examples[pos];
      v1::EvalExampleResult* w = piece.add_examples();
      w->set_index(e.index);
      w->set_example_id(e.example_id);
      w->set_input(e.input);
      w->set_expected(e.expected);
      w->set_output(e.output);
      w->set_error(e.error.substr(0, kMaxEvalKeptText));
      w->set_passed(e.passed);
      for (const auto& [metric, value] : e.scores) {
        v1::EvalScore* s = w->add_scores();
        s->set_metric(metric);
        s->set_value(value);
      }
      w->set_latency_ms(e.latency_ms);
      w->set_input_tokens(e.input_tokens);
      w->set_output_tokens(e.output_tokens);
      w->set_answered(e.answered);
      w->set_passes(e.passes);
      bytes += w->ByteSizeLong();
    }
    if (pos == r.examples.size()) {
      v1::EvalSummary* s = piece.mutable_summary();
      s->set_dataset_path(r.dataset_path);
      s->set_dataset_sha256(r.dataset_sha256);
      s->set_repeat(r.repeat);
      s->set_examples(static_cast<int32_t>(r.examples.size()));
      s->set_passed(r.passed);
      s->set_error(r.error.substr(0, kMaxEvalKeptText));
      s->set_report_json(EvalReportJson(r));
      s->set_baseline_run_id(r.baseline_run_id);
    }
    v1::EvalReportAck ack;
    grpc::Status s = WithRetries(
        t, [&](grpc::ClientContext* ctx) { return t.stub->ReportEval(ctx, piece, &ack); });
    if (!s.ok()) return FromGrpc("ReportEval", s);
    id = ack.eval_run_id();
  } while (pos < r.examples.size());
  return id;
}

absl::StatusOr<std::optional<EvalBaseline>> FetchEvalBaseline(const EvalCallTarget& t,
                                                              const std::string& name,
                                                              const std::string& vs) {
  v1::EvalBaselineRequest req;
  req.set_job_id(t.job_id);
  req.set_attempt_token(t.attempt_token);
  req.set_name(name);
  req.set_vs(vs);
  v1::EvalBaselineResponse res;
  grpc::Status s = WithRetries(
      t, [&](grpc::ClientContext* ctx) { return t.stub->EvalBaseline(ctx, req, &res); });
  if (!s.ok()) return FromGrpc("EvalBaseline", s);
  if (!res.found()) return std::optional<EvalBaseline>();
  EvalBaseline b;
  b.run_id = res.eval_run_id();
  b.commit_sha = res.commit_sha();
  for (const v1::EvalBaselineExample& e : res.examples()) {
    std::vector<std::pair<std::string, double>> scores;
    for (const v1::EvalScore& sc : e.scores()) scores.emplace_back(sc.metric(), sc.value());
    b.examples.emplace_back(e.example_id(), std::move(scores));
  }
  return std::optional<EvalBaseline>(std::move(b));
}

}  // namespace assay
