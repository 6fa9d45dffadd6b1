// Finishing jobs advances the DAG: success queues dependents, failure skips them (cascading),
// the pipeline ends when no job is left; results are idempotent; two jobs of one pipeline
// finishing at once both count (the pipeline row lock); ReleaseUnheld.

#include <barrier>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

TEST_CASE("finish: success walks the chain and ends the pipeline 'succeeded'", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t pid = f.CreatePipeline({Job("a"), Job("b", {"a"}), Job("c", {"b"})});
  int64_t a = f.JobId(pid, "a"), b = f.JobId(pid, "b"), c = f.JobId(pid, "c");

  auto ja = f.ClaimOne(agent);
  REQUIRE(ja.job_id == a);
  f.clock.Advance(absl::Seconds(7));
  store::ResultReport r;
  r.job_id = a;
  r.attempt_token = ja.attempt_token;
  r.state = "succeeded";
  r.exit_code = 0;
  r.started_at = f.clock.Now() - absl::Seconds(6);
  r.finished_at = f.clock.Now() - absl::Seconds(1);
  auto out = f.jobs.Finish(r);
  REQUIRE(out.ok());
  CHECK(out->fence == store::Fence::kOk);
  CHECK(out->queued == 1);
  CHECK(out->duration == absl::Seconds(5));
  CHECK(f.Query("SELECT state, exit_code, message, lease_expires_at, "
                "(extract(epoch from started_at) * 1000000)::bigint, "
                "(extract(epoch from finished_at) * 1000000)::bigint FROM jobs WHERE id = " +
                std::to_string(a)) ==
        Rows{{"succeeded", "0", "NULL", "NULL", std::to_string(Us(r.started_at)),
              std::to_string(Us(r.finished_at))}});
  CHECK(f.Query("SELECT state, exit_code FROM job_attempts WHERE job_id = " + std::to_string(a)) ==
        Rows{{"succeeded", "0"}});
  CHECK(f.JobState(b) == "queued");
  CHECK(f.UsOf("jobs", "queued_at", b) == std::to_string(Us(f.clock.Now())));
  CHECK(f.JobState(c) == "pending");
  CHECK(f.PipelineState(pid) == "running");

  SECTION("the same result again changes nothing") {
    const Rows before = f.Query("SELECT * FROM jobs ORDER BY id");
    const Rows attempts = f.Query("SELECT * FROM job_attempts");
    f.clock.Advance(absl::Seconds(1));
    r.state = "failed";  // a resend can not rewrite history either
    r.exit_code = 1;
    auto dup = f.jobs.Finish(r);
    REQUIRE(dup.ok());
    CHECK(dup->fence == store::Fence::kDuplicate);
    CHECK(dup->queued == 0);
    CHECK(f.Query("SELECT * FROM jobs ORDER BY id") == before);
    CHECK(f.Query("SELECT * FROM job_attempts") == attempts);
  }

  SECTION("b and c succeed") {
    auto jb = f.ClaimOne(agent);
    REQUIRE(jb.job_id == b);
    CHECK(f.FinishJob(jb, "succeeded", 0).queued == 1);
    auto jc = f.ClaimOne(agent);
    REQUIRE(jc.job_id == c);
    f.clock.Advance(absl::Seconds(3));
    auto last = f.FinishJob(jc, "succeeded", 0);
    CHECK(last.fence == store::Fence::kOk);
    CHECK(last.queued == 0);
    CHECK(f.PipelineState(pid) == "succeeded");
    CHECK(f.UsOf("pipelines", "finished_at", pid) == std::to_string(Us(f.clock.Now())));
    auto counts = f.jobs.CountByState();
    REQUIRE(counts.ok());
    CHECK(*counts == std::vector<std::pair<std::string, int64_t>>{{"succeeded", 3}});
    auto dup = f.FinishJob(jc, "succeeded", 0);
    CHECK(dup.fence == store::Fence::kDuplicate);
    CHECK(f.PipelineState(pid) == "succeeded");
  }
}

TEST_CASE("finish: a failure skips everything downstream and fails the pipeline", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t pid = f.CreatePipeline(
      {Job("a"), Job("b", {"a"}), Job("c", {"b"}), Job("side"), Job("d", {"side", "c"})});
  auto ja = f.ClaimOne(agent);
  REQUIRE(ja.job_name == "a");
  auto js = f.ClaimOne(agent);
  REQUIRE(js.job_name == "side");

  auto out = f.FinishJob(ja, "failed", 2, "step 'test' exited with 2");
  CHECK(out.fence == store::Fence::kOk);
  CHECK(out.queued == 0);
  CHECK(f.Query("SELECT name, state, exit_code, message FROM jobs ORDER BY id") ==
        Rows{{"a", "failed", "2", "step 'test' exited with 2"},
             {"b", "skipped", "NULL", "skipped: a job it needs did not succeed"},
             {"c", "skipped", "NULL", "skipped: a job it needs did not succeed"},
             {"side", "assigned", "NULL", "NULL"},
             {"d", "skipped", "NULL", "skipped: a job it needs did not succeed"}});
  CHECK(f.PipelineState(pid) == "running");  // 'side' is still out

  f.clock.Advance(absl::Seconds(4));
  CHECK(f.FinishJob(js, "succeeded", 0).queued == 0);
  CHECK(f.PipelineState(pid) == "failed");
  CHECK(f.UsOf("pipelines", "finished_at", pid) == std::to_string(Us(f.clock.Now())));
}

TEST_CASE("finish: two needs finishing at once both count, every time", "[db]") {
  DbFixture f;
  int64_t agent1 = f.Agent("agent-1");
  int64_t agent2 = f.Agent("agent-2");
  store::Db db1(f.tdb.dsn(), 1), db2(f.tdb.dsn(), 1);
  store::JobStore js1(&db1, &f.clock), js2(&db2, &f.clock);
  constexpr int kRounds = 30;
  int queued_total = 0;
  for (int i = 0; i < kRounds; ++i) {
    int64_t pid = f.CreatePipeline({Job("a"), Job("b"), Job("c", {"a", "b"})});
    auto ja = f.ClaimOne(agent1);
    auto jb = f.ClaimOne(agent2);
    REQUIRE(ja.pipeline_id == pid);
    REQUIRE(jb.pipeline_id == pid);
    std::barrier start(2);
    absl::StatusOr<store::FinishOutcome> ra, rb;
    auto report = [](const store::ClaimedJob& j) {
      store::ResultReport r;
      r.job_id = j.job_id;
      r.attempt_token = j.attempt_token;
      r.state = "succeeded";
      r.exit_code = 0;
      return r;
    };
    std::thread ta([&] {
      store::ResultReport r = report(ja);
      start.arrive_and_wait();
      ra = js1.Finish(r);
    });
    std::thread tb([&] {
      store::ResultReport r = report(jb);
      start.arrive_and_wait();
      rb = js2.Finish(r);
    });
    ta.join();
    tb.join();
    REQUIRE(ra.ok());
    REQUIRE(rb.ok());
    CHECK(ra->fence == store::Fence::kOk);
    CHECK(rb->fence == store::Fence::kOk);
    CHECK(ra->queued + rb->queued == 1);
    queued_total += ra->queued + rb->queued;
    CHECK(f.JobState(f.JobId(pid, "c")) == "queued");
    // Leave nothing claimable behind for the next round's claims.
    auto jc = f.ClaimOne(agent1);
    REQUIRE(jc.pipeline_id == pid);
    f.FinishJob(jc, "succeeded", 0);
    CHECK(f.PipelineState(pid) == "succeeded");
  }
  CHECK(queued_total == kRounds);
}

TEST_CASE("release-unheld: only the agent's live attempts it does not list", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t other = f.Agent("agent-2");
  f.CreatePipeline(
      {Job("kept"), Job("forgotten"), Job("wrong-token"), Job("elsewhere"), Job("finished")});
  auto kept = f.ClaimOne(agent);
  auto forgotten = f.ClaimOne(agent);
  REQUIRE(*f.jobs.MarkRunning(forgotten.job_id, forgotten.attempt_token) == store::Fence::kOk);
  auto wrong = f.ClaimOne(agent);
  auto elsewhere = f.ClaimOne(other);
  auto finished = f.ClaimOne(agent);
  REQUIRE(finished.job_name == "finished");
  f.FinishJob(finished, "succeeded", 0);
  f.clock.Advance(absl::Seconds(1));

  auto n = f.jobs.ReleaseUnheld(
      agent, {{kept.job_id, kept.attempt_token}, {wrong.job_id, std::string(32, 'f')}});
  REQUIRE(n.ok());
  CHECK(*n == 2);
  CHECK(f.Query("SELECT name, state, attempt_token IS NULL FROM jobs ORDER BY id") ==
        Rows{{"kept", "assigned", "f"},
             {"forgotten", "queued", "t"},
             {"wrong-token", "queued", "t"},
             {"elsewhere", "assigned", "f"},
             {"finished", "succeeded", "f"}});
  CHECK(f.Query("SELECT j.name, a.state, coalesce(a.message, '') FROM job_attempts a JOIN jobs j "
                "ON j.id = a.job_id ORDER BY j.id") ==
        Rows{{"kept", "assigned", ""},
             {"forgotten", "lost", "agent reconnected without this job (assignment lost)"},
             {"wrong-token", "lost", "agent reconnected without this job (assignment lost)"},
             {"elsewhere", "assigned", ""},
             {"finished", "succeeded", ""}});
  (void)elsewhere;

  n = f.jobs.ReleaseUnheld(agent, {{kept.job_id, kept.attempt_token}});
  REQUIRE(n.ok());
  CHECK(*n == 0);
}

TEST_CASE("finish: a result without times is stamped with the server's clock", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  f.CreatePipeline({Job("a"), Job("b")});
  auto ja = f.ClaimOne(agent);
  auto jb = f.ClaimOne(agent);
  f.clock.Advance(absl::Seconds(3));
  const absl::Time running_at = f.clock.Now();
  REQUIRE(*f.jobs.MarkRunning(jb.job_id, jb.attempt_token) == store::Fence::kOk);
  f.clock.Advance(absl::Seconds(4));
  const std::string now = std::to_string(Us(f.clock.Now()));

  store::ResultReport r;  // the agent sent neither started nor finished
  r.job_id = ja.job_id;
  r.attempt_token = ja.attempt_token;
  r.state = "succeeded";
  auto out = f.jobs.Finish(r);
  REQUIRE(out.ok());
  CHECK(out->fence == store::Fence::kOk);
  CHECK(out->duration == absl::ZeroDuration());
  r.job_id = jb.job_id;
  r.attempt_token = jb.attempt_token;
  out = f.jobs.Finish(r);
  REQUIRE(out.ok());
  CHECK(out->fence == store::Fence::kOk);
  CHECK(f.Query("SELECT name, exit_code, (extract(epoch from started_at) * 1000000)::bigint, "
                "(extract(epoch from finished_at) * 1000000)::bigint FROM jobs ORDER BY id") ==
        Rows{{"a", "NULL", now, now}, {"b", "NULL", std::to_string(Us(running_at)), now}});
  CHECK(f.Query("SELECT (extract(epoch from started_at) * 1000000)::bigint, "
                "(extract(epoch from finished_at) * 1000000)::bigint FROM job_attempts "
                "ORDER BY job_id") == Rows{{now, now}, {std::to_string(Us(running_at)), now}});
}

}  // namespace
}  // namespace assay::dbtest
