-- Issue 9: the executors an agent runs jobs in (its Hello's executors: container, sandbox,
-- host). Agents that announce none (older ones) run on the host. The scheduler and the claim
-- match jobs on it: "executor": "container" in a job's requirements needs container; any other
-- job sandbox or host; an untrusted one an isolating executor (never host).
ALTER TABLE agents ADD COLUMN executors text[] NOT NULL DEFAULT '{host}';
