-- Commit statuses delivered at least once and in order per commit (replaces 0004's outbox,
-- which marked a status reported when it was claimed, so statuses queued at shutdown were lost
-- and a retried `pending` from one replica could land after another replica's final status).
--
-- commit_status_outbox: one row per pipeline transition still to be sent (id = the order of
-- transitions). commit_status_commits: one row per (repository, commit) that has statuses; it
-- carries the claim, a lease: a reporter sends only while its lease (token, leased_until) is
-- live, and renews it before every attempt; a crashed or stopped reporter's lease runs out and
-- any reporter claims the commit again. One live lease per commit means one sender per commit.
-- delivered_id: the newest outbox row delivered (or given up) for the commit; rows up to it are
-- superseded and never sent.
CREATE TABLE commit_status_commits (
  repo_id       bigint NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
  commit_sha    text NOT NULL,
  delivered_id  bigint NOT NULL DEFAULT 0,
  lease_token   bigint,
  leased_until  timestamptz,
  lease_id      bigint,  -- the outbox row being sent under the lease
  PRIMARY KEY (repo_id, commit_sha),
  CHECK ((lease_token IS NULL) = (leased_until IS NULL)
         AND (lease_token IS NULL) = (lease_id IS NULL))
);

CREATE TABLE commit_status_outbox (
  id            bigserial PRIMARY KEY,
  pipeline_id   bigint NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
  repo_id       bigint NOT NULL,
  commit_sha    text NOT NULL,
  state         text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (repo_id, commit_sha) REFERENCES commit_status_commits ON DELETE CASCADE
);
CREATE INDEX commit_status_outbox_commit ON commit_status_outbox (repo_id, commit_sha, id);

CREATE SEQUENCE commit_status_lease_tokens;

-- What 0004 had not yet handed over is still due.
INSERT INTO commit_status_commits (repo_id, commit_sha)
  SELECT DISTINCT p.repo_id, p.commit_sha FROM pipelines p JOIN repos r ON r.id = p.repo_id
  WHERE p.status_reported IS DISTINCT FROM p.state AND r.status_api_url IS NOT NULL;
INSERT INTO commit_status_outbox (pipeline_id, repo_id, commit_sha, state)
  SELECT p.id, p.repo_id, p.commit_sha, p.state FROM pipelines p JOIN repos r ON r.id = p.repo_id
  WHERE p.status_reported IS DISTINCT FROM p.state AND r.status_api_url IS NOT NULL
  ORDER BY p.id;

DROP TRIGGER pipelines_status_due ON pipelines;
DROP FUNCTION assay_pipeline_status_due();
DROP INDEX pipelines_status_due;
ALTER TABLE pipelines DROP COLUMN status_reported;

-- On every insert and state change of a pipeline whose repository reports: queue the state and
-- wake every replica's reporter (LISTEN assay_pipeline_state, delivered at commit). Reporters
-- also poll, so a lost notification only delays a report. Repositories that report nothing
-- queue nothing; turning reporting on later reports only what changes afterwards.
CREATE FUNCTION assay_pipeline_status_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state)
     AND EXISTS (SELECT 1 FROM repos WHERE id = NEW.repo_id AND status_api_url IS NOT NULL) THEN
    INSERT INTO commit_status_commits (repo_id, commit_sha) VALUES (NEW.repo_id, NEW.commit_sha)
      ON CONFLICT DO NOTHING;
    INSERT INTO commit_status_outbox (pipeline_id, repo_id, commit_sha, state)
      VALUES (NEW.id, NEW.repo_id, NEW.commit_sha, NEW.state);
    PERFORM pg_notify('assay_pipeline_state', NEW.id::text);
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER pipelines_status_queue AFTER INSERT OR UPDATE OF state ON pipelines
  FOR EACH ROW EXECUTE FUNCTION assay_pipeline_status_queue();
