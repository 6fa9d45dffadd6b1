-- Artifacts (issue 9): content-addressed chunks, and per job the files they make up.
-- A chunk row exists only once its blob is stored (the blob is written while the row is
-- locked, see server/store/artifacts.cc). Chunks are reachable through artifact_chunk_refs;
-- the sweeper deletes expired artifacts, then chunks that no artifact references and that
-- nobody touched within a grace period (an upload between ChunksMissing and Commit).

CREATE TABLE artifact_chunks (
  sha256      text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  size        integer NOT NULL CHECK (size BETWEEN 1 AND 4194304),
  touched_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX artifact_chunks_touched ON artifact_chunks (touched_at);

-- One committed manifest per job (the attempt that committed it; a later attempt replaces it).
CREATE TABLE artifacts (
  job_id      bigint PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  attempt     integer NOT NULL CHECK (attempt >= 1),
  repo_id     bigint NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
  files       integer NOT NULL CHECK (files >= 0),
  bytes       bigint NOT NULL CHECK (bytes >= 0),
  created_at  timestamptz NOT NULL DEFAULT now(),
  expire_at   timestamptz NOT NULL
);
CREATE INDEX artifacts_expire ON artifacts (expire_at);
CREATE INDEX artifacts_repo ON artifacts (repo_id);

CREATE TABLE artifact_files (
  job_id      bigint NOT NULL REFERENCES artifacts (job_id) ON DELETE CASCADE,
  path        text NOT NULL CHECK (octet_length(path) BETWEEN 1 AND 4096),
  size        bigint NOT NULL CHECK (size >= 0),
  mode        integer NOT NULL CHECK (mode IN (420, 493)),  -- 0644, 0755
  sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  chunks      text[] NOT NULL,
  PRIMARY KEY (job_id, path)
);

CREATE TABLE artifact_chunk_refs (
  job_id      bigint NOT NULL REFERENCES artifacts (job_id) ON DELETE CASCADE,
  sha256      text NOT NULL REFERENCES artifact_chunks (sha256),
  PRIMARY KEY (job_id, sha256)
);
CREATE INDEX artifact_chunk_refs_chunk ON artifact_chunk_refs (sha256);
