#pragma once
// A PostgreSQL server of a test's own, in a temp dir on a free 127.0.0.1 port, that the test may
// stop without a checkpoint (as a crash would) and start again on the same port. For tests whose
// subject is the database going away; every other test uses the tier's shared server
// (ASSAY_TEST_PG_DSN, see test_db.h). The commands are those of deploy/lib/pg.sh, with
// PostgreSQL's durable defaults (an immediate stop must not lose a committed row). As root the
// commands run as the `postgres` user, which owns the data directory.
//
// Not thread-safe. Failures come back as absl::Status with the server log's tail.

#include <string>

#include "absl/status/status.h"

namespace assay::testing {

class LocalPostgres {
 public:
  LocalPostgres() = default;
  ~LocalPostgres();  // stops it (immediate) and removes the directory
  LocalPostgres(const LocalPostgres&) = delete;
  LocalPostgres& operator=(const LocalPostgres&) = delete;

  // initdb (first call) and start; kUnavailable with the log tail when it does not come up.
  absl::Status Start();
  // pg_ctl stop -m immediate: every backend is killed, no checkpoint, like a crash.
  absl::Status StopImmediate();
  // postgresql://postgres@127.0.0.1:PORT/postgres (valid once Start succeeded).
  std::string admin_dsn() const;

 private:
  absl::Status Run(const std::vector<std::string>& argv);

  std::string dir_;  // holds data/
  std::string bin_;  // PostgreSQL's bin directory
  int port_ = 0;
};

}  // namespace assay::testing
