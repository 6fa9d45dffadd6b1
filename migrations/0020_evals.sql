-- Evals (issue 10, docs/evals.md): one row per eval step of a job attempt, and its examples.
-- The agent reports in pieces (examples first, the summary last); a run is `complete` once the
-- summary arrived. Baselines of relative gates are the last complete, passed run of the same
-- eval (repository, name) on a branch of a trusted pipeline.

CREATE TABLE eval_runs (
  id              bigserial PRIMARY KEY,
  job_id          bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt         integer NOT NULL CHECK (attempt >= 1),
  step_index      integer NOT NULL CHECK (step_index >= 0),
  repo_id         bigint NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
  pipeline_id     bigint NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
  job_name        text NOT NULL,
  name            text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 128),
  ref             text NOT NULL,
  commit_sha      text NOT NULL,
  trusted         boolean NOT NULL,
  complete        boolean NOT NULL DEFAULT false,
  passed          boolean,
  dataset_path    text NOT NULL DEFAULT '',
  dataset_sha256  text NOT NULL DEFAULT '',
  repeat          integer NOT NULL DEFAULT 1,
  examples        integer NOT NULL DEFAULT 0,
  error           text NOT NULL DEFAULT '',
  report          jsonb NOT NULL DEFAULT '{}'::jsonb,  -- metrics, verdicts, pass@k
  baseline_run_id bigint REFERENCES eval_runs (id) ON DELETE SET NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz,
  UNIQUE (job_id, attempt, step_index),
  CHECK (complete = (finished_at IS NOT NULL))
);
CREATE INDEX eval_runs_baseline ON eval_runs (repo_id, name, ref, id DESC)
  WHERE complete AND passed AND trusted;
CREATE INDEX eval_runs_repo ON eval_runs (repo_id, id DESC);
CREATE INDEX eval_runs_job ON eval_runs (job_id);

CREATE TABLE eval_examples (
  run_id          bigint NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
  idx             integer NOT NULL CHECK (idx >= 0),
  example_id      text NOT NULL,
  input           text NOT NULL,
  expected        text NOT NULL,
  output          text NOT NULL,
  error           text NOT NULL,
  passed          boolean NOT NULL,
  scores          jsonb NOT NULL,  -- {"metric": value}
  latency_ms      double precision NOT NULL,
  input_tokens    bigint NOT NULL,
  output_tokens   bigint NOT NULL,
  answered        integer NOT NULL,
  passes          integer NOT NULL,
  PRIMARY KEY (run_id, idx)
);
