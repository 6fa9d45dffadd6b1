-- Issue 10, sweeps (docs/train.md "Sweeps"): a trial job carries its sweep in jobs.spec
-- ('sweep': name, trial, params, metric, goal, early_stop). What the server decided about
-- trials is kept here: a trial the median rule stopped, and each sweep's conclusion once all
-- its trials ended (the best trial, and the model version registered from it).

CREATE TABLE sweep_stops (
  job_id      bigint PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  step        bigint NOT NULL CHECK (step >= 0),
  value       double precision NOT NULL,
  median      double precision NOT NULL,
  others      integer NOT NULL CHECK (others >= 1),
  at          timestamptz NOT NULL
);

CREATE TABLE sweep_outcomes (
  pipeline_id      bigint NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
  name             text NOT NULL,
  best_job_id      bigint REFERENCES jobs (id) ON DELETE SET NULL,
  value            double precision,
  model_version_id bigint REFERENCES model_versions (id) ON DELETE SET NULL,
  message          text NOT NULL DEFAULT '',
  at               timestamptz NOT NULL,
  PRIMARY KEY (pipeline_id, name)
);
