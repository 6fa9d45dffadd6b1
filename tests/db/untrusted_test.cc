// Untrusted pipelines (a fork's pull request) on a real database (issue 8, item 3): their jobs
// are read from the queue, placed and claimed only for agents whose Hello said
// accept_untrusted, and "why is it waiting?" says so when no connected agent accepts them.

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "server/scheduler/explain.h"
#include "tests/db/db_fixture.h"
#include "tests/db/fake_channel.h"

namespace assay::dbtest {
namespace {

constexpr const char* kNoAgentAccepts =
    "untrusted (fork pull request): no connected agent accepts untrusted jobs (start one with "
    "--accept-untrusted)";

store::NewJob UntrustedJob(std::string name) {
  store::NewJob j = Job(std::move(name));
  j.requirements_json = R"({"cpus":1,"untrusted":true})";
  return j;
}

// An agent that accepts untrusted jobs offers the sandbox (issue 9: never on the host); one that
// does not, the host (the default of an agent that announces no executors).
int64_t ConnectAgent(DbFixture& f, const std::string& name, bool accept_untrusted,
                     std::vector<std::string> executors = {}) {
  store::AgentHello h;
  h.name = name;
  h.cpu_slots = 4;
  h.accept_untrusted = accept_untrusted;
  h.executors = !executors.empty() ? std::move(executors)
                : accept_untrusted ? std::vector<std::string>{"sandbox"}
                                   : std::vector<std::string>{};
  auto s = f.agents.Connect(h);
  REQUIRE(s.ok());
  return s->id;
}

TEST_CASE("untrusted: the claim gives an untrusted job only to an agent that accepts it",
          "[db][untrusted]") {
  DbFixture f;
  const int64_t normal = ConnectAgent(f, "normal", false);
  const int64_t open = ConnectAgent(f, "open", true);
  const int64_t p = f.CreatePipeline({UntrustedJob("fork")});
  const int64_t job = f.JobId(p, "fork");
  auto claim = [&](int64_t agent) {
    store::ClaimRequest r;
    r.job_id = job;
    r.agent_id = agent;
    auto got = f.jobs.ClaimBatch({r}, absl::Seconds(30));
    REQUIRE(got.status.ok());
    return got.claimed.size();
  };
  // Even when a caller picks the wrong agent, the database refuses.
  CHECK(claim(normal) == 0);
  CHECK(f.Query("SELECT state, agent_id FROM jobs WHERE id = " + std::to_string(job)) ==
        Rows{{"queued", "NULL"}});
  CHECK(claim(open) == 1);
  CHECK(f.Query("SELECT state, agent_id FROM jobs WHERE id = " + std::to_string(job)) ==
        Rows{{"assigned", std::to_string(open)}});
  CHECK(f.Query("SELECT name, accept_untrusted FROM agents ORDER BY name") ==
        Rows{{"normal", "f"}, {"open", "t"}});
}

TEST_CASE("untrusted: the queue leaves untrusted jobs out when no free agent accepts them",
          "[db][untrusted]") {
  DbFixture f;
  const int64_t p = f.CreatePipeline({UntrustedJob("fork"), Job("plain")});
  store::QueueFilter filter;
  filter.untrusted = false;
  auto q = f.jobs.Queue(filter);
  REQUIRE(q.ok());
  REQUIRE(q->jobs.size() == 1);
  CHECK(q->jobs[0].job_id == f.JobId(p, "plain"));
  filter.untrusted = true;
  q = f.jobs.Queue(filter);
  REQUIRE(q.ok());
  CHECK(q->jobs.size() == 2);
}

TEST_CASE("untrusted: the dispatcher places untrusted jobs only on accepting agents",
          "[db][untrusted]") {
  DbFixture f;
  Metrics metrics;
  Dispatcher d{&f.jobs, &metrics, &f.clock, DispatcherOptions{}};
  const int64_t normal = ConnectAgent(f, "normal", false);
  auto normal_ch = std::make_shared<FakeChannel>();
  d.AgentConnected(Capacity(normal, "normal", 4), {}, normal_ch);
  const int64_t p = f.CreatePipeline({UntrustedJob("fork"), Job("plain")});
  CHECK(d.DispatchOnce() == 1);
  auto got = normal_ch->TakeAssignments();
  REQUIRE(got.size() == 1);
  CHECK(got[0].job_id() == f.JobId(p, "plain"));
  CHECK(d.DispatchOnce() == 0);

  const int64_t open = ConnectAgent(f, "open", true);
  auto open_ch = std::make_shared<FakeChannel>();
  AgentCapacity cap = Capacity(open, "open", 4);
  cap.accepts_untrusted = true;
  cap.executors = {"sandbox"};
  d.AgentConnected(cap, {}, open_ch);
  CHECK(d.DispatchOnce() == 1);
  got = open_ch->TakeAssignments();
  REQUIRE(got.size() == 1);
  CHECK(got[0].job_id() == f.JobId(p, "fork"));
  CHECK(normal_ch->TakeAssignments().empty());
}

TEST_CASE("untrusted: why-waiting says no connected agent accepts untrusted jobs",
          "[db][untrusted]") {
  DbFixture f;
  ConnectAgent(f, "normal", false);
  const int64_t p = f.CreatePipeline({UntrustedJob("fork")});
  auto why = [&] {
    auto agents = f.agents.List();
    REQUIRE(agents.ok());
    auto live = f.jobs.LiveUsageAll();
    REQUIRE(live.ok());
    auto pipeline = f.pipelines.Get(p);
    REQUIRE(pipeline.ok());
    REQUIRE(pipeline->jobs.size() == 1);
    return WhyWaiting(pipeline->jobs[0],
                      BuildClusterView(*agents, *live, absl::Now(), absl::Seconds(30)),
                      pipeline->jobs);
  };
  CHECK(why() == kNoAgentAccepts);
  const int64_t open = ConnectAgent(f, "open", true);
  CHECK(why() == "agent open (id " + std::to_string(open) + ") can take it now");
}

}  // namespace
}  // namespace assay::dbtest
