// Interleavings that a single statement cannot show: a second connection plays the other
// transaction step by step (the same statements, in the same order, as the store uses), and
// the test waits until the store's call is blocked on a row lock before going on. The wait
// is a synchronization point, never an assertion on time.

#include <pqxx/pqxx>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

// Waits until some other session of this database waits on a lock; false after ~20 s.
bool WaitForLockWaiter(DbFixture& f) {
  for (int i = 0; i < 4000; ++i) {
    if (f.Count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'") > 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

TEST_CASE("race: the lease sweep and a late result for the same job do not deadlock", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t pid = f.CreatePipeline({Job("a")});
  auto c = f.ClaimOne(agent, absl::Seconds(30));
  f.clock.Advance(absl::Seconds(31));

  // The result's transaction (JobStore::Finish): pipeline row lock first ...
  pqxx::connection other(f.tdb.dsn());
  pqxx::work finish(other);
  finish.exec("SET LOCAL lock_timeout = '20s'");
  finish.exec("SELECT state FROM pipelines WHERE id = " + std::to_string(pid) + " FOR UPDATE");

  // ... while the sweep starts and must wait for that pipeline.
  auto sweep = std::async(std::launch::async, [&] { return f.jobs.ExpireLeases(); });
  REQUIRE(WaitForLockWaiter(f));

  // ... then the job row (kFinish). A sweep that already holds the job row deadlocks here.
  bool finished = false;
  std::string error;
  try {
    auto r = finish.exec(
        "UPDATE jobs SET state = 'succeeded', finished_at = now(), "
        "lease_expires_at = NULL WHERE id = " +
        std::to_string(c.job_id) + " AND attempt_token = '" + c.attempt_token +
        "' AND state IN ('assigned', 'running') RETURNING id");
    finished = r.size() == 1;
    finish.commit();
  } catch (const std::exception& e) {
    error = e.what();
  }
  auto swept = sweep.get();
  INFO("finish: " << error << "; sweep: " << swept.status().ToString());
  CHECK(error.empty());
  CHECK(finished);
  REQUIRE(swept.ok());
  CHECK(*swept == 0);  // the job finished meanwhile: nothing to rescue
  CHECK(f.JobState(c.job_id) == "succeeded");
  CHECK(f.Query("SELECT state FROM job_attempts") == Rows{{"assigned"}});
}

TEST_CASE("race: a job claimed while its pipeline is being canceled is canceled too", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t pid = f.CreatePipeline({Job("a")});
  int64_t a = f.JobId(pid, "a");
  const std::string token(32, 'c');

  // A claim (JobStore::Claim) in flight: the job row is locked and turned 'assigned'.
  pqxx::connection other(f.tdb.dsn());
  pqxx::work claim(other);
  claim.exec("SELECT id FROM jobs WHERE id = " + std::to_string(a) + " FOR UPDATE");
  claim.exec("UPDATE jobs SET state = 'assigned', attempt = 1, attempt_token = '" + token +
             "', agent_id = " + std::to_string(agent) +
             ", lease_expires_at = now() + interval '30 seconds' WHERE id = " + std::to_string(a));
  claim.exec(
      "INSERT INTO job_attempts (job_id, attempt, attempt_token, agent_id, state, "
      "assigned_at) VALUES (" +
      std::to_string(a) + ", 1, '" + token + "', " + std::to_string(agent) +
      ", 'assigned', now())");

  auto cancel = std::async(std::launch::async, [&] { return f.pipelines.Cancel(pid); });
  REQUIRE(WaitForLockWaiter(f));
  claim.commit();

  auto canceled = cancel.get();
  INFO("cancel: " << canceled.status().ToString());
  REQUIRE(canceled.ok());
  REQUIRE(canceled->size() == 1);  // the agent must be told to stop
  CHECK((*canceled)[0].job_id == a);
  CHECK((*canceled)[0].agent_id == agent);
  CHECK((*canceled)[0].attempt_token == token);
  CHECK(f.JobState(a) == "canceled");
  CHECK(f.Query("SELECT state FROM job_attempts") == Rows{{"canceled"}});
  CHECK(f.PipelineState(pid) == "canceled");
}

TEST_CASE("race: an agent starting a job while its pipeline is canceled does not deadlock",
          "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t pid = f.CreatePipeline({Job("a")});
  auto c = f.ClaimOne(agent);
  const std::string id = std::to_string(c.job_id);

  // JobStore::MarkRunning in flight: the job row first ...
  pqxx::connection other(f.tdb.dsn());
  pqxx::work running(other);
  running.exec("SET LOCAL lock_timeout = '20s'");
  running.exec("UPDATE jobs SET state = 'running', started_at = now() WHERE id = " + id +
               " AND attempt_token = '" + c.attempt_token + "' AND state = 'assigned'");

  auto cancel = std::async(std::launch::async, [&] { return f.pipelines.Cancel(pid); });
  REQUIRE(WaitForLockWaiter(f));

  // ... then its attempt row. A cancel that locked the attempt row first deadlocks here.
  std::string error;
  try {
    running.exec("UPDATE job_attempts SET state = 'running', started_at = now() WHERE job_id = " +
                 id + " AND attempt = 1");
    running.commit();
  } catch (const std::exception& e) {
    error = e.what();
  }
  auto canceled = cancel.get();
  INFO("agent: " << error << "; cancel: " << canceled.status().ToString());
  CHECK(error.empty());
  REQUIRE(canceled.ok());
  REQUIRE(canceled->size() == 1);
  CHECK((*canceled)[0].attempt_token == c.attempt_token);
  CHECK(f.JobState(c.job_id) == "canceled");
  CHECK(f.Query("SELECT state FROM job_attempts") == Rows{{"canceled"}});
  CHECK(f.PipelineState(pid) == "canceled");
}

}  // namespace
}  // namespace assay::dbtest
