-- Repository secrets (issue 9, docs/secrets.md). One row per repository, environment ('' for
-- the repository-wide value) and name. value_enc is sealed with the server's key ring
-- (common/crypto/sealed.h: the key id is in its header) for the associated data
-- "repo_secrets/<repo_id>/<environment>/<name>": a value copied to another repository,
-- environment or name does not open. The API never returns it (write-only).
CREATE TABLE repo_secrets (
  repo_id     bigint NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
  environment text NOT NULL DEFAULT '' CHECK (environment ~ '^([a-z0-9][a-z0-9_.-]{0,63})?$'),
  name        text NOT NULL CHECK (name ~ '^[A-Z_][A-Z0-9_]{0,127}$'),
  value_enc   bytea NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (repo_id, environment, name)
);
