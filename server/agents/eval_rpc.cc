// The eval RPCs of AgentService (issue 10): adapters from the wire to store::EvalStore. As for
// the cache RPCs (cache_rpc.cc), gRPC's threads only post the call to the service's worker
// pool, where authorization (the live attempt token) and the database work run.

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/agents/attempt_rpc.h"

namespace assay {
using attempt_rpc::ToGrpc;

constexpr char kDisabled[] = "evals are not enabled on this server";

grpc::ServerUnaryReactor* AgentServiceImpl::ReportEval(grpc::CallbackServerContext* ctx,
                                                       const v1::EvalReportPiece* request,
                                                       v1::EvalReportAck* response) {
  return attempt_rpc::Unary(
      this, ctx, request, deps_.evals != nullptr, kDisabled,
      [this, request, response](const store::LiveAttempt& a) {
        std::vector<store::EvalExampleRow> rows;
        rows.reserve(static_cast<size_t>(request->examples_size()));
        for (const v1::EvalExampleResult& e : request->examples()) {
          store::EvalExampleRow r;
          r.index = e.index();
          r.example_id = e.example_id();
          r.input = e.input();
          r.expected = e.expected();
          r.output = e.output();
          r.error = e.error();
          r.passed = e.passed();
          for (const v1::EvalScore& s : e.scores()) r.scores.emplace_back(s.metric(), s.value());
          r.latency_ms = e.latency_ms();
          r.input_tokens = e.input_tokens();
          r.output_tokens = e.output_tokens();
          r.answered = e.answered();
          r.passes = e.passes();
          rows.push_back(std::move(r));
        }
        std::optional<store::EvalSummaryRow> summary;
        if (request->has_summary()) {
          const v1::EvalSummary& s = request->summary();
          summary = store::EvalSummaryRow{s.dataset_path(), s.dataset_sha256(), s.repeat(),
                                          s.examples(),     s.passed(),         s.error(),
                                          s.report_json(),  s.baseline_run_id()};
        }
        auto id = deps_.evals->Report(a, request->step_index(), request->name(), rows, summary);
        if (!id.ok()) return ToGrpc(id.status());
        response->set_eval_run_id(*id);
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* AgentServiceImpl::EvalBaseline(grpc::CallbackServerContext* ctx,
                                                         const v1::EvalBaselineRequest* request,
                                                         v1::EvalBaselineResponse* response) {
  return attempt_rpc::Unary(
      this, ctx, request, deps_.evals != nullptr, kDisabled,
      [this, request, response](const store::LiveAttempt& a) {
        if (request->name().empty() || request->name().size() > 128 || request->vs().empty() ||
            request->vs().size() > 1024) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "EvalBaseline: name (1 to 128 bytes) and vs (a branch) are required");
        }
        auto b = deps_.evals->Baseline(a.repo_id, request->name(), request->vs(), a.pipeline_id);
        if (!b.ok()) return ToGrpc(b.status());
        if (!b->has_value()) return grpc::Status::OK;
        response->set_found(true);
        response->set_eval_run_id((*b)->run_id);
        response->set_commit_sha((*b)->commit_sha);
        for (const auto& [id, scores] : (*b)->examples) {
          v1::EvalBaselineExample* e = response->add_examples();
          e->set_example_id(id);
          for (const auto& [metric, value] : scores) {
            v1::EvalScore* s = e->add_scores();
            s->set_metric(metric);
            s->set_value(value);
          }
        }
        return grpc::Status::OK;
      });
}

}  // namespace assay
