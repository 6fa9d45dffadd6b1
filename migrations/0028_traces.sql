-- Issue 12: traces of finished pipelines and deployments, exported over OTLP/HTTP
-- (server/trace/otlp_exporter.h). traced_at is the finished_at that was exported: a pipeline
-- retried in place finishes again and is due again. What finished before this migration is
-- taken as exported.
ALTER TABLE pipelines ADD COLUMN traced_at timestamptz;
UPDATE pipelines SET traced_at = finished_at WHERE finished_at IS NOT NULL;
CREATE INDEX pipelines_untraced ON pipelines (finished_at)
  WHERE finished_at IS NOT NULL AND traced_at IS DISTINCT FROM finished_at;

ALTER TABLE deployments ADD COLUMN traced_at timestamptz;
UPDATE deployments SET traced_at = finished_at WHERE finished_at IS NOT NULL;
CREATE INDEX deployments_untraced ON deployments (finished_at)
  WHERE finished_at IS NOT NULL AND traced_at IS DISTINCT FROM finished_at;
