// store::Listener on a real PostgreSQL: callbacks per channel, a reconnect after the connection
// is killed (with on_reconnect each time), and Stop while the database cannot be reached.

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/store/listener.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

// Polls `done` every 10 ms for up to 30 s.
bool Eventually(const std::function<bool()>& done) {
  for (int i = 0; i < 3000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

store::ListenerOptions Fast() {
  store::ListenerOptions o;
  o.wait = absl::Milliseconds(50);
  o.min_backoff = absl::Milliseconds(20);
  o.max_backoff = absl::Milliseconds(200);
  return o;
}

TEST_CASE(
    "listener: each channel's callbacks, after the connection is killed it listens "
    "again and says so",
    "[db][listener]") {
  DbFixture f;
  absl::Mutex mu;
  std::vector<std::string> got;  // "channel:payload"
  int reconnects = 0;
  store::Listener listener(f.tdb.dsn(), Fast());
  listener.Listen("t_one", [&](const std::string& p) {
    absl::MutexLock l(&mu);
    got.push_back("one:" + p);
  });
  listener.Listen("t_two", [&](const std::string& p) {
    absl::MutexLock l(&mu);
    got.push_back("two:" + p);
  });
  listener.OnReconnect([&] {
    absl::MutexLock l(&mu);
    ++reconnects;
  });
  listener.Start();
  REQUIRE(Eventually([&] { return listener.connections() == 1; }));
  f.Exec("NOTIFY t_one, 'a'");
  f.Exec("NOTIFY t_two, 'b'");
  f.Exec("NOTIFY t_other, 'c'");
  REQUIRE(Eventually([&] {
    absl::MutexLock l(&mu);
    return got.size() == 2;
  }));

  // The database ends every other session (as a restart would).
  f.Exec(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE datname = current_database() AND pid <> pg_backend_pid()");
  REQUIRE(Eventually([&] { return listener.connections() == 2; }));
  f.Exec("NOTIFY t_one, 'd'");
  REQUIRE(Eventually([&] {
    absl::MutexLock l(&mu);
    return got.size() == 3;
  }));
  listener.Stop();
  absl::MutexLock l(&mu);
  CHECK(got == std::vector<std::string>{"one:a", "two:b", "one:d"});
  CHECK(reconnects == 2);
  CHECK(listener.received() == 3);
  CHECK_FALSE(listener.listening());
}

TEST_CASE("listener: Stop returns while the database cannot be reached", "[db][listener]") {
  // A port nothing listens on: connecting fails at once, and the listener keeps retrying.
  store::Listener listener("postgresql://postgres@127.0.0.1:1/none", Fast());
  int reconnects = 0;
  listener.OnReconnect([&] { ++reconnects; });
  listener.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  listener.Stop();
  CHECK(reconnects == 0);
  CHECK(listener.connections() == 0);
  CHECK_FALSE(listener.listening());
}

}  // namespace
}  // namespace assay::dbtest
