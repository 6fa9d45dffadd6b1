// Executors on a real database (issue 9): the agent row keeps what its Hello announced, and the
// claim, the dispatcher and "why is it waiting?" match each job's executor (requirements
// "executor": "container", or none) and trust with the agent's executors.

#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "server/scheduler/explain.h"
#include "tests/db/db_fixture.h"
#include "tests/db/fake_channel.h"

namespace assay::dbtest {
namespace {

int64_t Connect(DbFixture& f, const std::string& name, std::vector<std::string> executors,
                bool accept_untrusted) {
  store::AgentHello h;
  h.name = name;
  h.cpu_slots = 4;
  h.accept_untrusted = accept_untrusted;
  h.executors = std::move(executors);
  auto s = f.agents.Connect(h);
  REQUIRE(s.ok());
  return s->id;
}

store::NewJob JobWith(std::string name, const std::string& requirements) {
  store::NewJob j = Job(std::move(name));
  j.requirements_json = requirements;
  return j;
}

TEST_CASE("executors: the agent row keeps the announced executors, none means host",
          "[db][executors]") {
  DbFixture f;
  Connect(f, "a", {"container", "sandbox"}, false);
  Connect(f, "b", {}, false);
  CHECK(f.Query("SELECT name, executors::text FROM agents ORDER BY name") ==
        Rows{{"a", "{container,sandbox}"}, {"b", "{host}"}});
  auto list = f.agents.List();
  REQUIRE(list.ok());
  REQUIRE(list->size() == 2);
  CHECK((*list)[0].executors == std::vector<std::string>{"container", "sandbox"});
  CHECK((*list)[1].executors == std::vector<std::string>{"host"});
  // A reconnect with other executors replaces them.
  Connect(f, "b", {"sandbox", "host"}, true);
  CHECK(f.Query("SELECT executors::text FROM agents WHERE name = 'b'") == Rows{{"{sandbox,host}"}});
}

TEST_CASE("executors: the claim refuses every agent that cannot run the job as asked",
          "[db][executors]") {
  struct Case {
    std::string requirements;
    std::vector<std::string> executors;
    bool accepts;
    size_t claimed;
  };
  const std::vector<Case> cases = {
      {R"({"cpus":1})", {"host"}, false, 1},
      {R"({"cpus":1})", {"sandbox"}, false, 1},
      {R"({"cpus":1})", {"container"}, false, 0},
      {R"({"cpus":1,"executor":"container"})", {"container"}, false, 1},
      {R"({"cpus":1,"executor":"container"})", {"sandbox", "host"}, false, 0},
      {R"({"cpus":1,"untrusted":true})", {"sandbox"}, true, 1},
      {R"({"cpus":1,"untrusted":true})", {"host"}, true, 0},
      {R"({"cpus":1,"untrusted":true})", {"sandbox"}, false, 0},
      {R"({"cpus":1,"untrusted":true})", {"container"}, true, 0},
      {R"({"cpus":1,"untrusted":true,"executor":"container"})", {"container"}, true, 1},
      {R"({"cpus":1,"untrusted":true,"executor":"container"})", {"sandbox", "host"}, true, 0},
  };
  int n = 0;
  for (const Case& c : cases) {
    DbFixture f;
    INFO(c.requirements << " on " << c.executors.size() << " executors, accepts " << c.accepts);
    const int64_t agent = Connect(f, "agent-" + std::to_string(n++), c.executors, c.accepts);
    const int64_t p = f.CreatePipeline({JobWith("j", c.requirements)});
    store::ClaimRequest r;
    r.job_id = f.JobId(p, "j");
    r.agent_id = agent;
    auto got = f.jobs.ClaimBatch({r}, absl::Seconds(30));
    REQUIRE(got.status.ok());
    CHECK(got.claimed.size() == c.claimed);
    CHECK(f.Query("SELECT state FROM jobs WHERE id = " + std::to_string(r.job_id)) ==
          Rows{{c.claimed == 1 ? "assigned" : "queued"}});
    if (c.claimed == 1) {
      CHECK(got.claimed[0].untrusted == (c.requirements.find("untrusted") != std::string::npos));
    }
  }
}

TEST_CASE("executors: the dispatcher sends an untrusted job to the sandbox agent, marked",
          "[db][executors]") {
  DbFixture f;
  Metrics metrics;
  Dispatcher d{&f.jobs, &metrics, &f.clock, DispatcherOptions{}};
  const int64_t host = Connect(f, "host-only", {"host"}, true);
  auto host_ch = std::make_shared<FakeChannel>();
  AgentCapacity host_cap = Capacity(host, "host-only", 4);
  host_cap.accepts_untrusted = true;
  host_cap.executors = {"host"};
  d.AgentConnected(host_cap, {}, host_ch);
  const int64_t p =
      f.CreatePipeline({JobWith("fork", R"({"cpus":1,"untrusted":true})"),
                        JobWith("image", R"({"cpus":1,"executor":"container"})"), Job("plain")});
  CHECK(d.DispatchOnce() == 1);
  auto got = host_ch->TakeAssignments();
  REQUIRE(got.size() == 1);
  CHECK(got[0].job_id() == f.JobId(p, "plain"));
  CHECK_FALSE(got[0].untrusted());
  CHECK(d.DispatchOnce() == 0);

  const int64_t sandbox = Connect(f, "sandboxed", {"sandbox"}, true);
  auto sandbox_ch = std::make_shared<FakeChannel>();
  AgentCapacity cap = Capacity(sandbox, "sandboxed", 4);
  cap.accepts_untrusted = true;
  cap.executors = {"sandbox"};
  d.AgentConnected(cap, {}, sandbox_ch);
  CHECK(d.DispatchOnce() == 1);
  got = sandbox_ch->TakeAssignments();
  REQUIRE(got.size() == 1);
  CHECK(got[0].job_id() == f.JobId(p, "fork"));
  CHECK(got[0].untrusted());
  CHECK(host_ch->TakeAssignments().empty());
  // The container job waits for a container agent.
  CHECK(f.Query("SELECT state FROM jobs WHERE id = " + std::to_string(f.JobId(p, "image"))) ==
        Rows{{"queued"}});
}

TEST_CASE("executors: why-waiting names the missing executor or isolation", "[db][executors]") {
  DbFixture f;
  Connect(f, "host-only", {"host"}, true);
  const int64_t p = f.CreatePipeline({JobWith("fork", R"({"cpus":1,"untrusted":true})"),
                                      JobWith("image", R"({"cpus":1,"executor":"container"})")});
  auto why = [&](const std::string& name) {
    auto agents = f.agents.List();
    REQUIRE(agents.ok());
    auto live = f.jobs.LiveUsageAll();
    REQUIRE(live.ok());
    auto pipeline = f.pipelines.Get(p);
    REQUIRE(pipeline.ok());
    for (const auto& j : pipeline->jobs) {
      if (j.name == name) {
        return WhyWaiting(j, BuildClusterView(*agents, *live, absl::Now(), absl::Seconds(30)),
                          pipeline->jobs);
      }
    }
    FAIL("no job " << name);
    return std::string();
  };
  CHECK(why("fork") ==
        "untrusted (fork pull request): no connected agent accepts untrusted jobs in a sandbox, "
        "and the host executor never runs them (start one with --accept-untrusted --executors "
        "sandbox)");
  CHECK(why("image") ==
        "needs the container executor (the job has image:): no connected agent offers it (start "
        "one with --executors container)");
  const int64_t sandbox = Connect(f, "sandboxed", {"sandbox"}, true);
  CHECK(why("fork") == "agent sandboxed (id " + std::to_string(sandbox) + ") can take it now");
}

TEST_CASE("executors: container jobs at the head of a repository do not hide a host job",
          "[db][executors]") {
  DbFixture f;
  Metrics metrics;
  Dispatcher d{&f.jobs, &metrics, &f.clock, DispatcherOptions{}};
  const int64_t host = Connect(f, "host-only", {"host"}, false);
  auto ch = std::make_shared<FakeChannel>();
  AgentCapacity cap = Capacity(host, "host-only", 1);
  cap.executors = {"host"};
  d.AgentConnected(cap, {}, ch);
  // More container jobs ahead of it than the dispatcher reads per repository (20 with one
  // free CPU), all older than the plain job.
  std::vector<store::NewJob> jobs;
  for (int i = 0; i < 30; ++i) {
    jobs.push_back(JobWith("image-" + std::to_string(i), R"({"cpus":1,"executor":"container"})"));
  }
  jobs.push_back(Job("plain"));
  const int64_t p = f.CreatePipeline(jobs);
  CHECK(d.DispatchOnce() == 1);
  auto got = ch->TakeAssignments();
  REQUIRE(got.size() == 1);
  CHECK(got[0].job_id() == f.JobId(p, "plain"));
  CHECK(f.Count("SELECT count(*) FROM jobs WHERE state = 'queued'") == 30);

  // The queue read itself leaves out what the filter's executors cannot run.
  store::QueueFilter filter;
  filter.untrusted = true;
  f.CreatePipeline({JobWith("fork", R"({"cpus":1,"untrusted":true})"),
                    JobWith("fork-image", R"({"cpus":1,"untrusted":true,"executor":"container"})"),
                    Job("plain-2")});
  auto names = [&](const store::QueueFilter& q) {
    auto snap = f.jobs.Queue(q);
    REQUIRE(snap.ok());
    std::vector<std::string> out;
    for (const auto& j : snap->jobs) {
      out.push_back(f.One("SELECT name FROM jobs WHERE id = " + std::to_string(j.job_id)));
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  filter.container = false;
  filter.untrusted_container = false;
  CHECK(names(filter) == std::vector<std::string>{"fork", "plain-2"});
  filter.untrusted_sandbox = false;
  CHECK(names(filter) == std::vector<std::string>{"plain-2"});
  filter.process = false;
  CHECK(names(filter).empty());
  filter.untrusted_container = true;
  CHECK(names(filter) == std::vector<std::string>{"fork-image"});
  filter.per_repo = 5;
  filter.container = true;
  const auto head = names(filter);  // the five oldest: container jobs of the first pipeline
  REQUIRE(head.size() == 5);
  for (const auto& n : head) CHECK(n.rfind("image-", 0) == 0);
}

}  // namespace
}  // namespace assay::dbtest
