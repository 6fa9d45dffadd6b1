#include "server/store/models.h"

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto/crypto.h"

namespace assay::store {
namespace {

namespace json = boost::json;
using registry::VersionRef;

const Query kModelId{"model_id", "SELECT id FROM models WHERE name = $1"};
const Query kModelIdLock{"model_id_lock", "SELECT id FROM models WHERE name = $1 FOR UPDATE"};
const Query kInsertModel{
    "model_insert",
    "INSERT INTO models (name, description, created_at, updated_at) VALUES ($1, $2, $3, $3) "
    "ON CONFLICT (name) DO NOTHING RETURNING id"};
const Query kEnsureModel{"model_ensure",
                         "INSERT INTO models (name, created_at, updated_at) VALUES ($1, $2, $2) "
                         "ON CONFLICT (name) DO NOTHING"};
#define ASSAY_MODEL_ROW \
  "SELECT m.id, m.name, m.description, m.last_version, "                                       \
  "(SELECT count(*) FROM model_versions v WHERE v.model_id = m.id), "                          \
  ASSAY_EPOCH_US("m.created_at") ", " ASSAY_EPOCH_US("m.updated_at") ", "                      \
  "ARRAY(SELECT key FROM model_tags t WHERE t.model_id = m.id ORDER BY key COLLATE \"C\"), "   \
  "ARRAY(SELECT value FROM model_tags t WHERE t.model_id = m.id ORDER BY key COLLATE \"C\"), " \
  "ARRAY(SELECT alias FROM model_aliases a WHERE a.model_id = m.id "                           \
  "ORDER BY alias COLLATE \"C\"), "                                                            \
  "ARRAY(SELECT version::text FROM model_aliases a WHERE a.model_id = m.id "                   \
  "ORDER BY alias COLLATE \"C\") "                                                             \
  "FROM models m "
const Query kGetModel{"model_get", ASSAY_MODEL_ROW "WHERE m.name = $1"};
// $3/$4: tag keys and values, each of which the model must carry.
const Query kListModels{
    "model_list", ASSAY_MODEL_ROW
    "WHERE ($1 = '' OR m.name LIKE $1 ESCAPE '\\') AND m.name COLLATE \"C\" > $2 "
    "AND NOT EXISTS (SELECT 1 FROM unnest($3::text[], $4::text[]) AS f(k, v) WHERE NOT EXISTS "
    "(SELECT 1 FROM model_tags t WHERE t.model_id = m.id AND t.key = f.k AND t.value = f.v)) "
    "ORDER BY m.name COLLATE \"C\" LIMIT $5"};
const Query kUpdateModel{"model_update",
                         "UPDATE models SET description = $2, updated_at = $3 WHERE name = $1 "
                         "RETURNING id"};
const Query kTouchModel{"model_touch", "UPDATE models SET updated_at = $2 WHERE id = $1"};
const Query kModelAliases{
    "model_aliases",
    "SELECT alias, version FROM model_aliases WHERE model_id = $1 ORDER BY alias COLLATE \"C\""};
const Query kDeleteModel{"model_delete", "DELETE FROM models WHERE id = $1"};
const Query kCountModelTags{"model_count_tags",
                            "SELECT count(*) FROM model_tags WHERE model_id = $1"};
const Query kSetModelTag{"model_set_tag",
                         "INSERT INTO model_tags (model_id, key, value) VALUES ($1, $2, $3) "
                         "ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value"};
const Query kDeleteModelTag{"model_delete_tag",
                            "DELETE FROM model_tags WHERE model_id = $1 AND key = $2"};
const Query kVersionsPerModel{
    "model_versions_per_model",
    "SELECT m.name, (SELECT count(*) FROM model_versions v WHERE v.model_id = m.id) "
    "FROM models m ORDER BY m.name COLLATE \"C\""};
const Query kInsertModelTags{"model_insert_tags",
                             "INSERT INTO model_tags (model_id, key, value) "
                             "SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS t(k, v)"};

const Query kJobSource{"model_job_source",
                       "SELECT j.state, j.name, j.pipeline_id, p.repo_id, p.commit_sha "
                       "FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id WHERE j.id = $1"};
const Query kExistingVersion{"model_existing_version",
                             "SELECT version, request_sha256 FROM model_versions "
                             "WHERE model_id = $1 AND job_id = $2 AND source_path = $3"};
// Why FOR SHARE: the artifact sweeper deletes expired manifests FOR UPDATE SKIP LOCKED, so it
// leaves this one (and so its chunk references) until the version's own references exist.
const Query kLockArtifacts{"model_lock_artifacts",
                           "SELECT files FROM artifacts WHERE job_id = $1 FOR SHARE"};
#define ASSAY_UNDER_PREFIX \
  "job_id = $1 AND left(path, length($2)) = $2 AND length(path) > length($2)"
const Query kPrefixTotals{"model_prefix_totals",
                          "SELECT count(*), coalesce(sum(size), 0)::bigint FROM artifact_files "
                          "WHERE " ASSAY_UNDER_PREFIX};
const Query kAliasVersion{"model_alias_version",
                          "SELECT version FROM model_aliases WHERE model_id = $1 AND alias = $2"};
const Query kVersionState{
    "model_version_state",
    "SELECT id, status FROM model_versions WHERE model_id = $1 AND version = $2"};
const Query kNextVersion{"model_next_version",
                         "UPDATE models SET last_version = last_version + 1, updated_at = $2 "
                         "WHERE id = $1 RETURNING last_version"};
const Query kInsertVersion{
    "model_insert_version",
    "INSERT INTO model_versions (model_id, version, description, repo_id, commit_sha, "
    "pipeline_id, job_id, job_name, source_path, params, metrics, datasets, parent_version, "
    "files, bytes, request_sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
    "$10::jsonb, $11::jsonb, $12::jsonb, $13, $14, $15, $16, $17) RETURNING id"};
// $1 version id, $2 job id, $3 prefix: the job's files under the prefix, the prefix cut off.
const Query kCopyFiles{
    "model_copy_files",
    "INSERT INTO model_version_files (version_id, path, size, mode, sha256, chunks) "
    "SELECT $1, substr(path, length($3) + 1), size, mode, sha256, chunks FROM artifact_files "
    "WHERE job_id = $2 AND left(path, length($3)) = $3 AND length(path) > length($3)"};
const Query kInsertChunkRefs{"model_insert_chunk_refs",
                             "INSERT INTO model_chunk_refs (version_id, sha256) "
                             "SELECT DISTINCT $1::bigint, c FROM model_version_files f, "
                             "unnest(f.chunks) AS c WHERE f.version_id = $1"};
const Query kInsertVersionTags{"model_insert_version_tags",
                               "INSERT INTO model_version_tags (version_id, key, value) "
                               "SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS t(k, v)"};
#define ASSAY_VERSION_ROW \
  "SELECT v.id, m.name, v.version, v.status, v.description, v.repo_id, coalesce(r.name, ''), " \
  "coalesce(v.commit_sha, ''), v.pipeline_id, v.job_id, v.job_name, v.source_path, "           \
  "v.params::text, v.metrics::text, v.datasets::text, v.parent_version, v.files, v.bytes, "    \
  ASSAY_EPOCH_US("v.created_at") ", "                                                          \
  "ARRAY(SELECT key FROM model_version_tags t WHERE t.version_id = v.id "                      \
  "ORDER BY key COLLATE \"C\"), "                                                              \
  "ARRAY(SELECT value FROM model_version_tags t WHERE t.version_id = v.id "                    \
  "ORDER BY key COLLATE \"C\"), "                                                              \
  "ARRAY(SELECT alias FROM model_aliases a WHERE a.model_id = v.model_id "                     \
  "AND a.version = v.version ORDER BY alias COLLATE \"C\") "                                   \
  "FROM model_versions v JOIN models m ON m.id = v.model_id "                                  \
  "LEFT JOIN repos r ON r.id = v.repo_id "
const Query kGetVersion{"model_get_version",
                        ASSAY_VERSION_ROW "WHERE v.model_id = $1 AND v.version = $2"};
const Query kListVersions{
    "model_list_versions", ASSAY_VERSION_ROW
    "WHERE v.model_id = $1 AND ($2 = '' OR EXISTS (SELECT 1 FROM model_aliases a "
    "WHERE a.model_id = v.model_id AND a.version = v.version AND a.alias = $2)) "
    "AND ($3::int IS NULL OR v.version < $3::int) "
    "AND NOT EXISTS (SELECT 1 FROM unnest($4::text[], $5::text[]) AS f(k, v) WHERE NOT EXISTS "
    "(SELECT 1 FROM model_version_tags t WHERE t.version_id = v.id AND t.key = f.k "
    "AND t.value = f.v)) ORDER BY v.version DESC LIMIT $6"};
const Query kUpdateVersion{"model_update_version",
                           "UPDATE model_versions SET description = coalesce($3, description), "
                           "status = coalesce($4, status) WHERE model_id = $1 AND version = $2"};
const Query kCountVersionTags{"model_count_version_tags",
                              "SELECT count(*) FROM model_version_tags WHERE version_id = $1"};
const Query kSetVersionTag{
    "model_set_version_tag",
    "INSERT INTO model_version_tags (version_id, key, value) VALUES ($1, $2, $3) "
    "ON CONFLICT (version_id, key) DO UPDATE SET value = excluded.value"};
const Query kDeleteVersionTag{"model_delete_version_tag",
                              "DELETE FROM model_version_tags WHERE version_id = $1 AND key = $2"};
const Query kVersionFiles{"model_version_files",
                          "SELECT path, size, mode, sha256, chunks FROM model_version_files "
                          "WHERE version_id = $1 ORDER BY path COLLATE \"C\""};
const Query kVersionFile{"model_version_file",
                         "SELECT path, size, mode, sha256, chunks FROM model_version_files "
                         "WHERE version_id = $1 AND path = $2"};

const Query kUpsertAlias{
    "model_upsert_alias",
    "INSERT INTO model_aliases (model_id, alias, version, updated_at) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (model_id, alias) DO UPDATE SET version = excluded.version, "
    "updated_at = excluded.updated_at"};
const Query kDeleteAlias{
    "model_delete_alias",
    "DELETE FROM model_aliases WHERE model_id = $1 AND alias = $2 RETURNING version"};
const Query kInsertAliasEvent{
    "model_insert_alias_event",
    "INSERT INTO model_alias_events (model_id, model_name, alias, from_version, to_version, "
    "principal, client_addr, actor, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"};
const Query kAliasHistory{"model_alias_history",
                          "SELECT id, alias, from_version, to_version, principal, client_addr, "
                          "actor, reason, " ASSAY_EPOCH_US("at") " FROM model_alias_events "
                          "WHERE model_id = $1 AND alias = $2 ORDER BY id DESC LIMIT $3"};

absl::Status ModelNotFound(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("model '", name, "' not found"));
}

std::map<std::string, std::string> Zip(const pqxx::field& keys, const pqxx::field& values) {
  std::vector<std::string> k = FromPgTextArray(keys), v = FromPgTextArray(values);
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < k.size() && i < v.size(); ++i) out[k[i]] = v[i];
  return out;
}

RegisteredModel ModelOf(const pqxx::row& r) {
  RegisteredModel m;
  m.id = r[0].as<int64_t>();
  m.name = r[1].as<std::string>();
  m.description = r[2].as<std::string>();
  m.latest_version = r[3].as<int>();
  m.versions = r[4].as<int>();
  m.created_at = ToTime(r[5]);
  m.updated_at = ToTime(r[6]);
  m.tags = Zip(r[7], r[8]);
  for (const auto& [alias, version] : Zip(r[9], r[10])) m.aliases[alias] = std::stoi(version);
  return m;
}

ModelVersion VersionOf(const pqxx::row& r) {
  ModelVersion v;
  v.id = r[0].as<int64_t>();
  v.model = r[1].as<std::string>();
  v.version = r[2].as<int>();
  v.status = r[3].as<std::string>();
  v.description = r[4].as<std::string>();
  if (!r[5].is_null()) v.repo_id = r[5].as<int64_t>();
  v.repo = r[6].as<std::string>();
  v.commit_sha = r[7].as<std::string>();
  if (!r[8].is_null()) v.pipeline_id = r[8].as<int64_t>();
  if (!r[9].is_null()) v.job_id = r[9].as<int64_t>();
  v.job_name = r[10].as<std::string>();
  v.source_path = r[11].as<std::string>();
  v.params_json = r[12].as<std::string>();
  v.metrics_json = r[13].as<std::string>();
  v.datasets_json = r[14].as<std::string>();
  if (!r[15].is_null()) v.parent_version = r[15].as<int>();
  v.files = r[16].as<int>();
  v.bytes = r[17].as<int64_t>();
  v.created_at = ToTime(r[18]);
  v.tags = Zip(r[19], r[20]);
  v.aliases = FromPgTextArray(r[21]);
  return v;
}

// The model's id; with `lock`, its row locked until `tx` ends.
absl::StatusOr<int64_t> ModelId(pqxx::work& tx, Connection& c, const std::string& name,
                                bool lock = false) {
  if (absl::Status s = registry::ValidateModelName(name); !s.ok()) return s;
  auto res = Exec(tx, c, lock ? kModelIdLock : kModelId, {name});
  if (res.empty()) return ModelNotFound(name);
  return res[0][0].as<int64_t>();
}

// The version number `ref` names in model `model_id` (which is named `name`).
absl::StatusOr<int> Resolve(pqxx::work& tx, Connection& c, int64_t model_id,
                            const std::string& name, const VersionRef& ref) {
  if (ref.version) {
    if (Exec(tx, c, kVersionState, {model_id, *ref.version}).empty()) {
      return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ", *ref.version));
    }
    return *ref.version;
  }
  if (absl::Status s = registry::ValidateAlias(ref.alias); !s.ok()) return s;
  auto res = Exec(tx, c, kAliasVersion, {model_id, ref.alias});
  if (res.empty()) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no alias '", ref.alias, "'"));
  }
  return res[0][0].as<int>();
}

absl::StatusOr<ModelVersion> ReadVersion(pqxx::work& tx, Connection& c, int64_t model_id,
                                         int version) {
  auto res = Exec(tx, c, kGetVersion, {model_id, version});
  if (res.empty()) return absl::NotFoundError(absl::StrCat("version ", version, " not found"));
  return VersionOf(res[0]);
}

// The version `ref` names: its row id and number.
struct VersionKey {
  int64_t model_id = 0;
  int version = 0;
  int64_t id = 0;
  std::string status;
};
absl::StatusOr<VersionKey> FindVersion(pqxx::work& tx, Connection& c, const std::string& name,
                                       const VersionRef& ref, bool lock_model = false) {
  auto model_id = ModelId(tx, c, name, lock_model);
  if (!model_id.ok()) return model_id.status();
  auto version = Resolve(tx, c, *model_id, name, ref);
  if (!version.ok()) return version.status();
  auto res = Exec(tx, c, kVersionState, {*model_id, *version});
  if (res.empty()) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ", *version));
  }
  return VersionKey{*model_id, *version, res[0][0].as<int64_t>(), res[0][1].as<std::string>()};
}

void SplitTags(const std::map<std::string, std::string>& tags, std::vector<std::string>* keys,
               std::vector<std::string>* values) {
  for (const auto& [k, v] : tags) {
    keys->push_back(k);
    values->push_back(v);
  }
}

// SHA-256 of the request's every field, for recognising a replay.
std::string RequestDigest(const RegisterVersionRequest& r, const std::string& path) {
  json::object tags;
  for (const auto& [k, v] : r.tags) tags[k] = v;
  json::object o{{"job_id", r.job_id},
                 {"path", path},
                 {"params", r.params_json},
                 {"metrics", r.metrics_json},
                 {"datasets", registry::DatasetsJson(r.datasets)},
                 {"parent", r.parent ? r.parent->text() : ""},
                 {"tags", std::move(tags)},
                 {"description", r.description}};
  return HexSha256(json::serialize(o));
}

// Checks that the stored JSON of a request is what the registry accepts (the job-finish path
// may build the request by hand).
absl::Status ValidateJsonFields(const RegisterVersionRequest& r) {
  json::error_code ec;
  json::value params = json::parse(r.params_json, ec);
  if (ec) return absl::InvalidArgumentError("field 'params' is not valid JSON");
  if (auto s = registry::CanonicalParams(params); !s.ok()) return s.status();
  json::value metrics = json::parse(r.metrics_json, ec);
  if (ec) return absl::InvalidArgumentError("field 'metrics' is not valid JSON");
  if (auto s = registry::CanonicalMetrics(metrics); !s.ok()) return s.status();
  json::value datasets = json::parse(registry::DatasetsJson(r.datasets), ec);
  if (ec) return absl::InvalidArgumentError("field 'datasets' is not valid JSON");
  if (auto s = registry::ParseDatasets(datasets); !s.ok()) return s.status();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelVersion> RegisterVersion(pqxx::work& tx, Connection& c,
                                             const RegisterVersionRequest& req) {
  if (absl::Status s = registry::ValidateModelName(req.model); !s.ok()) return s;
  auto path = registry::NormalizeModelPath(req.path);
  if (!path.ok()) return path.status();
  if (absl::Status s = registry::ValidateTags(req.tags); !s.ok()) return s;
  if (absl::Status s = registry::ValidateText("field 'description'", req.description,
                                              registry::kMaxDescriptionBytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateJsonFields(req); !s.ok()) return s;
  if (req.job_id <= 0) return absl::InvalidArgumentError("field 'job_id' must be positive");

  Exec(tx, c, kEnsureModel, {req.model, req.now});
  // Why the model's row locked first: registrations of one model are serialized here, so the
  // replay check and the number below see every earlier registration.
  auto model_id = ModelId(tx, c, req.model, /*lock=*/true);
  if (!model_id.ok()) return model_id.status();

  auto job = Exec(tx, c, kJobSource, {req.job_id});
  if (job.empty()) return absl::NotFoundError(absl::StrCat("job ", req.job_id, " not found"));
  const std::string state = job[0][0].as<std::string>();
  if (state != "succeeded") {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", req.job_id, " is ", state, "; only a succeeded job's artifacts can be registered"));
  }
  const std::string digest = RequestDigest(req, *path);
  if (auto prior = Exec(tx, c, kExistingVersion, {*model_id, req.job_id, *path}); !prior.empty()) {
    const int v = prior[0][0].as<int>();
    if (prior[0][1].as<std::string>() != digest) {
      return absl::AlreadyExistsError(absl::StrCat("job ", req.job_id, "'s '", *path,
                                                   "' is already version ", v, " of '", req.model,
                                                   "' (registered with other fields)"));
    }
    auto existing = ReadVersion(tx, c, *model_id, v);
    if (existing.ok()) existing->replayed = true;
    return existing;
  }
  std::optional<int> parent;
  if (req.parent) {
    auto p = Resolve(tx, c, *model_id, req.model, *req.parent);
    if (!p.ok()) {
      return absl::Status(p.status().code(),
                          absl::StrCat("parent version: ", p.status().message()));
    }
    parent = *p;
  }
  if (Exec(tx, c, kLockArtifacts, {req.job_id}).empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", req.job_id, " has no artifacts (none uploaded, or expired)"));
  }
  auto totals = Exec(tx, c, kPrefixTotals, {req.job_id, *path});
  const int files = totals[0][0].as<int>();
  const int64_t bytes = totals[0][1].as<int64_t>();
  if (files == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", req.job_id, " has no artifact files under '", *path, "'"));
  }
  const int version = Exec(tx, c, kNextVersion, {*model_id, req.now})[0][0].as<int>();
  const int64_t version_id = Exec(tx, c, kInsertVersion,
                                  {*model_id, version, req.description, job[0][3].as<int64_t>(),
                                   job[0][4].as<std::string>(), job[0][2].as<int64_t>(), req.job_id,
                                   job[0][1].as<std::string>(), *path, req.params_json,
                                   req.metrics_json, registry::DatasetsJson(req.datasets),
                                   Param::Opt(parent), files, bytes, digest, req.now})[0][0]
                                 .as<int64_t>();
  Exec(tx, c, kCopyFiles, {version_id, req.job_id, *path});
  Exec(tx, c, kInsertChunkRefs, {version_id});
  std::vector<std::string> keys, values;
  SplitTags(req.tags, &keys, &values);
  Exec(tx, c, kInsertVersionTags, {version_id, ToPgTextArray(keys), ToPgTextArray(values)});
  return ReadVersion(tx, c, *model_id, version);
}

absl::StatusOr<RegisteredModel> ModelStore::CreateModel(
    const std::string& name, const std::string& description,
    const std::map<std::string, std::string>& tags, absl::Time now) {
  if (absl::Status s = registry::ValidateModelName(name); !s.ok()) return s;
  if (absl::Status s = registry::ValidateText("field 'description'", description,
                                              registry::kMaxDescriptionBytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = registry::ValidateTags(tags); !s.ok()) return s;
  RegisteredModel out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto id = Exec(tx, c, kInsertModel, {name, description, now});
    if (id.empty()) {
      return absl::AlreadyExistsError(absl::StrCat("model '", name, "' exists already"));
    }
    std::vector<std::string> keys, values;
    SplitTags(tags, &keys, &values);
    Exec(tx, c, kInsertModelTags,
         {id[0][0].as<int64_t>(), ToPgTextArray(keys), ToPgTextArray(values)});
    out = ModelOf(Exec(tx, c, kGetModel, {name})[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<RegisteredModel> ModelStore::GetModel(const std::string& name) {
  if (absl::Status s = registry::ValidateModelName(name); !s.ok()) return s;
  RegisteredModel out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto res = Exec(tx, c, kGetModel, {name});
    if (res.empty()) return ModelNotFound(name);
    out = ModelOf(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<RegisteredModel>> ModelStore::ListModels(const ModelFilter& f) {
  // The glob as a LIKE pattern: '*' → '%', '?' → '_', LIKE's own characters escaped.
  std::string like;
  for (char ch : f.name_glob) {
    if (ch == '*') {
      like += '%';
    } else if (ch == '?') {
      like += '_';
    } else {
      if (ch == '%' || ch == '_' || ch == '\\') like += '\\';
      like += ch;
    }
  }
  std::vector<std::string> keys, values;
  SplitTags(f.tags, &keys, &values);
  std::vector<RegisteredModel> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& r :
         Exec(tx, c, kListModels,
              {like, f.after, ToPgTextArray(keys), ToPgTextArray(values), f.limit})) {
      out.push_back(ModelOf(r));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<RegisteredModel> ModelStore::UpdateModel(const std::string& name,
                                                        const std::string& description,
                                                        absl::Time now) {
  if (absl::Status s = registry::ValidateModelName(name); !s.ok()) return s;
  if (absl::Status s = registry::ValidateText("field 'description'", description,
                                              registry::kMaxDescriptionBytes);
      !s.ok()) {
    return s;
  }
  RegisteredModel out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    if (Exec(tx, c, kUpdateModel, {name, description, now}).empty()) return ModelNotFound(name);
    out = ModelOf(Exec(tx, c, kGetModel, {name})[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status ModelStore::DeleteModel(const std::string& name, bool force) {
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto id = ModelId(tx, c, name, /*lock=*/true);
    if (!id.ok()) return id.status();
    std::vector<std::string> aliases;
    for (const auto& r : Exec(tx, c, kModelAliases, {*id})) {
      aliases.push_back(absl::StrCat(r[0].as<std::string>(), " → ", r[1].as<int>()));
    }
    if (!aliases.empty() && !force) {
      return absl::FailedPreconditionError(
          absl::StrCat("model '", name, "' has aliases (", absl::StrJoin(aliases, ", "),
                       "); delete them first, or delete with force=true"));
    }
    Exec(tx, c, kDeleteModel, {*id});
    return absl::OkStatus();
  });
}

absl::Status ModelStore::SetModelTag(const std::string& name, const std::string& key,
                                     const std::string& value, absl::Time now) {
  if (absl::Status s = registry::ValidateTags({{key, value}}); !s.ok()) return s;
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto id = ModelId(tx, c, name, /*lock=*/true);
    if (!id.ok()) return id.status();
    Exec(tx, c, kSetModelTag, {*id, key, value});
    const int64_t n = Exec(tx, c, kCountModelTags, {*id})[0][0].as<int64_t>();
    if (n > static_cast<int64_t>(registry::kMaxTags)) {
      return absl::InvalidArgumentError(absl::StrCat("model '", name, "' has ", registry::kMaxTags,
                                                     " tags already; at most that many"));
    }
    Exec(tx, c, kTouchModel, {*id, now});
    return absl::OkStatus();
  });
}

absl::Status ModelStore::DeleteModelTag(const std::string& name, const std::string& key) {
  if (absl::Status s = registry::ValidateTagKey(key); !s.ok()) return s;
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto id = ModelId(tx, c, name);
    if (!id.ok()) return id.status();
    if (Exec(tx, c, kDeleteModelTag, {*id, key}).affected_rows() == 0) {
      return absl::NotFoundError(absl::StrCat("model '", name, "' has no tag '", key, "'"));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> ModelStore::VersionsPerModel() {
  std::vector<std::pair<std::string, int64_t>> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& r : Exec(tx, c, kVersionsPerModel)) {
      out.emplace_back(r[0].as<std::string>(), r[1].as<int64_t>());
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<ModelVersion> ModelStore::RegisterVersion(const RegisterVersionRequest& req) {
  ModelVersion out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto v = store::RegisterVersion(tx, c, req);
    if (!v.ok()) return v.status();
    out = *std::move(v);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<ModelVersion> ModelStore::GetVersion(const std::string& name,
                                                    const VersionRef& ref) {
  ModelVersion out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto key = FindVersion(tx, c, name, ref);
    if (!key.ok()) return key.status();
    auto v = ReadVersion(tx, c, key->model_id, key->version);
    if (!v.ok()) return v.status();
    out = *std::move(v);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<ModelVersion>> ModelStore::ListVersions(const std::string& name,
                                                                   const VersionFilter& f) {
  std::vector<std::string> keys, values;
  SplitTags(f.tags, &keys, &values);
  std::vector<ModelVersion> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    auto id = ModelId(tx, c, name);
    if (!id.ok()) return id.status();
    for (const auto& r : Exec(tx, c, kListVersions,
                              {*id, f.alias, Param::Opt(f.before), ToPgTextArray(keys),
                               ToPgTextArray(values), f.limit})) {
      out.push_back(VersionOf(r));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<ModelVersion> ModelStore::UpdateVersion(
    const std::string& name, const VersionRef& ref, const std::optional<std::string>& description,
    const std::optional<std::string>& status) {
  if (description) {
    if (absl::Status s = registry::ValidateText("field 'description'", *description,
                                                registry::kMaxDescriptionBytes);
        !s.ok()) {
      return s;
    }
  }
  if (status && *status != "ready" && *status != "archived") {
    return absl::InvalidArgumentError("field 'status' must be \"ready\" or \"archived\"");
  }
  ModelVersion out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto key = FindVersion(tx, c, name, ref, /*lock_model=*/true);
    if (!key.ok()) return key.status();
    if (status == "archived") {
      auto current = ReadVersion(tx, c, key->model_id, key->version);
      if (!current.ok()) return current.status();
      if (!current->aliases.empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat("version ", key->version, " of '", name, "' has aliases (",
                         absl::StrJoin(current->aliases, ", "), "); move them before archiving"));
      }
    }
    Exec(tx, c, kUpdateVersion,
         {key->model_id, key->version, Param::Opt(description), Param::Opt(status)});
    auto v = ReadVersion(tx, c, key->model_id, key->version);
    if (!v.ok()) return v.status();
    out = *std::move(v);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status ModelStore::SetVersionTag(const std::string& name, const VersionRef& ref,
                                       const std::string& key, const std::string& value) {
  if (absl::Status s = registry::ValidateTags({{key, value}}); !s.ok()) return s;
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto v = FindVersion(tx, c, name, ref, /*lock_model=*/true);
    if (!v.ok()) return v.status();
    Exec(tx, c, kSetVersionTag, {v->id, key, value});
    if (Exec(tx, c, kCountVersionTags, {v->id})[0][0].as<int64_t>() >
        static_cast<int64_t>(registry::kMaxTags)) {
      return absl::InvalidArgumentError(absl::StrCat("version ", v->version, " of '", name,
                                                     "' has ", registry::kMaxTags,
                                                     " tags already; at most that many"));
    }
    return absl::OkStatus();
  });
}

absl::Status ModelStore::DeleteVersionTag(const std::string& name, const VersionRef& ref,
                                          const std::string& key) {
  if (absl::Status s = registry::ValidateTagKey(key); !s.ok()) return s;
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto v = FindVersion(tx, c, name, ref);
    if (!v.ok()) return v.status();
    if (Exec(tx, c, kDeleteVersionTag, {v->id, key}).affected_rows() == 0) {
      return absl::NotFoundError(
          absl::StrCat("version ", v->version, " of '", name, "' has no tag '", key, "'"));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<ArtifactFileRow>> ModelStore::Files(const std::string& name,
                                                               const VersionRef& ref) {
  std::vector<ArtifactFileRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    auto v = FindVersion(tx, c, name, ref);
    if (!v.ok()) return v.status();
    for (const auto& r : Exec(tx, c, kVersionFiles, {v->id})) out.push_back(FileOf(r));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<ArtifactFileRow>> ModelStore::File(const std::string& name,
                                                                const VersionRef& ref,
                                                                const std::string& path) {
  std::optional<ArtifactFileRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.reset();
    auto v = FindVersion(tx, c, name, ref);
    if (!v.ok()) return v.status();
    auto res = Exec(tx, c, kVersionFile, {v->id, path});
    if (!res.empty()) out = FileOf(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

namespace {

absl::Status ValidateChange(const AliasChange& who) {
  if (absl::Status s =
          registry::ValidateText("field 'reason'", who.reason, registry::kMaxReasonBytes);
      !s.ok()) {
    return s;
  }
  if (who.actor) {
    if (absl::Status s =
            registry::ValidateText("field 'actor'", *who.actor, registry::kMaxActorBytes);
        !s.ok()) {
      return s;
    }
  }
  if (who.principal.empty()) return absl::InvalidArgumentError("no principal for the audit");
  return registry::ValidateText("principal", who.principal, registry::kMaxActorBytes);
}

}  // namespace

absl::StatusOr<AliasResult> SetAliasIn(pqxx::work& tx, Connection& c, const std::string& name,
                                       const std::string& alias, const VersionRef& to,
                                       const AliasChange& who) {
  if (absl::Status s = registry::ValidateAlias(alias); !s.ok()) return s;
  if (absl::Status s = ValidateChange(who); !s.ok()) return s;
  AliasResult out{alias};
  // Why the model's row: every change of its aliases is serialized, so each audit row's
  // from_version is what the alias held just before.
  auto key = FindVersion(tx, c, name, to, /*lock_model=*/true);
  if (!key.ok()) return key.status();
  if (key->status != "ready") {
    return absl::FailedPreconditionError(absl::StrCat("version ", key->version, " of '", name,
                                                      "' is ", key->status,
                                                      "; it cannot take an alias"));
  }
  out.version = key->version;
  if (auto prior = Exec(tx, c, kAliasVersion, {key->model_id, alias}); !prior.empty()) {
    out.previous = prior[0][0].as<int>();
  }
  if (out.previous == out.version) return out;
  Exec(tx, c, kUpsertAlias, {key->model_id, alias, key->version, who.now});
  Exec(tx, c, kInsertAliasEvent,
       {key->model_id, name, alias, Param::Opt(out.previous), key->version, who.principal,
        who.client_addr, Param::Opt(who.actor), who.reason, who.now});
  Exec(tx, c, kTouchModel, {key->model_id, who.now});
  out.changed = true;
  return out;
}

absl::StatusOr<int> DeleteAliasIn(pqxx::work& tx, Connection& c, const std::string& name,
                                  const std::string& alias, const AliasChange& who) {
  if (absl::Status s = registry::ValidateAlias(alias); !s.ok()) return s;
  if (absl::Status s = ValidateChange(who); !s.ok()) return s;
  auto id = ModelId(tx, c, name, /*lock=*/true);
  if (!id.ok()) return id.status();
  auto gone = Exec(tx, c, kDeleteAlias, {*id, alias});
  if (gone.empty()) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no alias '", alias, "'"));
  }
  const int out = gone[0][0].as<int>();
  Exec(tx, c, kInsertAliasEvent,
       {*id, name, alias, out, Param::Null(), who.principal, who.client_addr, Param::Opt(who.actor),
        who.reason, who.now});
  Exec(tx, c, kTouchModel, {*id, who.now});
  return out;
}

absl::StatusOr<std::optional<int>> AliasVersionIn(pqxx::work& tx, Connection& c,
                                                  const std::string& name,
                                                  const std::string& alias) {
  auto id = ModelId(tx, c, name, /*lock=*/true);
  if (!id.ok()) return id.status();
  auto prior = Exec(tx, c, kAliasVersion, {*id, alias});
  if (prior.empty()) return std::optional<int>();
  return std::optional<int>(prior[0][0].as<int>());
}

absl::StatusOr<AliasResult> ModelStore::SetAlias(const std::string& name, const std::string& alias,
                                                 const VersionRef& to, const AliasChange& who) {
  AliasResult out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto r = SetAliasIn(tx, c, name, alias, to, who);
    if (!r.ok()) return r.status();
    out = *std::move(r);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<int> ModelStore::DeleteAlias(const std::string& name, const std::string& alias,
                                            const AliasChange& who) {
  int out = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    auto r = DeleteAliasIn(tx, c, name, alias, who);
    if (!r.ok()) return r.status();
    out = *r;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<AliasEvent>> ModelStore::AliasHistory(const std::string& name,
                                                                 const std::string& alias,
                                                                 int limit) {
  if (absl::Status s = registry::ValidateAlias(alias); !s.ok()) return s;
  std::vector<AliasEvent> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) -> absl::Status {
    out.clear();
    auto id = ModelId(tx, c, name);
    if (!id.ok()) return id.status();
    for (const auto& r : Exec(tx, c, kAliasHistory, {*id, alias, limit})) {
      AliasEvent e;
      e.id = r[0].as<int64_t>();
      e.alias = r[1].as<std::string>();
      if (!r[2].is_null()) e.from_version = r[2].as<int>();
      if (!r[3].is_null()) e.to_version = r[3].as<int>();
      e.principal = r[4].as<std::string>();
      e.client_addr = r[5].as<std::string>();
      if (!r[6].is_null()) e.actor = r[6].as<std::string>();
      e.reason = r[7].as<std::string>();
      e.at = ToTime(r[8]);
      out.push_back(std::move(e));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace assay::store
