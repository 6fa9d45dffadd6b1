// The artifact RPCs of AgentService: adapters from the wire to artifacts::ArtifactService.
// gRPC's callback threads only capture the request and post it to the service's worker pool,
// where authorization (database) and storage (disk) run; streams take one message at a time.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/base/log.h"
#include "common/crypto/agent_secret.h"
#include "common/crypto/crypto.h"
#include "server/agents/attempt_rpc.h"

namespace assay {
namespace {

using attempt_rpc::AuthorizationOf;
using attempt_rpc::Authorize;
using attempt_rpc::FromWire;
using attempt_rpc::ToGrpc;
using attempt_rpc::ToWire;

constexpr char kCredentialPrefix[] = "Bearer assay-agent-";

grpc::Status Unimplemented() {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "artifacts are not enabled on this server");
}

// The files of a commit whose manifest came as chunks (CommitArtifactsRequest.manifest_chunks):
// read from the blob store, in order, and parsed. INVALID_ARGUMENT for more than
// limits.max_manifest_chunks names or bytes that are not an ArtifactFileList;
// FAILED_PRECONDITION naming the first chunk that is not stored (the agent asks which chunks
// are missing and uploads again).
absl::StatusOr<v1::ArtifactFileList> ReadManifestChunks(
    artifacts::ArtifactService& service, const google::protobuf::RepeatedPtrField<std::string>& c) {
  const size_t max = service.limits().max_manifest_chunks;
  if (static_cast<size_t>(c.size()) > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("CommitArtifacts: a manifest of ", c.size(), " chunks, more than ", max, " (",
                     max * service.limits().max_chunk_bytes >> 20, " MiB)"));
  }
  std::string bytes;
  for (const std::string& h : c) {
    auto data = service.blobs()->Read(h, 0, -1);
    if (absl::IsNotFound(data.status())) {
      return absl::FailedPreconditionError(
          absl::StrCat("CommitArtifacts: manifest chunk ", h, " is not stored"));
    }
    if (!data.ok()) return data.status();
    bytes += *data;
  }
  v1::ArtifactFileList list;
  if (!list.ParseFromString(bytes)) {
    return absl::InvalidArgumentError(
        "CommitArtifacts: the manifest chunks are not an ArtifactFileList");
  }
  return list;
}

// Authorization of one call: the caller (CallerOf), then the live attempt.
class UploadReactor final : public grpc::ServerReadReactor<v1::ChunkUpload> {
 public:
  UploadReactor(AgentServiceImpl* svc, grpc::CallbackServerContext* ctx,
                v1::UploadChunksResponse* response)
      : svc_(svc), auth_(AuthorizationOf(ctx)), response_(response) {
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the agent closed its side (or the stream broke): what was stored stays
      Finish(grpc::Status::OK);
      return;
    }
    svc_->Post([this] { Handle(); });
  }
  void OnDone() override { delete this; }

 private:
  void Handle() {
    if (!attempt_.has_value()) {
      auto a = Authorize(svc_, auth_, in_.job_id(), in_.attempt_token());
      if (!a.ok()) {
        LogWarn("artifacts", "refused an upload for job ", in_.job_id(), ": ",
                a.status().message());
        Finish(ToGrpc(a.status()));
        return;
      }
      attempt_ = *a;
    } else if ((in_.job_id() != 0 && in_.job_id() != attempt_->job_id) ||
               (!in_.attempt_token().empty() && in_.attempt_token() != token_)) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "all chunks of one UploadChunks stream belong to its first job"));
      return;
    }
    if (token_.empty()) token_ = in_.attempt_token();
    auto put = svc_->deps().artifacts->PutChunk(in_.sha256(), in_.data());
    if (!put.ok()) {
      Finish(ToGrpc(put.status()));
      return;
    }
    if (*put) {
      response_->set_already_present(response_->already_present() + 1);
    } else {
      response_->set_stored(response_->stored() + 1);
    }
    StartRead(&in_);
  }

  AgentServiceImpl* svc_;
  const std::string auth_;
  v1::UploadChunksResponse* response_;
  v1::ChunkUpload in_;
  std::optional<store::LiveAttempt> attempt_;
  std::string token_;
};

// Sends the asked chunks in order, reading one ahead: while chunk N is written to the stream,
// chunk N+1 is read from the blob store on the worker pool (at most two chunks of a call in
// memory). Finish is called only when neither a read nor a write is in flight, so OnDone (which
// deletes the reactor) never races a read still running on the pool.
class DownloadReactor final : public grpc::ServerWriteReactor<v1::ChunkData> {
 public:
  DownloadReactor(AgentServiceImpl* svc, grpc::CallbackServerContext* ctx,
                  const v1::DownloadChunksRequest* request)
      : svc_(svc), auth_(AuthorizationOf(ctx)), request_(*request) {
    svc_->Post([this] { Start(); });
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock l(&mu_);
      writing_ = false;
      if (!ok && !end_.has_value()) {
        end_ = grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke");
      }
    }
    Pump();
  }
  void OnDone() override { delete this; }

 private:
  void Start() {
    auto a = Authorize(svc_, auth_, request_.job_id(), request_.attempt_token());
    if (!a.ok()) {
      Finish(ToGrpc(a.status()));
      return;
    }
    std::vector<std::string> chunks(request_.chunks().begin(), request_.chunks().end());
    if (absl::Status s = svc_->deps().artifacts->CheckDownload(*a, chunks); !s.ok()) {
      Finish(ToGrpc(s));
      return;
    }
    Pump();
  }

  // What can start now: the write of a chunk read ahead, the read of the next one, or the end
  // of the call. Decided under mu_, done by Pump after it is released (a reaction gRPC runs
  // inline must not find mu_ held).
  struct Actions {
    bool write = false;
    int read = -1;
    std::optional<grpc::Status> finish;
  };
  Actions DecideLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Actions a;
    if (finished_) return a;
    if (end_.has_value()) {
      if (!reading_ && !writing_) {
        finished_ = true;
        a.finish = *end_;
      }
      return a;
    }
    if (!writing_ && ahead_.has_value()) {
      out_ = std::move(*ahead_);
      ahead_.reset();
      writing_ = true;
      a.write = true;
    }
    if (!reading_ && !ahead_.has_value() && next_ < request_.chunks_size()) {
      reading_ = true;
      a.read = next_++;
    }
    if (!reading_ && !writing_ && !ahead_.has_value() && next_ >= request_.chunks_size()) {
      finished_ = true;
      a.finish = grpc::Status::OK;
    }
    return a;
  }
  void Pump() {
    Actions a;
    {
      absl::MutexLock l(&mu_);
      a = DecideLocked();
    }
    if (a.write) StartWrite(&out_);
    if (a.read >= 0) svc_->Post([this, index = a.read] { Read(index); });
    if (a.finish.has_value()) Finish(*a.finish);
  }

  void Read(int index) {
    const std::string& h = request_.chunks(index);
    auto data = svc_->deps().artifacts->blobs()->Read(h, 0, -1);
    {
      absl::MutexLock l(&mu_);
      reading_ = false;
      if (!data.ok()) {
        LogWarn("artifacts", "cannot read chunk ", h, ": ", data.status().message());
        if (!end_.has_value()) {
          end_ = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              absl::StrCat("cannot read chunk ", h, "; try again"));
        }
      } else if (!end_.has_value()) {
        ahead_.emplace();
        ahead_->set_sha256(h);
        ahead_->set_data(std::move(*data));
      }
    }
    Pump();
  }

  AgentServiceImpl* svc_;
  const std::string auth_;
  const v1::DownloadChunksRequest request_;
  absl::Mutex mu_;
  int next_ ABSL_GUARDED_BY(mu_) = 0;  // the next chunk to read
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> end_ ABSL_GUARDED_BY(mu_);  // set: finish once nothing is in flight
  std::optional<v1::ChunkData> ahead_ ABSL_GUARDED_BY(mu_);
  v1::ChunkData out_;  // the message being written (gRPC reads it until OnWriteDone)
};

// The unary artifact RPCs (attempt_rpc::Unary).
template <typename Request, typename Answer>
grpc::ServerUnaryReactor* AuthorizedUnary(AgentServiceImpl* svc, grpc::CallbackServerContext* ctx,
                                          const Request* request, Answer answer) {
  return attempt_rpc::Unary(svc, ctx, request, true, "artifacts are not enabled on this server",
                            std::move(answer));
}

}  // namespace

absl::StatusOr<std::optional<int64_t>> AgentServiceImpl::CallerOf(const std::string& given) {
  if (deps_.credentials != nullptr && absl::StartsWith(given, kCredentialPrefix)) {
    auto cred = ParseAgentSecret(given.substr(7), AgentSecretKind::kCredential);
    if (!cred.ok()) return absl::UnauthenticatedError("unknown or revoked agent credential");
    auto who = deps_.credentials->FindByCredential(AgentSecretHash(*cred));
    if (!who.ok()) return who.status();
    if (!who->has_value() || (*who)->disabled) {
      return absl::UnauthenticatedError("unknown or revoked agent credential");
    }
    return std::optional<int64_t>((*who)->agent_id);
  }
  // Why the emptiness check: an empty shared token would match "Bearer " from anyone.
  if (!deps_.allow_shared_token || deps_.agent_token.empty() ||
      !ConstantTimeEquals(Sha256(given), Sha256("Bearer " + deps_.agent_token))) {
    return absl::UnauthenticatedError(
        "missing or invalid agent token (authorization: Bearer <token>)");
  }
  return std::optional<int64_t>();
}

grpc::ServerUnaryReactor* AgentServiceImpl::ArtifactChunksMissing(
    grpc::CallbackServerContext* ctx, const v1::ChunksMissingRequest* request,
    v1::ChunksMissingResponse* response) {
  return AuthorizedUnary(this, ctx, request, [this, request, response](const store::LiveAttempt&) {
    std::vector<std::string> chunks(request->chunks().begin(), request->chunks().end());
    auto missing = deps_.artifacts->Missing(chunks);
    if (!missing.ok()) return ToGrpc(missing.status());
    for (auto& m : *missing) response->add_missing(std::move(m));
    return grpc::Status::OK;
  });
}

grpc::ServerReadReactor<v1::ChunkUpload>* AgentServiceImpl::UploadChunks(
    grpc::CallbackServerContext* ctx, v1::UploadChunksResponse* response) {
  if (deps_.artifacts == nullptr) {
    // A reactor that only finishes: gRPC's callback API has no default read reactor.
    class Refuse final : public grpc::ServerReadReactor<v1::ChunkUpload> {
     public:
      Refuse() { Finish(Unimplemented()); }
      void OnDone() override { delete this; }
    };
    return new Refuse();
  }
  return new UploadReactor(this, ctx, response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::CommitArtifacts(
    grpc::CallbackServerContext* ctx, const v1::CommitArtifactsRequest* request,
    v1::CommitArtifactsResponse* response) {
  return AuthorizedUnary(
      this, ctx, request, [this, request, response](const store::LiveAttempt& a) {
        const google::protobuf::RepeatedPtrField<v1::ArtifactFile>* wire = &request->files();
        v1::ArtifactFileList list;
        if (!request->manifest_chunks().empty()) {
          if (!request->files().empty()) {
            return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "CommitArtifacts: files and manifest_chunks are exclusive");
          }
          auto read = ReadManifestChunks(*deps_.artifacts, request->manifest_chunks());
          if (!read.ok()) return ToGrpc(read.status());
          list = std::move(*read);
          wire = &list.files();
        }
        const size_t max_files = deps_.artifacts->limits().max_files;
        if (static_cast<size_t>(wire->size()) > max_files) {
          return grpc::Status(
              grpc::StatusCode::INVALID_ARGUMENT,
              absl::StrCat("CommitArtifacts: ", wire->size(), " files, more than ", max_files));
        }
        std::vector<store::ArtifactFileRow> files;
        files.reserve(wire->size());
        for (const auto& f : *wire) files.push_back(FromWire(f));
        auto done = deps_.artifacts->Commit(a, files);
        if (!done.ok()) return ToGrpc(done.status());
        response->set_files(static_cast<uint32_t>(done->files));
        response->set_bytes(static_cast<uint64_t>(done->bytes));
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* AgentServiceImpl::GetArtifactManifest(
    grpc::CallbackServerContext* ctx, const v1::ArtifactManifestRequest* request,
    v1::ArtifactManifest* response) {
  return AuthorizedUnary(this, ctx, request, [this, response](const store::LiveAttempt& a) {
    auto manifests = deps_.artifacts->Manifests(a);
    if (!manifests.ok()) return ToGrpc(manifests.status());
    for (const auto& m : *manifests) {
      v1::JobArtifacts* j = response->add_jobs();
      j->set_job_id(m.job_id);
      j->set_job_name(m.job_name);
      for (const auto& f : m.files) ToWire(f, j->add_files());
    }
    return grpc::Status::OK;
  });
}

grpc::ServerWriteReactor<v1::ChunkData>* AgentServiceImpl::DownloadChunks(
    grpc::CallbackServerContext* ctx, const v1::DownloadChunksRequest* request) {
  if (deps_.artifacts == nullptr) {
    class Refuse final : public grpc::ServerWriteReactor<v1::ChunkData> {
     public:
      Refuse() { Finish(Unimplemented()); }
      void OnDone() override { delete this; }
    };
    return new Refuse();
  }
  return new DownloadReactor(this, ctx, request);
}

}  // namespace assay
