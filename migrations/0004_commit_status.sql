-- Commit statuses reported back to the forge.
--
-- repos: where and how to report. status_token_enc is AES-256-GCM (nonce || ciphertext ||
-- tag) under the server's secret key, like webhook_secret_enc; it is never returned.
-- Reporting is on exactly when status_api_url is set (and then the token is too).
ALTER TABLE repos
  ADD COLUMN status_api_url    text CHECK (status_api_url <> ''),
  ADD COLUMN status_token_enc  bytea,
  -- The forge's name for the repository (owner/name; GitLab: path or numeric id); NULL: name.
  ADD COLUMN status_repository text CHECK (status_repository <> ''),
  -- The status context (GitLab: name); NULL: 'assay'.
  ADD COLUMN status_context    text CHECK (status_context <> ''),
  ADD CONSTRAINT repos_status_token_with_url
    CHECK ((status_api_url IS NULL) = (status_token_enc IS NULL));

-- pipelines: an outbox. status_reported is the pipeline state last handed to the notifier
-- (NULL: none yet); a pipeline whose state differs is due for a report. A reporter claims due
-- rows with FOR UPDATE SKIP LOCKED and sets status_reported = state in the same transaction, so
-- with several server replicas on one database each transition is reported by one of them.
ALTER TABLE pipelines ADD COLUMN status_reported text;
-- Pipelines from before this migration are not reported.
UPDATE pipelines SET status_reported = state;
CREATE INDEX pipelines_status_due ON pipelines (id) WHERE status_reported IS DISTINCT FROM state;

-- Wakes every replica's reporter (LISTEN assay_pipeline_state) when a pipeline is created or
-- changes state; the reporter also polls, so a lost notification only delays a report.
CREATE FUNCTION assay_notify_pipeline_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
    PERFORM pg_notify('assay_pipeline_state', NEW.id::text);
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER pipelines_notify_state AFTER INSERT OR UPDATE OF state ON pipelines
  FOR EACH ROW EXECUTE FUNCTION assay_notify_pipeline_state();
