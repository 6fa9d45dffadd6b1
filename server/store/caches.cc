#include "server/store/caches.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace assay::store {
namespace {

const Query kCacheScope{
    "cache_scope",
    "SELECT p.repo_id, p.ref, p.trusted, r.default_branch FROM jobs j "
    "JOIN pipelines p ON p.id = j.pipeline_id JOIN repos r ON r.id = p.repo_id WHERE j.id = $1"};
const Query kCacheExact{"cache_exact",
                        "SELECT id, repo_id, scope, key, files, bytes, "
                        "(extract(epoch from created_at) * 1000000)::bigint, "
                        "(extract(epoch from last_used_at) * 1000000)::bigint "
                        "FROM cache_entries WHERE repo_id = $1 AND scope = $2 AND key = $3"};
// Why left() over LIKE: a prefix holds '%' and '_' as plain characters.
const Query kCachePrefix{
    "cache_prefix",
    "SELECT id, repo_id, scope, key, files, bytes, "
    "(extract(epoch from created_at) * 1000000)::bigint, "
    "(extract(epoch from last_used_at) * 1000000)::bigint "
    "FROM cache_entries WHERE repo_id = $1 AND scope = $2 AND left(key, char_length($3)) = $3 "
    "ORDER BY created_at DESC, id DESC LIMIT 1"};
const Query kCacheTouch{"cache_touch",
                        "UPDATE cache_entries SET last_used_at = greatest(last_used_at, $2) "
                        "WHERE id = $1"};
const Query kCacheRecordRead{
    "cache_record_read",
    "INSERT INTO cache_reads (job_id, entry_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"};
const Query kCacheFiles{"cache_files",
                        "SELECT path, size, mode, sha256, chunks FROM cache_files "
                        "WHERE entry_id = $1 ORDER BY path COLLATE \"C\""};
const Query kCacheInsert{
    "cache_insert",
    "INSERT INTO cache_entries (repo_id, scope, key, files, bytes, job_id, created_at, "
    "last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) "
    "ON CONFLICT (repo_id, scope, key) DO NOTHING RETURNING id"};
const Query kCacheInsertFiles{
    "cache_insert_files",
    "INSERT INTO cache_files (entry_id, path, size, mode, sha256, chunks) "
    "SELECT $1, f.path, f.size, f.mode, f.sha256, "
    "CASE WHEN f.chunks = '' THEN '{}'::text[] ELSE string_to_array(f.chunks, ',') END "
    "FROM unnest($2::text[], $3::bigint[], $4::int[], $5::text[], $6::text[]) "
    "AS f(path, size, mode, sha256, chunks)"};
const Query kCacheInsertRefs{"cache_insert_refs",
                             "INSERT INTO cache_chunk_refs (entry_id, sha256) "
                             "SELECT DISTINCT $1::bigint, c FROM unnest($2::text[]) AS c"};
const Query kCacheChunksReadBy{"cache_chunks_read_by",
                               "SELECT DISTINCT r.sha256 FROM cache_reads cr "
                               "JOIN cache_chunk_refs r ON r.entry_id = cr.entry_id "
                               "WHERE cr.job_id = $1 AND r.sha256 = ANY($2::text[])"};
const Query kCacheSweepLock{"cache_sweep_lock", "SELECT pg_try_advisory_xact_lock(7018, 0)"};
const Query kCacheDeleteUnused{
    "cache_delete_unused",
    "DELETE FROM cache_entries WHERE id IN (SELECT id FROM cache_entries "
    "WHERE last_used_at < $1 ORDER BY last_used_at LIMIT $2 FOR UPDATE SKIP LOCKED)"};
const Query kCacheList{
    "cache_list",
    "SELECT id, repo_id, scope, key, files, bytes, "
    "(extract(epoch from created_at) * 1000000)::bigint, "
    "(extract(epoch from last_used_at) * 1000000)::bigint "
    "FROM cache_entries WHERE repo_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"};
const Query kCacheDelete{"cache_delete",
                         "DELETE FROM cache_entries WHERE repo_id = $1 AND id = $2"};
const Query kCacheBytesPerRepo{
    "cache_bytes_per_repo",
    "SELECT c.repo_id, r.name, sum(c.bytes)::bigint, count(*) FROM cache_entries c "
    "JOIN repos r ON r.id = c.repo_id GROUP BY c.repo_id, r.name ORDER BY c.repo_id"};

CacheEntry EntryOf(const pqxx::row& r) {
  CacheEntry e;
  e.id = r[0].as<int64_t>();
  e.repo_id = r[1].as<int64_t>();
  e.scope = r[2].as<std::string>();
  e.key = r[3].as<std::string>();
  e.files = r[4].as<int>();
  e.bytes = r[5].as<int64_t>();
  e.created_at = absl::FromUnixMicros(r[6].as<int64_t>());
  e.last_used_at = absl::FromUnixMicros(r[7].as<int64_t>());
  return e;
}

}  // namespace

std::string CacheScopeOfRef(const std::string& ref, bool trusted) {
  if (!trusted) return absl::StrCat("untrusted:", ref);
  constexpr char kHeads[] = "refs/heads/";
  if (absl::StartsWith(ref, kHeads)) return ref.substr(sizeof(kHeads) - 1);
  return ref;
}

absl::StatusOr<CacheScope> CacheStore::ScopeOf(int64_t job_id) {
  std::optional<CacheScope> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.reset();
    auto res = Exec(tx, c, kCacheScope, {job_id});
    if (res.empty()) return absl::OkStatus();
    CacheScope scope;
    scope.repo_id = res[0][0].as<int64_t>();
    const bool trusted = res[0][2].as<bool>();
    scope.own = CacheScopeOfRef(res[0][1].as<std::string>(), trusted);
    const std::string default_branch = res[0][3].as<std::string>();
    if (trusted && scope.own != default_branch) scope.fallback = default_branch;
    out = std::move(scope);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!out.has_value()) return absl::NotFoundError(absl::StrCat("no job ", job_id));
  return *std::move(out);
}

absl::StatusOr<std::optional<CacheHit>> CacheStore::Restore(
    int64_t job_id, const CacheScope& scope, const std::string& key,
    const std::vector<std::string>& restore_keys, absl::Time now) {
  std::optional<CacheHit> out;
  std::vector<std::string> scopes = {scope.own};
  if (!scope.fallback.empty()) scopes.push_back(scope.fallback);
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.reset();
    std::optional<pqxx::row> found;
    bool exact = false;
    for (const std::string& sc : scopes) {
      auto res = Exec(tx, c, kCacheExact, {scope.repo_id, sc, key});
      if (!res.empty()) {
        found = res[0];
        exact = true;
        break;
      }
    }
    for (size_t i = 0; !found.has_value() && i < restore_keys.size(); ++i) {
      for (const std::string& sc : scopes) {
        auto res = Exec(tx, c, kCachePrefix, {scope.repo_id, sc, restore_keys[i]});
        if (!res.empty()) {
          found = res[0];
          break;
        }
      }
    }
    if (!found.has_value()) return absl::OkStatus();
    CacheHit hit;
    hit.entry = EntryOf(*found);
    hit.exact = exact;
    Exec(tx, c, kCacheTouch, {hit.entry.id, now});
    Exec(tx, c, kCacheRecordRead, {job_id, hit.entry.id});
    for (const auto& r : Exec(tx, c, kCacheFiles, {hit.entry.id})) hit.files.push_back(FileOf(r));
    out = std::move(hit);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<bool> CacheStore::Exists(int64_t repo_id, const std::string& scope,
                                        const std::string& key) {
  bool exists = false;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    exists = !Exec(tx, c, kCacheExact, {repo_id, scope, key}).empty();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return exists;
}

absl::StatusOr<CacheSave> CacheStore::Commit(int64_t job_id, int64_t repo_id,
                                             const std::string& scope, const std::string& key,
                                             const std::vector<ArtifactFileRow>& files,
                                             absl::Time now) {
  const ManifestColumns m = ManifestColumnsOf(files);
  CacheSave out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out = CacheSave{};
    // Why the chunks first, locked: the sweeper skips locked rows, so none of them can go
    // between this check and the commit.
    if (absl::Status st = RequireChunksStored(tx, c, files, m.chunks); !st.ok()) return st;
    auto inserted =
        Exec(tx, c, kCacheInsert,
             {repo_id, scope, key, static_cast<int64_t>(files.size()), m.bytes, job_id, now});
    if (inserted.empty()) return absl::OkStatus();  // immutable: the key exists
    const int64_t id = inserted[0][0].as<int64_t>();
    Exec(tx, c, kCacheInsertFiles,
         {id, ToPgTextArray(m.paths), ToPgTextArray(m.sizes), ToPgTextArray(m.modes),
          ToPgTextArray(m.hashes), ToPgTextArray(m.chunk_lists)});
    Exec(tx, c, kCacheInsertRefs, {id, ToPgTextArray(m.chunks)});
    out.saved = true;
    out.files = static_cast<int>(files.size());
    out.bytes = m.bytes;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<std::string>> CacheStore::ChunksReadBy(
    int64_t job_id, const std::vector<std::string>& chunks) {
  std::vector<std::string> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& r : Exec(tx, c, kCacheChunksReadBy, {job_id, ToPgTextArray(chunks)})) {
      out.push_back(r[0].as<std::string>());
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<int> CacheStore::DeleteUnused(absl::Time before, int batch) {
  int n = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    n = 0;
    if (!Exec(tx, c, kCacheSweepLock)[0][0].as<bool>()) return absl::OkStatus();
    n = static_cast<int>(Exec(tx, c, kCacheDeleteUnused, {before, batch}).affected_rows());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return n;
}

absl::StatusOr<std::vector<CacheEntry>> CacheStore::List(int64_t repo_id, int limit) {
  std::vector<CacheEntry> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    out.clear();
    for (const auto& r : Exec(tx, c, kCacheList, {repo_id, limit})) out.push_back(EntryOf(r));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<bool> CacheStore::Delete(int64_t repo_id, int64_t entry_id) {
  bool deleted = false;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    deleted = Exec(tx, c, kCacheDelete, {repo_id, entry_id}).affected_rows() > 0;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return deleted;
}

absl::StatusOr<std::vector<RepoBytes>> CacheStore::BytesPerRepo() {
  return QueryRepoBytes(*db_, kCacheBytesPerRepo);
}

}  // namespace assay::store
