#include "server/store/secrets.h"

#include "absl/strings/str_cat.h"

namespace assay::store {
namespace {

const Query kLockRepoForSecrets{"secret_lock_repo", "SELECT 1 FROM repos WHERE id = $1 FOR UPDATE"};
const Query kRepoExistsForSecrets{"secret_repo_exists", "SELECT 1 FROM repos WHERE id = $1"};
const Query kCountSecretScope{"secret_count_scope",
                              "SELECT count(*) FROM repo_secrets WHERE repo_id = $1 "
                              "AND environment = $2 AND name <> $3"};
const Query kUpsertSecret{
    "secret_upsert",
    "INSERT INTO repo_secrets (repo_id, environment, name, value_enc) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (repo_id, environment, name) DO UPDATE SET value_enc = EXCLUDED.value_enc, "
    "updated_at = now() RETURNING (xmax = 0)"};
const Query kDeleteSecret{"secret_delete",
                          "DELETE FROM repo_secrets WHERE repo_id = $1 AND environment = $2 "
                          "AND name = $3"};
const Query kListSecrets{"secret_list",
                         "SELECT environment, name, " ASSAY_EPOCH_US("created_at") ", "
                         ASSAY_EPOCH_US("updated_at") " FROM repo_secrets WHERE repo_id = $1 "
                         "ORDER BY environment, name"};
const Query kSecretsForJob{"secret_for_job",
                           "SELECT environment, name, value_enc FROM repo_secrets "
                           "WHERE repo_id = $1 AND environment IN ('', $2) "
                           "AND name = ANY($3::text[]) ORDER BY name, environment"};
const Query kAllSecretsLocked{"secret_all_locked",
                              "SELECT repo_id, environment, name, value_enc FROM repo_secrets "
                              "ORDER BY repo_id, environment, name FOR UPDATE"};
const Query kResealSecret{"secret_reseal",
                          "UPDATE repo_secrets SET value_enc = $4 WHERE repo_id = $1 "
                          "AND environment = $2 AND name = $3"};

absl::Status NoRepo(int64_t repo_id) {
  return absl::NotFoundError(absl::StrCat("repository ", repo_id, " does not exist"));
}

}  // namespace

absl::StatusOr<bool> SecretStore::Put(int64_t repo_id, const std::string& environment,
                                      const std::string& name, const std::string& sealed,
                                      size_t max_per_scope) {
  bool created = false;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    // Why lock the repository row: puts of one repository are serialised, so the count below
    // cannot be raced past the limit.
    if (Exec(tx, c, kLockRepoForSecrets, {repo_id}).empty()) return NoRepo(repo_id);
    const int64_t n =
        Exec(tx, c, kCountSecretScope, {repo_id, environment, name})[0][0].as<int64_t>();
    if (n >= static_cast<int64_t>(max_per_scope)) {
      return absl::ResourceExhaustedError(
          absl::StrCat("repository ", repo_id, " already has ", n, " secrets in ",
                       environment.empty() ? std::string("its repository-wide scope")
                                           : absl::StrCat("environment '", environment, "'"),
                       " (the limit is ", max_per_scope, ")"));
    }
    created = Exec(tx, c, kUpsertSecret, {repo_id, environment, name, Param::Bytes(sealed)})[0][0]
                  .as<bool>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return created;
}

absl::StatusOr<bool> SecretStore::Delete(int64_t repo_id, const std::string& environment,
                                         const std::string& name) {
  bool deleted = false;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    if (Exec(tx, c, kRepoExistsForSecrets, {repo_id}).empty()) return NoRepo(repo_id);
    deleted = Exec(tx, c, kDeleteSecret, {repo_id, environment, name}).affected_rows() > 0;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return deleted;
}

absl::StatusOr<std::vector<SecretInfo>> SecretStore::List(int64_t repo_id) {
  std::vector<SecretInfo> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    if (Exec(tx, c, kRepoExistsForSecrets, {repo_id}).empty()) return NoRepo(repo_id);
    for (const auto& r : Exec(tx, c, kListSecrets, {repo_id})) {
      out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), ToTime(r[2]), ToTime(r[3])});
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<SealedSecret>> SecretStore::ForJob(
    int64_t repo_id, const std::string& environment, const std::vector<std::string>& names) {
  std::vector<SealedSecret> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r :
         Exec(tx, c, kSecretsForJob, {repo_id, environment, ToPgTextArray(names)})) {
      out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), BytesOf(r[2])});
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<int> SecretStore::Reseal(
    const std::function<absl::StatusOr<std::string>(int64_t, const SealedSecret&)>& reseal) {
  int n = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    n = 0;
    for (const auto& r : Exec(tx, c, kAllSecretsLocked)) {
      const int64_t repo_id = r[0].as<int64_t>();
      SealedSecret cell{r[1].as<std::string>(), r[2].as<std::string>(), BytesOf(r[3])};
      auto v = reseal(repo_id, cell);
      if (!v.ok()) return v.status();
      Exec(tx, c, kResealSecret, {repo_id, cell.environment, cell.name, Param::Bytes(*v)});
      ++n;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return n;
}

}  // namespace assay::store
