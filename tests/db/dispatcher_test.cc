// The dispatcher against a real database with stand-in agent streams
// (FakeChannel records what was sent): GPU placement and its environment,
// waiting and freeing capacity, best fit for CPU jobs, retries preferring
// another agent; "why is it waiting?" over the cluster as the database sees it;
// and LISTEN/NOTIFY cancels reaching the agent's stream.

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "server/scheduler/explain.h"
#include "server/scheduler/wakeups.h"
#include "tests/db/db_fixture.h"
#include "tests/db/fake_channel.h"

namespace assay::dbtest {
namespace {

std::string S(int64_t v) { return std::to_string(v); }

store::NewJob GpuJob(std::string name, int gpus = 1) {
  store::NewJob j = Job(std::move(name));
  j.requirements_json = R"({"cpus":1,"gpus":)" + std::to_string(gpus) + "}";
  return j;
}

std::map<std::string, std::string> EnvOf(const v1::Assignment& a) {
  return {a.env().begin(), a.env().end()};
}

std::vector<uint32_t> GpusOf(const v1::Assignment& a) {
  return {a.gpu_indices().begin(), a.gpu_indices().end()};
}

struct DispatchFixture : DbFixture {
  Metrics metrics;
  Dispatcher d{&jobs, &metrics, &clock, DispatcherOptions{}};

  // The agent's result, as its stream handler would record it, and the freed
  // slot.
  void Succeed(int64_t agent_id, const v1::Assignment& a) {
    REQUIRE(*jobs.MarkRunning(a.job_id(), a.attempt_token()) == store::Fence::kOk);
    store::ResultReport r;
    r.job_id = a.job_id();
    r.attempt_token = a.attempt_token();
    r.state = "succeeded";
    r.exit_code = 0;
    auto out = jobs.Finish(r);
    REQUIRE(out.ok());
    REQUIRE(out->fence == store::Fence::kOk);
    d.JobReleased(agent_id, a.job_id());
  }
};

TEST_CASE(
    "dispatch: GPU jobs get distinct GPUs and wait for a free one while "
    "CPU jobs avoid GPUs",
    "[db][dispatch]") {
  DispatchFixture f;
  const int64_t gpu = f.Agent("gpu-1");
  const int64_t cpu = f.Agent("cpu-1");
  auto gpu_ch = std::make_shared<FakeChannel>();
  auto cpu_ch = std::make_shared<FakeChannel>();
  f.d.AgentConnected(Capacity(gpu, "gpu-1", 8, {Gpu(0), Gpu(1)}), {}, gpu_ch);
  f.d.AgentConnected(Capacity(cpu, "cpu-1", 4), {}, cpu_ch);

  int64_t p1 = f.CreatePipeline({GpuJob("gpu-a"), GpuJob("gpu-b")});
  CHECK(f.d.DispatchOnce() == 2);
  auto got = gpu_ch->TakeAssignments();
  REQUIRE(got.size() == 2);
  CHECK(cpu_ch->TakeAssignments().empty());
  CHECK(got[0].job_id() == f.JobId(p1, "gpu-a"));
  CHECK(got[0].attempt() == 1);
  CHECK(GpusOf(got[0]) == std::vector<uint32_t>{0});
  CHECK(EnvOf(got[0]) == std::map<std::string, std::string>{{"CUDA_VISIBLE_DEVICES", "0"},
                                                            {"NVIDIA_VISIBLE_DEVICES", "0"}});
  CHECK(got[1].job_id() == f.JobId(p1, "gpu-b"));
  CHECK(GpusOf(got[1]) == std::vector<uint32_t>{1});
  CHECK(EnvOf(got[1]) == std::map<std::string, std::string>{{"CUDA_VISIBLE_DEVICES", "1"},
                                                            {"NVIDIA_VISIBLE_DEVICES", "1"}});
  CHECK(f.Query("SELECT j.name, j.state, j.agent_id, j.attempt_token, "
                "j.gpu_indices::text, "
                "a.gpu_indices::text FROM jobs j JOIN job_attempts a ON a.job_id "
                "= j.id "
                "ORDER BY j.id") ==
        Rows{{"gpu-a", "assigned", S(gpu), got[0].attempt_token(), "{0}", "{0}"},
             {"gpu-b", "assigned", S(gpu), got[1].attempt_token(), "{1}", "{1}"}});

  f.clock.Advance(absl::Seconds(1));
  int64_t p2 = f.CreatePipeline({GpuJob("gpu-c")});
  const int64_t c = f.JobId(p2, "gpu-c");
  CHECK(f.d.DispatchOnce() == 0);
  CHECK(f.JobState(c) == "queued");
  CHECK(gpu_ch->TakeAssignments().empty());

  f.Succeed(gpu, got[0]);  // frees GPU 0
  CHECK(f.d.DispatchOnce() == 1);
  auto third = gpu_ch->TakeAssignments();
  REQUIRE(third.size() == 1);
  CHECK(third[0].job_id() == c);
  CHECK(GpusOf(third[0]) == std::vector<uint32_t>{0});
  CHECK(EnvOf(third[0]).at("CUDA_VISIBLE_DEVICES") == "0");

  // A CPU-only job: the GPU agent has 6 free CPUs, but agents without GPUs come
  // first.
  f.clock.Advance(absl::Seconds(1));
  int64_t p3 = f.CreatePipeline({Job("cpu-job")});
  CHECK(f.d.DispatchOnce() == 1);
  CHECK(gpu_ch->TakeAssignments().empty());
  auto cpu_got = cpu_ch->TakeAssignments();
  REQUIRE(cpu_got.size() == 1);
  CHECK(cpu_got[0].job_id() == f.JobId(p3, "cpu-job"));
  CHECK(GpusOf(cpu_got[0]).empty());
  CHECK(EnvOf(cpu_got[0]) == std::map<std::string, std::string>{
                                 {"CUDA_VISIBLE_DEVICES", ""}, {"NVIDIA_VISIBLE_DEVICES", "void"}});
  CHECK(f.Query("SELECT agent_id, gpu_indices FROM jobs WHERE id = " + S(cpu_got[0].job_id())) ==
        Rows{{S(cpu), "NULL"}});
}

TEST_CASE("dispatch: a retry goes to another agent when one fits", "[db][dispatch]") {
  DispatchFixture f;
  const int64_t a1 = f.Agent("cpu-1");
  const int64_t a2 = f.Agent("cpu-2");
  REQUIRE(a1 < a2);
  auto ch1 = std::make_shared<FakeChannel>();
  auto ch2 = std::make_shared<FakeChannel>();
  // Equal free CPUs: without a preference the lower id (cpu-1) wins every time.
  f.d.AgentConnected(Capacity(a1, "cpu-1", 2, {}, {"special"}), {}, ch1);
  f.d.AgentConnected(Capacity(a2, "cpu-2", 2), {}, ch2);

  store::NewJob flaky = Job("flaky");
  flaky.max_attempts = 2;
  flaky.retry_on = {"failure"};
  store::NewJob pinned = Job("pinned", {}, {"special"});
  pinned.max_attempts = 2;
  pinned.retry_on = {"failure"};

  auto fail = [&](int64_t agent, const v1::Assignment& a) {
    store::ResultReport r;
    r.job_id = a.job_id();
    r.attempt_token = a.attempt_token();
    r.state = "failed";
    r.exit_code = 1;
    auto out = f.jobs.Finish(r);
    REQUIRE(out.ok());
    REQUIRE(out->retried);
    f.d.JobReleased(agent, a.job_id());
  };

  SECTION("any agent fits: the retry avoids the last one") {
    int64_t pid = f.CreatePipeline({flaky});
    const int64_t id = f.JobId(pid, "flaky");
    REQUIRE(f.d.DispatchOnce() == 1);
    auto first = ch1->TakeAssignments();
    REQUIRE(first.size() == 1);
    CHECK(first[0].job_id() == id);
    fail(a1, first[0]);
    CHECK(f.Query("SELECT state, last_agent_id FROM jobs WHERE id = " + S(id)) ==
          Rows{{"queued", S(a1)}});

    REQUIRE(f.d.DispatchOnce() == 1);
    CHECK(ch1->TakeAssignments().empty());
    auto second = ch2->TakeAssignments();
    REQUIRE(second.size() == 1);
    CHECK(second[0].job_id() == id);
    CHECK(second[0].attempt() == 2);
    CHECK(f.Query("SELECT attempt, agent_id FROM job_attempts WHERE job_id = " + S(id) +
                  " ORDER BY attempt") == Rows{{"1", S(a1)}, {"2", S(a2)}});
  }

  SECTION("only the last agent fits: the retry goes back to it") {
    int64_t pid = f.CreatePipeline({pinned});
    const int64_t id = f.JobId(pid, "pinned");
    REQUIRE(f.d.DispatchOnce() == 1);
    auto first = ch1->TakeAssignments();
    REQUIRE(first.size() == 1);
    fail(a1, first[0]);
    REQUIRE(f.d.DispatchOnce() == 1);
    CHECK(ch2->TakeAssignments().empty());
    auto second = ch1->TakeAssignments();
    REQUIRE(second.size() == 1);
    CHECK(second[0].job_id() == id);
    CHECK(second[0].attempt() == 2);
  }
}

// --- why is it waiting?
// ---------------------------------------------------------------------

TEST_CASE(
    "why-waiting: exact sentences for needs and groups and max_parallel "
    "and busy GPUs and stale agents",
    "[db][dispatch]") {
  DbFixture f;
  store::AgentHello h;
  h.name = "gpu-1";
  h.cpu_slots = 8;
  h.memory_gb = 64;
  h.gpus_json = R"([{"index":0,"uuid":"GPU-0","name":"NVIDIA H100 80GB HBM3","memory_mb":81559}])";
  auto gpu = f.agents.Connect(h);
  REQUIRE(gpu.ok());
  h.name = "cpu-1";
  h.cpu_slots = 4;
  h.gpus_json = "[]";
  auto cpu = f.agents.Connect(h);
  REQUIRE(cpu.ok());

  auto claim = [&](int64_t job_id, int64_t agent_id, bool grouped,
                   std::vector<uint32_t> gpus = {}) {
    store::ClaimRequest r;
    r.job_id = job_id;
    r.agent_id = agent_id;
    r.grouped = grouped;
    r.gpu_indices = std::move(gpus);
    auto got = f.jobs.ClaimBatch({r}, absl::Seconds(30));
    REQUIRE(got.status.ok());
    REQUIRE(got.claimed.size() == 1);
    return got.claimed.front();
  };
  auto view = [&] {
    auto agents = f.agents.List();
    REQUIRE(agents.ok());
    auto live = f.jobs.LiveUsageAll();
    REQUIRE(live.ok());
    return BuildClusterView(*agents, *live, absl::Now(), absl::Seconds(30));
  };
  auto why = [&](int64_t pid, const std::string& name) {
    auto p = f.pipelines.Get(pid);
    REQUIRE(p.ok());
    for (const auto& j : p->jobs) {
      if (j.name == name) return WhyWaiting(j, view(), p->jobs);
    }
    FAIL("no job " << name);
    return std::string();
  };

  // needs
  int64_t p1 = f.CreatePipeline({Job("build"), Job("lint"), Job("test", {"build", "lint"})});
  claim(f.JobId(p1, "build"), cpu->id, false);
  CHECK(why(p1, "test") == "waiting for the jobs it needs: build (assigned), lint (queued)");
  CHECK(why(p1, "build") == "");  // not waiting

  // concurrency group
  store::NewJob deploy = Job("deploy");
  deploy.concurrency_group = "deploy";
  int64_t p2 = f.CreatePipeline({deploy});
  int64_t p3 = f.CreatePipeline({deploy});
  const int64_t holder = f.JobId(p2, "deploy");
  claim(holder, cpu->id, true);
  CHECK(why(p3, "deploy") ==
        "waiting for concurrency group 'deploy': job " + S(holder) + " holds it");

  // max_parallel
  std::vector<store::NewJob> matrix;
  for (int i = 1; i <= 3; ++i) {
    store::NewJob j = Job("train (" + std::to_string(i) + ")");
    j.base_name = "train";
    j.max_parallel = 2;
    matrix.push_back(j);
  }
  int64_t p4 = f.CreatePipeline(matrix);
  claim(f.JobId(p4, "train (1)"), gpu->id, true);
  claim(f.JobId(p4, "train (2)"), gpu->id, true);
  CHECK(why(p4, "train (3)") == "waiting for max_parallel: 2 of 2 jobs of 'train' are running");

  // the only GPU is taken
  int64_t p5 = f.CreatePipeline({GpuJob("gpu-a"), GpuJob("gpu-b")});
  claim(f.JobId(p5, "gpu-a"), gpu->id, false, {0});
  CHECK(why(p5, "gpu-b") ==
        "no agent has 1 free GPU: 2 agents are connected, "
        "most free GPUs on one agent is 0");

  // a plain job fits now: cpu-1 runs build and deploy, 2 of 4 CPUs
  CHECK(why(p1, "lint") == "agent cpu-1 (id " + S(cpu->id) + ") can take it now");

  // Agents not seen within `fresh` are not counted.
  f.Exec(
      "UPDATE agents SET last_seen_at = now() - interval '1 minute' WHERE "
      "name = 'gpu-1'");
  CHECK(why(p5, "gpu-b") == "no agent has 1 GPU: 1 agent is connected, most on one agent is 0");
  f.Exec("UPDATE agents SET last_seen_at = now() - interval '1 minute'");
  CHECK(why(p1, "lint") == "no agent is connected");
  CHECK(why(p5, "gpu-b") == "no agent is connected");
  // Group and max_parallel come from live jobs, whichever agent they run on.
  CHECK(why(p3, "deploy") ==
        "waiting for concurrency group 'deploy': job " + S(holder) + " holds it");
}

// --- wake-ups
// -------------------------------------------------------------------------------

TEST_CASE(
    "wakeups: a NOTIFY assay_cancel reaches the agent's stream and frees "
    "its slot",
    "[db][dispatch]") {
  DispatchFixture f;
  const int64_t agent = f.Agent("agent-1");
  auto ch = std::make_shared<FakeChannel>();
  f.d.AgentConnected(agent, {}, 1, {}, ch);
  int64_t pid = f.CreatePipeline({Job("a"), Job("b")});
  REQUIRE(f.d.DispatchOnce() == 1);  // one slot
  auto first = ch->TakeAssignments();
  REQUIRE(first.size() == 1);
  REQUIRE(first[0].job_id() == f.JobId(pid, "a"));

  store::Listener listener(f.tdb.dsn());
  Wakeups w(&listener, &f.d, &f.agents);
  listener.Start();
  w.Start();
  // Synchronize with the listener: notify assay_jobs until it has received one.
  bool listening = false;
  for (int i = 0; i < 400 && !listening; ++i) {
    f.Exec("NOTIFY assay_jobs");
    for (int k = 0; k < 10 && w.received() == 0; ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    listening = w.received() > 0;
  }
  REQUIRE(listening);

  auto canceled = f.pipelines.CancelJob(first[0].job_id());
  REQUIRE(canceled.ok());
  REQUIRE(canceled->size() == 1);
  CHECK((*canceled)[0].agent_id == agent);
  REQUIRE(ch->WaitForMessages(2));
  auto msgs = ch->Messages();
  REQUIRE(msgs.size() == 2);
  REQUIRE(msgs[1].has_cancel());
  CHECK(msgs[1].cancel().job_id() == first[0].job_id());
  CHECK(msgs[1].cancel().attempt_token() == first[0].attempt_token());
  CHECK(msgs[1].cancel().reason() == "canceled");

  // The receiver also released the slot: b is dispatched to the one-slot agent.
  // (The release follows the Cancel, so wait for it rather than assume it.)
  int sent = 0;
  for (int i = 0; i < 2000 && sent == 0; ++i) {
    sent = f.d.DispatchOnce();
    if (sent == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(sent == 1);
  auto second = ch->TakeAssignments();
  REQUIRE(second.size() == 1);
  CHECK(second[0].job_id() == f.JobId(pid, "b"));
  listener.Stop();
  w.Stop();
}

}  // namespace
}  // namespace assay::dbtest
