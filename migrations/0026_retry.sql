-- Issue 11: retry and re-run (docs/scheduling.md "Retry and re-run"), and a pipeline's commit.
-- jobs.planned_attempts: the attempts the job's retry policy gives it, as planned. A manual
-- retry gives the job that many attempts again (max_attempts = attempt + planned_attempts):
-- max_attempts alone cannot say it, because a rejected assignment raises max_attempts by one.
ALTER TABLE jobs ADD COLUMN planned_attempts integer NOT NULL DEFAULT 2
  CHECK (planned_attempts >= 1);
UPDATE jobs SET planned_attempts = max_attempts;

-- pipelines.rerun_of: a re-run is a new pipeline of the same commit, ref, event and inputs;
-- this names the pipeline it re-ran.
ALTER TABLE pipelines ADD COLUMN rerun_of bigint REFERENCES pipelines (id) ON DELETE SET NULL;

-- The author and message of the pipeline's commit, as its trigger on the dashboard (read from
-- the repository's mirror when the pipeline is planned; NULL when it could not be read).
ALTER TABLE pipelines ADD COLUMN commit_author text, ADD COLUMN commit_message text;

-- A repository's recent webhook deliveries, newest first (the settings page).
CREATE INDEX webhook_deliveries_repo ON webhook_deliveries (repo_id, id DESC);

-- Issue 11, the agents page: each GPU's load as the agent's heartbeats last reported it
-- ([{"index","utilization_pct","memory_used_mb"}]) and when.
ALTER TABLE agents ADD COLUMN gpu_usage jsonb, ADD COLUMN gpu_usage_at timestamptz;

-- Issue 11, the job log's folded steps: where each step of the attempt begins in its log
-- ([{"index","name","log_offset","started_at"}]), as the agent reported with its result.
ALTER TABLE job_attempts ADD COLUMN steps jsonb;
