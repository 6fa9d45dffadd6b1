#include "server/artifacts/cache_service.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/pipeline/cache_key.h"

namespace assay::artifacts {

absl::StatusOr<CacheRestoreResult> CacheService::Restore(
    const store::LiveAttempt& attempt, const std::string& key,
    const std::vector<std::string>& restore_keys) {
  if (absl::Status s = CheckCacheKeyText(key); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cache key: ", s.message()));
  }
  if (restore_keys.size() > kMaxCacheRestoreKeys) {
    return absl::InvalidArgumentError(absl::StrCat("restore_keys: ", restore_keys.size(),
                                                   " prefixes, more than ", kMaxCacheRestoreKeys));
  }
  for (size_t i = 0; i < restore_keys.size(); ++i) {
    if (absl::Status s = CheckCacheKeyText(restore_keys[i]); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("restore_keys[", i, "]: ", s.message()));
    }
  }
  auto scope = store_->ScopeOf(attempt.job_id);
  if (!scope.ok()) return scope.status();
  CacheRestoreResult out;
  auto hit = store_->Restore(attempt.job_id, *scope, key, restore_keys, clock_->Now());
  if (!hit.ok()) return hit.status();
  out.hit = *std::move(hit);
  if (out.hit.has_value() && out.hit->exact && out.hit->entry.scope == scope->own) {
    out.saved_in_own_scope = true;
  } else {
    auto exists = store_->Exists(scope->repo_id, scope->own, key);
    if (!exists.ok()) return exists.status();
    out.saved_in_own_scope = *exists;
  }
  return out;
}

absl::StatusOr<CacheCommitResult> CacheService::Commit(const store::LiveAttempt& attempt,
                                                       const std::string& key,
                                                       std::vector<store::ArtifactFileRow> files) {
  if (absl::Status s = CheckCacheKeyText(key); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cache key: ", s.message()));
  }
  if (absl::Status s = artifacts_->CheckFiles(files, "CacheCommit"); !s.ok()) return s;
  auto scope = store_->ScopeOf(attempt.job_id);
  if (!scope.ok()) return scope.status();
  CacheCommitResult out;
  out.scope = scope->own;
  auto saved =
      store_->Commit(attempt.job_id, scope->repo_id, scope->own, key, files, clock_->Now());
  if (!saved.ok()) return saved.status();
  out.save = *saved;
  if (!saved->saved) {
    LogInfo("caches", "job ", attempt.job_id, ": cache key '", absl::CEscape(key),
            "' exists in scope '", absl::CEscape(scope->own), "'; not saved (keys are immutable)");
  }
  return out;
}

absl::StatusOr<int> CacheService::Sweep(absl::Duration unused_for, int batch, int max_batches) {
  int total = 0;
  const absl::Time before = clock_->Now() - unused_for;
  for (int i = 0; i < max_batches; ++i) {
    auto n = store_->DeleteUnused(before, batch);
    if (!n.ok()) return n.status();
    total += *n;
    if (*n < batch) break;
  }
  return total;
}

}  // namespace assay::artifacts
