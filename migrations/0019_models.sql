-- Model registry (issue 10, docs/models.md), after MLflow's: registered models, their
-- numbered versions, aliases and tags. A version copies the manifest entries of the job's
-- artifacts under a path prefix into model_version_files and references their chunks in
-- model_chunk_refs, so that its files outlive the job's artifact expiry: the artifact sweeper
-- deletes only chunks that no artifact, cache entry nor model version references.

CREATE TABLE models (
  id            bigserial PRIMARY KEY,
  name          text NOT NULL UNIQUE
                CHECK (name ~ '^[A-Za-z0-9_.-]{1,128}$' AND name NOT IN ('.', '..')),
  description   text NOT NULL DEFAULT '' CHECK (octet_length(description) <= 16384),
  -- The highest version number handed out; versions are numbered from it under the row lock,
  -- so that concurrent registrations never collide and numbers are never reused.
  last_version  integer NOT NULL DEFAULT 0 CHECK (last_version >= 0),
  created_at    timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL
);

CREATE TABLE model_tags (
  model_id      bigint NOT NULL REFERENCES models (id) ON DELETE CASCADE,
  key           text NOT NULL CHECK (key ~ '^[A-Za-z0-9_.:-]{1,128}$'),
  value         text NOT NULL CHECK (octet_length(value) <= 4096),
  PRIMARY KEY (model_id, key)
);

CREATE TABLE model_versions (
  id              bigserial PRIMARY KEY,
  model_id        bigint NOT NULL REFERENCES models (id) ON DELETE CASCADE,
  version         integer NOT NULL CHECK (version >= 1),
  status          text NOT NULL DEFAULT 'ready' CHECK (status IN ('ready', 'archived')),
  description     text NOT NULL DEFAULT '' CHECK (octet_length(description) <= 16384),
  -- Where it came from. The ids are kept as they were when the job or pipeline is deleted.
  repo_id         bigint REFERENCES repos (id) ON DELETE SET NULL,
  commit_sha      text CHECK (commit_sha ~ '^[0-9a-f]{40}$|^[0-9a-f]{64}$'),
  pipeline_id     bigint REFERENCES pipelines (id) ON DELETE SET NULL,
  job_id          bigint REFERENCES jobs (id) ON DELETE SET NULL,
  job_name        text NOT NULL DEFAULT '',
  source_path     text NOT NULL CHECK (octet_length(source_path) <= 4096),
  params          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(params) = 'object'),
  metrics         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metrics) = 'object'),
  datasets        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(datasets) = 'array'),
  parent_version  integer,
  files           integer NOT NULL CHECK (files >= 0),
  bytes           bigint NOT NULL CHECK (bytes >= 0),
  -- SHA-256 of the registration request: a replay of the same request for the same job and
  -- path finds its version instead of making another.
  request_sha256  text NOT NULL CHECK (request_sha256 ~ '^[0-9a-f]{64}$'),
  created_at      timestamptz NOT NULL,
  UNIQUE (model_id, version),
  -- Lineage stays within one model.
  FOREIGN KEY (model_id, parent_version) REFERENCES model_versions (model_id, version),
  CHECK (parent_version IS NULL OR parent_version < version)
);
CREATE INDEX model_versions_job ON model_versions (job_id);
CREATE UNIQUE INDEX model_versions_source ON model_versions (model_id, job_id, source_path)
  WHERE job_id IS NOT NULL;

CREATE TABLE model_version_tags (
  version_id    bigint NOT NULL REFERENCES model_versions (id) ON DELETE CASCADE,
  key           text NOT NULL CHECK (key ~ '^[A-Za-z0-9_.:-]{1,128}$'),
  value         text NOT NULL CHECK (octet_length(value) <= 4096),
  PRIMARY KEY (version_id, key)
);

-- The files, relative to source_path, as the job's manifest had them.
CREATE TABLE model_version_files (
  version_id  bigint NOT NULL REFERENCES model_versions (id) ON DELETE CASCADE,
  path        text NOT NULL CHECK (octet_length(path) BETWEEN 1 AND 4096),
  size        bigint NOT NULL CHECK (size >= 0),
  mode        integer NOT NULL CHECK (mode IN (420, 493)),  -- 0644, 0755
  sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  chunks      text[] NOT NULL,
  PRIMARY KEY (version_id, path)
);

-- What keeps a chunk alive besides artifact_chunk_refs and cache_chunk_refs.
CREATE TABLE model_chunk_refs (
  version_id  bigint NOT NULL REFERENCES model_versions (id) ON DELETE CASCADE,
  sha256      text NOT NULL REFERENCES artifact_chunks (sha256),
  PRIMARY KEY (version_id, sha256)
);
CREATE INDEX model_chunk_refs_chunk ON model_chunk_refs (sha256);

CREATE TABLE model_aliases (
  model_id    bigint NOT NULL REFERENCES models (id) ON DELETE CASCADE,
  alias       text NOT NULL CHECK (alias ~ '^[a-z0-9_-]{1,64}$' AND alias !~ '^[0-9]+$'),
  version     integer NOT NULL,
  updated_at  timestamptz NOT NULL,
  PRIMARY KEY (model_id, alias),
  FOREIGN KEY (model_id, version) REFERENCES model_versions (model_id, version)
);

-- Every change of an alias (set, move, delete). Kept when the model is deleted (model_id
-- NULL then, model_name says which it was).
CREATE TABLE model_alias_events (
  id            bigserial PRIMARY KEY,
  model_id      bigint REFERENCES models (id) ON DELETE SET NULL,
  model_name    text NOT NULL,
  alias         text NOT NULL,
  from_version  integer,  -- NULL: the alias was set for the first time
  to_version    integer,  -- NULL: the alias was deleted
  principal     text NOT NULL CHECK (octet_length(principal) BETWEEN 1 AND 256),
  client_addr   text NOT NULL DEFAULT '' CHECK (octet_length(client_addr) <= 256),
  actor         text CHECK (octet_length(actor) <= 256),  -- as the client claimed it
  reason        text NOT NULL DEFAULT '' CHECK (octet_length(reason) <= 1024),
  at            timestamptz NOT NULL,
  CHECK (from_version IS NOT NULL OR to_version IS NOT NULL)
);
CREATE INDEX model_alias_events_alias ON model_alias_events (model_id, alias, id);
