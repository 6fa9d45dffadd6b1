#include "server/store/agents.h"

namespace assay::store {
namespace {

constexpr Query kUpsert{
    "agent_upsert",
    "INSERT INTO agents (name, labels, cpu_slots, gpus, version, state, connected_at, "
    "last_seen_at) VALUES ($1, $2::text[], $3, $4::jsonb, $5, 'online', now(), now()) "
    "ON CONFLICT (name) DO UPDATE SET labels = EXCLUDED.labels, cpu_slots = EXCLUDED.cpu_slots, "
    "gpus = EXCLUDED.gpus, version = EXCLUDED.version, state = 'online', connected_at = now(), "
    "last_seen_at = now() RETURNING id"};
constexpr Query kDisconnect{"agent_disconnect",
                            "UPDATE agents SET state = 'offline', last_seen_at = now() WHERE id = $1"};
constexpr Query kList{"agent_list",
                      "SELECT id, name, state, version, labels, cpu_slots, gpus::text FROM agents "
                      "ORDER BY name"};

}  // namespace

absl::StatusOr<int64_t> AgentStore::Connect(const AgentHello& h) {
  int64_t id = 0;
  absl::Status s = InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    id = Exec(tx, c, kUpsert, {h.name, ToPgTextArray(h.labels), h.cpu_slots, h.gpus_json, h.version})
             [0][0].as<int64_t>();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return id;
}

absl::Status AgentStore::Disconnect(int64_t id) {
  return InTransaction(*db_, [&](pqxx::work& tx, Connection& c) {
    Exec(tx, c, kDisconnect, {id});
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
      out.push_back(std::move(a));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace assay::store
