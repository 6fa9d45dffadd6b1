#pragma once
// Caches (issue 9, migration 0018, docs/caches.md): entries keyed (repository, scope, key),
// each a manifest of files over the artifacts' chunk store (artifact_chunks; the blobs live in
// the BlobStore). Keys are immutable; entries unused for a while are deleted by the sweeper,
// and their chunks later by the artifact sweeper once nothing references them. *db must
// outlive the store.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/artifacts.h"
#include "server/store/db.h"

namespace assay::store {

// Where a job reads and writes caches. A trusted pipeline writes into its branch ("main"; a
// ref that is not a branch as it is, "refs/tags/v1") and reads that, then the repository's
// default branch. A fork's pull request (untrusted) reads and writes "untrusted:<ref>" only:
// nothing a trusted pipeline reads is ever written by untrusted code, and nothing a trusted
// pipeline wrote (perhaps with secrets at hand) is shown to untrusted code.
struct CacheScope {
  int64_t repo_id = 0;
  std::string own;
  std::string fallback;  // "" when none (untrusted, or own is the default branch)
};

struct CacheEntry {
  int64_t id = 0;
  int64_t repo_id = 0;
  std::string scope;
  std::string key;
  int files = 0;
  int64_t bytes = 0;
  absl::Time created_at, last_used_at;
};

struct CacheHit {
  CacheEntry entry;
  bool exact = false;  // found by the key itself, not a restore_keys prefix
  std::vector<ArtifactFileRow> files;
};

struct CacheSave {
  bool saved = false;  // false: the key existed in the scope; nothing changed
  int files = 0;
  int64_t bytes = 0;
};

class CacheStore {
 public:
  explicit CacheStore(Db* db) : db_(db) {}

  // The scope of job `job_id` (kNotFound for an unknown job).
  absl::StatusOr<CacheScope> ScopeOf(int64_t job_id);

  // The entry to restore for `job_id`: `key` in scope.own, then in scope.fallback; then for
  // each of `restore_keys` in order, the newest entry whose key starts with it in scope.own,
  // then in scope.fallback. The entry found is touched (last_used_at = now) and recorded as
  // read by the job (ChunksReadBy), in the same transaction. nullopt: none.
  absl::StatusOr<std::optional<CacheHit>> Restore(int64_t job_id, const CacheScope& scope,
                                                  const std::string& key,
                                                  const std::vector<std::string>& restore_keys,
                                                  absl::Time now);

  // Whether `key` exists in `scope` (of repo_id).
  absl::StatusOr<bool> Exists(int64_t repo_id, const std::string& scope, const std::string& key);

  // Records a new entry in one transaction, once every chunk it names is stored
  // (kFailedPrecondition naming the first missing one; nothing written). When the key exists
  // in the scope nothing changes (saved = false). `files` are checked by the caller.
  absl::StatusOr<CacheSave> Commit(int64_t job_id, int64_t repo_id, const std::string& scope,
                                   const std::string& key,
                                   const std::vector<ArtifactFileRow>& files, absl::Time now);

  // Of `chunks`, those in the entries job `job_id` restored.
  absl::StatusOr<std::vector<std::string>> ChunksReadBy(int64_t job_id,
                                                        const std::vector<std::string>& chunks);

  // Retention: deletes up to `batch` entries unused since `before` (one transaction, under an
  // advisory lock shared by replicas; 0 when another replica holds it).
  absl::StatusOr<int> DeleteUnused(absl::Time before, int batch);

  // For the API and the CLI: the entries of a repository, newest first (at most `limit`);
  // one entry; deleting one (false when it did not exist).
  absl::StatusOr<std::vector<CacheEntry>> List(int64_t repo_id, int limit);
  absl::StatusOr<bool> Delete(int64_t repo_id, int64_t entry_id);

  // Bytes of cache entries per repository (logical, as ArtifactStore::BytesPerRepo).
  absl::StatusOr<std::vector<RepoBytes>> BytesPerRepo();

 private:
  Db* db_;
};

// The scope written for a pipeline's ref: "refs/heads/X" -> "X", other refs as they are;
// untrusted: "untrusted:" + ref.
std::string CacheScopeOfRef(const std::string& ref, bool trusted);

}  // namespace assay::store
