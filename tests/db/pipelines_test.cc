// Pipeline creation: one transaction for the pipeline, its jobs, their needs and the
// delivery's state; idempotent per delivery; 'error' pipelines; cancellation.

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

TEST_CASE("pipelines: a chain a <- b <- c is written with exact states and needs", "[db]") {
  DbFixture f;
  int64_t d = f.Delivery("d-1");
  auto id = f.pipelines.Create(f.Pipeline({Job("a"), Job("b", {"a"}), Job("c", {"b"})}, d));
  REQUIRE(id.ok());

  auto p = f.pipelines.Get(*id);
  REQUIRE(p.ok());
  CHECK(p->repo_id == f.repo_id);
  CHECK(p->repo == "acme/app");
  CHECK(p->event == "push");
  CHECK(p->ref == "refs/heads/main");
  CHECK(p->commit_sha == kSha);
  CHECK(p->state == "running");
  CHECK(p->message.empty());
  CHECK(p->created_at == kT0);
  CHECK(p->finished_at == absl::InfinitePast());
  REQUIRE(p->jobs.size() == 3);
  CHECK(p->jobs[0].name == "a");
  CHECK(p->jobs[0].state == "queued");
  CHECK(p->jobs[0].queued_at == kT0);
  CHECK(p->jobs[0].needs.empty());
  CHECK(p->jobs[1].name == "b");
  CHECK(p->jobs[1].state == "pending");
  CHECK(p->jobs[1].queued_at == absl::InfinitePast());
  CHECK(p->jobs[1].needs == std::vector<std::string>{"a"});
  CHECK(p->jobs[2].name == "c");
  CHECK(p->jobs[2].state == "pending");
  CHECK(p->jobs[2].needs == std::vector<std::string>{"b"});
  for (const auto& j : p->jobs) {
    CHECK(j.attempt == 0);
    CHECK(j.agent.empty());
    CHECK(j.created_at == kT0);
  }
  CHECK(f.Query("SELECT j.name, d.name FROM job_needs n JOIN jobs j ON j.id = n.job_id "
                "JOIN jobs d ON d.id = n.needs_job_id ORDER BY j.name") ==
        Rows{{"b", "a"}, {"c", "b"}});
  CHECK(f.One("SELECT state FROM webhook_deliveries WHERE id = " + std::to_string(d)) ==
        "processed");
  auto unplanned = f.deliveries.ListUnplanned();
  REQUIRE(unplanned.ok());
  CHECK(unplanned->empty());

  auto job = f.pipelines.GetJob(p->jobs[1].id);
  REQUIRE(job.ok());
  CHECK(job->name == "b");
  CHECK(job->pipeline_id == *id);
  CHECK(f.pipelines.GetJob(999999).status().message() == "job 999999 does not exist");
  CHECK(f.pipelines.Get(999999).status().code() == absl::StatusCode::kNotFound);

  SECTION("planning the same delivery again returns the same pipeline") {
    f.clock.Advance(absl::Seconds(5));
    auto again = f.pipelines.Create(f.Pipeline({Job("x")}, d));
    REQUIRE(again.ok());
    CHECK(*again == *id);
    CHECK(f.Count("SELECT count(*) FROM pipelines") == 1);
    CHECK(f.Query("SELECT name FROM jobs ORDER BY id") == Rows{{"a"}, {"b"}, {"c"}});
  }
}

TEST_CASE("pipelines: a need naming an unknown job writes nothing", "[db]") {
  DbFixture f;
  int64_t d = f.Delivery("d-1");
  auto id = f.pipelines.Create(f.Pipeline({Job("a"), Job("b", {"a", "nope"})}, d));
  CHECK(id.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(id.status().message() == "job 'b' needs unknown job 'nope'");
  CHECK(f.Count("SELECT count(*) FROM pipelines") == 0);
  CHECK(f.Count("SELECT count(*) FROM jobs") == 0);
  CHECK(f.Count("SELECT count(*) FROM job_needs") == 0);
  CHECK(f.One("SELECT state FROM webhook_deliveries WHERE id = " + std::to_string(d)) ==
        "received");
  auto unplanned = f.deliveries.ListUnplanned();
  REQUIRE(unplanned.ok());
  CHECK(*unplanned == std::vector<int64_t>{d});

  // Duplicate job names are refused by the database, also without a trace.
  auto dup = f.pipelines.Create(f.Pipeline({Job("a"), Job("a")}, d));
  CHECK(dup.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(f.Count("SELECT count(*) FROM pipelines") == 0);
  CHECK(f.Count("SELECT count(*) FROM jobs") == 0);
}

TEST_CASE("pipelines: a file that cannot run gives an 'error' pipeline without jobs", "[db]") {
  DbFixture f;
  int64_t d = f.Delivery("d-1");
  auto p = f.Pipeline({}, d);
  p.error = ".assay.yml:3:5: jobs.build.steps: must be a non-empty list";
  auto id = f.pipelines.Create(p);
  REQUIRE(id.ok());
  auto got = f.pipelines.Get(*id);
  REQUIRE(got.ok());
  CHECK(got->state == "error");
  CHECK(got->message == ".assay.yml:3:5: jobs.build.steps: must be a non-empty list");
  CHECK(got->finished_at == kT0);
  CHECK(got->jobs.empty());
  CHECK(f.Count("SELECT count(*) FROM jobs") == 0);
  // Its delivery ends 'failed' with the pipeline's message.
  CHECK(f.Query("SELECT state, message FROM webhook_deliveries WHERE id = " + std::to_string(d)) ==
        Rows{{"failed", ".assay.yml:3:5: jobs.build.steps: must be a non-empty list"}});

  auto listed = f.pipelines.List(std::string("acme/app"), 10);
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK((*listed)[0].id == *id);
  CHECK((*listed)[0].state == "error");
  auto other = f.pipelines.List(std::string("nobody/none"), 10);
  REQUIRE(other.ok());
  CHECK(other->empty());
}

TEST_CASE("pipelines: cancel stops running, queued and pending jobs", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t pid = f.CreatePipeline({Job("r"), Job("q"), Job("p", {"r"})});
  int64_t r = f.JobId(pid, "r"), q = f.JobId(pid, "q"), p = f.JobId(pid, "p");
  auto claimed = f.ClaimOne(agent);
  REQUIRE(claimed.job_id == r);
  REQUIRE(*f.jobs.MarkRunning(r, claimed.attempt_token) == store::Fence::kOk);
  f.clock.Advance(absl::Seconds(10));

  auto canceled = f.pipelines.Cancel(pid);
  REQUIRE(canceled.ok());
  REQUIRE(canceled->size() == 1);
  CHECK((*canceled)[0].job_id == r);
  CHECK((*canceled)[0].agent_id == agent);
  CHECK((*canceled)[0].attempt_token == claimed.attempt_token);

  const std::string now = std::to_string(Us(f.clock.Now()));
  CHECK(f.Query("SELECT name, state, message, (extract(epoch from finished_at) * 1000000)::bigint "
                "FROM jobs ORDER BY id") == Rows{{"r", "canceled", "canceled by request", now},
                                                 {"q", "canceled", "canceled by request", now},
                                                 {"p", "canceled", "canceled by request", now}});
  CHECK(f.Query("SELECT job_id, attempt, state FROM job_attempts") ==
        Rows{{std::to_string(r), "1", "canceled"}});
  CHECK(f.PipelineState(pid) == "canceled");
  CHECK(f.UsOf("pipelines", "finished_at", pid) == now);
  (void)q;
  (void)p;

  auto again = f.pipelines.Cancel(pid);
  CHECK(again.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(again.status().message() ==
        "pipeline " + std::to_string(pid) + " has already finished (canceled)");
  auto missing = f.pipelines.Cancel(999999);
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(missing.status().message() == "pipeline 999999 does not exist");

  // The agent's late result changes nothing.
  auto late = f.FinishJob(claimed, "succeeded", 0);
  CHECK(late.fence == store::Fence::kDuplicate);
  CHECK(f.JobState(r) == "canceled");
  CHECK(f.PipelineState(pid) == "canceled");
}

}  // namespace
}  // namespace assay::dbtest
