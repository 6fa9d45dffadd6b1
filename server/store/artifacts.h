#pragma once
// Artifacts (migration 0013): content-addressed chunks, the files of each job's committed
// manifest, expiry and disk use. The blobs themselves live in a BlobStore
// (server/artifacts/blob_store.h); this store only knows which exist. Invariant: a chunk row
// exists only while its blob does — a blob is written while its new row is locked, and the
// sweeper deletes a blob while its row is locked. *db must outlive the store.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/db.h"

namespace assay::store {

struct ArtifactFileRow {
  std::string path;
  int64_t size = 0;
  int mode = 0644;
  std::string sha256;               // of the whole file, lowercase hex
  std::vector<std::string> chunks;  // lowercase hex SHA-256 of each chunk, in file order
};

// A manifest row selected as (path, size, mode, sha256, chunks), the column order every file
// table of the store (artifacts, caches, model versions, checkpoints) is read in.
ArtifactFileRow FileOf(const pqxx::row& r);

// A manifest as the text arrays its INSERT ... SELECT FROM unnest(...) takes (chunk lists
// comma-joined), the distinct chunks it names (sorted), and its total size.
struct ManifestColumns {
  std::vector<std::string> paths, sizes, modes, hashes, chunk_lists;
  std::vector<std::string> chunks;
  int64_t bytes = 0;
};
ManifestColumns ManifestColumnsOf(const std::vector<ArtifactFileRow>& files);

// Inside a commit's transaction: kFailedPrecondition naming the first chunk of `files` that is
// not stored ("chunk H of 'P' is not stored; upload it first (ArtifactChunksMissing)"); the
// chunks found are locked FOR SHARE, so the sweeper (which skips locked rows) cannot delete
// them before the commit does.
absl::Status RequireChunksStored(pqxx::work& tx, Connection& c,
                                 const std::vector<ArtifactFileRow>& files,
                                 const std::vector<std::string>& chunks);

// The live attempt of a job: state assigned or running, with its token.
struct LiveAttempt {
  int64_t job_id = 0;
  int64_t pipeline_id = 0;
  int64_t repo_id = 0;
  int64_t agent_id = 0;
  int attempt = 0;
  std::string job_name;
  std::optional<int64_t> expire_in_s;       // jobs.spec artifacts.expire_in_s
  std::vector<std::string> artifact_needs;  // jobs.spec artifact_needs, in order
};

struct ArtifactCommit {
  int files = 0;
  int64_t bytes = 0;
  bool replayed = false;  // this attempt had committed already: nothing changed
};

// A job's committed artifacts, for the API.
struct ArtifactSummary {
  int64_t job_id = 0;
  int attempt = 0;
  int files = 0;
  int64_t bytes = 0;
  absl::Time created_at, expire_at;
};

struct NeededJob {
  int64_t job_id = 0;
  std::string name;
};

class ArtifactStore {
 public:
  explicit ArtifactStore(Db* db) : db_(db) {}

  // The live attempt of `job_id` whose token is `token`; nullopt when the job has no live
  // attempt with that token (unknown job, stale or forged token, finished job).
  absl::StatusOr<std::optional<LiveAttempt>> FindLiveAttempt(int64_t job_id,
                                                             const std::string& token);

  // Of `chunks`, those the store does not hold, in the given order (duplicates kept). The
  // ones it holds are touched at `now`, so the sweeper leaves them to the commit that follows.
  absl::StatusOr<std::vector<std::string>> MissingChunks(const std::vector<std::string>& chunks,
                                                         absl::Time now);

  // Records chunk `sha256` of `size` bytes. When the store holds no row for it, `write`
  // (which stores the blob) runs inside the transaction that inserts the row, the row
  // locked; an error from `write` rolls the row back and is returned. When a row exists,
  // `present` is asked whether the blob is really there (a sweep that died between deleting
  // a blob and its row); if not, `write` runs too. Returns true when nothing was written.
  absl::StatusOr<bool> PutChunk(const std::string& sha256, int64_t size, absl::Time now,
                                const std::function<absl::Status()>& write,
                                const std::function<bool()>& present);

  // Records the manifest of attempt `attempt` of `job_id` in one transaction, expiring at
  // `expire_at`. A replay by the same attempt changes nothing (replayed = true, the stored
  // counts); a later attempt replaces an earlier attempt's manifest. kFailedPrecondition
  // naming the first chunk the store lacks; nothing is written then.
  absl::StatusOr<ArtifactCommit> Commit(int64_t job_id, int attempt, int64_t repo_id,
                                        const std::vector<ArtifactFileRow>& files, absl::Time now,
                                        absl::Time expire_at);

  // The job's committed files in path order; nullopt when it has no artifacts.
  absl::StatusOr<std::optional<ArtifactSummary>> Summary(int64_t job_id);
  absl::StatusOr<std::vector<ArtifactFileRow>> Files(int64_t job_id);
  absl::StatusOr<std::optional<ArtifactFileRow>> File(int64_t job_id, const std::string& path);

  // The size of each of `chunks` (in that order); kNotFound naming the first not stored.
  absl::StatusOr<std::vector<int64_t>> ChunkSizes(const std::vector<std::string>& chunks);

  // The jobs of pipeline `pipeline_id` named in `names`, in the order of `names` (unknown
  // names are left out).
  absl::StatusOr<std::vector<NeededJob>> JobsNamed(int64_t pipeline_id,
                                                   const std::vector<std::string>& names);
  // Of `chunks`, those referenced by the artifacts of one of `job_ids`.
  absl::StatusOr<std::vector<std::string>> ChunksOf(const std::vector<int64_t>& job_ids,
                                                    const std::vector<std::string>& chunks);

  // Retention. Each batch is one transaction under an advisory lock; a replica that does not
  // get the lock does nothing (returns 0). DeleteExpired removes up to `batch` manifests
  // whose expire_at is before `now`. DeleteUnreferencedChunks takes up to `batch` chunks no
  // manifest references (nor a cache entry, store/caches.h, nor a model version,
  // store/models.h) and untouched since
  // `touched_before`, calls `delete_blob` for each with its row locked, then deletes the rows
  // whose blob went; returns how many.
  absl::StatusOr<int> DeleteExpired(absl::Time now, int batch);
  absl::StatusOr<int> DeleteUnreferencedChunks(
      absl::Time touched_before, int batch,
      const std::function<absl::Status(const std::string&)>& delete_blob);

  // Bytes of committed artifact files per repository (logical: a chunk shared by two files
  // counts twice), by repository id. Repositories without artifacts are left out.
  absl::StatusOr<std::vector<RepoBytes>> BytesPerRepo();

 private:
  Db* db_;
};

}  // namespace assay::store
