#pragma once
// PostgreSQL access: a small connection pool and named, lazily prepared statements.
// All SQL of the server lives in server/store/. Every statement is a `Query` constant
// with a name, prepared once per connection, so logs and errors name the query.

#include <pqxx/pqxx>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace assay::store {

// A named statement. Define each as a namespace-scope constant (`const Query kX{"name", "sql"}`):
// constructing one registers it, so that CheckQueryNames can refuse two statements that share
// a name (each name is prepared once per connection, so the second would run the first's SQL).
struct Query {
  Query(const char* query_name, const char* query_sql);
  ~Query();  // unregisters
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  const char* name;
  const char* sql;
};

// Every Query constructed so far (all of the store's, once static initialisation is done).
const std::vector<const Query*>& AllQueries();
// kInternal naming the name and both statements when two registered queries share a name with
// different SQL. Called at server start.
absl::Status CheckQueryNames(const std::vector<const Query*>& queries = AllQueries());

// One statement parameter: text (or bytea when `binary`), or NULL.
struct Param {
  std::string value;
  bool null = false;
  bool binary = false;
  Param(std::string v) : value(std::move(v)) {}   // NOLINT: implicit on purpose
  Param(const char* v) : value(v) {}              // NOLINT
  Param(std::string_view v) : value(v) {}         // NOLINT
  Param(int64_t v) : value(std::to_string(v)) {}  // NOLINT
  Param(int v) : value(std::to_string(v)) {}      // NOLINT
  Param(bool v) : value(v ? "true" : "false") {}  // NOLINT
  Param(absl::Time t);                            // NOLINT: as timestamptz
  static Param Null() {
    Param p("");
    p.null = true;
    return p;
  }
  static Param Bytes(std::string v) {
    Param p(std::move(v));
    p.binary = true;
    return p;
  }
  template <typename T>
  static Param Opt(const std::optional<T>& v) {
    return v ? Param(*v) : Null();
  }
};

class Connection {
 public:
  explicit Connection(const std::string& dsn) : conn_(dsn) {}
  pqxx::connection& raw() { return conn_; }
  void EnsurePrepared(const Query& q);

 private:
  pqxx::connection conn_;
  absl::flat_hash_set<std::string> prepared_;
};

// Runs a prepared statement inside `tx`.
pqxx::result Exec(pqxx::transaction_base& tx, Connection& conn, const Query& q,
                  const std::vector<Param>& params = {});

class Db;

// A connection borrowed from the pool; returned on destruction (dropped if broken).
class ConnLease {
 public:
  ConnLease(Db* db, std::unique_ptr<Connection> c) : db_(db), conn_(std::move(c)) {}
  ConnLease(ConnLease&&) = default;
  ~ConnLease();
  Connection& operator*() { return *conn_; }
  Connection* operator->() { return conn_.get(); }

 private:
  Db* db_;
  std::unique_ptr<Connection> conn_;
};

// How a pool connects and how long it waits. Every PostgreSQL connection the pool opens
// carries connect_timeout, statement_timeout (through `options`) and TCP keepalives, so a
// dead server, a half-open connection or a runaway statement ends in an error instead of a
// thread blocked for good (see WithConnectionDefaults).
struct DbOptions {
  std::string name = "main";  // names the pool in errors and logs
  int max_size = 8;
  // How long Acquire waits for a free connection when all max_size are in use.
  absl::Duration acquire_timeout = absl::Seconds(10);
  absl::Duration connect_timeout = absl::Seconds(10);  // whole seconds, at least 2 (libpq)
  // Per statement, server side; zero: no limit. Generous: the slowest statement the server
  // runs on a healthy database is far shorter.
  absl::Duration statement_timeout = absl::Seconds(60);
  absl::Duration keepalives_idle = absl::Seconds(30);      // first probe after this idle time
  absl::Duration keepalives_interval = absl::Seconds(10);  // between unanswered probes
  int keepalives_count = 3;                                // unanswered probes = dead
};

// `dsn` (key=value or postgresql:// URI) as a key=value string with connect_timeout,
// keepalives=1, keepalives_idle, keepalives_interval, keepalives_count and, inside `options`,
// `-c statement_timeout=MS` added — each only where the DSN does not already set it (a user's
// own value is kept; a user's own `options` keep their flags and get statement_timeout
// appended unless they set it). A DSN libpq cannot parse is returned unchanged, so that
// connecting reports libpq's own error.
std::string WithConnectionDefaults(const std::string& dsn, const DbOptions& options);

// Thread-safe pool of at most `max_size` connections.
class Db {
 public:
  Db(std::string dsn, int max_size);  // DbOptions defaults, pool size `max_size`
  Db(std::string dsn, DbOptions options);
  // A pooled connection. kUnavailable when none is free within acquire_timeout ("database
  // pool 'NAME': all N connections in use; waited 10s for one") or none can be made.
  absl::StatusOr<ConnLease> Acquire();
  // The DSN every connection of this pool uses (WithConnectionDefaults of the given one).
  const std::string& dsn() const { return dsn_; }
  const DbOptions& options() const { return options_; }

 private:
  friend class ConnLease;
  void Release(std::unique_ptr<Connection> c);

  const DbOptions options_;
  const std::string dsn_;
  const int max_size_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

// Runs `fn(tx, conn)` in a transaction on a pooled connection and commits; a libpqxx
// exception becomes a Status (broken connection → kUnavailable, serialization/deadlock →
// kAborted, constraint violation → kFailedPrecondition, other → kInternal) and the
// transaction rolls back. `fn` returns a Status; a non-OK one rolls back too. A statement
// canceled by statement_timeout gives kDeadlineExceeded ("database statement canceled after
// statement_timeout ...").
absl::Status InTransaction(Db& db, const std::function<absl::Status(pqxx::work&, Connection&)>& fn);

// Disk use of one repository (artifacts or caches): bytes, and how many things hold them
// (jobs with artifacts, cache entries).
struct RepoBytes {
  int64_t repo_id = 0;
  std::string repo;
  int64_t bytes = 0;
  int64_t count = 0;
};
// The rows of `q` (no parameters; columns repo_id, repo, bytes, count) as RepoBytes.
absl::StatusOr<std::vector<RepoBytes>> QueryRepoBytes(Db& db, const Query& q);

// Text helpers for values the store reads and writes.
std::string ToPgTextArray(const std::vector<std::string>& items);
std::string ToPgArray(const std::vector<int64_t>& items);  // for bigint[] / int[] parameters
std::vector<std::string> FromPgTextArray(const pqxx::field& f);
absl::Time ToTime(const pqxx::field& f);    // timestamptz selected as epoch microseconds (bigint)
std::string BytesOf(const pqxx::field& f);  // bytea → raw bytes

// Expression to select a timestamptz column as epoch microseconds for ToTime().
#define ASSAY_EPOCH_US(col) "(extract(epoch from " col ") * 1000000)::bigint"

}  // namespace assay::store
