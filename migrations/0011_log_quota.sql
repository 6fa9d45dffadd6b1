-- A per-attempt log quota (issue 8, item 8). log_bytes: the bytes of log chunks stored for the
-- attempt (the server counts them as it stores them; a resent chunk is counted once).
-- log_truncated: the quota was reached and a truncation marker was stored; later chunks of the
-- attempt are acknowledged and dropped.
ALTER TABLE job_attempts
  ADD COLUMN log_bytes     bigint NOT NULL DEFAULT 0 CHECK (log_bytes >= 0),
  ADD COLUMN log_truncated boolean NOT NULL DEFAULT false;

-- Attempts that already have chunks start from what they hold.
UPDATE job_attempts a SET log_bytes = s.n
  FROM (SELECT job_id, attempt, sum(octet_length(data)) AS n FROM log_chunks
        GROUP BY job_id, attempt) s
 WHERE a.job_id = s.job_id AND a.attempt = s.attempt;
