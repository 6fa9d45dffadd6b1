#pragma once
// Agents as they announced themselves. *db must outlive the store.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/db.h"

namespace assay::store {

struct AgentHello {
  std::string name, version;
  std::vector<std::string> labels;
  int cpu_slots = 1;
  double memory_gb = 0;
  std::string gpus_json = "[]";
  bool accept_untrusted = false;  // runs jobs of untrusted pipelines
  // Its executors ("container", "sandbox", "host"); empty is stored as {"host"} (issue 9).
  std::vector<std::string> executors;
  // Who the stream proved to be: the enrolled agent whose credential (hash) it presented, or
  // 0 and "" for the shared agent token.
  int64_t enrolled_id = 0;
  std::string credential_hash;
  // The agent's own state (Hello.not_accepting): "" when it takes jobs, else why not.
  std::string not_accepting;
};

// An admin's drain of one agent (POST /api/v1/agents/{name}/drain); survives restarts.
struct AgentDrain {
  bool drained = false;
  std::string reason;                  // the admin's reason; "" when none was given
  std::optional<absl::Time> deadline;  // running jobs are canceled then; unset: never
};

// One connection of an agent: its id and the generation its Hello got (each Hello of the
// agent, on any server, gets the next one; the highest is the current session).
struct AgentSession {
  int64_t id = 0;
  int64_t generation = 0;
  AgentDrain drain;  // as it stood when the session started
};

struct AgentRow {
  int64_t id = 0;
  std::string name, state, version;
  std::vector<std::string> labels;
  int cpu_slots = 0;
  double memory_gb = 0;
  std::string gpus_json;
  absl::Time last_seen_at = absl::InfinitePast();
  // Issue 11: the GPUs' load as last reported ("" never), and when (InfinitePast never).
  std::string gpu_usage_json;
  absl::Time gpu_usage_at = absl::InfinitePast();
  bool accept_untrusted = false;
  std::vector<std::string> executors;  // as announced; {"host"} for agents that said none
  // "shared-token" (never enrolled), "enrolled", "disabled" or "revoked".
  std::string access;
  std::string not_accepting;  // the agent's own "why no jobs" ("": it takes jobs)
  AgentDrain drain;
};

class AgentStore {
 public:
  explicit AgentStore(Db* db) : db_(db) {}
  // Creates or updates the agent named in `hello`, marks it online and starts its next
  // session (generation). kPermissionDenied, changing nothing, when the stream may not speak
  // for that agent: a shared-token hello naming an enrolled (or revoked) agent, or a
  // credential that is no longer the agent's or whose agent is disabled — checked in the same
  // statement, so a revoke racing this hello either comes first or closes the new session.
  absl::StatusOr<AgentSession> Connect(const AgentHello& hello);
  // Marks the agent offline if `session` is still its current one. Returns false (and
  // changes nothing) when a newer Hello of the agent has started another session.
  absl::StatusOr<bool> Disconnect(const AgentSession& session);
  absl::StatusOr<std::vector<AgentRow>> List();
  // Marks these agents seen now (their streams are open on this server).
  absl::Status Touch(const std::vector<int64_t>& ids);
  // Issue 11: records the agent's GPU load (a JSON array) as of now.
  absl::Status SetGpuUsage(int64_t agent_id, const std::string& usage_json);

  // Lifecycle (issue 9). Records the agent's own state ("" = accepting; else why not, at most
  // 300 bytes) if `session` is still its current one; false (changing nothing) otherwise.
  absl::StatusOr<bool> SetNotAccepting(const AgentSession& session, const std::string& reason);
  // Drains the agent named `name` (kNotFound if none): it takes no new job from any server.
  // Idempotent: draining a drained agent keeps its first drained_at and updates the reason
  // and deadline. Notifies 'assay_agent_drain' with the agent id, so that the server holding
  // its stream tells it at once. Returns the agent id.
  absl::StatusOr<int64_t> Drain(const std::string& name, const std::string& reason,
                                std::optional<absl::Time> deadline);
  // Lifts the drain (kNotFound if no such agent; a no-op when it is not drained).
  absl::StatusOr<int64_t> Resume(const std::string& name);
  // The drain state of these agents (missing ids: no such agent).
  absl::StatusOr<std::map<int64_t, AgentDrain>> Drains(const std::vector<int64_t>& ids);

 private:
  Db* db_;
};

}  // namespace assay::store
