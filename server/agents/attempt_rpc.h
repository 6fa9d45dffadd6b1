#pragma once
// Shared by the AgentService RPCs that act for one job attempt (artifact_rpc.cc, cache_rpc.cc,
// eval_rpc.cc): gRPC's callback threads only capture the call; the service's worker pool checks
// the caller and its live attempt token, then runs the database or disk work.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/agents/agent_service.h"

namespace assay::attempt_rpc {

// A manifest entry from the wire (sizes clamped to int64, mode bits only; checked later by
// ArtifactService::CheckFiles) and back.
inline store::ArtifactFileRow FromWire(const v1::ArtifactFile& f) {
  store::ArtifactFileRow r;
  r.path = f.path();
  r.size = static_cast<int64_t>(std::min<uint64_t>(f.size(), INT64_MAX));
  r.mode = static_cast<int>(f.mode() & 07777);
  r.sha256 = f.sha256();
  r.chunks.assign(f.chunks().begin(), f.chunks().end());
  return r;
}

inline void ToWire(const store::ArtifactFileRow& r, v1::ArtifactFile* f) {
  f->set_path(r.path);
  f->set_size(static_cast<uint64_t>(r.size));
  f->set_mode(static_cast<uint32_t>(r.mode));
  f->set_sha256(r.sha256);
  for (const auto& c : r.chunks) f->add_chunks(c);
}

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

inline std::string AuthorizationOf(grpc::CallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
}

// The caller of `auth` (AgentServiceImpl::CallerOf), then the live attempt `token` of `job_id`
// given to it (ArtifactService::Authorize). Needs deps().artifacts.
inline absl::StatusOr<store::LiveAttempt> Authorize(AgentServiceImpl* svc, const std::string& auth,
                                                    int64_t job_id, const std::string& token) {
  auto caller = svc->CallerOf(auth);
  if (!caller.ok()) return caller.status();
  return svc->deps().artifacts->Authorize(job_id, token, *caller);
}

// A unary RPC of one attempt: UNIMPLEMENTED with `disabled` unless `enabled` (and the artifact
// service, which authorizes, is there); otherwise, on the worker pool, Authorize and then
// `answer(attempt)`, whose status ends the call.
template <typename Request, typename Answer>
grpc::ServerUnaryReactor* Unary(AgentServiceImpl* svc, grpc::CallbackServerContext* ctx,
                                const Request* request, bool enabled, const char* disabled,
                                Answer answer) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!enabled || svc->deps().artifacts == nullptr) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, disabled));
    return reactor;
  }
  svc->Post([svc, reactor, request, answer = std::move(answer), auth = AuthorizationOf(ctx)] {
    auto a = Authorize(svc, auth, request->job_id(), request->attempt_token());
    reactor->Finish(a.ok() ? answer(*a) : ToGrpc(a.status()));
  });
  return reactor;
}

}  // namespace assay::attempt_rpc
