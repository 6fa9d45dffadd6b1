#pragma once
// Forward-only schema migrations, embedded from migrations/*.sql at build time.

#include <string>
#include <vector>

#include "absl/status/statusor.h"

#include <pqxx/pqxx>

namespace assay::store {

struct Migration {
  int version;
  const char* name;
  const char* sql;
};

const std::vector<Migration>& EmbeddedMigrations();

// Applies every migration newer than the database's, in order, in ONE transaction under a
// transaction-scoped advisory lock, so concurrent servers starting at once apply each exactly
// once and a failing migration leaves the database as it was. Returns the versions applied.
absl::StatusOr<std::vector<int>> ApplyMigrations(pqxx::connection& conn,
                                                 const std::vector<Migration>& migrations);

}  // namespace assay::store
