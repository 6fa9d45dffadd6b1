// The cache RPCs of AgentService (issue 9): adapters from the wire to
// artifacts::CacheService. As for the artifact RPCs (artifact_rpc.cc), gRPC's threads only post
// the call to the service's worker pool, where authorization and the database work run.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "server/agents/attempt_rpc.h"

namespace assay {
using attempt_rpc::ToGrpc;

constexpr char kDisabled[] = "caches are not enabled on this server";

grpc::ServerUnaryReactor* AgentServiceImpl::CacheRestore(grpc::CallbackServerContext* ctx,
                                                         const v1::CacheRestoreRequest* request,
                                                         v1::CacheRestoreResponse* response) {
  return attempt_rpc::Unary(this, ctx, request, deps_.caches != nullptr, kDisabled,
                            [this, request, response](const store::LiveAttempt& a) {
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
                                attempt_rpc::ToWire(f, response->add_files());
                              }
                              return grpc::Status::OK;
                            });
}

grpc::ServerUnaryReactor* AgentServiceImpl::CacheCommit(grpc::CallbackServerContext* ctx,
                                                        const v1::CacheCommitRequest* request,
                                                        v1::CacheCommitResponse* response) {
  return attempt_rpc::Unary(this, ctx, request, deps_.caches != nullptr, kDisabled,
                            [this, request, response](const store::LiveAttempt& a) {
                              std::vector<store::ArtifactFileRow> files;
                              files.reserve(request->files_size());
                              for (const auto& f : request->files()) {
                                files.push_back(attempt_rpc::FromWire(f));
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
