#pragma once
// A PostgreSQL instance of the test's own: initdb into a temp dir, started on a free 127.0.0.1
// port, that a test can crash (`pg_ctl stop -m immediate`, or SIGKILL of the postmaster) and start
// again on the same port and data directory. For the faults tier; tests that only need a database
// use test_db.h (ASSAY_TEST_PG_DSN), which a test cannot stop.
//
// As root, initdb, pg_ctl and postgres run as user `postgres` (runuser), as deploy/lib/pg.sh does:
// PostgreSQL refuses to run as root. The binaries come from $PG_BIN, else the newest
// /usr/lib/postgresql/<version>/bin.
//
// The postmaster is a daemon (pg_ctl detaches it), not a child of the test: the destructor stops
// it, but a test killed hard leaves it running (`pg_ctl -D <dir>/data stop` ends it). Commits are
// synchronous (synchronous_commit=on): a crash of PostgreSQL alone must not lose a commit it
// acknowledged, or the faults tier would blame Assay for PostgreSQL's configuration. fsync is off:
// the operating system keeps what a killed process wrote.
//
// Not thread-safe; use from one thread.

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace assay::testing {

class PgServer {
 public:
  // Creates the temp dir, runs initdb and starts the server (Start). kFailedPrecondition when no
  // PostgreSQL server binaries are found; kInternal with the tool's output when initdb or the
  // first start fails.
  static absl::StatusOr<std::unique_ptr<PgServer>> Create();
  // Stops the server (immediate) and removes the temp dir (kept when ASSAY_E2E_KEEP=1).
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  // postgresql://postgres@127.0.0.1:PORT/postgres, the maintenance database.
  std::string admin_dsn() const;
  // The server's log (all starts append to it).
  std::string log_path() const { return dir_ + "/postgres.log"; }

  // `pg_ctl start -w` on the same port and data dir; after a crash PostgreSQL first recovers from
  // its WAL. Retries (up to 60 s) while the previous instance's processes are still exiting (a
  // killed postmaster's backends leave shared memory attached for a moment). kInternal with the
  // log's tail when it does not come up.
  absl::Status Start();
  // `pg_ctl stop -m immediate -w`: every PostgreSQL process exits at once, without a checkpoint,
  // as in a crash. kInternal when pg_ctl fails.
  absl::Status StopImmediate();
  // SIGKILL to the postmaster (its pid from postmaster.pid), then waits (bounded, 30 s) until it is
  // gone. Its backends notice and exit by themselves; Start waits for them. kFailedPrecondition
  // when it is not running; kDeadlineExceeded when it does not go away.
  absl::Status Kill();
  // Whether a postmaster is running (postmaster.pid names a live process).
  bool Running() const;

  // The last `max_bytes` of the log.
  std::string LogTail(size_t max_bytes = 3000) const;

 private:
  PgServer(std::string dir, std::string bin, int port)
      : dir_(std::move(dir)), bin_(std::move(bin)), port_(port) {}
  pid_t PostmasterPid() const;  // 0 when postmaster.pid is absent or unreadable

  std::string dir_;  // the temp dir; the cluster is dir_/data
  std::string bin_;  // PostgreSQL's bin directory
  int port_;
};

}  // namespace assay::testing
