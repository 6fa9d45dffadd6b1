#pragma once
// A job's cache on the agent (issue 9, docs/caches.md): the key evaluated after the checkout
// (hashFiles), the entry restored into the workspace before the first step, and saved after
// the steps succeeded. Entries are manifests over the server's chunk store (the artifact
// RPCs' chunks); the agent keeps the chunks it restored or saved in a local copy under its
// work dir (LocalChunkCache), so a restore downloads only what it lacks. Files are written by
// the artifact writer (artifact_paths.h): never outside the workspace, never through a
// symlink.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/artifacts.h"
#include "agent/step_runner.h"
#include "assay/v1/agent.grpc.pb.h"

namespace assay {

// Chunks named by their SHA-256 as files DIR/ab/<64 hex>, written atomically (a temporary
// file renamed into place), each file's mtime its last use. Thread-safe (several jobs at
// once). Beyond `budget_bytes` the least recently used chunks are removed by Evict, which does
// nothing while a job holds a Pin (a restore reads the chunks it just made sure of).
class LocalChunkCache {
 public:
  // Creates DIR (mode 0700) when missing; kFailedPrecondition when it cannot.
  static absl::StatusOr<std::unique_ptr<LocalChunkCache>> Open(const std::string& dir,
                                                               uint64_t budget_bytes);

  // The chunk's bytes when held and intact (its hash checked; a damaged copy is removed), and
  // its last use set to now; nullopt otherwise.
  std::optional<std::string> Get(const std::string& sha256);
  // As Get, without the hash check: for a reader that checks what it read another way (a
  // restore checks each whole file) and calls Drop for the chunks of a file that failed.
  std::optional<std::string> GetUnchecked(const std::string& sha256);
  void Drop(const std::string& sha256);
  bool Has(const std::string& sha256);  // held (not checked), last use set to now
  absl::Status Put(const std::string& sha256, std::string_view data);

  // Removes least recently used chunks until the total is within the budget; returns how
  // many. Nothing while pinned.
  int Evict();
  uint64_t TotalBytes();

  class Pin {
   public:
    explicit Pin(LocalChunkCache* c) : c_(c) {
      if (c_ != nullptr) c_->Hold(1);
    }
    ~Pin() {
      if (c_ != nullptr) c_->Hold(-1);
    }
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;

   private:
    LocalChunkCache* c_;
  };

  const std::string& dir() const { return dir_; }
  uint64_t budget_bytes() const { return budget_; }

 private:
  LocalChunkCache(std::string dir, uint64_t budget) : dir_(std::move(dir)), budget_(budget) {}
  std::string PathOf(const std::string& sha256) const;
  void Hold(int d);

  const std::string dir_;
  const uint64_t budget_;
  absl::Mutex mu_;
  int pins_ ABSL_GUARDED_BY(mu_) = 0;
};

// hashFiles(globs) over `workspace`: the regular files the globs select (as artifact paths
// are selected: artifact_paths.h, symlinks resolved inside the workspace only, never the
// top-level .git), in path order; the lowercase hex SHA-256 over "PATH\0SHA256-OF-CONTENT\n"
// of each. No file: "" (GitHub's behaviour). `owner` set: files of other uids are refused.
absl::StatusOr<std::string> HashFiles(const std::string& workspace,
                                      const std::vector<std::string>& globs,
                                      std::optional<uid_t> owner);

// `text` with each hashFiles call replaced by its value (common/pipeline/cache_key.h); the
// result must pass CheckCacheKeyText. kInvalidArgument "cache.key 'TEXT': REASON".
absl::StatusOr<std::string> EvaluateCacheKey(const std::string& workspace, const std::string& text,
                                             std::optional<uid_t> owner,
                                             std::string_view field = "cache.key");

// Writes `files` (checked by ValidateArtifactManifest) with `writer` from chunks in `local`,
// each file checked against its size and SHA-256 before it is renamed into place (the chunks
// of a file that does not match are dropped from `local`, so the next restore downloads them).
// Returns the bytes written. kNotFound when a chunk is not held, kDataLoss for a file that does not
// match, the writer's errors (a path through a symlink: kFailedPrecondition).
absl::StatusOr<uint64_t> WriteCacheFiles(
    const google::protobuf::RepeatedPtrField<v1::ArtifactFile>& files, LocalChunkCache& local,
    ArtifactWriter& writer, CancelFlag& cancel);

struct CacheTransferOptions;

struct RestoredFiles {
  uint64_t bytes = 0;       // written
  uint64_t downloaded = 0;  // of chunks this agent lacked
};

// Writes `files` (a manifest the server gave this attempt: a cache entry, a checkpoint) into
// `workspace`: every path checked first (ValidateArtifactManifest; `what` names the manifest in
// errors), the chunks `local` lacks downloaded into it (a scratch copy beside the workspace when
// null), each file checked against its size and SHA-256 before it is renamed into place, and
// given to `user`.
absl::StatusOr<RestoredFiles> RestoreFiles(
    v1::AgentService::StubInterface* stub, const std::string& bearer, const v1::Assignment& a,
    const std::string& workspace, const std::optional<JobIdentity>& user, LocalChunkCache* local,
    const google::protobuf::RepeatedPtrField<v1::ArtifactFile>& files, std::string_view what,
    CancelFlag& cancel, const CacheTransferOptions& options);

// What RestoreJobCache learned, for SaveJobCache.
struct JobCacheState {
  bool active = false;  // the job has a cache whose key evaluated
  std::string key;
  bool exists = false;  // the key is saved in the job's scope already: nothing to save
};

struct CacheTransferOptions {
  absl::Duration call_timeout = absl::Seconds(60);
  int attempts = 4;                 // per DownloadChunks window
  size_t chunks_per_download = 64;  // per call
};

// The calls Agent::RunJob makes, with the job's ArtifactClient for the upload. `local` may be
// null (no local copy: chunks go through a temporary directory of the job).
//
// Before the first step. An error (the job fails with it) only when the key cannot be
// evaluated; a restore that fails otherwise is a warning in the log, and the steps run
// without the cache:
//   assay: cache: restored N files, X MiB from key 'K' (scope S), Y MiB downloaded
//   assay: cache: no entry for key 'K'
//   assay: warning: cache not restored: REASON
absl::StatusOr<JobCacheState> RestoreJobCache(
    v1::AgentService::StubInterface* stub, const std::string& bearer, const v1::Assignment& a,
    const std::string& workspace, const std::optional<JobIdentity>& user, LocalChunkCache* local,
    CancelFlag& cancel, const ArtifactLog& log, const CacheTransferOptions& options = {});

// After the steps, when `res` succeeded and nothing was canceled: saves the paths under the
// key (never after a failure, a timeout, a cancel or an error). A failure is a warning; the
// job's outcome stays:
//   assay: cache: saved N files, X MiB (Y MiB new) as key 'K' (scope S)
//   assay: cache: key 'K' exists (keys are immutable); not saved
//   assay: warning: cache not saved: REASON
void SaveJobCache(ArtifactClient& client, v1::AgentService::StubInterface* stub,
                  const v1::Assignment& a, const std::string& workspace,
                  const std::optional<JobIdentity>& user, LocalChunkCache* local,
                  const JobCacheState& state, CancelFlag& cancel, const ArtifactLog& log,
                  const JobRunResult& res);

}  // namespace assay
