#include "server/store/migrations.h"

#include <pqxx/pqxx>

#include <set>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"

namespace assay::store {
namespace {
// Why a fixed key: every Assay server on this database must serialize on the same lock.
constexpr int64_t kMigrationLockKey = 0x4153534159;  // "ASSAY"
}  // namespace

absl::StatusOr<std::vector<int>> ApplyMigrations(pqxx::connection& conn,
                                                 const std::vector<Migration>& migrations) {
  std::vector<int> applied;
  try {
    pqxx::work tx(conn);
    // Why no limit: waiting for another server's migrations, or rewriting a big table, may
    // take longer than the pool's statement_timeout.
    tx.exec("SET LOCAL statement_timeout = 0");
    tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLockKey) + ")");
    // The ledger itself is the one table created outside a numbered migration.
    tx.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
        "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
    std::set<int> done;
    for (const auto& row : tx.exec("SELECT version FROM schema_migrations")) {
      done.insert(row[0].as<int>());
    }
    for (const auto& m : migrations) {
      if (done.count(m.version)) continue;
      try {
        tx.exec(m.sql);
      } catch (const pqxx::sql_error& e) {
        return absl::FailedPreconditionError(
            absl::StrCat("migration ", m.name, " failed: ", e.what()));
      }
      tx.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version,
                     std::string(m.name));
      applied.push_back(m.version);
    }
    tx.commit();
  } catch (const pqxx::broken_connection& e) {
    return absl::UnavailableError(absl::StrCat("database connection lost: ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("applying migrations: ", e.what()));
  }
  for (int v : applied) LogInfo("store", "applied migration ", v);
  return applied;
}

}  // namespace assay::store
