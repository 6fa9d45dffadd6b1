-- Training (issue 10, docs/train.md): the live metrics of a `train:` step, its checkpoints
-- (manifests over the artifacts' content-addressed chunks, so that an attempt on another agent
-- can resume from the newest), and what the agent reported at the step's end (the dataset
-- digests) for the registration that happens when the job succeeds.

-- One point of a series; a point repeated (the agent resends after a cut) changes nothing.
CREATE TABLE train_metrics (
  job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  step_index  integer NOT NULL CHECK (step_index >= 0),
  name        text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 128),
  step        bigint NOT NULL CHECK (step >= 0),
  attempt     integer NOT NULL CHECK (attempt >= 1),
  value       double precision NOT NULL,
  at          timestamptz NOT NULL,
  PRIMARY KEY (job_id, step_index, name, step, attempt)
);
CREATE INDEX train_metrics_attempt ON train_metrics (job_id, step_index, attempt);

CREATE TABLE train_checkpoints (
  id          bigserial PRIMARY KEY,
  job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  step_index  integer NOT NULL CHECK (step_index >= 0),
  step        bigint NOT NULL CHECK (step >= 0),
  attempt     integer NOT NULL CHECK (attempt >= 1),
  files       integer NOT NULL CHECK (files >= 0),
  bytes       bigint NOT NULL CHECK (bytes >= 0),
  created_at  timestamptz NOT NULL,
  UNIQUE (job_id, step_index, step)
);

CREATE TABLE train_checkpoint_files (
  checkpoint_id bigint NOT NULL REFERENCES train_checkpoints (id) ON DELETE CASCADE,
  path        text NOT NULL CHECK (octet_length(path) BETWEEN 1 AND 4096),
  size        bigint NOT NULL CHECK (size >= 0),
  mode        integer NOT NULL CHECK (mode IN (420, 493)),  -- 0644, 0755
  sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  chunks      text[] NOT NULL,
  PRIMARY KEY (checkpoint_id, path)
);

-- What keeps a chunk alive besides artifact, cache and model references.
CREATE TABLE train_checkpoint_chunk_refs (
  checkpoint_id bigint NOT NULL REFERENCES train_checkpoints (id) ON DELETE CASCADE,
  sha256      text NOT NULL REFERENCES artifact_chunks (sha256),
  PRIMARY KEY (checkpoint_id, sha256)
);
CREATE INDEX train_checkpoint_chunk_refs_chunk ON train_checkpoint_chunk_refs (sha256);

-- The checkpoint an attempt restored: DownloadChunks serves that job its chunks.
CREATE TABLE train_checkpoint_reads (
  job_id        bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  checkpoint_id bigint NOT NULL REFERENCES train_checkpoints (id) ON DELETE CASCADE,
  PRIMARY KEY (job_id, checkpoint_id)
);

-- What the agent reported when a train step's command succeeded.
CREATE TABLE train_runs (
  job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt     integer NOT NULL CHECK (attempt >= 1),
  step_index  integer NOT NULL CHECK (step_index >= 0),
  datasets    jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(datasets) = 'array'),
  resumed_from bigint,  -- the checkpoint step this attempt started from; NULL: from scratch
  model_version_id bigint REFERENCES model_versions (id) ON DELETE SET NULL,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (job_id, attempt, step_index)
);
