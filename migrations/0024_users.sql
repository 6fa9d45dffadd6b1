-- Issue 11, users and access (docs/access.md): local users, their per-repository roles,
-- browser sessions, API tokens and the audit log. Secrets are kept only as SHA-256 (session
-- ids and API tokens are 256 random bits) or as scrypt hashes (passwords).

CREATE TABLE users (
  id             bigserial PRIMARY KEY,
  username       text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  password_hash  text NOT NULL CHECK (password_hash LIKE '$scrypt$%'),
  -- admin: everything; maintainer: writes on every repository and the model registry;
  -- viewer: reads, plus writes on the repositories of repo_members.
  role           text NOT NULL CHECK (role IN ('admin', 'maintainer', 'viewer')),
  disabled       boolean NOT NULL DEFAULT false,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A viewer made maintainer of one repository.
CREATE TABLE repo_members (
  repo_id    bigint NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
  user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role       text NOT NULL CHECK (role IN ('maintainer')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (repo_id, user_id)
);
CREATE INDEX repo_members_user ON repo_members (user_id);

CREATE TABLE sessions (
  id_hash     bytea PRIMARY KEY CHECK (octet_length(id_hash) = 32),
  user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- The CSRF token the session's pages send back in X-Assay-CSRF (not a credential alone).
  csrf_token  text NOT NULL CHECK (csrf_token ~ '^[0-9a-f]{64}$'),
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  remote_addr text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE api_tokens (
  id           bigserial PRIMARY KEY,
  user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9 _.:-]{0,99}$'),
  token_hash   bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
  -- read: GET only; write: what the user may do but administer; admin: all the user may do.
  scope        text NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
  created_at   timestamptz NOT NULL,
  expires_at   timestamptz NOT NULL,
  last_used_at timestamptz,
  revoked_at   timestamptz,
  UNIQUE (user_id, name)
);

-- Every state change through the API (and the dashboard, which uses it), and every refused
-- credential or permission: who, what, the answer's status and from where.
CREATE TABLE audit_log (
  id          bigserial PRIMARY KEY,
  at          timestamptz NOT NULL,
  actor       text NOT NULL,          -- a username, 'admin-token' or 'anonymous'
  actor_kind  text NOT NULL CHECK (actor_kind IN ('session', 'token', 'admin-token', 'anonymous')),
  action      text NOT NULL,          -- "POST /api/v1/jobs/7/cancel", "login", ...
  status      integer NOT NULL,
  remote_addr text NOT NULL DEFAULT '',
  request_id  text NOT NULL DEFAULT '',
  detail      text NOT NULL DEFAULT '' CHECK (octet_length(detail) <= 4096)
);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
