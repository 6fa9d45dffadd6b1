#pragma once
// A fresh PostgreSQL database per test, on the server named by ASSAY_TEST_PG_DSN
// (tests/run-all.sh starts one) or on a given one. The database is dropped when the object goes
// away.

#include <string>

namespace assay::testing {

// The maintenance DSN from ASSAY_TEST_PG_DSN; the test fails (not skips) when it is unset.
std::string AdminDsn();

class TestDatabase {
 public:
  // Creates database assay_t_<pid>_<counter>; with `migrate`, applies migrations/*.sql. On the
  // server of `admin_dsn` (a maintenance DSN), or of AdminDsn() when it is empty. Throws
  // std::runtime_error (or a pqxx exception) when the database cannot be made.
  explicit TestDatabase(bool migrate = true, std::string admin_dsn = "");
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;
  const std::string& dsn() const { return dsn_; }
  const std::string& name() const { return name_; }

 private:
  std::string admin_;
  std::string name_;
  std::string dsn_;
};

}  // namespace assay::testing
