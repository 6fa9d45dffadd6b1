-- Logs at scale (issue 9). Every stored chunk knows where its bytes sit in the attempt's log
-- (start_offset: the log's byte offset of its first byte), so a range or an offset is found
-- through an index instead of a scan, and a reader's position is a byte offset that stays
-- valid when rows are merged. A merged (compacted) row covers the chunks seq..end_seq.
-- start_offset is NULL for a chunk stored before an earlier one (out of order): it joins the
-- log (gets its offset) once the chunks before it are stored, or when the attempt is
-- compacted; readers see only the contiguous log.
-- marks: when the agent read the bytes, as 12-byte records (uint32 offset in the row, int64
-- unix microseconds, little-endian), ascending; the bytes from one mark's offset to the next
-- were read at its time. Empty for rows stored before this migration (received_at is used).
ALTER TABLE log_chunks
  ADD COLUMN start_offset bigint,
  ADD COLUMN end_seq      bigint,
  ADD COLUMN marks        bytea NOT NULL DEFAULT '\x';

UPDATE log_chunks c SET start_offset = s.start_offset, end_seq = c.seq
  FROM (SELECT job_id, attempt, seq,
               coalesce(sum(octet_length(data)) OVER (PARTITION BY job_id, attempt ORDER BY seq
                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS start_offset
          FROM log_chunks) s
 WHERE c.job_id = s.job_id AND c.attempt = s.attempt AND c.seq = s.seq;

ALTER TABLE log_chunks
  ALTER COLUMN end_seq SET NOT NULL,
  ADD CONSTRAINT log_chunks_offset_ok CHECK (start_offset >= 0),
  ADD CONSTRAINT log_chunks_end_seq_ok CHECK (end_seq >= seq);

-- Why EXTERNAL (uncompressed out-of-line): ingest skips pglz, and a merged row is sliced
-- without decompressing it whole.
ALTER TABLE log_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE UNIQUE INDEX log_chunks_offset ON log_chunks (job_id, attempt, start_offset);
CREATE INDEX log_chunks_pending ON log_chunks (job_id, attempt, seq) WHERE start_offset IS NULL;

-- log_compacted: the attempt ended and its chunk rows were merged (server/logs/compactor).
ALTER TABLE job_attempts ADD COLUMN log_compacted boolean NOT NULL DEFAULT false;
-- The compactor's sweep: ended attempts whose rows are not merged yet.
CREATE INDEX job_attempts_log_uncompacted ON job_attempts (finished_at)
  WHERE NOT log_compacted AND finished_at IS NOT NULL;
