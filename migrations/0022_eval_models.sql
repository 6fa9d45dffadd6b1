-- Issue 10: an eval run is attached to the model version its pipeline registered (a `train:`
-- step before it), so that a version lists its evals and a gate can take as baseline the last
-- passed run on the version an alias points at (`vs: "@production"`).
ALTER TABLE eval_runs
  ADD COLUMN model_version_id bigint REFERENCES model_versions (id) ON DELETE SET NULL;
CREATE INDEX eval_runs_model_version ON eval_runs (model_version_id)
  WHERE model_version_id IS NOT NULL;
