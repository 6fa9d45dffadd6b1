#include "server/store/agents.h"

#include "absl/strings/str_cat.h"

namespace assay::store {
namespace {

const Query kUpsert{
    "agent_upsert",
    "INSERT INTO agents (name, labels, cpu_slots, gpus, version, state, connected_at, "
    "last_seen_at, memory_gb, generation, accept_untrusted, executors) VALUES ($1, $2::text[], $3, "
    "$4::jsonb, $5, 'online', now(), now(), $6::float8, 1, $7, $10::text[]) "
    "ON CONFLICT (name) DO UPDATE SET labels = EXCLUDED.labels, cpu_slots = EXCLUDED.cpu_slots, "
    "memory_gb = EXCLUDED.memory_gb, accept_untrusted = EXCLUDED.accept_untrusted, "
    "executors = EXCLUDED.executors, "
    "gpus = EXCLUDED.gpus, version = EXCLUDED.version, state = 'online', connected_at = now(), "
    "last_seen_at = now(), generation = agents.generation + 1 "
    "WHERE (agents.enrolled_at IS NULL AND $8::bigint = 0) OR (agents.id = $8::bigint AND "
    "agents.credential_hash = $9 AND NOT agents.disabled) RETURNING id, generation"};
// Only the session that is current: after a reconnect (to this server or another), the old
// stream's late disconnect must not mark the agent offline. The row lock serializes this
// with a concurrent Hello, and the generation is re-checked on the row as locked.
const Query kDisconnect{
    "agent_disconnect",
    "UPDATE agents SET state = 'offline', last_seen_at = now() WHERE id = $1 AND "
    "generation = $2 RETURNING 1"};
const Query kTouch{"agent_touch",
                   "UPDATE agents SET last_seen_at = now() WHERE id = ANY($1::bigint[]) "
                   "AND state = 'online'"};
const Query kList{"agent_list",
                      "SELECT id, name, state, version, labels, cpu_slots, gpus::text, memory_gb, "
                      ASSAY_EPOCH_US("last_seen_at") ", accept_untrusted, CASE WHEN revoked_at IS "
                      "NOT NULL THEN 'revoked' WHEN disabled THEN 'disabled' WHEN enrolled_at IS "
                      "NOT NULL THEN 'enrolled' ELSE 'shared-token' END, state_reason, "
                      "drained_at IS NOT NULL, drain_reason, "
                      ASSAY_EPOCH_US("drain_deadline") ", executors, coalesce(gpu_usage::text, ''), "
                      ASSAY_EPOCH_US("gpu_usage_at") " FROM agents ORDER BY name"};
const Query kSetGpuUsage{"agent_set_gpu_usage",
                         "UPDATE agents SET gpu_usage = $2::jsonb, gpu_usage_at = now() "
                         "WHERE id = $1"};
// Lifecycle (issue 9). The agent's own state, from the session that is current only; the
// row lock serializes it with a concurrent Hello (as kDisconnect).
const Query kSetAccepting{
    "agent_set_accepting",
    "UPDATE agents SET accepting = ($3 = ''), state_reason = $3 WHERE id = $1 AND "
    "generation = $2 RETURNING drained_at IS NOT NULL, drain_reason, " ASSAY_EPOCH_US(
        "drain_deadline")};
const Query kDrain{"agent_drain",
                   "UPDATE agents SET drained_at = coalesce(drained_at, now()), drain_reason = $2, "
                   "drain_deadline = $3::timestamptz WHERE name = $1 RETURNING id"};
const Query kResume{"agent_resume",
                    "UPDATE agents SET drained_at = NULL, drain_reason = '', drain_deadline = NULL "
                    "WHERE name = $1 RETURNING id"};
const Query kNotifyDrain{"agent_notify_drain", "SELECT pg_notify('assay_agent_drain', $1)"};
const Query kDrains{"agent_drains",
                    "SELECT id, drained_at IS NOT NULL, drain_reason, " ASSAY_EPOCH_US(
                        "drain_deadline") " FROM agents WHERE id = ANY($1::bigint[])"};

AgentDrain DrainFromRow(const pqxx::row& r, int first) {
  AgentDrain d;
  d.drained = r[first].as<bool>();
  d.reason = r[first + 1].as<std::string>();
  if (!r[first + 2].is_null()) d.deadline = ToTime(r[first + 2]);
  return d;
}

}  // namespace

absl::StatusOr<AgentSession> AgentStore::Connect(const AgentHello& h) {
  AgentSession out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r =
        Exec(tx, c, kUpsert,
             {h.name, ToPgTextArray(h.labels), h.cpu_slots, h.gpus_json, h.version,
              absl::StrCat(h.memory_gb), h.accept_untrusted, h.enrolled_id,
              h.credential_hash.empty() ? Param::Null() : Param::Bytes(h.credential_hash),
              ToPgTextArray(h.executors.empty() ? std::vector<std::string>{"host"} : h.executors)});
    if (r.empty()) {
      return absl::PermissionDeniedError(
          h.enrolled_id == 0
              ? absl::StrCat("agent '", h.name,
                             "' is enrolled: it must connect with its own credential")
              : absl::StrCat("the credential of agent '", h.name,
                             "' was revoked or the agent is disabled"));
    }
    out.id = r[0][0].as<int64_t>();
    out.generation = r[0][1].as<int64_t>();
    // Why a second statement: the upsert is shared by several features; the lifecycle's
    // columns are set (and the drain read) in the same transaction.
    auto st = Exec(tx, c, kSetAccepting, {out.id, out.generation, h.not_accepting});
    if (!st.empty()) out.drain = DrainFromRow(st[0], 0);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<bool> AgentStore::Disconnect(const AgentSession& session) {
  bool current = false;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    current = !Exec(tx, c, kDisconnect, {session.id, session.generation}).empty();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return current;
}

absl::Status AgentStore::Touch(const std::vector<int64_t>& ids) {
  if (ids.empty()) return absl::OkStatus();
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    Exec(tx, c, kTouch, {ToPgArray(ids)});
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<AgentRow>> AgentStore::List() {
  std::vector<AgentRow> out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kList)) {
      AgentRow a;
      a.id = r[0].as<int64_t>();
      a.name = r[1].as<std::string>();
      a.state = r[2].as<std::string>();
      a.version = r[3].as<std::string>();
      a.labels = FromPgTextArray(r[4]);
      a.cpu_slots = r[5].as<int>();
      a.gpus_json = r[6].as<std::string>();
      a.memory_gb = r[7].as<double>();
      a.last_seen_at = ToTime(r[8]);
      a.accept_untrusted = r[9].as<bool>();
      a.access = r[10].as<std::string>();
      a.not_accepting = r[11].as<std::string>();
      a.drain = DrainFromRow(r, 12);
      a.executors = FromPgTextArray(r[15]);
      a.gpu_usage_json = r[16].as<std::string>();
      a.gpu_usage_at = ToTime(r[17]);
      out.push_back(std::move(a));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status AgentStore::SetGpuUsage(int64_t agent_id, const std::string& usage_json) {
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    Exec(tx, c, kSetGpuUsage, {agent_id, usage_json});
    return absl::OkStatus();
  });
}

absl::StatusOr<bool> AgentStore::SetNotAccepting(const AgentSession& session,
                                                 const std::string& reason) {
  bool current = false;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    current = !Exec(tx, c, kSetAccepting, {session.id, session.generation, reason}).empty();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return current;
}

absl::StatusOr<int64_t> AgentStore::Drain(const std::string& name, const std::string& reason,
                                          std::optional<absl::Time> deadline) {
  int64_t id = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kDrain, {name, reason, Param::Opt(deadline)});
    if (r.empty()) return absl::NotFoundError(absl::StrCat("no agent named '", name, "'"));
    id = r[0][0].as<int64_t>();
    Exec(tx, c, kNotifyDrain, {absl::StrCat(id)});
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return id;
}

absl::StatusOr<int64_t> AgentStore::Resume(const std::string& name) {
  int64_t id = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kResume, {name});
    if (r.empty()) return absl::NotFoundError(absl::StrCat("no agent named '", name, "'"));
    id = r[0][0].as<int64_t>();
    Exec(tx, c, kNotifyDrain, {absl::StrCat(id)});
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return id;
}

absl::StatusOr<std::map<int64_t, AgentDrain>> AgentStore::Drains(const std::vector<int64_t>& ids) {
  std::map<int64_t, AgentDrain> out;
  if (ids.empty()) return out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    for (const auto& r : Exec(tx, c, kDrains, {ToPgArray(ids)})) {
      out[r[0].as<int64_t>()] = DrainFromRow(r, 1);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace assay::store
