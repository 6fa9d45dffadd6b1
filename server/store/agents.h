#pragma once
// Agents as they announced themselves. *db must outlive the store.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/db.h"

namespace assay::store {

struct AgentHello {
  std::string name, version;
  std::vector<std::string> labels;
  int cpu_slots = 1;
  std::string gpus_json = "[]";
};

struct AgentRow {
  int64_t id = 0;
  std::string name, state, version;
  std::vector<std::string> labels;
  int cpu_slots = 0;
  std::string gpus_json;
};

class AgentStore {
 public:
  explicit AgentStore(Db* db) : db_(db) {}
  // Creates or updates the agent named in `hello` and marks it online; returns its id.
  absl::StatusOr<int64_t> Connect(const AgentHello& hello);
  absl::Status Disconnect(int64_t id);
  absl::StatusOr<std::vector<AgentRow>> List();

 private:
  Db* db_;
};

}  // namespace assay::store
