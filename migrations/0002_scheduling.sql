-- Assay schema, version 2: what a job asks of an agent (runs_on) and what it was given
-- (GPU indices), retry policy, allow_failure, concurrency groups and matrix max_parallel;
-- agents announce their memory.

ALTER TABLE agents ADD COLUMN memory_gb double precision NOT NULL DEFAULT 0
  CHECK (memory_gb >= 0);

-- The pipeline's repository, kept on the job so that the queue can be read per repository
-- (fair share) through an index.
ALTER TABLE jobs ADD COLUMN repo_id bigint REFERENCES repos (id);
UPDATE jobs j SET repo_id = p.repo_id FROM pipelines p WHERE p.id = j.pipeline_id;
ALTER TABLE jobs ALTER COLUMN repo_id SET NOT NULL;
CREATE INDEX jobs_queued_repo ON jobs (repo_id, priority DESC, queued_at, id)
  WHERE state = 'queued';

-- requirements: {"cpus":N,"memory_gb":X,"gpus":N,"gpu_shared":B,"gpu_memory_gb":X,
-- "gpu_model":"glob"} (labels stay in jobs.labels). Empty object: one CPU, nothing else.
ALTER TABLE jobs ADD COLUMN requirements jsonb NOT NULL DEFAULT '{}';
-- The GPUs of the live attempt (the agent's nvidia-smi indices); NULL when none.
ALTER TABLE jobs ADD COLUMN gpu_indices integer[];
-- Which ends of an attempt start another one (while attempt < max_attempts).
ALTER TABLE jobs ADD COLUMN retry_on text[] NOT NULL DEFAULT '{agent_lost}'
  CHECK (retry_on <@ ARRAY['agent_lost', 'timeout', 'failure']);
ALTER TABLE jobs ADD COLUMN allow_failure boolean NOT NULL DEFAULT false;
-- "<repo id>:<group>"; at most one job of a group is assigned or running at a time.
ALTER TABLE jobs ADD COLUMN concurrency_key text;
-- Matrix expansions share "<pipeline id>:<job name>"; at most max_parallel of them run.
ALTER TABLE jobs ADD COLUMN parallel_key text;
ALTER TABLE jobs ADD COLUMN max_parallel integer CHECK (max_parallel >= 1);
-- The agent of the previous attempt: a retry prefers another one.
ALTER TABLE jobs ADD COLUMN last_agent_id bigint REFERENCES agents (id);

CREATE UNIQUE INDEX jobs_concurrency_live ON jobs (concurrency_key)
  WHERE concurrency_key IS NOT NULL AND state IN ('assigned', 'running');
CREATE INDEX jobs_live_of_agent ON jobs (agent_id) WHERE state IN ('assigned', 'running');

ALTER TABLE job_attempts ADD COLUMN gpu_indices integer[];

-- Advancing a pipeline after each job looks only at its unfinished (and pending) jobs;
-- without these it scanned every job of the pipeline on every finish.
CREATE INDEX jobs_pending_of_pipeline ON jobs (pipeline_id) WHERE state = 'pending';
CREATE INDEX jobs_unfinished_of_pipeline ON jobs (pipeline_id)
  WHERE state IN ('pending', 'queued', 'assigned', 'running');

-- Every job state change rewrites each full index of the row: drop the two that nothing uses
-- any more (the queue is read per repository through jobs_queued_repo; jobs of a pipeline
-- are found through UNIQUE (pipeline_id, name)), and keep the attempt token's uniqueness
-- only for rows that have one.
DROP INDEX jobs_queued;
DROP INDEX jobs_pipeline;
ALTER TABLE jobs DROP CONSTRAINT jobs_attempt_token_key;
CREATE UNIQUE INDEX jobs_attempt_token ON jobs (attempt_token) WHERE attempt_token IS NOT NULL;
