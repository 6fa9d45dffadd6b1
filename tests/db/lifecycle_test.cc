// Agent lifecycle (issue 9) on a real database: an admin's drain and resume (idempotent, kept
// across reconnects, 404 material for unknown names, a notification for the other servers),
// the agent's own state (only from its current session), the claim refusing such agents, the
// dispatcher skipping them (one agent's state never touches another's), and the waiting
// sentence naming them.

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "server/scheduler/explain.h"
#include "server/store/listener.h"
#include "tests/db/db_fixture.h"
#include "tests/db/fake_channel.h"

namespace assay::dbtest {
namespace {

store::AgentRow RowOf(DbFixture& f, const std::string& name) {
  auto list = f.agents.List();
  REQUIRE(list.ok());
  for (const auto& a : *list) {
    if (a.name == name) return a;
  }
  FAIL("no agent " << name);
  return {};
}

std::optional<store::ClaimedJob> ClaimFor(DbFixture& f, int64_t job_id, int64_t agent_id) {
  store::ClaimRequest r;
  r.job_id = job_id;
  r.agent_id = agent_id;
  auto got = f.jobs.ClaimBatch({r}, absl::Seconds(30));
  REQUIRE(got.status.ok());
  if (got.claimed.empty()) return std::nullopt;
  return got.claimed.front();
}

TEST_CASE("lifecycle: drain and resume are idempotent, kept across reconnects, 404 for unknown",
          "[db][lifecycle]") {
  DbFixture f;
  const int64_t id = f.Agent("a1");

  auto unknown = f.agents.Drain("nope", "", std::nullopt);
  CHECK(unknown.status().code() == absl::StatusCode::kNotFound);
  CHECK(unknown.status().message() == "no agent named 'nope'");
  CHECK(f.agents.Resume("nope").status().code() == absl::StatusCode::kNotFound);
  CHECK(f.Count("SELECT count(*) FROM agents WHERE drained_at IS NOT NULL") == 0);

  const absl::Time deadline = absl::FromUnixSeconds(1900000000);
  REQUIRE(*f.agents.Drain("a1", "kernel upgrade", deadline) == id);
  store::AgentRow row = RowOf(f, "a1");
  CHECK(row.drain.drained);
  CHECK(row.drain.reason == "kernel upgrade");
  CHECK(row.drain.deadline == deadline);
  CHECK(row.not_accepting.empty());
  const std::string first = f.One("SELECT drained_at::text FROM agents WHERE name = 'a1'");

  // Again: the first drained_at stays; reason and deadline are replaced.
  REQUIRE(*f.agents.Drain("a1", "", std::nullopt) == id);
  CHECK(f.One("SELECT drained_at::text FROM agents WHERE name = 'a1'") == first);
  row = RowOf(f, "a1");
  CHECK(row.drain.drained);
  CHECK(row.drain.reason == "");
  CHECK(!row.drain.deadline.has_value());

  // A reconnect (a new Hello) keeps the drain, and the session is told.
  store::AgentSession s = f.Connect("a1");
  CHECK(s.drain.drained);
  CHECK(RowOf(f, "a1").drain.drained);
  auto drains = f.agents.Drains({id, 999999});
  REQUIRE(drains.ok());
  REQUIRE(drains->size() == 1);
  CHECK(drains->at(id).drained);

  REQUIRE(*f.agents.Resume("a1") == id);
  CHECK(!RowOf(f, "a1").drain.drained);
  CHECK(f.Query("SELECT drained_at, drain_reason, drain_deadline FROM agents WHERE id = " +
                std::to_string(id)) == Rows{{"NULL", "", "NULL"}});
  REQUIRE(*f.agents.Resume("a1") == id);  // a no-op
  CHECK(!f.Connect("a1").drain.drained);
}

TEST_CASE("lifecycle: the agent's own state is recorded only from its current session",
          "[db][lifecycle]") {
  DbFixture f;
  store::AgentHello h;
  h.name = "a1";
  h.not_accepting = "draining (SIGTERM)";
  auto old_session = f.agents.Connect(h);
  REQUIRE(old_session.ok());
  CHECK(RowOf(f, "a1").not_accepting == "draining (SIGTERM)");
  CHECK(f.One("SELECT accepting FROM agents WHERE name = 'a1'") == "f");

  h.not_accepting = "";
  auto current = f.agents.Connect(h);  // a reconnect that takes jobs
  REQUIRE(current.ok());
  CHECK(RowOf(f, "a1").not_accepting.empty());
  // The old stream's late state changes nothing.
  CHECK(*f.agents.SetNotAccepting(*old_session,
                                  "not taking jobs: free disk 0.5 GB below the "
                                  "floor of 1 GB") == false);
  CHECK(RowOf(f, "a1").not_accepting.empty());
  const std::string disk = "not taking jobs: free disk 0.5 GB below the floor of 1 GB";
  CHECK(*f.agents.SetNotAccepting(*current, disk) == true);
  CHECK(RowOf(f, "a1").not_accepting == disk);
  CHECK(*f.agents.SetNotAccepting(*current, "") == true);
  CHECK(f.One("SELECT accepting FROM agents WHERE name = 'a1'") == "t");
  // The database keeps the reason short (the service refuses longer ones before this).
  CHECK(!f.agents.SetNotAccepting(*current, std::string(301, 'x')).ok());
}

TEST_CASE("lifecycle: the claim refuses a drained or not-accepting agent", "[db][lifecycle]") {
  DbFixture f;
  const int64_t a1 = f.Agent("a1");
  const int64_t p = f.CreatePipeline({Job("build")});
  const int64_t job = f.JobId(p, "build");

  REQUIRE(f.agents.Drain("a1", "", std::nullopt).ok());
  CHECK(!ClaimFor(f, job, a1).has_value());
  CHECK(f.JobState(job) == "queued");
  REQUIRE(f.agents.Resume("a1").ok());

  store::AgentHello h;
  h.name = "a1";
  h.not_accepting = "draining (SIGTERM)";
  REQUIRE(f.agents.Connect(h).ok());
  CHECK(!ClaimFor(f, job, a1).has_value());
  CHECK(f.JobState(job) == "queued");

  h.not_accepting = "";
  REQUIRE(f.agents.Connect(h).ok());
  auto claimed = ClaimFor(f, job, a1);
  REQUIRE(claimed.has_value());
  CHECK(claimed->agent_id == a1);
}

TEST_CASE("lifecycle: the dispatcher skips an agent that takes no job, and only that one",
          "[db][lifecycle]") {
  DbFixture f;
  Metrics metrics;
  Dispatcher d{&f.jobs, &metrics, &f.clock, DispatcherOptions{}};
  const int64_t a1 = f.Agent("a1");
  const int64_t a2 = f.Agent("a2");
  auto ch1 = std::make_shared<FakeChannel>();
  auto ch2 = std::make_shared<FakeChannel>();
  AgentCapacity c1 = Capacity(a1, "a1", 4);
  c1.not_accepting = "draining (SIGTERM)";  // as it said in its Hello
  d.AgentConnected(c1, {}, ch1);
  d.AgentConnected(Capacity(a2, "a2", 1), {}, ch2);

  const int64_t p = f.CreatePipeline({Job("one"), Job("two")});
  CHECK(d.DispatchOnce() == 1);
  CHECK(ch1->TakeAssignments().empty());
  auto got = ch2->TakeAssignments();
  REQUIRE(got.size() == 1);
  CHECK(got[0].job_id() == f.JobId(p, "one"));

  // a2 is full; a1 still takes nothing until it says so.
  CHECK(d.DispatchOnce() == 0);
  d.SetNotAccepting(a1, "");
  CHECK(d.DispatchOnce() == 1);
  got = ch1->TakeAssignments();
  REQUIRE(got.size() == 1);
  CHECK(got[0].job_id() == f.JobId(p, "two"));

  // A state for an agent not connected here changes nothing (and does not crash).
  d.SetNotAccepting(424242, "draining (SIGTERM)");
  d.SetNotAccepting(a2, "not taking jobs: free disk 0.1 GB below the floor of 1 GB");
  const int64_t p2 = f.CreatePipeline({Job("three")});
  d.JobReleased(a2, f.JobId(p, "one"));
  CHECK(d.DispatchOnce() == 1);  // a1 has room; a2 refuses
  CHECK(ch2->TakeAssignments().empty());
  got = ch1->TakeAssignments();
  REQUIRE(got.size() == 1);
  CHECK(got[0].job_id() == f.JobId(p2, "three"));
}

TEST_CASE("lifecycle: the waiting sentence names the draining agent that alone could run it",
          "[db][lifecycle]") {
  DbFixture f;
  store::AgentHello h;
  h.name = "gpu-1";
  h.cpu_slots = 2;
  h.labels = {"gpu"};
  REQUIRE(f.agents.Connect(h).ok());
  h.name = "cpu-1";
  h.labels = {};
  REQUIRE(f.agents.Connect(h).ok());
  store::NewJob gpu_job = Job("train");
  gpu_job.labels = {"gpu"};
  const int64_t p = f.CreatePipeline({gpu_job, Job("lint")});
  auto why = [&](const std::string& name) {
    auto agents = f.agents.List();
    REQUIRE(agents.ok());
    auto live = f.jobs.LiveUsageAll();
    REQUIRE(live.ok());
    ClusterView view = BuildClusterView(*agents, *live, absl::Now(), absl::Seconds(30));
    auto pipeline = f.pipelines.Get(p);
    REQUIRE(pipeline.ok());
    for (const auto& j : pipeline->jobs) {
      if (j.name == name) return WhyWaiting(j, view, pipeline->jobs);
    }
    FAIL("no job " << name);
    return std::string();
  };
  CHECK(why("train") == "agent gpu-1 (id 1) can take it now");

  REQUIRE(f.agents.Drain("gpu-1", "kernel upgrade", std::nullopt).ok());
  CHECK(why("train") == "agent gpu-1 is draining (drained by an admin: kernel upgrade)");
  // Another agent could run `lint`: its sentence is about that one.
  CHECK(why("lint") == "agent cpu-1 (id 2) can take it now");
  REQUIRE(f.agents.Drain("gpu-1", "", std::nullopt).ok());
  CHECK(why("train") == "agent gpu-1 is draining (drained by an admin)");
  REQUIRE(f.agents.Resume("gpu-1").ok());

  h.name = "gpu-1";
  h.labels = {"gpu"};
  h.not_accepting = "draining (SIGTERM)";
  REQUIRE(f.agents.Connect(h).ok());
  CHECK(why("train") == "agent gpu-1 is draining (SIGTERM)");

  // Both agents refuse: a job either could run names both.
  h.name = "cpu-1";
  h.labels = {};
  h.not_accepting = "not taking jobs: free disk 0.4 GB below the floor of 1 GB";
  REQUIRE(f.agents.Connect(h).ok());
  CHECK(why("lint") ==
        "the agents that could run it take no jobs now: agent cpu-1 is not taking jobs: free disk "
        "0.4 GB below the floor of 1 GB; agent gpu-1 is draining (SIGTERM)");
}

TEST_CASE("lifecycle: a drain and a resume notify the other servers with the agent id",
          "[db][lifecycle]") {
  DbFixture f;
  const int64_t id = f.Agent("a1");
  absl::Mutex mu;
  std::vector<std::string> got;
  store::ListenerOptions o;
  o.wait = absl::Milliseconds(50);
  store::Listener listener(f.tdb.dsn(), o);
  listener.Listen("assay_agent_drain", [&](const std::string& p) {
    absl::MutexLock l(&mu);
    got.push_back(p);
  });
  listener.Start();
  auto connected = [&] { return listener.connections() >= 1; };
  for (int i = 0; i < 500 && !connected(); ++i) absl::SleepFor(absl::Milliseconds(20));
  REQUIRE(connected());
  REQUIRE(f.agents.Drain("a1", "", std::nullopt).ok());
  REQUIRE(f.agents.Resume("a1").ok());
  REQUIRE(!f.agents.Drain("nope", "", std::nullopt).ok());  // notifies nothing
  {
    absl::MutexLock l(&mu);
    auto two = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return got.size() >= 2; };
    REQUIRE(mu.AwaitWithTimeout(absl::Condition(&two), absl::Seconds(10)));
  }
  REQUIRE(f.agents.Drain("a1", "last", std::nullopt).ok());
  {
    absl::MutexLock l(&mu);
    auto three = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return got.size() >= 3; };
    REQUIRE(mu.AwaitWithTimeout(absl::Condition(&three), absl::Seconds(10)));
    CHECK(got == std::vector<std::string>(3, std::to_string(id)));
  }
  listener.Stop();
}

TEST_CASE("lifecycle: a job the agent stopped itself is lost and queued again, then failed",
          "[db][lifecycle]") {
  DbFixture f;
  const int64_t p = f.CreatePipeline({Job("a")});  // no retry key: agent_lost, 2 attempts
  const int64_t agent = f.Agent("agent-1");
  const std::string why =
      "stopped by the agent: it is stopping (SIGTERM) and its --drain-timeout of 1s passed";
  auto stop = [&](const store::ClaimedJob& c) {
    store::ResultReport r;
    r.job_id = c.job_id;
    r.attempt_token = c.attempt_token;
    r.state = store::kAgentStopped;
    r.message = why;
    r.exit_code = -1;
    auto out = f.jobs.Finish(r);
    REQUIRE(out.ok());
    return *out;
  };
  const store::ClaimedJob first = f.ClaimOne(agent);
  store::FinishOutcome out = stop(first);
  CHECK(out.fence == store::Fence::kOk);
  CHECK(out.retried);
  const std::string id = std::to_string(first.job_id);
  CHECK(f.Query("SELECT state, attempt, coalesce(message, '-'), coalesce(agent_id, 0) FROM jobs "
                "WHERE id = " +
                id) == Rows{{"queued", "1", "-", "0"}});
  CHECK(f.Query("SELECT attempt, state, message FROM job_attempts WHERE job_id = " + id) ==
        Rows{{"1", "lost", why}});
  // The same result again (a resend after a lost ack): the token is gone, nothing changes.
  CHECK(stop(first).fence == store::Fence::kStale);

  // The second attempt is the last one the policy allows: the job fails with the message.
  const store::ClaimedJob second = f.ClaimOne(agent);
  CHECK(second.attempt == 2);
  out = stop(second);
  CHECK(out.fence == store::Fence::kOk);
  CHECK_FALSE(out.retried);
  CHECK(f.Query("SELECT state, attempt, message FROM jobs WHERE id = " + id) ==
        Rows{{"failed", "2", why}});
  CHECK(f.Query("SELECT attempt, state, message FROM job_attempts WHERE job_id = " + id +
                " ORDER BY attempt") == Rows{{"1", "lost", why}, {"2", "lost", why}});
  CHECK(f.One("SELECT state FROM pipelines WHERE id = " + std::to_string(p)) == "failed");
}

}  // namespace
}  // namespace assay::dbtest
