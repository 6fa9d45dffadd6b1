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

-- On every insert and state change: a pipeline of a repository that reports nothing is marked
-- reported at once (it is never due, so no reporter wakes or writes for it); otherwise every
-- replica's reporter is woken (LISTEN assay_pipeline_state, delivered at commit). The reporter
-- also polls, so a lost notification only delays a report. Turning reporting on later reports
-- only what changes afterwards.
CREATE FUNCTION assay_pipeline_status_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
    IF EXISTS (SELECT 1 FROM repos WHERE id = NEW.repo_id AND status_api_url IS NOT NULL) THEN
      PERFORM pg_notify('assay_pipeline_state', NEW.id::text);
    ELSE
      NEW.status_reported := NEW.state;
    END IF;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER pipelines_status_due BEFORE INSERT OR UPDATE OF state ON pipelines
  FOR EACH ROW EXECUTE FUNCTION assay_pipeline_status_due();
