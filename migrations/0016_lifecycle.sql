-- Agent lifecycle (issue 9). Two reasons an agent takes no job, kept apart:
--  * accepting / state_reason: what the agent itself said (its Hello, then AgentState
--    messages): false while it drains after SIGTERM or while its disk is below its floor.
--    Written by the session that is current (generation), overwritten at every Hello.
--  * drained_at / drain_reason / drain_deadline: an admin's drain (POST
--    /api/v1/agents/{name}/drain), lifted by resume; it survives restarts and reconnects.
-- The scheduler, the claim and the waiting sentence skip an agent for either.
ALTER TABLE agents
  ADD COLUMN accepting      boolean NOT NULL DEFAULT true,
  ADD COLUMN state_reason   text NOT NULL DEFAULT ''
    CHECK (octet_length(state_reason) <= 300 AND (accepting OR state_reason <> '')),
  ADD COLUMN drained_at     timestamptz,
  ADD COLUMN drain_reason   text NOT NULL DEFAULT '' CHECK (octet_length(drain_reason) <= 300),
  ADD COLUMN drain_deadline timestamptz,
  ADD CONSTRAINT agents_drain_deadline_check
    CHECK (drain_deadline IS NULL OR drained_at IS NOT NULL);
