#pragma once
// Repository secrets (issue 9, migration 0014): sealed values per repository, environment
// ('' for the repository-wide scope) and name. The store keeps sealed bytes only; sealing and
// opening (bound to SecretAad) happen in the caller. *db must outlive the store.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/db.h"

namespace assay::store {

// What the API lists: never the value.
struct SecretInfo {
  std::string environment;  // "" : repository-wide
  std::string name;
  absl::Time created_at, updated_at;
};

struct SealedSecret {
  std::string environment, name;
  std::string sealed;
};

class SecretStore {
 public:
  explicit SecretStore(Db* db) : db_(db) {}
  // Inserts or replaces the value of (repo, environment, name). Returns true when it was
  // created, false when replaced. kNotFound when the repository does not exist;
  // kResourceExhausted when the scope already holds `max_per_scope` other secrets.
  absl::StatusOr<bool> Put(int64_t repo_id, const std::string& environment, const std::string& name,
                           const std::string& sealed, size_t max_per_scope);
  // Removes it; false when there was none. kNotFound when the repository does not exist.
  absl::StatusOr<bool> Delete(int64_t repo_id, const std::string& environment,
                              const std::string& name);
  // Every secret of the repository, ordered by environment ('' first) and name. kNotFound
  // when the repository does not exist.
  absl::StatusOr<std::vector<SecretInfo>> List(int64_t repo_id);
  // The sealed values among `names` in `environment` and in the repository-wide scope (both
  // rows when both exist; the caller prefers the environment's).
  absl::StatusOr<std::vector<SealedSecret>> ForJob(int64_t repo_id, const std::string& environment,
                                                   const std::vector<std::string>& names);
  // Replaces every sealed value with what `reseal(repo_id, secret)` returns, in one
  // transaction with the rows locked; nothing changes when it fails once. Returns the count.
  absl::StatusOr<int> Reseal(
      const std::function<absl::StatusOr<std::string>(int64_t, const SealedSecret&)>& reseal);

 private:
  Db* db_;
};

}  // namespace assay::store
