-- Issue 12: deployments (docs/deployments.md). An environment of a repository says where
-- traffic is moved (its target), who may deploy (branches, approvals) and what a model
-- deployment moves in the registry (model, alias). A deployment moves a model version or a
-- service image to an environment's target by a strategy (canary, blue-green, rolling), judged
-- by analyses, and is advanced by the server's deployment controller one step at a time.

CREATE TABLE environments (
  id                  bigserial PRIMARY KEY,
  repo_id             bigint NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
  name                text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  -- Branch globs a deployment's ref must match; empty: any branch.
  branches            text[] NOT NULL DEFAULT '{}',
  required_approvals  integer NOT NULL DEFAULT 0 CHECK (required_approvals BETWEEN 0 AND 10),
  -- {"kind": "haproxy", "runtime_api": "127.0.0.1:9999", "backend": "llm"} (docs/deployments.md)
  target              jsonb NOT NULL CHECK (jsonb_typeof(target) = 'object'),
  -- The analysis every deployment here runs in the background unless it brings its own, and
  -- the watch after promotion: {"metrics": [...], "watch": "10m"}.
  analysis            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(analysis) = 'object'),
  -- A model deployment moves this alias of its model (default: the environment's name).
  alias               text NOT NULL CHECK (alias ~ '^[A-Za-z0-9_.-]{1,64}$'),
  -- What serves the environment now, as the last promotion or rollback left it:
  -- {"deployment_id", "model", "version", "image", "servers": [{"name", "address"}]}.
  live                jsonb,
  created_at          timestamptz NOT NULL,
  updated_at          timestamptz NOT NULL,
  UNIQUE (repo_id, name)
);

CREATE TABLE deployments (
  id                bigserial PRIMARY KEY,
  environment_id    bigint NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
  repo_id           bigint NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
  state             text NOT NULL CHECK (state IN ('pending_approval', 'progressing', 'paused',
                    'watching', 'succeeded', 'rolled_back', 'failed', 'aborted', 'superseded')),
  -- What moves: a model version (model, version) or a service image (image), served by
  -- `servers` ([{"name", "address"}]).
  model             text,
  version           integer,
  image             text,
  servers           jsonb NOT NULL CHECK (jsonb_typeof(servers) = 'array'),
  ref               text NOT NULL DEFAULT '',
  strategy          jsonb NOT NULL CHECK (jsonb_typeof(strategy) = 'object'),
  -- The environment's live value when this one began: where a rollback goes back to.
  previous          jsonb,
  -- The alias's version before this deployment moved it (NULL: it was not set).
  alias_previous    integer,
  alias_moved       boolean NOT NULL DEFAULT false,
  -- Progress: the strategy step being carried out, the new version's share of traffic, and
  -- the analysis runs in progress ({"step": {...}, "background": {...}}).
  step              integer NOT NULL DEFAULT 0,
  weight            integer NOT NULL DEFAULT 0 CHECK (weight BETWEEN 0 AND 100),
  step_started_at   timestamptz,
  runs              jsonb NOT NULL DEFAULT '{}',
  watch_until       timestamptz,
  message           text NOT NULL DEFAULT '' CHECK (octet_length(message) <= 4096),
  created_by        text NOT NULL,
  pipeline_id       bigint REFERENCES pipelines (id) ON DELETE SET NULL,
  job_id            bigint REFERENCES jobs (id) ON DELETE SET NULL,
  job_attempt       integer,  -- the attempt of the `deploy:` step that made it
  -- The controller: when it acts next, and which server holds the deployment until when
  -- (every write of a tick is fenced on lease_owner).
  next_at           timestamptz,
  lease_owner       text,
  lease_until       timestamptz,
  superseded_by     bigint REFERENCES deployments (id) ON DELETE SET NULL,
  -- A manual rollback is a deployment of an earlier one's version and servers.
  rollback_of       bigint REFERENCES deployments (id) ON DELETE SET NULL,
  -- What a person asked the controller to do next ({"action": "pause" | "resume" | "promote" |
  -- "abort", "full", "by", "reason"}); the controller alone changes progress.
  requested         jsonb,
  created_at        timestamptz NOT NULL,
  started_at        timestamptz,
  finished_at       timestamptz,
  CHECK ((model IS NULL) = (version IS NULL)),
  CHECK ((model IS NULL) <> (image IS NULL))
);
-- One deployment per environment at a time.
CREATE UNIQUE INDEX deployments_one_active ON deployments (environment_id)
  WHERE state IN ('pending_approval', 'progressing', 'paused', 'watching');
CREATE INDEX deployments_due ON deployments (next_at)
  WHERE state IN ('progressing', 'watching') OR requested IS NOT NULL;
CREATE INDEX deployments_environment ON deployments (environment_id, id DESC);
-- One deployment per attempt of a `deploy:` step: a retried RPC finds it.
CREATE UNIQUE INDEX deployments_job ON deployments (job_id, job_attempt) WHERE job_id IS NOT NULL;

CREATE TABLE deployment_approvals (
  deployment_id  bigint NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  approver       text NOT NULL,
  at             timestamptz NOT NULL,
  PRIMARY KEY (deployment_id, approver)
);

-- A deployment's history: each step, each analysis measurement and verdict, each traffic
-- change and how it ended.
CREATE TABLE deployment_events (
  id             bigserial PRIMARY KEY,
  deployment_id  bigint NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  at             timestamptz NOT NULL,
  step           integer NOT NULL,
  kind           text NOT NULL,
  message        text NOT NULL CHECK (octet_length(message) <= 4096),
  data           jsonb
);
CREATE INDEX deployment_events_of ON deployment_events (deployment_id, id);

-- The controller's own actions (a rollback) are audited as the system.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_actor_kind_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_kind_check
  CHECK (actor_kind IN ('session', 'token', 'admin-token', 'anonymous', 'system'));
