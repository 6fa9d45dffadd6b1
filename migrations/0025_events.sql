-- Issue 11, live dashboard updates (GET /api/v1/events, server/events/event_hub.h): every new
-- pipeline and job and every change of their state is announced on the channel 'assay_events'
-- (delivered at commit, to every replica's listener). The payload is small JSON, far under
-- NOTIFY's 8,000-byte limit. Notifications are hints: a dashboard that missed some (a listener
-- reconnecting) is told to fetch again.

CREATE FUNCTION assay_notify_pipeline_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
    PERFORM pg_notify('assay_events', json_build_object(
      'type', 'pipeline', 'id', NEW.id, 'repo_id', NEW.repo_id, 'state', NEW.state)::text);
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER pipelines_event AFTER INSERT OR UPDATE OF state ON pipelines
  FOR EACH ROW EXECUTE FUNCTION assay_notify_pipeline_event();

CREATE FUNCTION assay_notify_job_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
    PERFORM pg_notify('assay_events', json_build_object(
      'type', 'job', 'id', NEW.id, 'pipeline_id', NEW.pipeline_id, 'state', NEW.state)::text);
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER jobs_event AFTER INSERT OR UPDATE OF state ON jobs
  FOR EACH ROW EXECUTE FUNCTION assay_notify_job_event();
