-- Assay schema, version 1: repositories, webhook deliveries, agents, pipelines,
-- jobs (with their dependency edges), job attempts and log chunks.
-- States are CHECKed; uniqueness makes duplicates impossible (delivery id per provider,
-- one row per job attempt, one log chunk per (job, attempt, seq)).

CREATE TABLE repos (
  id            bigserial PRIMARY KEY,
  name          text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,199}$'),
  provider      text NOT NULL CHECK (provider IN ('github', 'gitlab', 'gitea')),
  clone_url     text NOT NULL UNIQUE CHECK (clone_url <> ''),
  html_url      text,
  -- AES-256-GCM (nonce || ciphertext || tag) under the server's secret key. Never returned.
  webhook_secret_enc bytea,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
  id            bigserial PRIMARY KEY,
  provider      text NOT NULL CHECK (provider IN ('github', 'gitlab', 'gitea')),
  delivery_id   text NOT NULL CHECK (delivery_id <> ''),
  event         text NOT NULL,
  repo_id       bigint NOT NULL REFERENCES repos (id),
  headers       jsonb NOT NULL,
  body          bytea NOT NULL,
  state         text NOT NULL DEFAULT 'received'
                CHECK (state IN ('received', 'processed', 'ignored', 'failed')),
  message       text,
  received_at   timestamptz NOT NULL DEFAULT now(),
  processed_at  timestamptz,
  UNIQUE (provider, delivery_id)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (id) WHERE state = 'received';

CREATE TABLE agents (
  id            bigserial PRIMARY KEY,
  name          text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$'),
  labels        text[] NOT NULL DEFAULT '{}',
  cpu_slots     integer NOT NULL CHECK (cpu_slots BETWEEN 1 AND 1024),
  gpus          jsonb NOT NULL DEFAULT '[]',
  version       text NOT NULL DEFAULT '',
  state         text NOT NULL CHECK (state IN ('online', 'offline')),
  connected_at  timestamptz,
  last_seen_at  timestamptz
);

CREATE TABLE pipelines (
  id            bigserial PRIMARY KEY,
  repo_id       bigint NOT NULL REFERENCES repos (id),
  delivery_id   bigint UNIQUE REFERENCES webhook_deliveries (id),
  event         text NOT NULL,
  ref           text NOT NULL,
  commit_sha    text NOT NULL CHECK (commit_sha ~ '^[0-9a-f]{40}$|^[0-9a-f]{64}$'),
  state         text NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'canceled', 'error')),
  message       text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz,
  CHECK ((state = 'running') = (finished_at IS NULL))
);
CREATE INDEX pipelines_repo ON pipelines (repo_id, id DESC);

CREATE TABLE jobs (
  id            bigserial PRIMARY KEY,
  pipeline_id   bigint NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
  name          text NOT NULL,
  state         text NOT NULL CHECK (state IN ('pending', 'queued', 'assigned', 'running',
                  'succeeded', 'failed', 'timed_out', 'canceled', 'skipped', 'error')),
  spec          jsonb NOT NULL,              -- steps, env, timeout_s
  labels        text[] NOT NULL DEFAULT '{}',
  priority      integer NOT NULL DEFAULT 0,
  attempt       integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
  max_attempts  integer NOT NULL DEFAULT 2 CHECK (max_attempts >= 1),
  attempt_token text UNIQUE,                 -- the live attempt's fencing token
  agent_id      bigint REFERENCES agents (id),
  lease_expires_at timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  queued_at     timestamptz,
  started_at    timestamptz,
  finished_at   timestamptz,
  exit_code     integer,
  message       text,
  UNIQUE (pipeline_id, name),
  CHECK (state NOT IN ('assigned', 'running')
         OR (attempt_token IS NOT NULL AND lease_expires_at IS NOT NULL AND agent_id IS NOT NULL)),
  CHECK (state <> 'queued' OR queued_at IS NOT NULL)
);
CREATE INDEX jobs_queued ON jobs (priority DESC, queued_at, id) WHERE state = 'queued';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE state IN ('assigned', 'running');
CREATE INDEX jobs_pipeline ON jobs (pipeline_id);

CREATE TABLE job_needs (
  job_id        bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  needs_job_id  bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  PRIMARY KEY (job_id, needs_job_id),
  CHECK (job_id <> needs_job_id)
);
CREATE INDEX job_needs_reverse ON job_needs (needs_job_id);

CREATE TABLE job_attempts (
  job_id        bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt       integer NOT NULL CHECK (attempt >= 1),
  attempt_token text NOT NULL UNIQUE,
  agent_id      bigint NOT NULL REFERENCES agents (id),
  state         text NOT NULL CHECK (state IN ('assigned', 'running', 'succeeded', 'failed',
                  'timed_out', 'canceled', 'error', 'lost', 'rejected')),
  assigned_at   timestamptz NOT NULL,
  started_at    timestamptz,
  finished_at   timestamptz,
  exit_code     integer,
  message       text,
  PRIMARY KEY (job_id, attempt)
);

CREATE TABLE log_chunks (
  job_id        bigint NOT NULL,
  attempt       integer NOT NULL,
  seq           bigint NOT NULL CHECK (seq >= 1),
  data          bytea NOT NULL,
  received_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_id, attempt, seq),
  FOREIGN KEY (job_id, attempt) REFERENCES job_attempts (job_id, attempt) ON DELETE CASCADE
);
