#pragma once
// The server's artifact logic behind the gRPC adapters (server/agents/artifact_rpc.cc) and the
// REST API: checks every agent input against the limits below, then stores chunks in the
// BlobStore and manifests in the ArtifactStore. Blocking (database, disk): call it from a
// worker pool, never from gRPC's or Asio's threads. Thread-safe. *store, *blobs and *clock
// must outlive it.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "server/artifacts/blob_store.h"
#include "server/store/artifacts.h"
#include "server/store/caches.h"
#include "server/store/train.h"

namespace assay::artifacts {

struct ArtifactLimits {
  size_t max_chunk_bytes = 4 << 20;           // per chunk (ChunkUpload.data)
  size_t max_names = 10000;                   // chunk names per ChunksMissing/DownloadChunks call
  size_t max_files = 100000;                  // files per commit
  size_t max_chunks_per_commit = 1000000;     // chunk names in one commit, all files together
  size_t max_manifest_chunks = 16;            // CommitArtifactsRequest.manifest_chunks (64 MiB)
  int64_t default_expire_s = 30 * 24 * 3600;  // when the job's spec has no expire_in
};

struct JobManifest {
  int64_t job_id = 0;
  std::string job_name;
  std::vector<store::ArtifactFileRow> files;
};

class ArtifactService {
 public:
  ArtifactService(store::ArtifactStore* store, BlobStore* blobs, const Clock* clock,
                  ArtifactLimits limits = {})
      : store_(store), blobs_(blobs), clock_(clock), limits_(limits) {}

  // The live attempt `token` of `job_id`, given to agent `agent_id` when that is set.
  // kPermissionDenied "attempt token is not the live attempt of job N" otherwise (one
  // message for an unknown job, a stale or forged token, a finished job: no oracle), or
  // "... was given to another agent".
  absl::StatusOr<store::LiveAttempt> Authorize(int64_t job_id, const std::string& token,
                                               std::optional<int64_t> agent_id);

  // Of `chunks` (each 64 lowercase hex digits, at most max_names), those not stored.
  absl::StatusOr<std::vector<std::string>> Missing(const std::vector<std::string>& chunks);

  // Stores one uploaded chunk after checking its size (1 B..max_chunk_bytes) and its hash:
  // kInvalidArgument otherwise, nothing stored. Returns true when it was already present.
  absl::StatusOr<bool> PutChunk(const std::string& sha256, std::string_view data);

  // Validates and records the manifest of `attempt` (paths: ValidateArtifactPath, no two
  // alike; hashes; counts). Modes keep only 0755 (any execute bit) or 0644. Expires after the
  // job's artifacts.expire_in_s, else default_expire_s.
  absl::StatusOr<store::ArtifactCommit> Commit(const store::LiveAttempt& attempt,
                                               const std::vector<store::ArtifactFileRow>& files);

  // The manifests of the jobs `attempt` needs with artifacts, in the order of its needs. A
  // needed job without artifacts appears with no files.
  absl::StatusOr<std::vector<JobManifest>> Manifests(const store::LiveAttempt& attempt);

  // OK when every chunk of `chunks` (at most max_names, each a hash) belongs to the artifacts
  // of a job `attempt` needs, or (with a cache store) to a cache entry the job restored;
  // kPermissionDenied naming the first that does neither.
  absl::Status CheckDownload(const store::LiveAttempt& attempt,
                             const std::vector<std::string>& chunks);

  // Checks the files of a manifest (artifacts or a cache entry) in place: paths
  // (ValidateArtifactPath, no two alike), hashes, sizes that fit their chunks, counts; modes
  // become 0755 (any execute bit) or 0644. kInvalidArgument naming the path otherwise.
  absl::Status CheckFiles(std::vector<store::ArtifactFileRow>& rows, std::string_view what);

  // Issue 9, caches: DownloadChunks also serves the chunks of the cache entries a job
  // restored (store::CacheStore::ChunksReadBy). `caches` must outlive this; set before use.
  void SetCacheStore(store::CacheStore* caches) { caches_ = caches; }
  // Issue 10: DownloadChunks also serves the chunks of the checkpoints a job restored.
  void SetTrainStore(store::TrainStore* train) { train_ = train; }

  BlobStore* blobs() { return blobs_; }
  const ArtifactLimits& limits() const { return limits_; }

 private:
  absl::Status CheckNames(const std::vector<std::string>& chunks, const char* what);

  store::ArtifactStore* store_;
  store::CacheStore* caches_ = nullptr;
  store::TrainStore* train_ = nullptr;
  BlobStore* blobs_;
  const Clock* clock_;
  ArtifactLimits limits_;
};

}  // namespace assay::artifacts
