// Scheduler fit: best-fit placement, why-waiting sentences, fair-share queue order, GPU env.
#include "server/scheduler/fit.h"
#include "server/scheduler/requirements.h"

#include <catch2/catch.hpp>

#include <algorithm>

namespace assay {
namespace {

// Multi-GPU machines are built from the one-GPU captures in tests/fixtures/gpu/
// (h100-nvidia-smi-query.csv: "NVIDIA H100 80GB HBM3", 81559 MiB; h200-*-query.csv:
// "NVIDIA H200", 143771 MiB), given distinct indices and UUIDs (the capture's UUID with the
// last digit replaced by the index).
constexpr char kH100[] = "NVIDIA H100 80GB HBM3";
constexpr uint64_t kH100Mib = 81559;
constexpr char kH200[] = "NVIDIA H200";
constexpr uint64_t kH200Mib = 143771;

GpuSlot Gpu(uint32_t index, bool h200 = false, int exclusive = 0, int shared = 0) {
  GpuSlot g;
  g.index = index;
  g.uuid = (h200 ? "GPU-964672fc-6cf0-fc7b-0004-1057f80a90b"
                 : "GPU-f59ac33c-6356-994b-b157-37f8419b358") +
           std::to_string(index);
  g.model = h200 ? kH200 : kH100;
  g.memory_mb = h200 ? kH200Mib : kH100Mib;
  g.exclusive_jobs = exclusive;
  g.shared_jobs = shared;
  return g;
}

// An agent with `n` GPUs of which the first `busy` run an exclusive job.
AgentCapacity Agent(int64_t id, std::vector<std::string> labels, int cpus, int cpus_used,
                    int n_gpus = 0, int busy = 0, bool h200 = false) {
  AgentCapacity a;
  a.agent_id = id;
  a.name = "agent-" + std::to_string(id);
  a.labels = std::move(labels);
  a.cpus_total = cpus;
  a.cpus_used = cpus_used;
  a.memory_gb_total = 256;
  a.memory_gb_used = 0;
  for (int i = 0; i < n_gpus; ++i) a.gpus.push_back(Gpu(i, h200, i < busy ? 1 : 0));
  return a;
}

JobRequirements GpuJob(int gpus, double gpu_memory_gb = 0) {
  JobRequirements j;
  j.labels = {"gpu"};
  j.gpus = gpus;
  j.gpu_memory_gb = gpu_memory_gb;
  return j;
}

int64_t Chosen(const JobRequirements& job, const std::vector<AgentCapacity>& agents) {
  auto p = ChooseAgent(job, agents);
  return p ? p->agent_id : -1;
}

std::vector<uint32_t> ChosenGpus(const JobRequirements& job,
                                 const std::vector<AgentCapacity>& agents) {
  auto p = ChooseAgent(job, agents);
  REQUIRE(p.has_value());
  return p->gpu_indices;
}

}  // namespace

TEST_CASE("GPU memory is compared in decimal GB", "[fit]") {
  CHECK(GpuHasMemory(kH100Mib, 80));  // 85.52 GB
  CHECK(GpuHasMemory(kH100Mib, 85.5));
  CHECK_FALSE(GpuHasMemory(kH100Mib, 85.53));
  CHECK(GpuHasMemory(kH200Mib, 141));  // 150.76 GB
  CHECK(GpuHasMemory(0, 0));
}

TEST_CASE("a job fits when labels, CPUs, memory and GPUs suffice", "[fit]") {
  AgentCapacity a = Agent(1, {"gpu", "linux"}, 8, 6, 2, 1);
  JobRequirements job = GpuJob(1);
  CHECK(Fits(job, a));
  job.labels = {"gpu", "a100"};
  CHECK_FALSE(Fits(job, a));
  job.labels = {};
  job.cpus = 3;
  CHECK_FALSE(Fits(job, a));  // 2 CPUs free
  job.cpus = 2;
  job.gpus = 2;
  CHECK_FALSE(Fits(job, a));  // GPU 0 is busy
  job.gpus = 1;
  job.memory_gb = 256;
  CHECK(Fits(job, a));
  a.memory_gb_used = 0.5;
  CHECK_FALSE(Fits(job, a));
  job.memory_gb = 0;  // not asked: an agent reporting no memory still fits
  a.memory_gb_total = 0;
  CHECK(Fits(job, a));
}

TEST_CASE("exclusive and shared GPU use", "[fit]") {
  AgentCapacity a = Agent(1, {"gpu"}, 8, 0);
  a.gpus = {Gpu(0, false, 0, 1), Gpu(1, false, 1, 0), Gpu(2)};
  JobRequirements exclusive = GpuJob(1);
  CHECK(ChosenGpus(exclusive, {a}) == std::vector<uint32_t>{2});
  exclusive.gpus = 2;
  CHECK_FALSE(ChooseAgent(exclusive, {a}).has_value());  // GPU 0 is shared, GPU 1 exclusive
  JobRequirements shared = GpuJob(2);
  shared.gpu_shared = true;
  CHECK(ChosenGpus(shared, {a}) == std::vector<uint32_t>{0, 2});
  shared.gpus = 3;
  CHECK_FALSE(ChooseAgent(shared, {a}).has_value());  // never beside an exclusive job
}

TEST_CASE("best fit: the agent with the fewest usable GPUs that suffice", "[fit]") {
  // Eight-GPU H100 machines: agent 1 all free, agent 2 two free, agent 3 one free.
  std::vector<AgentCapacity> agents = {Agent(1, {"gpu"}, 32, 0, 8, 0),
                                       Agent(2, {"gpu"}, 32, 0, 8, 6),
                                       Agent(3, {"gpu"}, 32, 0, 8, 7)};
  CHECK(Chosen(GpuJob(1), agents) == 3);
  CHECK(Chosen(GpuJob(2), agents) == 2);
  CHECK(ChosenGpus(GpuJob(2), agents) == std::vector<uint32_t>{6, 7});
  CHECK(Chosen(GpuJob(3), agents) == 1);
  CHECK(ChosenGpus(GpuJob(8), agents) == std::vector<uint32_t>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(Chosen(GpuJob(9), agents) == -1);

  SECTION("ties: fewest free CPUs, then lowest id") {
    std::vector<AgentCapacity> tied = {Agent(5, {"gpu"}, 32, 0, 2), Agent(4, {"gpu"}, 32, 0, 2),
                                       Agent(6, {"gpu"}, 32, 30, 2)};
    CHECK(Chosen(GpuJob(1), tied) == 6);
    tied[2].cpus_used = 0;
    CHECK(Chosen(GpuJob(1), tied) == 4);
  }
  SECTION("GPU memory and model filter what counts as usable") {
    std::vector<AgentCapacity> mixed = {Agent(1, {"gpu"}, 32, 0, 8, 0, false),
                                        Agent(2, {"gpu"}, 32, 0, 8, 0, true)};
    CHECK(Chosen(GpuJob(1, 100), mixed) == 2);  // only the H200s have >= 100 GB
    JobRequirements model = GpuJob(1);
    model.gpu_model = "*H200*";
    CHECK(Chosen(model, mixed) == 2);
    model.gpu_model = "NVIDIA H100*";
    CHECK(Chosen(model, mixed) == 1);
    model.gpu_model = "*A100*";
    CHECK(Chosen(model, mixed) == -1);
  }
}

TEST_CASE("within an agent: the smallest GPUs that satisfy, lower index first", "[fit]") {
  AgentCapacity a = Agent(1, {"gpu"}, 32, 0);
  a.gpus = {Gpu(0, true), Gpu(1, false), Gpu(2, true), Gpu(3, false)};
  CHECK(ChosenGpus(GpuJob(1, 40), {a}) == std::vector<uint32_t>{1});
  CHECK(ChosenGpus(GpuJob(2, 40), {a}) == std::vector<uint32_t>{1, 3});
  CHECK(ChosenGpus(GpuJob(3, 40), {a}) == std::vector<uint32_t>{0, 1, 3});
  CHECK(ChosenGpus(GpuJob(1, 100), {a}) == std::vector<uint32_t>{0});
  CHECK(ChosenGpus(GpuJob(2, 100), {a}) == std::vector<uint32_t>{0, 2});
}

TEST_CASE("CPU-only jobs prefer agents without GPUs", "[fit]") {
  JobRequirements cpu;
  cpu.cpus = 2;
  std::vector<AgentCapacity> agents = {Agent(1, {}, 4, 0, 8, 0), Agent(2, {}, 64, 0),
                                       Agent(3, {}, 4, 0, 8, 8)};
  CHECK(Chosen(cpu, agents) == 2);
  auto p = ChooseAgent(cpu, agents);
  REQUIRE(p.has_value());
  CHECK(p->gpu_indices.empty());
  agents[1].cpus_used = 63;
  CHECK(Chosen(cpu, agents) == 3);  // of the GPU machines, the one whose GPUs are all in use
  agents[2].cpus_used = 3;
  CHECK(Chosen(cpu, agents) == 1);
}

TEST_CASE("ExplainWait wording", "[fit]") {
  std::vector<AgentCapacity> three = {Agent(1, {"gpu"}, 32, 0, 8, 7),
                                      Agent(2, {"gpu"}, 16, 0, 4, 4, true), Agent(3, {"gpu"}, 8, 0),
                                      Agent(4, {"cpu"}, 4, 0)};
  CHECK(ExplainWait(GpuJob(1), {}) == "no agent is connected");
  JobRequirements labels = GpuJob(1);
  labels.labels = {"gpu", "a100"};
  CHECK(ExplainWait(labels, three) == "no connected agent carries labels gpu, a100");
  labels.labels = {"arm"};
  CHECK(ExplainWait(labels, three) == "no connected agent carries label arm");

  JobRequirements model = GpuJob(1);
  model.gpu_model = "*A100*";
  CHECK(ExplainWait(model, three) ==
        "no agent has a GPU of model \"*A100*\": 3 agents carry label gpu, their GPU models are "
        "NVIDIA H100 80GB HBM3, NVIDIA H200");
  model.labels = {"cpu"};
  CHECK(ExplainWait(model, three) ==
        "no agent has a GPU of model \"*A100*\": 1 agent carries label cpu, none has a GPU");

  CHECK(ExplainWait(GpuJob(1, 200), three) ==
        "no agent has a GPU with >= 200 GB: 3 agents carry label gpu, the largest has 150.7 GB");
  JobRequirements big_h100 = GpuJob(1, 100);
  big_h100.gpu_model = "*H100*";
  CHECK(ExplainWait(big_h100, three) ==
        "no agent has a GPU of model \"*H100*\" with >= 100 GB: 3 agents carry label gpu, the "
        "largest has 85.5 GB");
  CHECK(ExplainWait(GpuJob(16), three) ==
        "no agent has 16 GPUs: 3 agents carry label gpu, most on one agent is 8");
  CHECK(ExplainWait(GpuJob(5, 100), three) ==
        "no agent has 5 GPUs with >= 100 GB: 3 agents carry label gpu, most on one agent is 4");

  JobRequirements cpus;
  cpus.cpus = 64;
  CHECK(ExplainWait(cpus, three) ==
        "no agent has 64 CPUs: 4 agents are connected, most on one agent is 32");
  JobRequirements memory;
  memory.memory_gb = 512;
  CHECK(ExplainWait(memory, three) ==
        "no agent has 512 GB of memory: 4 agents are connected, most on one agent is 256 GB");

  // Busy now.
  CHECK(ExplainWait(GpuJob(2, 40), three) ==
        "no agent has 2 free GPUs with >= 40 GB: 3 agents carry label gpu, most free GPUs on one "
        "agent is 1");
  JobRequirements shared = GpuJob(2, 40);
  shared.gpu_shared = true;
  CHECK(ExplainWait(shared, three) ==
        "no agent has 2 free GPUs with >= 40 GB for shared use: 3 agents carry label gpu, most "
        "free GPUs on one agent is 1");
  JobRequirements one_h200 = GpuJob(1);
  one_h200.gpu_model = "*H200";
  CHECK(ExplainWait(one_h200, three) ==
        "no agent has 1 free GPU of model \"*H200\": 3 agents carry label gpu, most free GPUs on "
        "one agent is 0");

  std::vector<AgentCapacity> busy = {Agent(1, {"gpu"}, 8, 7, 2), Agent(2, {}, 8, 6)};
  busy[0].memory_gb_used = 248.5;
  busy[1].memory_gb_used = 250;
  JobRequirements four_cpus;
  four_cpus.cpus = 4;
  CHECK(ExplainWait(four_cpus, busy) ==
        "no agent has 4 free CPUs: 2 agents are connected, most free CPUs on one agent is 2");
  four_cpus.labels = {"gpu"};
  CHECK(ExplainWait(four_cpus, busy) ==
        "no agent has 4 free CPUs: 1 agent carries label gpu, most free CPUs on one agent is 1");
  JobRequirements mem;
  mem.memory_gb = 16;
  CHECK(ExplainWait(mem, busy) ==
        "no agent has 16 GB of free memory: 2 agents are connected, most free memory on one agent "
        "is 7.5 GB");

  // Each part is free somewhere, but not on one agent.
  JobRequirements all = GpuJob(2);
  all.cpus = 2;
  all.memory_gb = 6.25;
  std::vector<AgentCapacity> split = {Agent(1, {"gpu"}, 8, 7, 2), Agent(2, {"gpu"}, 8, 0, 2, 2)};
  split[1].memory_gb_used = 250;
  CHECK(ExplainWait(all, split) ==
        "no agent has 2 free GPUs, 2 free CPUs and 6.25 GB of free memory at once: 2 agents "
        "carry label gpu");
  all.memory_gb = 0;
  CHECK(ExplainWait(all, split) ==
        "no agent has 2 free GPUs and 2 free CPUs at once: 2 agents carry label gpu");

  CHECK(ExplainWait(GpuJob(1), three) == "agent agent-1 (id 1) can take it now");
}

TEST_CASE("OrderQueue: priority, then fair share between repositories, then age", "[fit]") {
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  std::vector<QueuedJob> jobs;
  SECTION("a repository with 100 queued jobs cannot starve one with 1") {
    for (int i = 0; i < 100; ++i) jobs.push_back({100 + i, /*repo*/ 1, 0, t0 + absl::Seconds(i)});
    jobs.push_back({999, /*repo*/ 2, 0, t0 + absl::Hours(1)});  // the newest of all
    std::vector<size_t> order = OrderQueue(jobs, {});
    REQUIRE(order.size() == 101);
    CHECK(order[0] == 0);    // repo 1's oldest (both repos run nothing: age decides)
    CHECK(order[1] == 100);  // repo 2's only job, before repo 1's 99 others
    for (size_t k = 2; k < 101; ++k) CHECK(order[k] == k - 1);
    // Repo 1 already runs jobs: repo 2 goes first.
    CHECK(OrderQueue(jobs, {{1, 3}})[0] == 100);
    // Repo 2 runs 5 and repo 1 none: repo 1 takes turns until it counts 5 as well, once more on
    // the tie (its next job is older), then repo 2's job comes seventh.
    std::vector<size_t> later = OrderQueue(jobs, {{2, 5}});
    CHECK(std::find(later.begin(), later.end(), 100) - later.begin() == 6);
  }
  SECTION("repositories take turns, each oldest first") {
    jobs = {{1, 10, 0, t0 + absl::Seconds(1)}, {2, 10, 0, t0 + absl::Seconds(2)},
            {3, 10, 0, t0 + absl::Seconds(3)}, {4, 20, 0, t0 + absl::Seconds(5)},
            {5, 20, 0, t0 + absl::Seconds(4)}, {6, 30, 0, t0 + absl::Seconds(9)}};
    CHECK(OrderQueue(jobs, {}) == std::vector<size_t>{0, 4, 5, 1, 3, 2});
  }
  SECTION("priority beats fair share; equal times fall back to job id") {
    jobs = {{1, 10, 0, t0}, {2, 20, 0, t0}, {3, 10, 5, t0 + absl::Seconds(1)}, {4, 10, 5, t0}};
    CHECK(OrderQueue(jobs, {{10, 50}}) == std::vector<size_t>{3, 2, 1, 0});
    jobs = {{7, 1, 0, t0}, {3, 1, 0, t0}, {5, 2, 0, t0}};
    CHECK(OrderQueue(jobs, {}) == std::vector<size_t>{1, 2, 0});
  }
  SECTION("empty") { CHECK(OrderQueue({}, {}).empty()); }
}

TEST_CASE("GpuEnvironment", "[fit]") {
  using Env = std::vector<std::pair<std::string, std::string>>;
  CHECK(GpuEnvironment({7, {0, 2}}) ==
        Env{{"CUDA_VISIBLE_DEVICES", "0,2"}, {"NVIDIA_VISIBLE_DEVICES", "0,2"}});
  CHECK(GpuEnvironment({7, {5}}) ==
        Env{{"CUDA_VISIBLE_DEVICES", "5"}, {"NVIDIA_VISIBLE_DEVICES", "5"}});
  CHECK(GpuEnvironment({7, {}}) ==
        Env{{"CUDA_VISIBLE_DEVICES", ""}, {"NVIDIA_VISIBLE_DEVICES", "void"}});
}

}  // namespace assay

namespace assay {
namespace {

TEST_CASE("an untrusted job fits only agents that accept untrusted jobs", "[fit]") {
  JobRequirements job;
  job.untrusted = true;
  AgentCapacity normal = Agent(1, {}, 4, 0);
  AgentCapacity open = Agent(2, {}, 4, 0);
  open.accepts_untrusted = true;
  open.executors = {"sandbox"};  // issue 9: an untrusted job never runs on the host
  CHECK_FALSE(Fits(job, normal));
  CHECK(Fits(job, open));
  CHECK_FALSE(ChooseAgent(job, {normal}).has_value());
  REQUIRE(ChooseAgent(job, {normal, open}).has_value());
  CHECK(ChooseAgent(job, {normal, open})->agent_id == 2);
  CHECK(ExplainWait(job, {normal}) ==
        "untrusted (fork pull request): no connected agent accepts untrusted jobs (start one "
        "with --accept-untrusted)");
  // Among the agents that accept: the usual sentences, counting only those.
  job.labels = {"gpu"};
  CHECK(ExplainWait(job, {normal, open}) == "no connected agent carries label gpu");
  job.labels = {};
  CHECK(ExplainWait(job, {normal, open}) == "agent agent-2 (id 2) can take it now");
  // A trusted job is not affected by the flag.
  JobRequirements trusted;
  CHECK(Fits(trusted, normal));
  CHECK(Fits(trusted, open));
}

// Issue 9: executors. Each combination of job (container or not, trusted or not) and agent
// (executors offered, accepts untrusted or not), allowed and refused, with the exact sentence.
AgentCapacity WithExecutors(int64_t id, std::vector<std::string> executors, bool untrusted) {
  AgentCapacity a = Agent(id, {}, 4, 0);
  a.executors = std::move(executors);
  a.accepts_untrusted = untrusted;
  return a;
}

TEST_CASE("executors: every job and agent combination, allowed and refused", "[fit]") {
  struct Case {
    std::string executor;
    bool untrusted;
    std::vector<std::string> offered;
    bool accepts;
    bool fits;
  };
  const std::vector<Case> cases = {
      // A job without image: sandbox or host.
      {"", false, {"host"}, false, true},
      {"", false, {"sandbox"}, false, true},
      {"", false, {"container"}, false, false},
      {"", false, {"container", "sandbox", "host"}, false, true},
      // A job with image: container only.
      {"container", false, {"container"}, false, true},
      {"container", false, {"sandbox", "host"}, false, false},
      // Untrusted without image: the sandbox of an agent that accepts untrusted jobs.
      {"", true, {"sandbox"}, true, true},
      {"", true, {"sandbox"}, false, false},
      {"", true, {"host"}, true, false},
      {"", true, {"container"}, true, false},
      {"", true, {"sandbox", "host"}, true, true},
      // Untrusted with image: the container of an agent that accepts untrusted jobs.
      {"container", true, {"container"}, true, true},
      {"container", true, {"container"}, false, false},
      {"container", true, {"sandbox", "host"}, true, false},
  };
  for (const Case& c : cases) {
    JobRequirements job;
    job.executor = c.executor;
    job.untrusted = c.untrusted;
    AgentCapacity agent = WithExecutors(1, c.offered, c.accepts);
    INFO("executor=" << c.executor << " untrusted=" << c.untrusted
                     << " offered=" << c.offered.size() << " accepts=" << c.accepts);
    CHECK(Fits(job, agent) == c.fits);
    CHECK(ChooseAgent(job, {agent}).has_value() == c.fits);
  }
}

TEST_CASE("executors: why a job waits for an executor", "[fit]") {
  JobRequirements container;
  container.executor = "container";
  CHECK(ExplainWait(container, {WithExecutors(1, {"sandbox", "host"}, true)}) ==
        "needs the container executor (the job has image:): no connected agent offers it (start "
        "one with --executors container)");
  JobRequirements plain;
  CHECK(ExplainWait(plain, {WithExecutors(1, {"container"}, false)}) ==
        "needs the sandbox or host executor (the job has no image:): no connected agent offers "
        "either");
  JobRequirements untrusted;
  untrusted.untrusted = true;
  // No agent accepts untrusted jobs at all: as before issue 9.
  CHECK(ExplainWait(untrusted, {WithExecutors(1, {"sandbox"}, false)}) ==
        "untrusted (fork pull request): no connected agent accepts untrusted jobs (start one "
        "with --accept-untrusted)");
  // One accepts them, but only on the host.
  CHECK(ExplainWait(untrusted,
                    {WithExecutors(1, {"host"}, true), WithExecutors(2, {"sandbox"}, false)}) ==
        "untrusted (fork pull request): no connected agent accepts untrusted jobs in a sandbox, "
        "and the host executor never runs them (start one with --accept-untrusted --executors "
        "sandbox)");
  JobRequirements untrusted_image = untrusted;
  untrusted_image.executor = "container";
  CHECK(ExplainWait(untrusted_image, {WithExecutors(1, {"container"}, false),
                                      WithExecutors(2, {"sandbox"}, true)}) ==
        "untrusted (fork pull request): no connected agent accepts untrusted jobs (start one "
        "with --accept-untrusted)");
  CHECK(ExplainWait(untrusted_image, {WithExecutors(1, {"container"}, false),
                                      WithExecutors(2, {"container", "host"}, true)}) ==
        "agent agent-2 (id 2) can take it now");
  CHECK(ExplainWait(untrusted, {WithExecutors(1, {"sandbox", "host"}, true)}) ==
        "agent agent-1 (id 1) can take it now");
}

TEST_CASE("executors: requirements carry the executor", "[fit]") {
  JobRequirements r = RequirementsFromJson({}, R"({"cpus":1,"executor":"container"})");
  CHECK(r.executor == "container");
  CHECK(RequirementsFromJson({}, R"({"cpus":1,"executor":7})").executor.empty());
  CHECK(RequirementsFromJson({}, R"({"cpus":1})").executor.empty());
}

}  // namespace
}  // namespace assay

namespace assay {
namespace {

TEST_CASE("lifecycle: no job fits an agent that takes none, and the sentence names it",
          "[fit][lifecycle]") {
  std::vector<AgentCapacity> agents = {Agent(1, {"gpu"}, 8, 0, 2, 0), Agent(2, {"cpu"}, 4, 0)};
  agents[0].not_accepting = "draining (SIGTERM)";
  CHECK(!Fits(GpuJob(1), agents[0]));
  CHECK(!ChooseAgent(GpuJob(1), agents).has_value());
  CHECK(ExplainWait(GpuJob(1), agents) == "agent agent-1 is draining (SIGTERM)");
  // Busy as well: the sentence still names why it takes nothing new.
  agents[0].gpus[0].exclusive_jobs = agents[0].gpus[1].exclusive_jobs = 1;
  CHECK(ExplainWait(GpuJob(1), agents) == "agent agent-1 is draining (SIGTERM)");
  // A job it could never run is explained over the others, as before.
  CHECK(ExplainWait(GpuJob(4), agents) == "no connected agent carries label gpu");
  // A job another agent could run: the usual sentence over the agents that take jobs.
  JobRequirements cpu;
  cpu.labels = {"cpu"};
  CHECK(ExplainWait(cpu, agents) == "agent agent-2 (id 2) can take it now");
  agents[1].not_accepting = "not taking jobs: free disk 0.4 GB below the floor of 1 GB";
  CHECK(ExplainWait(cpu, agents) ==
        "agent agent-2 is not taking jobs: free disk 0.4 GB below the floor of 1 GB");
  JobRequirements any;
  CHECK(ExplainWait(any, agents) ==
        "the agents that could run it take no jobs now: agent agent-1 is draining (SIGTERM); "
        "agent agent-2 is not taking jobs: free disk 0.4 GB below the floor of 1 GB");
  agents[0].not_accepting.clear();  // it takes jobs again
  CHECK(Fits(any, agents[0]));
}

}  // namespace
}  // namespace assay
