#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "common/pipeline/spec.h"
#include "server/pipeline/planner.h"

namespace assay {
namespace {

PipelineSpec Parse(const std::string& yaml) {
  auto spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  return *spec;
}

TEST_CASE("planner: job rows carry runs_on, retry, allow_failure, concurrency, max_parallel",
          "[planner]") {
  ExprContext ctx;
  ctx.branch = "main";
  auto jobs = JobsFromPlan(*PlanJobs(
      Parse("jobs:\n"
            "  train:\n"
            "    runs_on: {labels: [gpu, 'cuda-${{ matrix.cuda }}'], cpus: 4, memory_gb: 32,\n"
            "              gpus: 2, gpu_memory_gb: 40, gpu_model: '*H100*'}\n"
            "    strategy: {matrix: {cuda: ['12']}, max_parallel: 1}\n"
            "    retry: {max: 3, on: [failure, timeout]}\n"
            "    allow_failure: true\n"
            "    concurrency: {group: 'train-${{ branch }}', cancel_in_progress: true}\n"
            "    steps: [echo]\n"
            "  plain:\n"
            "    steps: [echo]\n"),
      ctx));
  REQUIRE(jobs.size() == 2);
  const store::NewJob& t = jobs[0];
  CHECK(t.labels == std::vector<std::string>{"gpu", "cuda-12"});
  CHECK(boost::json::parse(t.requirements_json) ==
        boost::json::parse(R"({"cpus":4,"memory_gb":32.0,"gpus":2,"gpu_memory_gb":40.0,)"
                           R"("gpu_model":"*H100*"})"));
  CHECK(t.max_attempts == 4);
  CHECK(t.retry_on == std::vector<std::string>{"failure", "timeout"});
  CHECK(t.allow_failure);
  CHECK(t.concurrency_group == "train-main");
  CHECK(t.cancel_in_progress);
  CHECK(t.base_name == "train");
  CHECK(t.max_parallel == 1);
  // Without `retry:`, an attempt lost with its agent runs once more; nothing else retries.
  const store::NewJob& p = jobs[1];
  CHECK(p.labels.empty());
  CHECK(boost::json::parse(p.requirements_json) == boost::json::parse(R"({"cpus":1})"));
  CHECK(p.max_attempts == 2);
  CHECK(p.retry_on == std::vector<std::string>{"agent_lost"});
  CHECK_FALSE(p.allow_failure);
  CHECK(p.concurrency_group == "");
  CHECK(p.max_parallel == 0);
}

TEST_CASE("planner: a job whose if is false becomes a skipped row", "[planner]") {
  ExprContext ctx;
  ctx.branch = "dev";
  auto jobs = JobsFromPlan(*PlanJobs(Parse("jobs:\n  a:\n    if: branch == 'main'\n"
                                           "    steps: [echo]\n  b:\n    steps: [echo]\n"),
                                     ctx));
  REQUIRE(jobs.size() == 2);
  CHECK(jobs[0].skip_reason == "if: branch == 'main' is false");
  CHECK(jobs[1].skip_reason == "");
}

TEST_CASE("planner: job rows carry priority, steps, env and timeout", "[planner]") {
  auto jobs = JobsFromPlan(*PlanJobs(Parse("jobs:\n  a:\n    priority: -3\n    timeout: 90s\n"
                                           "    env: {K: v}\n    steps: [{name: s, run: make}]\n"),
                                     ExprContext{}));
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].priority == -3);
  CHECK(boost::json::parse(jobs[0].spec_json) ==
        boost::json::parse(
            R"({"steps":[{"name":"s","run":"make"}],"env":{"K":"v"},"timeout_s":90})"));
}

TEST_CASE("planner: manual inputs reach each job's env, untrusted pipelines are marked",
          "[planner][triggers]") {
  ExprContext ctx;
  ctx.event = "manual";
  ctx.inputs = {{"model-size", "large"}, {"K", "from input"}};
  PipelineContext pc;
  pc.inputs = ctx.inputs;
  pc.trusted = false;
  auto jobs = JobsFromPlan(
      *PlanJobs(Parse("jobs:\n  a:\n    env: {K: own}\n    steps: ['echo ${{ inputs.K }}']\n"),
                ctx),
      pc);
  REQUIRE(jobs.size() == 1);
  CHECK(boost::json::parse(jobs[0].spec_json) ==
        boost::json::parse(R"({"steps":[{"name":"step 1","run":"echo from input"}],
                               "env":{"ASSAY_INPUT_MODEL_SIZE":"large","ASSAY_INPUT_K":"from input",
                                      "K":"own"},
                               "timeout_s":3600,"trusted":false})"));
}

TEST_CASE("planner: forge pull request actions map to on.pull_request types",
          "[planner][triggers]") {
  CHECK(PullRequestType("opened") == "opened");             // GitHub, Gitea
  CHECK(PullRequestType("synchronize") == "synchronize");   // GitHub
  CHECK(PullRequestType("synchronized") == "synchronize");  // Gitea
  CHECK(PullRequestType("reopened") == "reopened");
  CHECK(PullRequestType("open") == "opened");  // GitLab
  CHECK(PullRequestType("update") == "synchronize");
  CHECK(PullRequestType("reopen") == "reopened");
  CHECK(PullRequestType("close") == "closed");
}

}  // namespace
}  // namespace assay

namespace assay {
namespace {

TEST_CASE(
    "planner: an untrusted pipeline's priority, cancel_in_progress and long timeout are "
    "ignored, its group is its own, and its notes say so",
    "[planner]") {
  ExprContext ctx;
  ctx.branch = "feature";
  const std::string yaml =
      "jobs:\n"
      "  deploy:\n"
      "    priority: 100\n"
      "    timeout: 5h\n"
      "    concurrency: {group: deploy, cancel_in_progress: true}\n"
      "    runs_on: {labels: [gpu], gpus: 1}\n"
      "    steps: [echo]\n"
      "  short:\n"
      "    timeout: 10m\n"
      "    steps: [echo]\n";
  auto plan = PlanJobs(Parse(yaml), ctx);
  REQUIRE(plan.ok());
  const auto trusted = JobsFromPlan(*plan);
  REQUIRE(trusted.size() == 2);
  CHECK(trusted[0].priority == 100);
  CHECK(trusted[0].cancel_in_progress);
  CHECK(trusted[0].concurrency_group == "deploy");
  CHECK(boost::json::parse(trusted[0].spec_json).at("timeout_s") == 5 * 3600);
  CHECK(boost::json::parse(trusted[0].requirements_json) ==
        boost::json::parse(R"({"cpus":1,"gpus":1})"));

  PipelineContext untrusted_context;
  untrusted_context.trusted = false;
  const auto untrusted = JobsFromPlan(*plan, untrusted_context);
  REQUIRE(untrusted.size() == 2);
  const store::NewJob& d = untrusted[0];
  CHECK(d.priority == 0);
  CHECK_FALSE(d.cancel_in_progress);
  CHECK(d.concurrency_group == "untrusted:deploy");
  const boost::json::value spec = boost::json::parse(d.spec_json);
  CHECK(spec.at("timeout_s") == 3600);
  CHECK(spec.at("trusted") == false);
  CHECK(d.labels == std::vector<std::string>{"gpu"});
  CHECK(boost::json::parse(d.requirements_json) ==
        boost::json::parse(R"({"cpus":1,"gpus":1,"untrusted":true})"));
  // A timeout under the default is kept.
  CHECK(boost::json::parse(untrusted[1].spec_json).at("timeout_s") == 600);
  CHECK(UntrustedNotes() ==
        std::vector<std::string>{
            "untrusted (fork pull request): runs only on agents started with --accept-untrusted",
            "untrusted (fork pull request): priority, concurrency.cancel_in_progress and "
            "timeouts over 60m in .assay.yml are ignored; concurrency groups are its own"});
}

}  // namespace
}  // namespace assay

namespace assay {
namespace {

TEST_CASE("planner: network none reaches the job's spec (Assignment.network)", "[planner]") {
  auto plan = PlanJobs(ParsePipelineSpec("jobs:\n  a:\n    network: none\n    steps: [x]\n"
                                         "  b:\n    steps: [x]\n")
                           .value(),
                       ExprContext{});
  REQUIRE(plan.ok());
  const auto jobs = JobsFromPlan(*plan);
  REQUIRE(jobs.size() == 2);
  CHECK(boost::json::parse(jobs[0].spec_json).at("network") == "none");
  CHECK(boost::json::parse(jobs[1].spec_json).as_object().if_contains("network") == nullptr);
}

}  // namespace
}  // namespace assay
