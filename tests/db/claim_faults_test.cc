// Claims that commit but are not handed out: a later grouped claim's transaction fails (a
// deadlock, injected by a trigger that raises SQLSTATE 40P01), and an assignment the agent's
// stream can no longer take. In both, every committed claim is either sent or back in the
// queue at once, never left to its lease.

#include <catch2/catch.hpp>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "tests/db/db_fixture.h"
#include "tests/db/fake_channel.h"

namespace assay::dbtest {
namespace {

std::string S(int64_t v) { return std::to_string(v); }

store::NewJob GroupJob(std::string name, std::string group) {
  store::NewJob j = Job(std::move(name));
  j.concurrency_group = std::move(group);
  return j;
}

// Every update of job `job_id` fails as a deadlock would.
void FailUpdatesOf(DbFixture& f, int64_t job_id) {
  f.Exec(
      "CREATE FUNCTION test_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "RAISE EXCEPTION 'injected deadlock' USING ERRCODE = '40P01'; END $$");
  f.Exec("CREATE TRIGGER test_deadlock BEFORE UPDATE ON jobs FOR EACH ROW WHEN (OLD.id = " +
         S(job_id) + ") EXECUTE FUNCTION test_deadlock()");
}

struct Batch {
  int64_t plain, g1, g2, g3;
};

Batch FourJobs(DbFixture& f) {
  int64_t pid = f.CreatePipeline(
      {Job("plain"), GroupJob("g1", "one"), GroupJob("g2", "two"), GroupJob("g3", "three")});
  return {f.JobId(pid, "plain"), f.JobId(pid, "g1"), f.JobId(pid, "g2"), f.JobId(pid, "g3")};
}

store::ClaimRequest Req(int64_t job, int64_t agent, bool grouped) {
  store::ClaimRequest r;
  r.job_id = job;
  r.agent_id = agent;
  r.grouped = grouped;
  return r;
}

TEST_CASE(
    "claim batch: when a grouped claim fails, the claims committed before it are "
    "returned with its error",
    "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  Batch b = FourJobs(f);
  FailUpdatesOf(f, b.g2);

  auto got = f.jobs.ClaimBatch({Req(b.plain, agent, false), Req(b.g1, agent, true),
                                Req(b.g2, agent, true), Req(b.g3, agent, true)},
                               absl::Seconds(30));
  CHECK(got.status.code() == absl::StatusCode::kAborted);
  CHECK(absl::StrContains(got.status.message(), "injected deadlock"));
  std::set<int64_t> ids;
  for (const auto& c : got.claimed) ids.insert(c.job_id);
  CHECK(ids == std::set<int64_t>{b.plain, b.g1});
  CHECK(f.Query("SELECT name, state, attempt FROM jobs ORDER BY id") ==
        Rows{{"plain", "assigned", "1"},
             {"g1", "assigned", "1"},
             {"g2", "queued", "0"},
             {"g3", "queued", "0"}});
  CHECK(f.Query("SELECT job_id, state FROM job_attempts ORDER BY job_id") ==
        Rows{{S(b.plain), "assigned"}, {S(b.g1), "assigned"}});
}

TEST_CASE("dispatch: claims committed before a failed grouped claim are sent", "[db][dispatch]") {
  DbFixture f;
  Metrics metrics;
  Dispatcher d(&f.jobs, &metrics, &f.clock, DispatcherOptions{});
  int64_t agent = f.Agent("agent-1");
  auto ch = std::make_shared<FakeChannel>();
  d.AgentConnected(Capacity(agent, "agent-1", 8), {}, ch);
  Batch b = FourJobs(f);
  FailUpdatesOf(f, b.g2);

  CHECK(d.DispatchOnce() == 2);
  auto sent = ch->TakeAssignments();
  std::set<int64_t> ids;
  for (const auto& a : sent) ids.insert(a.job_id());
  CHECK(ids == std::set<int64_t>{b.plain, b.g1});
  CHECK(f.Query("SELECT name, state FROM jobs ORDER BY id") ==
        Rows{{"plain", "assigned"}, {"g1", "assigned"}, {"g2", "queued"}, {"g3", "queued"}});

  // Once the fault is gone, the rest follow.
  f.Exec("DROP TRIGGER test_deadlock ON jobs");
  CHECK(d.DispatchOnce() == 2);
  ids.clear();
  for (const auto& a : ch->TakeAssignments()) ids.insert(a.job_id());
  CHECK(ids == std::set<int64_t>{b.g2, b.g3});
  CHECK(f.Count("SELECT count(*) FROM job_attempts") == 4);
}

TEST_CASE(
    "dispatch: a claim the agent's stream cannot take goes back to the queue at once, "
    "without using up an attempt",
    "[db][dispatch]") {
  DbFixture f;
  Metrics metrics;
  Dispatcher d(&f.jobs, &metrics, &f.clock, DispatcherOptions{});
  int64_t gone = f.Agent("agent-gone");
  auto dead = std::make_shared<FakeChannel>();
  dead->Refuse();
  d.AgentConnected(Capacity(gone, "agent-gone", 4), {}, dead);
  int64_t pid = f.CreatePipeline({Job("build", {}, {}, /*max_attempts=*/1)});
  const int64_t job = f.JobId(pid, "build");
  const absl::Time t = f.clock.Now();

  CHECK(d.DispatchOnce() == 0);
  CHECK(dead->Messages().empty());
  CHECK(d.ConnectedAgents() == 0);  // nothing more goes to a stream that is gone
  CHECK(f.Query("SELECT state, attempt, max_attempts, attempt_token, agent_id, "
                "lease_expires_at FROM jobs") ==
        Rows{{"queued", "1", "2", "NULL", "NULL", "NULL"}});
  CHECK(f.UsOf("jobs", "queued_at", job) == S(Us(t)));
  CHECK(f.Query("SELECT attempt, agent_id, state, message FROM job_attempts") ==
        Rows{{"1", S(gone), "rejected",
              "not delivered: the agent's stream ended before the assignment was sent"}});

  // The next agent runs it (a job allowed one attempt still gets one).
  int64_t next = f.Agent("agent-next");
  auto ch = std::make_shared<FakeChannel>();
  d.AgentConnected(Capacity(next, "agent-next", 4), {}, ch);
  CHECK(d.DispatchOnce() == 1);
  auto sent = ch->TakeAssignments();
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].job_id() == job);
  CHECK(sent[0].attempt() == 2);
  CHECK(f.Query("SELECT state, agent_id FROM jobs") == Rows{{"assigned", S(next)}});
}

}  // namespace
}  // namespace assay::dbtest
