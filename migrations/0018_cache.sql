-- Caches (issue 9, docs/caches.md): per (repository, scope, key) a manifest over the
-- artifacts' content-addressed chunks (artifact_chunks), so that the same bytes in a cache and
-- in an artifact are stored once. A scope is a trusted pipeline's branch (its ref without
-- "refs/heads/"; other refs as they are) or "untrusted:<ref>" for a fork's pull request.
-- Keys are immutable: an entry is never replaced, only deleted by the sweeper when unused.

CREATE TABLE cache_entries (
  id            bigserial PRIMARY KEY,
  repo_id       bigint NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
  scope         text NOT NULL CHECK (octet_length(scope) BETWEEN 1 AND 1024),
  key           text NOT NULL CHECK (octet_length(key) BETWEEN 1 AND 512),
  files         integer NOT NULL CHECK (files >= 0),
  bytes         bigint NOT NULL CHECK (bytes >= 0),
  job_id        bigint REFERENCES jobs (id) ON DELETE SET NULL,  -- the job that saved it
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (repo_id, scope, key)
);
-- Prefix lookups (restore_keys) compare keys bytewise.
CREATE INDEX cache_entries_prefix ON cache_entries (repo_id, scope, key text_pattern_ops);
CREATE INDEX cache_entries_used ON cache_entries (last_used_at);

CREATE TABLE cache_files (
  entry_id    bigint NOT NULL REFERENCES cache_entries (id) ON DELETE CASCADE,
  path        text NOT NULL CHECK (octet_length(path) BETWEEN 1 AND 4096),
  size        bigint NOT NULL CHECK (size >= 0),
  mode        integer NOT NULL CHECK (mode IN (420, 493)),  -- 0644, 0755
  sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  chunks      text[] NOT NULL,
  PRIMARY KEY (entry_id, path)
);

-- What keeps a chunk alive besides artifact_chunk_refs (the sweeper checks both).
CREATE TABLE cache_chunk_refs (
  entry_id    bigint NOT NULL REFERENCES cache_entries (id) ON DELETE CASCADE,
  sha256      text NOT NULL REFERENCES artifact_chunks (sha256),
  PRIMARY KEY (entry_id, sha256)
);
CREATE INDEX cache_chunk_refs_chunk ON cache_chunk_refs (sha256);

-- The entries a job restored (CacheRestore): DownloadChunks serves that job their chunks and
-- no others.
CREATE TABLE cache_reads (
  job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  entry_id    bigint NOT NULL REFERENCES cache_entries (id) ON DELETE CASCADE,
  PRIMARY KEY (job_id, entry_id)
);
CREATE INDEX cache_reads_entry ON cache_reads (entry_id);
