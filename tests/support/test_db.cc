#include "tests/support/test_db.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <pqxx/pqxx>
#include <stdexcept>
#include <utility>

#include "server/store/migrations.h"

namespace assay::testing {
namespace {
std::atomic<int> g_counter{0};

// Replaces the database name (the path) of a postgresql:// URL.
std::string WithDatabase(const std::string& dsn, const std::string& db) {
  auto scheme = dsn.find("://");
  auto slash = dsn.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  auto query = dsn.find('?');
  std::string base = slash == std::string::npos ? dsn.substr(0, query) : dsn.substr(0, slash);
  std::string tail = query == std::string::npos ? "" : dsn.substr(query);
  return base + "/" + db + tail;
}
}  // namespace

std::string AdminDsn() {
  const char* e = std::getenv("ASSAY_TEST_PG_DSN");
  if (e == nullptr || *e == '\0') {
    throw std::runtime_error(
        "ASSAY_TEST_PG_DSN is not set: run the tests through tests/run-all.sh, which starts "
        "PostgreSQL, or point it at a server (postgresql://postgres@127.0.0.1:5432/postgres)");
  }
  return e;
}

TestDatabase::TestDatabase(bool migrate, std::string admin_dsn)
    : admin_(admin_dsn.empty() ? AdminDsn() : std::move(admin_dsn)) {
  name_ = "assay_t_" + std::to_string(getpid()) + "_" + std::to_string(++g_counter);
  {
    pqxx::connection c(admin_);
    pqxx::nontransaction tx(c);
    tx.exec("DROP DATABASE IF EXISTS " + name_);
    tx.exec("CREATE DATABASE " + name_ + " TEMPLATE template0");
  }
  dsn_ = WithDatabase(admin_, name_);
  if (migrate) {
    pqxx::connection c(dsn_);
    auto applied = store::ApplyMigrations(c, store::EmbeddedMigrations());
    if (!applied.ok()) throw std::runtime_error(std::string(applied.status().message()));
  }
}

TestDatabase::~TestDatabase() {
  try {
    pqxx::connection c(admin_);
    pqxx::nontransaction tx(c);
    tx.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  } catch (...) {
    // Why swallow: a destructor must not throw; a leftover database is harmless.
  }
}

}  // namespace assay::testing
