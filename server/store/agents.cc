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
                      "NOT NULL THEN 'enrolled' ELSE 'shared-token' END, executors FROM agents "
                      "ORDER BY name"};

}  // namespace

absl::StatusOr<AgentSession> AgentStore::Connect(const AgentHello& h) {
  AgentSession out;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    auto r = Exec(tx, c, kUpsert,
                  {h.name, ToPgTextArray(h.labels), h.cpu_slots, h.gpus_json, h.version,
                   absl::StrCat(h.memory_gb), h.accept_untrusted, h.enrolled_id,
                   h.credential_hash.empty() ? Param::Null() : Param::Bytes(h.credential_hash),
                   ToPgTextArray(h.executors.empty() ? std::vector<std::string>{"host"}
                                                     : h.executors)});
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
      a.executors = FromPgTextArray(r[11]);
      out.push_back(std::move(a));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace assay::store
