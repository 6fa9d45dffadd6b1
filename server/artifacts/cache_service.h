#pragma once
// The server's cache logic (issue 9, docs/caches.md) behind the Cache RPCs
// (server/agents/cache_rpc.cc): checks what an agent sends, picks the scopes a job reads and
// writes (store::CacheScope), and records entries over the artifacts' chunk store. Blocking
// (database): call it from a worker pool. Thread-safe. Everything given must outlive it.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/clock.h"
#include "server/artifacts/artifact_service.h"
#include "server/store/caches.h"

namespace assay::artifacts {

struct CacheRestoreResult {
  std::optional<store::CacheHit> hit;
  bool saved_in_own_scope = false;  // the key exists in the job's own scope
};

struct CacheCommitResult {
  store::CacheSave save;
  std::string scope;
};

class CacheService {
 public:
  CacheService(store::CacheStore* store, ArtifactService* artifacts, const Clock* clock)
      : store_(store), artifacts_(artifacts), clock_(clock) {}

  // kInvalidArgument "cache key: REASON" / "restore_keys[i]: REASON" (CheckCacheKeyText), or
  // more than 16 restore_keys. Records the entry found as read by the job.
  absl::StatusOr<CacheRestoreResult> Restore(const store::LiveAttempt& attempt,
                                             const std::string& key,
                                             const std::vector<std::string>& restore_keys);

  // Checks key and files (ArtifactService::CheckFiles) and records the entry in the job's own
  // scope; an existing key is left as it is (save.saved = false, logged).
  absl::StatusOr<CacheCommitResult> Commit(const store::LiveAttempt& attempt,
                                           const std::string& key,
                                           std::vector<store::ArtifactFileRow> files);

  // Retention: deletes entries unused for `unused_for` (batches of `batch`, at most
  // `max_batches`); returns how many.
  absl::StatusOr<int> Sweep(absl::Duration unused_for, int batch = 500, int max_batches = 100);

  store::CacheStore* store() { return store_; }

 private:
  store::CacheStore* store_;
  ArtifactService* artifacts_;
  const Clock* clock_;
};

}  // namespace assay::artifacts
