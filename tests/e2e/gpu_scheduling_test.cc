// GPU-aware scheduling end to end, with a real server, real agents and the real H100 capture
// as the GPU agent's inventory (this machine has no GPU): a GPU job gets exactly its GPU in
// CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES, a second GPU job waits (and the API and
// `assay queue` say why) until the first frees the GPU, a CPU job goes to the CPU agent and
// sees no GPU, and a job no agent can ever take waits with its reason until `assay cancel
// --job` cancels it.
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

TEST_CASE("a GPU job waits for a GPU agent to free its GPU, then runs with that GPU", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  const std::string capture =
      std::string(ASSAY_SOURCE_DIR) + "/tests/fixtures/gpu/h100-nvidia-smi-query.csv";
  MUST(c.StartAgent("gpu-1", {"--gpu-inventory", capture, "--labels", "gpu", "--slots", "4",
                              "--memory-gb", "64"}));
  MUST(c.StartAgent("cpu-1", {"--slots", "2", "--memory-gb", "8"}));
  MUST(c.WaitForAgents(2));

  const std::string release = c.dir() + "/release";
  const std::string file = absl::StrReplaceAll(R"yml(jobs:
  first:
    runs_on: {labels: [gpu], gpus: 1, gpu_memory_gb: 80, gpu_model: "*H100*"}
    steps:
      - echo "first CUDA=[$CUDA_VISIBLE_DEVICES] NVIDIA=[$NVIDIA_VISIBLE_DEVICES]"
      - while [ ! -f RELEASE ]; do sleep 0.05; done
  second:
    runs_on: {labels: [gpu], gpus: 1, gpu_memory_gb: 40}
    steps:
      - echo "second CUDA=[$CUDA_VISIBLE_DEVICES] NVIDIA=[$NVIDIA_VISIBLE_DEVICES]"
  big:
    runs_on: {labels: [gpu], gpus: 2}
    steps:
      - echo never
  cpu:
    runs_on: {cpus: 2}
    steps:
      - echo "cpu CUDA=[$CUDA_VISIBLE_DEVICES] NVIDIA=[$NVIDIA_VISIBLE_DEVICES]"
)yml",
                                               {{"RELEASE", release}});
  const int64_t pid = PushFiles(c, repo, {{".assay.yml", file}});
  json::object p = MUST(c.WaitForJobState(pid, "first", "running"));
  p = MUST(c.WaitForJobState(pid, "cpu", "succeeded"));
  INFO(json::serialize(p) << "\n" << c.LogTails());

  // The CPU job ran on the CPU-only agent (best fit keeps GPU machines free) and saw no GPU.
  CHECK(JsonString(Job(p, "cpu"), "agent") == "cpu-1");
  CHECK(MUST(c.JobLog(JobId(p, "cpu"))) == "cpu CUDA=[] NVIDIA=[void]\n");
  CHECK(JsonString(Job(p, "first"), "agent") == "gpu-1");
  CHECK(Job(p, "first").at("gpu_indices") == json::array{0});

  // The second GPU job waits, and says why in words and numbers.
  const int64_t second = JobId(p, "second");
  const int64_t big = JobId(p, "big");
  json::object s = MUST(c.ApiObject("GET", "/api/v1/jobs/" + std::to_string(second)));
  CHECK(JsonString(s, "state") == "queued");
  CHECK(JsonString(s, "waiting") ==
        "no agent has 1 free GPU with >= 40 GB: 1 agent carries label gpu, most free GPUs on "
        "one agent is 0");
  CHECK(s.at("runs_on") == json::parse(R"({"cpus":1,"gpus":1,"gpu_memory_gb":40,
                                           "labels":["gpu"]})"));
  json::object b = MUST(c.ApiObject("GET", "/api/v1/jobs/" + std::to_string(big)));
  CHECK(JsonString(b, "waiting") ==
        "no agent has 2 GPUs: 1 agent carries label gpu, most on one agent is 1");

  auto queue = MUST(c.RunCli({"queue"}));
  INFO(queue.out << queue.err);
  CHECK(queue.exit_code == 0);
  CHECK(absl::StrContains(queue.out,
                          "no agent has 1 free GPU with >= 40 GB: 1 agent carries "
                          "label gpu, most free GPUs on one agent is 0\n"));
  CHECK(absl::StrContains(queue.out,
                          "no agent has 2 GPUs: 1 agent carries label gpu, most on one agent "
                          "is 1\n"));

  // Free the GPU: the second job runs on it, with exactly that GPU visible.
  std::ofstream(release) << "go\n";
  p = MUST(c.WaitForJobState(pid, "second", "succeeded"));
  CHECK(JsonString(Job(p, "first"), "state") == "succeeded");
  CHECK(MUST(c.JobLog(JobId(p, "first"))) == "first CUDA=[0] NVIDIA=[0]\n");
  CHECK(MUST(c.JobLog(second)) == "second CUDA=[0] NVIDIA=[0]\n");
  CHECK(JsonString(Job(p, "second"), "agent") == "gpu-1");
  // Never at the same time: the second was assigned only after the first finished.
  CHECK(MUST(c.QueryInt(
            absl::StrCat("SELECT count(*) FROM job_attempts a, job_attempts b WHERE a.job_id = ",
                         JobId(p, "first"), " AND b.job_id = ", second,
                         " AND b.assigned_at >= a.finished_at"))) == 1);

  // The job no agent can take is canceled through the CLI; the pipeline ends canceled.
  auto cancel = MUST(c.RunCli({"cancel", "--job", std::to_string(big)}));
  INFO(cancel.out << cancel.err);
  CHECK(cancel.exit_code == 0);
  CHECK(cancel.out == absl::StrCat("cancel requested for job ", big, "\n"));
  p = MUST(c.WaitForPipelineDone(pid));
  CHECK(JsonString(p, "state") == "canceled");
  CHECK(JsonString(Job(p, "big"), "state") == "canceled");
  CHECK(JsonString(Job(p, "big"), "message") == "canceled by request");
  CHECK(Job(p, "big").at("attempt").as_int64() == 0);
  auto again = MUST(c.Api("POST", absl::StrCat("/api/v1/jobs/", big, "/cancel")));
  CHECK(again.status == 409);
}

}  // namespace
}  // namespace assay::e2e
