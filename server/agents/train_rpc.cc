// The training RPCs of AgentService (issue 10, docs/train.md): adapters from the wire to
// store::TrainStore. As for the eval RPCs (eval_rpc.cc), gRPC's threads only post the call to
// the service's worker pool, where authorization (the live attempt token), the check that the
// step is a train step of the job, and the database work run.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "server/agents/attempt_rpc.h"

namespace assay {
using attempt_rpc::ToGrpc;

namespace {

constexpr char kDisabled[] = "training is not enabled on this server";
constexpr int kMaxCheckpointFiles = 10'000;

}  // namespace

grpc::ServerUnaryReactor* AgentServiceImpl::ReportTrainMetrics(
    grpc::CallbackServerContext* ctx, const v1::TrainMetricsRequest* request,
    v1::TrainMetricsResponse* response) {
  return attempt_rpc::Unary(
      this, ctx, request, deps_.train != nullptr, kDisabled,
      [this, request, response](const store::LiveAttempt& a) {
        if (auto step = deps_.train->TrainStepOf(a.job_id, request->step_index()); !step.ok()) {
          return ToGrpc(step.status());
        }
        std::vector<store::TrainPoint> points;
        points.reserve(static_cast<size_t>(request->points_size()));
        for (const v1::TrainMetricPoint& p : request->points()) {
          points.push_back({p.name(), p.step(), p.value(), absl::FromUnixMillis(p.unix_ms()), 0});
        }
        auto n = deps_.train->AddPoints(a.job_id, a.attempt, request->step_index(), points);
        if (!n.ok()) return ToGrpc(n.status());
        response->set_stored(static_cast<uint32_t>(*n));
        // A sweep's trial: the median rule may stop it (its agent hears it as a cancel).
        if (*n > 0) {
          auto stopped = deps_.train->JudgeTrial(a.job_id, request->attempt_token(), absl::Now());
          if (!stopped.ok()) {
            LogWarn("agents", "job ", a.job_id,
                    ": the sweep's median rule: ", stopped.status().message());
          } else if (!stopped->empty()) {
            LogInfo("agents", "job ", a.job_id, ": ", *stopped);
          }
        }
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* AgentServiceImpl::CommitCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::CheckpointCommitRequest* request,
    v1::CheckpointCommitResponse* response) {
  return attempt_rpc::Unary(
      this, ctx, request, deps_.train != nullptr, kDisabled,
      [this, request, response](const store::LiveAttempt& a) {
        if (auto step = deps_.train->TrainStepOf(a.job_id, request->step_index()); !step.ok()) {
          return ToGrpc(step.status());
        }
        if (request->files_size() > kMaxCheckpointFiles) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              absl::StrCat("CommitCheckpoint: ", request->files_size(),
                                           " files; at most ", kMaxCheckpointFiles));
        }
        std::vector<store::ArtifactFileRow> files;
        files.reserve(static_cast<size_t>(request->files_size()));
        for (const auto& f : request->files()) files.push_back(attempt_rpc::FromWire(f));
        if (absl::Status s = deps_.artifacts->CheckFiles(files, "CommitCheckpoint"); !s.ok()) {
          return ToGrpc(s);
        }
        auto saved = deps_.train->CommitCheckpoint(a.job_id, a.attempt, request->step_index(),
                                                   request->step(), files, absl::Now());
        if (!saved.ok()) return ToGrpc(saved.status());
        response->set_saved(*saved);
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* AgentServiceImpl::RestoreCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::CheckpointRestoreRequest* request,
    v1::CheckpointRestoreResponse* response) {
  return attempt_rpc::Unary(
      this, ctx, request, deps_.train != nullptr, kDisabled,
      [this, request, response](const store::LiveAttempt& a) {
        if (auto step = deps_.train->TrainStepOf(a.job_id, request->step_index()); !step.ok()) {
          return ToGrpc(step.status());
        }
        auto cp = deps_.train->RestoreCheckpoint(a.job_id, request->step_index());
        if (!cp.ok()) return ToGrpc(cp.status());
        if (!cp->has_value()) return grpc::Status::OK;
        response->set_found(true);
        response->set_step((*cp)->step);
        response->set_attempt((*cp)->attempt);
        for (const auto& f : (*cp)->files) attempt_rpc::ToWire(f, response->add_files());
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* AgentServiceImpl::ReportTrainRun(grpc::CallbackServerContext* ctx,
                                                           const v1::TrainRunReport* request,
                                                           v1::TrainRunAck* /*response*/) {
  return attempt_rpc::Unary(
      this, ctx, request, deps_.train != nullptr, kDisabled,
      [this, request](const store::LiveAttempt& a) {
        if (auto step = deps_.train->TrainStepOf(a.job_id, request->step_index()); !step.ok()) {
          return ToGrpc(step.status());
        }
        boost::json::array list;
        for (const v1::TrainDataset& d : request->datasets()) {
          boost::json::object o{{"path", d.path()}};
          if (!d.sha256().empty()) o["sha256"] = d.sha256();
          if (!d.md5().empty()) o["md5"] = d.md5();
          list.push_back(std::move(o));
        }
        // The registry's own rules (paths, one digest each, at most 100).
        auto datasets = registry::ParseDatasets(list);
        if (!datasets.ok()) return ToGrpc(datasets.status());
        std::optional<int64_t> resumed;
        if (request->resumed()) resumed = request->resumed_from();
        return ToGrpc(deps_.train->ReportRun(a.job_id, a.attempt, request->step_index(), *datasets,
                                             resumed, absl::Now()));
      });
}

grpc::ServerUnaryReactor* AgentServiceImpl::Promote(grpc::CallbackServerContext* ctx,
                                                    const v1::PromoteRequest* request,
                                                    v1::PromoteResponse* response) {
  return attempt_rpc::Unary(this, ctx, request, deps_.train != nullptr && deps_.models != nullptr,
                            "model promotion is not enabled on this server",
                            [this, request, response](const store::LiveAttempt& a) {
                              auto done = deps_.train->Promote(a.job_id, request->step_index(),
                                                               *deps_.models, absl::Now());
                              if (!done.ok()) return ToGrpc(done.status());
                              response->set_promoted(done->promoted);
                              response->set_version(done->version);
                              response->set_previous(done->previous.value_or(0));
                              response->set_changed(done->changed);
                              response->set_message(done->message);
                              return grpc::Status::OK;
                            });
}

}  // namespace assay
