-- Clone credentials (issue 8): "user:password@" of an https clone URL is no longer stored in
-- clone_url (which the API lists and git writes into a mirror's config) but here, AES-256-GCM
-- (nonce || ciphertext || tag) under the server's secret key like webhook_secret_enc, as
-- "username\npassword". It is never returned by the API and reaches git only through a
-- credential helper. Rows registered before keep their URL; the server strips the userinfo
-- from it wherever the URL is shown or written (common/git/clone_url.h).
ALTER TABLE repos ADD COLUMN clone_credential_enc bytea;
