-- Triggers beyond pushes: pull requests, schedules and manual pipelines, and per-repository
-- settings for them.

-- The branch whose .assay.yml holds the repository's schedules (learned from webhook payloads,
-- settable through the API), and whether a new push pipeline cancels older ones of its branch.
ALTER TABLE repos
  ADD COLUMN default_branch text NOT NULL DEFAULT 'main' CHECK (default_branch <> ''),
  ADD COLUMN cancel_superseded boolean NOT NULL DEFAULT false;

-- One row per on.schedule entry of the default branch's file. `branch` '' means the
-- repository's default branch at firing time. A loop claims a due row by moving next_run_at
-- with a conditional UPDATE, so one replica fires each slot.
CREATE TABLE schedules (
  id            bigserial PRIMARY KEY,
  repo_id       bigint NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
  cron          text NOT NULL CHECK (cron <> ''),
  branch        text NOT NULL DEFAULT '',
  next_run_at   timestamptz NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (repo_id, cron, branch)
);
CREATE INDEX schedules_due ON schedules (next_run_at);

-- trusted = false: the pipeline runs code from a fork's pull request and must never receive
-- secrets. inputs: a manual pipeline's resolved inputs (name -> text).
ALTER TABLE pipelines
  ADD COLUMN trusted boolean NOT NULL DEFAULT true,
  ADD COLUMN pr_number bigint,
  ADD COLUMN inputs jsonb,
  ADD COLUMN schedule_id bigint REFERENCES schedules (id) ON DELETE SET NULL,
  ADD COLUMN scheduled_for timestamptz,
  ADD CONSTRAINT pipelines_schedule_slot UNIQUE (schedule_id, scheduled_for);
CREATE INDEX pipelines_repo_ref_running ON pipelines (repo_id, ref) WHERE state = 'running';
