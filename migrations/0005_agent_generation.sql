-- Agent sessions. Every Hello bumps the agent's generation; the stream it opened is that
-- generation's session. When a stream ends, the server marks the agent offline and shortens
-- its leases only in a statement that also checks the generation is still the one its Hello
-- got: a stream replaced by a reconnect (to this server or another) changes nothing.
ALTER TABLE agents ADD COLUMN generation bigint NOT NULL DEFAULT 0 CHECK (generation >= 0);
