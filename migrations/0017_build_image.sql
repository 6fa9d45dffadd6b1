-- build_image steps (issue 9, docs/images.md): what a job's attempt pushed to a registry.
-- Written with the attempt's result (JobStore::Finish, under its attempt token) and read by the
-- REST API (GET /api/v1/jobs/{id}: "images") and by the dispatcher, which resolves a later
-- job's `image: ${{ jobs.NAME.image }}` to <repository>@<digest> of NAME's last primary row.
CREATE TABLE job_images (
  job_id    bigint NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  attempt   int NOT NULL,
  seq       int NOT NULL CHECK (seq >= 0),  -- push order within the attempt
  reference text NOT NULL CHECK (octet_length(reference) BETWEEN 1 AND 512),
  digest    text NOT NULL CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
  is_primary boolean NOT NULL,
  PRIMARY KEY (job_id, attempt, seq)
);
