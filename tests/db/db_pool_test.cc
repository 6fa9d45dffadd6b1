// The connection pool against a real PostgreSQL: a bounded Acquire, statement_timeout and the
// connection parameters every pooled connection carries.

#include <future>
#include <optional>
#include <vector>

#include <catch2/catch.hpp>

#include "server/store/db.h"
#include "tests/support/test_db.h"

namespace assay::store {
namespace {

const Query kSleep{"test_sleep", "SELECT pg_sleep(30)"};
const Query kShow{"test_show_settings",
                  "SELECT current_setting('statement_timeout'), "
                  "current_setting('search_path')"};

TEST_CASE("db pool: with every connection leased, Acquire gives up after acquire_timeout",
          "[db][store]") {
  testing::TestDatabase tdb(false);
  DbOptions o;
  o.name = "api";
  o.max_size = 2;
  o.acquire_timeout = absl::Milliseconds(200);
  Db db(tdb.dsn(), o);
  std::vector<ConnLease> held;
  for (int i = 0; i < 2; ++i) {
    auto lease = db.Acquire();
    REQUIRE(lease.ok());
    held.push_back(*std::move(lease));
  }
  // On another thread, so that a pool that never gives up fails this test instead of hanging it:
  // after a bounded wait the leases are returned, which lets such an Acquire through.
  auto third = std::async(std::launch::async, [&db] { return db.Acquire().status(); });
  const bool answered = third.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  CHECK(answered);
  held.clear();
  absl::Status s = third.get();
  CHECK(s.code() == absl::StatusCode::kUnavailable);
  CHECK(s.message() == "database pool 'api': all 2 connections in use; waited 200ms for one");
  // A returned connection is handed out again at once.
  auto again = db.Acquire();
  CHECK(again.ok());
}

TEST_CASE("db pool: a statement past statement_timeout fails with kDeadlineExceeded",
          "[db][store]") {
  testing::TestDatabase tdb(false);
  DbOptions o;
  o.max_size = 1;
  o.statement_timeout = absl::Milliseconds(300);
  Db db(tdb.dsn(), o);
  absl::Status s = InTransaction(db, [](pqxx::work& tx, Connection& c) {
    Exec(tx, c, kSleep);
    return absl::OkStatus();
  });
  CHECK(s.code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(s.message() ==
        "database statement canceled after statement_timeout (300ms): ERROR:  canceling "
        "statement due to statement timeout\n");
  // The connection is still usable afterwards.
  std::optional<std::string> timeout;
  s = InTransaction(db, [&](pqxx::work& tx, Connection& c) {
    timeout = Exec(tx, c, kShow)[0][0].as<std::string>();
    return absl::OkStatus();
  });
  CHECK(s.ok());
  CHECK(timeout == "300ms");
}

TEST_CASE("db pool: connections carry the defaults unless the DSN sets its own", "[db][store]") {
  testing::TestDatabase tdb(false);
  auto settings = [](Db& db) {
    std::vector<std::string> out;
    absl::Status s = InTransaction(db, [&](pqxx::work& tx, Connection& c) {
      auto r = Exec(tx, c, kShow);
      out = {r[0][0].as<std::string>(), r[0][1].as<std::string>()};
      return absl::OkStatus();
    });
    REQUIRE(s.ok());
    return out;
  };
  Db plain(tdb.dsn(), 1);
  CHECK(settings(plain) == std::vector<std::string>{"1min", "\"$user\", public"});
  const std::string sep = tdb.dsn().find('?') == std::string::npos ? "?" : "&";
  Db own(tdb.dsn() + sep + "options=-c%20statement_timeout%3D7s%20-c%20search_path%3Dpublic", 1);
  CHECK(settings(own) == std::vector<std::string>{"7s", "public"});
}

}  // namespace
}  // namespace assay::store
