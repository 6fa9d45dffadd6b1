#include "server/store/artifacts.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace assay::store {
namespace {

const Query kLiveAttempt{
    "artifact_live_attempt",
    "SELECT j.id, j.pipeline_id, p.repo_id, j.agent_id, j.attempt, j.name, "
    "(j.spec->'artifacts'->>'expire_in_s')::bigint, "
    "coalesce(ARRAY(SELECT jsonb_array_elements_text(CASE WHEN jsonb_typeof("
    "j.spec->'artifact_needs') = 'array' THEN j.spec->'artifact_needs' ELSE '[]' END)), "
    "'{}'::text[]) "
    "FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id "
    "WHERE j.id = $1 AND j.attempt_token = $2 AND j.state IN ('assigned', 'running')"};
const Query kTouchChunks{
    "artifact_touch_chunks",
    "UPDATE artifact_chunks SET touched_at = $2 WHERE sha256 = ANY($1::text[]) "
    "RETURNING sha256"};
const Query kInsertChunk{
    "artifact_insert_chunk",
    "INSERT INTO artifact_chunks (sha256, size, touched_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (sha256) DO NOTHING RETURNING sha256"};
const Query kLockChunk{
    "artifact_lock_chunk",
    "UPDATE artifact_chunks SET touched_at = $2 WHERE sha256 = $1 RETURNING size"};
const Query kExistingManifest{
    "artifact_existing_manifest",
    "SELECT attempt, files, bytes FROM artifacts WHERE job_id = $1 FOR UPDATE"};
const Query kDeleteManifest{"artifact_delete_manifest", "DELETE FROM artifacts WHERE job_id = $1"};
const Query kLockJobArtifacts{"artifact_lock_job", "SELECT pg_advisory_xact_lock(7013, $1::int)"};
const Query kChunksPresent{
    "artifact_chunks_present",
    "SELECT sha256 FROM artifact_chunks WHERE sha256 = ANY($1::text[]) FOR SHARE"};
const Query kInsertManifest{
    "artifact_insert_manifest",
    "INSERT INTO artifacts (job_id, attempt, repo_id, files, bytes, expire_at, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)"};
// Why a joined string per file: unnest cannot take a two-dimensional array of ragged rows.
const Query kInsertFiles{
    "artifact_insert_files",
    "INSERT INTO artifact_files (job_id, path, size, mode, sha256, chunks) "
    "SELECT $1, f.path, f.size, f.mode, f.sha256, "
    "CASE WHEN f.chunks = '' THEN '{}'::text[] ELSE string_to_array(f.chunks, ',') END "
    "FROM unnest($2::text[], $3::bigint[], $4::int[], $5::text[], $6::text[]) "
    "AS f(path, size, mode, sha256, chunks)"};
const Query kInsertRefs{"artifact_insert_refs",
                        "INSERT INTO artifact_chunk_refs (job_id, sha256) "
                        "SELECT DISTINCT $1::bigint, c FROM unnest($2::text[]) AS c"};
const Query kSummary{
    "artifact_summary",
    "SELECT job_id, attempt, files, bytes, (extract(epoch from created_at) * 1000000)::bigint, "
    "(extract(epoch from expire_at) * 1000000)::bigint FROM artifacts WHERE job_id = $1"};
const Query kFiles{"artifact_files",
                   "SELECT path, size, mode, sha256, chunks FROM artifact_files WHERE job_id = $1 "
                   "ORDER BY path COLLATE \"C\""};
const Query kFile{"artifact_file",
                  "SELECT path, size, mode, sha256, chunks FROM artifact_files "
                  "WHERE job_id = $1 AND path = $2"};
const Query kJobsNamed{"artifact_jobs_named",
                       "SELECT j.id, j.name FROM unnest($2::text[]) WITH ORDINALITY AS n(name, i) "
                       "JOIN jobs j ON j.pipeline_id = $1 AND j.name = n.name ORDER BY n.i"};
const Query kChunksOf{"artifact_chunks_of",
                      "SELECT DISTINCT sha256 FROM artifact_chunk_refs "
                      "WHERE job_id = ANY($1::bigint[]) AND sha256 = ANY($2::text[])"};
const Query kChunkSizes{"artifact_chunk_sizes",
                        "SELECT sha256, size FROM artifact_chunks WHERE sha256 = ANY($1::text[])"};
const Query kSweepLock{"artifact_sweep_lock", "SELECT pg_try_advisory_xact_lock(7013, 0)"};
const Query kDeleteExpired{
    "artifact_delete_expired",
    "DELETE FROM artifacts WHERE job_id IN (SELECT job_id FROM artifacts WHERE expire_at < $1 "
    "ORDER BY expire_at LIMIT $2 FOR UPDATE SKIP LOCKED)"};
const Query kUnreferencedChunks{
    "artifact_unreferenced_chunks",
    "SELECT c.sha256 FROM artifact_chunks c WHERE c.touched_at < $1 AND NOT EXISTS "
    "(SELECT 1 FROM artifact_chunk_refs r WHERE r.sha256 = c.sha256) "
    "AND NOT EXISTS (SELECT 1 FROM cache_chunk_refs r WHERE r.sha256 = c.sha256) "  // 0018
    "AND NOT EXISTS (SELECT 1 FROM model_chunk_refs r WHERE r.sha256 = c.sha256) "  // 0019
    "AND NOT EXISTS (SELECT 1 FROM train_checkpoint_chunk_refs r "                  // 0021
    "WHERE r.sha256 = c.sha256) "
    "ORDER BY c.touched_at LIMIT $2 FOR UPDATE SKIP LOCKED"};
const Query kDeleteChunks{"artifact_delete_chunks",
                          "DELETE FROM artifact_chunks WHERE sha256 = ANY($1::text[])"};
const Query kBytesPerRepo{
    "artifact_bytes_per_repo",
    "SELECT a.repo_id, r.name, sum(a.bytes)::bigint, count(*) FROM artifacts a "
    "JOIN repos r ON r.id = a.repo_id GROUP BY a.repo_id, r.name ORDER BY a.repo_id"};

}  // namespace

ManifestColumns ManifestColumnsOf(const std::vector<ArtifactFileRow>& files) {
  ManifestColumns m;
  std::set<std::string> chunks;
  for (const auto& f : files) {
    m.paths.push_back(f.path);
    m.sizes.push_back(std::to_string(f.size));
    m.modes.push_back(std::to_string(f.mode));
    m.hashes.push_back(f.sha256);
    m.chunk_lists.push_back(absl::StrJoin(f.chunks, ","));
    chunks.insert(f.chunks.begin(), f.chunks.end());
    m.bytes += f.size;
  }
  m.chunks.assign(chunks.begin(), chunks.end());
  return m;
}

absl::Status RequireChunksStored(pqxx::work& tx, Connection& c,
                                 const std::vector<ArtifactFileRow>& files,
                                 const std::vector<std::string>& chunks) {
  std::set<std::string> have;
  for (const auto& r : Exec(tx, c, kChunksPresent, {ToPgTextArray(chunks)})) {
    have.insert(r[0].as<std::string>());
  }
  for (const auto& f : files) {
    for (const auto& h : f.chunks) {
      if (!have.contains(h)) {
        return absl::FailedPreconditionError(
            absl::StrCat("chunk ", h, " of '", f.path,
                         "' is not stored; upload it first (ArtifactChunksMissing)"));
      }
    }
  }
  return absl::OkStatus();
}

ArtifactFileRow FileOf(const pqxx::row& r) {
  ArtifactFileRow f;
  f.path = r[0].as<std::string>();
  f.size = r[1].as<int64_t>();
  f.mode = r[2].as<int>();
  f.sha256 = r[3].as<std::string>();
  f.chunks = FromPgTextArray(r[4]);
  return f;
}

absl::StatusOr<std::optional<LiveAttempt>> ArtifactStore::FindLiveAttempt(
    int64_t job_id, const std::string& token) {
  std::optional<LiveAttempt> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.reset();
    auto res = Exec(tx, c, kLiveAttempt, {job_id, token});
    if (res.empty()) return absl::OkStatus();
    const auto& r = res[0];
    LiveAttempt a;
    a.job_id = r[0].as<int64_t>();
    a.pipeline_id = r[1].as<int64_t>();
    a.repo_id = r[2].as<int64_t>();
    a.agent_id = r[3].as<int64_t>();
    a.attempt = r[4].as<int>();
    a.job_name = r[5].as<std::string>();
    if (!r[6].is_null()) a.expire_in_s = r[6].as<int64_t>();
    a.artifact_needs = FromPgTextArray(r[7]);
    out = std::move(a);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<std::string>> ArtifactStore::MissingChunks(
    const std::vector<std::string>& chunks, absl::Time now) {
  std::set<std::string> present;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    present.clear();
    for (const auto& r : Exec(tx, c, kTouchChunks, {ToPgTextArray(chunks), now})) {
      present.insert(r[0].as<std::string>());
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::vector<std::string> out;
  for (const auto& h : chunks) {
    if (!present.contains(h)) out.push_back(h);
  }
  return out;
}

absl::StatusOr<bool> ArtifactStore::PutChunk(const std::string& sha256, int64_t size,
                                             absl::Time now,
                                             const std::function<absl::Status()>& write,
                                             const std::function<bool()>& present) {
  bool skipped = false;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    skipped = false;
    if (Exec(tx, c, kInsertChunk, {sha256, size, now}).empty()) {
      // Held already (or inserted by a concurrent upload that has committed since): lock it.
      if (!Exec(tx, c, kLockChunk, {sha256, now}).empty()) {
        if (present()) {
          skipped = true;
          return absl::OkStatus();
        }
        // Its blob is gone (a sweep died between the blob and the row): written again below.
      } else {
        Exec(tx, c, kInsertChunk, {sha256, size, now});  // swept between our two statements
      }
    }
    return write();
  });
  if (!s.ok()) return s;
  return skipped;
}

absl::StatusOr<ArtifactCommit> ArtifactStore::Commit(int64_t job_id, int attempt, int64_t repo_id,
                                                     const std::vector<ArtifactFileRow>& files,
                                                     absl::Time now, absl::Time expire_at) {
  const ManifestColumns m = ManifestColumnsOf(files);
  ArtifactCommit out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out = ArtifactCommit{};
    // Why a lock per job: two commits of one job (a replay racing the original) must not
    // both find no manifest and both insert.
    Exec(tx, c, kLockJobArtifacts, {static_cast<int>(job_id & 0x7fffffff)});
    auto existing = Exec(tx, c, kExistingManifest, {job_id});
    if (!existing.empty()) {
      if (existing[0][0].as<int>() == attempt) {
        out.files = existing[0][1].as<int>();
        out.bytes = existing[0][2].as<int64_t>();
        out.replayed = true;
        return absl::OkStatus();
      }
      Exec(tx, c, kDeleteManifest, {job_id});
    }
    if (absl::Status s = RequireChunksStored(tx, c, files, m.chunks); !s.ok()) return s;
    Exec(tx, c, kInsertManifest,
         {job_id, attempt, repo_id, static_cast<int64_t>(files.size()), m.bytes, expire_at, now});
    Exec(tx, c, kInsertFiles,
         {job_id, ToPgTextArray(m.paths), ToPgTextArray(m.sizes), ToPgTextArray(m.modes),
          ToPgTextArray(m.hashes), ToPgTextArray(m.chunk_lists)});
    Exec(tx, c, kInsertRefs, {job_id, ToPgTextArray(m.chunks)});
    out.files = static_cast<int>(files.size());
    out.bytes = m.bytes;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<ArtifactSummary>> ArtifactStore::Summary(int64_t job_id) {
  std::optional<ArtifactSummary> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.reset();
    auto res = Exec(tx, c, kSummary, {job_id});
    if (res.empty()) return absl::OkStatus();
    const auto& r = res[0];
    ArtifactSummary a;
    a.job_id = r[0].as<int64_t>();
    a.attempt = r[1].as<int>();
    a.files = r[2].as<int>();
    a.bytes = r[3].as<int64_t>();
    a.created_at = absl::FromUnixMicros(r[4].as<int64_t>());
    a.expire_at = absl::FromUnixMicros(r[5].as<int64_t>());
    out = a;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<ArtifactFileRow>> ArtifactStore::Files(int64_t job_id) {
  std::vector<ArtifactFileRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& r : Exec(tx, c, kFiles, {job_id})) out.push_back(FileOf(r));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<ArtifactFileRow>> ArtifactStore::File(int64_t job_id,
                                                                   const std::string& path) {
  std::optional<ArtifactFileRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.reset();
    auto res = Exec(tx, c, kFile, {job_id, path});
    if (!res.empty()) out = FileOf(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<int64_t>> ArtifactStore::ChunkSizes(
    const std::vector<std::string>& chunks) {
  std::map<std::string, int64_t> sizes;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    sizes.clear();
    for (const auto& r : Exec(tx, c, kChunkSizes, {ToPgTextArray(chunks)})) {
      sizes[r[0].as<std::string>()] = r[1].as<int64_t>();
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::vector<int64_t> out;
  for (const auto& h : chunks) {
    auto it = sizes.find(h);
    if (it == sizes.end()) return absl::NotFoundError(absl::StrCat("chunk ", h, " is not stored"));
    out.push_back(it->second);
  }
  return out;
}

absl::StatusOr<std::vector<NeededJob>> ArtifactStore::JobsNamed(
    int64_t pipeline_id, const std::vector<std::string>& names) {
  std::vector<NeededJob> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& r : Exec(tx, c, kJobsNamed, {pipeline_id, ToPgTextArray(names)})) {
      out.push_back({r[0].as<int64_t>(), r[1].as<std::string>()});
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<std::string>> ArtifactStore::ChunksOf(
    const std::vector<int64_t>& job_ids, const std::vector<std::string>& chunks) {
  std::vector<std::string> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& r : Exec(tx, c, kChunksOf, {ToPgArray(job_ids), ToPgTextArray(chunks)})) {
      out.push_back(r[0].as<std::string>());
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<int> ArtifactStore::DeleteExpired(absl::Time now, int batch) {
  int n = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    n = 0;
    if (!Exec(tx, c, kSweepLock)[0][0].as<bool>()) return absl::OkStatus();
    n = static_cast<int>(Exec(tx, c, kDeleteExpired, {now, batch}).affected_rows());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return n;
}

absl::StatusOr<int> ArtifactStore::DeleteUnreferencedChunks(
    absl::Time touched_before, int batch,
    const std::function<absl::Status(const std::string&)>& delete_blob) {
  int n = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    n = 0;
    if (!Exec(tx, c, kSweepLock)[0][0].as<bool>()) return absl::OkStatus();
    std::vector<std::string> gone;
    for (const auto& r : Exec(tx, c, kUnreferencedChunks, {touched_before, batch})) {
      const std::string h = r[0].as<std::string>();
      // A blob that cannot be deleted keeps its row; the next sweep tries again.
      if (delete_blob(h).ok()) gone.push_back(h);
    }
    Exec(tx, c, kDeleteChunks, {ToPgTextArray(gone)});
    n = static_cast<int>(gone.size());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return n;
}

absl::StatusOr<std::vector<RepoBytes>> ArtifactStore::BytesPerRepo() {
  return QueryRepoBytes(*db_, kBytesPerRepo);
}

}  // namespace assay::store
