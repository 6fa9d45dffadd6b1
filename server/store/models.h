#pragma once
// The model registry (migration 0019, docs/models.md): registered models, their numbered
// versions (with the files copied from a job's artifact manifest, lineage, params, metrics,
// dataset digests), tags, and aliases whose every change is audited. *db must outlive the
// store.
//
// Errors: kInvalidArgument (a name, alias, tag or field breaks its rule, server/registry/
// model_input.h), kNotFound naming what is missing ("model 'm' not found", "model 'm' has no
// version 7", "model 'm' has no alias 'prod'", "job 12 not found"), kAlreadyExists,
// kFailedPrecondition (a job that has not succeeded or has no files under the path; a model
// that aliases point at), and the database's (store/db.h InTransaction).

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/registry/model_input.h"
#include "server/store/artifacts.h"
#include "server/store/db.h"

namespace assay::store {

struct RegisteredModel {
  int64_t id = 0;
  std::string name;
  std::string description;
  std::map<std::string, std::string> tags;
  std::map<std::string, int> aliases;  // alias → version
  int latest_version = 0;              // 0: none yet
  int versions = 0;
  absl::Time created_at, updated_at;
};

struct ModelVersion {
  int64_t id = 0;
  std::string model;
  int version = 0;
  std::string status;  // "ready" or "archived"
  std::string description;
  std::optional<int64_t> repo_id;
  std::string repo;        // its name; "" when gone
  std::string commit_sha;  // "" when registered without a job
  std::optional<int64_t> pipeline_id, job_id;
  std::string job_name;
  std::string source_path;  // the prefix of the job's artifact paths ("model/")
  std::string params_json = "{}", metrics_json = "{}", datasets_json = "[]";  // as stored
  std::optional<int> parent_version;
  int files = 0;
  int64_t bytes = 0;
  std::map<std::string, std::string> tags;
  std::vector<std::string> aliases;  // the aliases on this version, sorted
  absl::Time created_at;
  bool replayed = false;  // RegisterVersion found this version for the same request
};

struct RegisterVersionRequest {
  std::string model;  // created when absent
  int64_t job_id = 0;
  std::string path = "model/";      // NormalizeModelPath
  std::string params_json = "{}";   // CanonicalParams' output
  std::string metrics_json = "{}";  // CanonicalMetrics' output
  std::vector<registry::DatasetDigest> datasets;
  std::optional<registry::VersionRef> parent;  // within `model`
  std::map<std::string, std::string> tags;
  std::string description;
  absl::Time now;
};

// Who changes an alias, as the audit row records it.
struct AliasChange {
  std::string principal;             // "admin" (the API token), or "pipeline P job J"
  std::string client_addr;           // the client's address; "" for the pipeline
  std::optional<std::string> actor;  // what the client says about itself ($USER), unverified
  std::string reason;
  absl::Time now;
};

struct AliasResult {
  std::string alias;
  int version = 0;
  std::optional<int> previous;
  bool changed = false;  // false: it pointed at that version already (no audit row)
};

struct AliasEvent {
  int64_t id = 0;
  std::string alias;
  std::optional<int> from_version, to_version;
  std::string principal, client_addr;
  std::optional<std::string> actor;
  std::string reason;
  absl::Time at;
};

struct ModelFilter {
  std::string name_glob;                    // '*' any run, '?' one character; "" all
  std::map<std::string, std::string> tags;  // each must match exactly
  std::string after;                        // names after this one (the previous page's last)
  int limit = 50;
};

struct VersionFilter {
  std::map<std::string, std::string> tags;
  std::string alias;          // "" any
  std::optional<int> before;  // versions below this (the previous page's last)
  int limit = 50;
};

// Registers a version of req.model (creating the model when absent) from the files under
// req.path of job req.job_id's artifacts, inside `tx`: the REST handler runs it in its own
// transaction (ModelStore::RegisterVersion), the job-finish path of a `train:` step in the
// transaction that marks the job succeeded — after that update, since the job must be
// 'succeeded' as `tx` sees it. Concurrent registrations of one model are serialized on the
// model's row and get consecutive numbers. A replay (same model, job and path, same request)
// returns the version it made with replayed = true; the same job and path with a different
// request is kAlreadyExists. Validates every field (model_input.h) itself.
absl::StatusOr<ModelVersion> RegisterVersion(pqxx::work& tx, Connection& c,
                                             const RegisterVersionRequest& req);

// SetAlias and DeleteAlias inside `tx` (issue 12: a deployment moves an alias in the same
// transaction as the traffic change it records). AliasVersionIn: the version `alias` points at
// (nullopt: not set), the model's row locked; kNotFound when the model is missing.
absl::StatusOr<AliasResult> SetAliasIn(pqxx::work& tx, Connection& c, const std::string& name,
                                       const std::string& alias, const registry::VersionRef& to,
                                       const AliasChange& who);
absl::StatusOr<int> DeleteAliasIn(pqxx::work& tx, Connection& c, const std::string& name,
                                  const std::string& alias, const AliasChange& who);
absl::StatusOr<std::optional<int>> AliasVersionIn(pqxx::work& tx, Connection& c,
                                                  const std::string& name,
                                                  const std::string& alias);

class ModelStore {
 public:
  explicit ModelStore(Db* db) : db_(db) {}

  absl::StatusOr<RegisteredModel> CreateModel(const std::string& name,
                                              const std::string& description,
                                              const std::map<std::string, std::string>& tags,
                                              absl::Time now);
  absl::StatusOr<RegisteredModel> GetModel(const std::string& name);
  // Names in byte order; at most filter.limit (1 to 1000).
  absl::StatusOr<std::vector<RegisteredModel>> ListModels(const ModelFilter& filter);
  absl::StatusOr<RegisteredModel> UpdateModel(const std::string& name,
                                              const std::string& description, absl::Time now);
  // kFailedPrecondition naming the aliases while any points at one of its versions, unless
  // `force`. Deletes every version with it; the alias audit rows stay (model_id NULL).
  absl::Status DeleteModel(const std::string& name, bool force);
  absl::Status SetModelTag(const std::string& name, const std::string& key,
                           const std::string& value, absl::Time now);
  absl::Status DeleteModelTag(const std::string& name, const std::string& key);
  // (name, versions) of every model, by name: assay_model_versions at scrape time.
  absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> VersionsPerModel();

  absl::StatusOr<ModelVersion> RegisterVersion(const RegisterVersionRequest& req);
  absl::StatusOr<ModelVersion> GetVersion(const std::string& name, const registry::VersionRef& ref);
  // Newest first.
  absl::StatusOr<std::vector<ModelVersion>> ListVersions(const std::string& name,
                                                         const VersionFilter& filter);
  // Changes what is given; status "ready" or "archived".
  absl::StatusOr<ModelVersion> UpdateVersion(const std::string& name,
                                             const registry::VersionRef& ref,
                                             const std::optional<std::string>& description,
                                             const std::optional<std::string>& status);
  absl::Status SetVersionTag(const std::string& name, const registry::VersionRef& ref,
                             const std::string& key, const std::string& value);
  absl::Status DeleteVersionTag(const std::string& name, const registry::VersionRef& ref,
                                const std::string& key);

  // The version's files (paths relative to its source_path) in path order.
  absl::StatusOr<std::vector<ArtifactFileRow>> Files(const std::string& name,
                                                     const registry::VersionRef& ref);
  // nullopt when the version has no such file.
  absl::StatusOr<std::optional<ArtifactFileRow>> File(const std::string& name,
                                                      const registry::VersionRef& ref,
                                                      const std::string& path);

  // Points `alias` at version `to` (a number or another alias), one audit row when it moved.
  // An archived version cannot take an alias (kFailedPrecondition).
  absl::StatusOr<AliasResult> SetAlias(const std::string& name, const std::string& alias,
                                       const registry::VersionRef& to, const AliasChange& who);
  // kNotFound when the alias is not set. Returns the version it pointed at.
  absl::StatusOr<int> DeleteAlias(const std::string& name, const std::string& alias,
                                  const AliasChange& who);
  // Newest first, at most `limit`.
  absl::StatusOr<std::vector<AliasEvent>> AliasHistory(const std::string& name,
                                                       const std::string& alias, int limit);

 private:
  Db* db_;
};

}  // namespace assay::store
