// Leases and fencing with a simulated clock: expiry requeues and finally fails a job,
// heartbeats extend the live lease, and a superseded attempt's token writes nothing.

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

TEST_CASE("lease: expiry requeues, then fails the job, its dependents and pipeline", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t pid = f.CreatePipeline({Job("a", {}, {}, 2), Job("b", {"a"}), Job("c", {"b"})});
  int64_t a = f.JobId(pid, "a");
  const std::string sa = std::to_string(a);

  auto first = f.ClaimOne(agent, absl::Seconds(30));
  REQUIRE(first.job_id == a);
  f.clock.Advance(absl::Seconds(30));  // exactly at the lease: not expired yet
  auto n = f.jobs.ExpireLeases();
  REQUIRE(n.ok());
  CHECK(*n == 0);
  CHECK(f.JobState(a) == "assigned");

  f.clock.Advance(absl::Milliseconds(1));
  const std::string t1 = std::to_string(Us(f.clock.Now()));
  n = f.jobs.ExpireLeases();
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK(f.Query("SELECT state, attempt, attempt_token, agent_id, lease_expires_at, "
                "(extract(epoch from queued_at) * 1000000)::bigint, finished_at, message "
                "FROM jobs WHERE id = " +
                sa) == Rows{{"queued", "1", "NULL", "NULL", "NULL", t1, "NULL", "NULL"}});
  CHECK(f.Query("SELECT attempt, state, message, (extract(epoch from finished_at) * 1000000)"
                "::bigint FROM job_attempts WHERE job_id = " +
                sa) == Rows{{"1", "lost", "agent lost: lease expired", t1}});
  CHECK(f.PipelineState(pid) == "running");
  n = f.jobs.ExpireLeases();
  REQUIRE(n.ok());
  CHECK(*n == 0);

  auto second = f.ClaimOne(agent, absl::Seconds(30));
  CHECK(second.job_id == a);
  CHECK(second.attempt == 2);
  CHECK(second.attempt_token != first.attempt_token);

  f.clock.Advance(absl::Seconds(31));
  const std::string t2 = std::to_string(Us(f.clock.Now()));
  n = f.jobs.ExpireLeases();
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK(f.Query("SELECT state, attempt, message, (extract(epoch from finished_at) * 1000000)"
                "::bigint, lease_expires_at FROM jobs WHERE id = " +
                sa) == Rows{{"failed", "2", "agent lost: lease expired", t2, "NULL"}});
  CHECK(f.Query("SELECT attempt, state, message FROM job_attempts WHERE job_id = " + sa +
                " ORDER BY attempt") == Rows{{"1", "lost", "agent lost: lease expired"},
                                             {"2", "lost", "agent lost: lease expired"}});
  CHECK(f.Query("SELECT name, state, message FROM jobs WHERE name <> 'a' ORDER BY name") ==
        Rows{{"b", "skipped", "skipped: a job it needs did not succeed"},
             {"c", "skipped", "skipped: a job it needs did not succeed"}});
  CHECK(f.PipelineState(pid) == "failed");
  CHECK(f.UsOf("pipelines", "finished_at", pid) == t2);
  // The lost attempt's late reports are refused once the job has failed for good.
  store::ResultReport late;
  late.job_id = a;
  late.attempt_token = second.attempt_token;
  late.state = "succeeded";
  auto late_finish = f.jobs.Finish(late);
  REQUIRE(late_finish.ok());
  CHECK(late_finish->fence == store::Fence::kStale);
  CHECK(*f.jobs.AppendLog(a, second.attempt_token, 1, "late\n") == store::Fence::kStale);
  CHECK(f.Query("SELECT count(*) FROM log_chunks WHERE job_id = " + sa) == Rows{{"0"}});
  CHECK(f.Query("SELECT state FROM jobs WHERE id = " + sa) == Rows{{"failed"}});

  // Nothing is left to claim or expire.
  CHECK_FALSE(f.ClaimNext(agent).has_value());
  n = f.jobs.ExpireLeases();
  REQUIRE(n.ok());
  CHECK(*n == 0);
  auto active = f.jobs.ActiveWork();
  REQUIRE(active.ok());
  CHECK(*active == 0);
}

TEST_CASE("lease: a heartbeat with the live token extends the lease", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t pid = f.CreatePipeline({Job("a"), Job("b")});
  auto a = f.ClaimOne(agent, absl::Seconds(30));
  auto b = f.ClaimOne(agent, absl::Seconds(30));
  REQUIRE(*f.jobs.MarkRunning(b.job_id, b.attempt_token) == store::Fence::kOk);

  f.clock.Advance(absl::Seconds(20));
  auto stale = f.jobs.Heartbeat({{a.job_id, a.attempt_token}, {b.job_id, b.attempt_token}},
                                absl::Seconds(30));
  REQUIRE(stale.ok());
  CHECK(stale->empty());
  const std::string lease = std::to_string(Us(f.clock.Now() + absl::Seconds(30)));
  CHECK(f.UsOf("jobs", "lease_expires_at", a.job_id) == lease);
  CHECK(f.UsOf("jobs", "lease_expires_at", b.job_id) == lease);

  f.clock.Advance(absl::Seconds(20));  // 40 s after the claim, 20 s after the heartbeat
  auto n = f.jobs.ExpireLeases();
  REQUIRE(n.ok());
  CHECK(*n == 0);
  CHECK(f.JobState(a.job_id) == "assigned");
  CHECK(f.JobState(b.job_id) == "running");

  // A wrong token, an unknown job and a finished attempt come back as stale; the live
  // one in the same call is still extended.
  f.FinishJob(b, "succeeded", 0);
  stale = f.jobs.Heartbeat({{a.job_id, std::string(32, '0')},
                            {999999, a.attempt_token},
                            {b.job_id, b.attempt_token},
                            {a.job_id, a.attempt_token}},
                           absl::Seconds(60));
  REQUIRE(stale.ok());
  REQUIRE(stale->size() == 3);
  CHECK((*stale)[0].job_id == a.job_id);
  CHECK((*stale)[0].attempt_token == std::string(32, '0'));
  CHECK((*stale)[1].job_id == 999999);
  CHECK((*stale)[2].job_id == b.job_id);
  CHECK(f.UsOf("jobs", "lease_expires_at", a.job_id) ==
        std::to_string(Us(f.clock.Now() + absl::Seconds(60))));
  CHECK(f.PipelineState(pid) == "running");
}

TEST_CASE("fencing: a superseded attempt's token writes nothing", "[db]") {
  DbFixture f;
  int64_t agent1 = f.Agent("agent-1");
  int64_t agent2 = f.Agent("agent-2");
  int64_t pid = f.CreatePipeline({Job("a", {}, {}, 3), Job("b", {"a"})});
  auto old = f.ClaimOne(agent1, absl::Seconds(30));
  REQUIRE(*f.jobs.MarkRunning(old.job_id, old.attempt_token) == store::Fence::kOk);
  REQUIRE(*f.jobs.AppendLog(old.job_id, old.attempt_token, 1, "attempt one\n") ==
          store::Fence::kOk);
  f.clock.Advance(absl::Seconds(31));
  REQUIRE(*f.jobs.ExpireLeases() == 1);
  auto live = f.ClaimOne(agent2, absl::Seconds(30));
  REQUIRE(live.job_id == old.job_id);
  REQUIRE(live.attempt == 2);
  const std::string id = std::to_string(live.job_id);
  const Rows job_before = f.Query("SELECT * FROM jobs ORDER BY id");
  const Rows attempts_before = f.Query("SELECT * FROM job_attempts ORDER BY attempt");

  auto log = f.jobs.AppendLog(old.job_id, old.attempt_token, 2, "late line\n");
  REQUIRE(log.ok());
  CHECK(*log == store::Fence::kStale);
  auto running = f.jobs.MarkRunning(old.job_id, old.attempt_token);
  REQUIRE(running.ok());
  CHECK(*running == store::Fence::kStale);
  auto fin = f.FinishJob(old, "succeeded", 0);
  CHECK(fin.fence == store::Fence::kStale);
  CHECK(fin.queued == 0);
  auto rej = f.jobs.Reject(old.job_id, old.attempt_token, "busy");
  REQUIRE(rej.ok());
  CHECK(*rej == store::Fence::kStale);
  CHECK(f.Query("SELECT * FROM jobs ORDER BY id") == job_before);
  CHECK(f.Query("SELECT * FROM job_attempts ORDER BY attempt") == attempts_before);
  CHECK(f.Query("SELECT attempt, seq FROM log_chunks") == Rows{{"1", "1"}});
  CHECK(f.Query("SELECT state, agent_id FROM jobs WHERE id = " + id) ==
        Rows{{"assigned", std::to_string(agent2)}});

  // The live token works; resends are recognized.
  CHECK(*f.jobs.MarkRunning(live.job_id, live.attempt_token) == store::Fence::kOk);
  CHECK(*f.jobs.MarkRunning(live.job_id, live.attempt_token) == store::Fence::kDuplicate);
  CHECK(f.UsOf("jobs", "started_at", live.job_id) == std::to_string(Us(f.clock.Now())));
  CHECK(f.Query("SELECT attempt, state FROM job_attempts ORDER BY attempt") ==
        Rows{{"1", "lost"}, {"2", "running"}});

  const std::string binary("b\0\xff\n", 4);
  CHECK(*f.jobs.AppendLog(live.job_id, live.attempt_token, 3, "c\n") == store::Fence::kOk);
  CHECK(*f.jobs.AppendLog(live.job_id, live.attempt_token, 1, "a\n") == store::Fence::kOk);
  CHECK(*f.jobs.AppendLog(live.job_id, live.attempt_token, 2, binary) == store::Fence::kOk);
  CHECK(*f.jobs.AppendLog(live.job_id, live.attempt_token, 2, "other") == store::Fence::kDuplicate);
  CHECK(f.Count("SELECT count(*) FROM log_chunks WHERE attempt = 2 AND seq = 2") == 1);
  CHECK(f.Count("SELECT count(*) FROM log_chunks WHERE attempt = 2") == 3);
  auto text = f.jobs.ReadLog(live.job_id);
  REQUIRE(text.ok());
  CHECK(*text == "a\n" + binary + "c\n");  // the latest attempt only, in seq order

  auto zero = f.jobs.AppendLog(live.job_id, live.attempt_token, 0, "x");
  CHECK(zero.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(zero.status().message() == "log chunk seq must be >= 1");
  auto missing = f.jobs.ReadLog(999999);
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(missing.status().message() == "job 999999 does not exist");
  auto empty = f.jobs.ReadLog(f.JobId(pid, "b"));
  REQUIRE(empty.ok());
  CHECK(empty->empty());

  auto done = f.FinishJob(live, "succeeded", 0);
  CHECK(done.fence == store::Fence::kOk);
  CHECK(done.queued == 1);
  CHECK(f.JobState(f.JobId(pid, "b")) == "queued");
}

TEST_CASE("reject: the attempt is closed and the job queued again", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  f.CreatePipeline({Job("a")});
  auto c = f.ClaimOne(agent);
  f.clock.Advance(absl::Seconds(2));
  auto r = f.jobs.Reject(c.job_id, c.attempt_token, "no slot free");
  REQUIRE(r.ok());
  CHECK(*r == store::Fence::kOk);
  const std::string now = std::to_string(Us(f.clock.Now()));
  CHECK(f.Query("SELECT state, attempt_token, agent_id, lease_expires_at, "
                "(extract(epoch from queued_at) * 1000000)::bigint FROM jobs") ==
        Rows{{"queued", "NULL", "NULL", "NULL", now}});
  CHECK(f.Query("SELECT state, message FROM job_attempts") ==
        Rows{{"rejected", "rejected by agent: no slot free"}});
  auto again = f.ClaimOne(agent);
  CHECK(again.attempt == 2);
}

}  // namespace
}  // namespace assay::dbtest
