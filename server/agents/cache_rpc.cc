// The cache RPCs of AgentService (issue 9): adapters from the wire to
// artifacts::CacheService. As for the artifact RPCs (artifact_rpc.cc), gRPC's threads only post
// the call to the service's worker pool, where authorization and the database work run.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "server/agents/agent_service.h"

namespace assay {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

std::string AuthorizationOf(grpc::CallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
}

// UNIMPLEMENTED without caches; else, on the pool: the caller (CallerOf), the live attempt
// token (ArtifactService::Authorize), then `answer`.
template <typename Request, typename Answer>
grpc::ServerUnaryReactor* CacheUnary(AgentServiceImpl* svc, grpc::CallbackServerContext* ctx,
                                     const Request* request, Answer answer) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (svc->deps().caches == nullptr || svc->deps().artifacts == nullptr) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "caches are not enabled on this server"));
    return reactor;
  }
  svc->Post([svc, reactor, request, answer = std::move(answer), auth = AuthorizationOf(ctx)] {
    auto caller = svc->CallerOf(auth);
    if (!caller.ok()) {
      reactor->Finish(ToGrpc(caller.status()));
      return;
    }
    auto a = svc->deps().artifacts->Authorize(request->job_id(), request->attempt_token(), *caller);
    reactor->Finish(a.ok() ? answer(*a) : ToGrpc(a.status()));
  });
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* AgentServiceImpl::CacheRestore(grpc::CallbackServerContext* ctx,
                                                         const v1::CacheRestoreRequest* request,
                                                         v1::CacheRestoreResponse* response) {
  return CacheUnary(this, ctx, request, [this, request, response](const store::LiveAttempt& a) {
    std::vector<std::string> prefixes(request->restore_keys().begin(),
                                      request->restore_keys().end());
    auto r = deps_.caches->Restore(a, request->key(), prefixes);
    if (!r.ok()) return ToGrpc(r.status());
    response->set_saved_in_own_scope(r->saved_in_own_scope);
    if (!r->hit.has_value()) return grpc::Status::OK;
    response->set_hit(true);
    response->set_exact(r->hit->exact);
    response->set_key(r->hit->entry.key);
    response->set_scope(r->hit->entry.scope);
    for (const auto& f : r->hit->files) {
      v1::ArtifactFile* w = response->add_files();
      w->set_path(f.path);
      w->set_size(static_cast<uint64_t>(f.size));
      w->set_mode(static_cast<uint32_t>(f.mode));
      w->set_sha256(f.sha256);
      for (const auto& c : f.chunks) w->add_chunks(c);
    }
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AgentServiceImpl::CacheCommit(grpc::CallbackServerContext* ctx,
                                                        const v1::CacheCommitRequest* request,
                                                        v1::CacheCommitResponse* response) {
  return CacheUnary(this, ctx, request, [this, request, response](const store::LiveAttempt& a) {
    std::vector<store::ArtifactFileRow> files;
    files.reserve(request->files_size());
    for (const auto& f : request->files()) {
      store::ArtifactFileRow r;
      r.path = f.path();
      r.size = static_cast<int64_t>(std::min<uint64_t>(f.size(), INT64_MAX));
      r.mode = static_cast<int>(f.mode() & 07777);
      r.sha256 = f.sha256();
      r.chunks.assign(f.chunks().begin(), f.chunks().end());
      files.push_back(std::move(r));
    }
    auto done = deps_.caches->Commit(a, request->key(), std::move(files));
    if (!done.ok()) return ToGrpc(done.status());
    response->set_saved(done->save.saved);
    response->set_scope(done->scope);
    response->set_files(static_cast<uint32_t>(done->save.files));
    response->set_bytes(static_cast<uint64_t>(done->save.bytes));
    return grpc::Status::OK;
  });
}

}  // namespace assay
