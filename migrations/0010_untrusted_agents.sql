-- Untrusted pipelines (a fork's pull request, pipelines.trusted = false) run only on agents
-- that said so in their Hello (assay-agent --accept-untrusted); the scheduler and the claim
-- check it (an untrusted job's requirements carry "untrusted": true).
ALTER TABLE agents ADD COLUMN accept_untrusted boolean NOT NULL DEFAULT false;
