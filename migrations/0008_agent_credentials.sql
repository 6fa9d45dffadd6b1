-- Agent enrollment (issue 8): each agent has its own credential, bound to its name and to the
-- labels an admin allowed. An admin makes a one-time enrollment token; the agent exchanges it
-- once for its credential. Only SHA-256 hashes of both secrets are stored (each is 32 random
-- bytes, so a plain hash is enough: there is nothing to guess).

CREATE TABLE agent_enrollment_tokens (
  id            bigserial PRIMARY KEY,
  token_hash    bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
  -- The name the agent must enroll as; NULL: the agent's own --name.
  name          text CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$'),
  -- The labels the enrolled agent may announce (a Hello with others is refused).
  labels        text[] NOT NULL DEFAULT '{}',
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  used_at       timestamptz,
  agent_id      bigint REFERENCES agents (id) ON DELETE SET NULL  -- who used it
);

-- credential_hash NULL: the agent has no credential (it connected with the shared token, or
-- its credential was revoked). An agent with a credential accepts only that credential;
-- revoked_at set: refused until it enrolls again with a new token; disabled: refused until
-- enabled (its credential is kept).
ALTER TABLE agents
  ADD COLUMN credential_hash bytea UNIQUE CHECK (length(credential_hash) = 32),
  ADD COLUMN allowed_labels text[],
  ADD COLUMN enrolled_at timestamptz,
  ADD COLUMN revoked_at timestamptz,
  ADD COLUMN disabled boolean NOT NULL DEFAULT false;
