-- Webhook replays (issue 8): a signed body resent under a new delivery id is recognised by the
-- SHA-256 of its raw bytes, per repository, within a window (server/store/deliveries.cc).
-- NULL for deliveries stored before this migration or with the window off.
ALTER TABLE webhook_deliveries ADD COLUMN body_sha256 bytea;
CREATE INDEX webhook_deliveries_repo_body ON webhook_deliveries (repo_id, body_sha256, received_at)
  WHERE body_sha256 IS NOT NULL;
