// assay-bench-container: the container executor's overhead for a one-step job, against the same
// step as a plain `podman run --rm`. Protocol and figures: bench/README.md. Printed, never
// asserted.
//
//   assay-bench-container IMAGE [N]     (IMAGE must be local; N runs of each, default 10)

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/container_executor.h"
#include "agent/step_runner.h"
#include "common/proc/subprocess.h"

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s IMAGE [N]\n", argv[0]);
    return 2;
  }
  const std::string image = argv[1];
  const int n = argc > 2 ? std::max(1, std::min(100, std::atoi(argv[2]))) : 10;
  auto runtime = assay::DetectContainerRuntime("podman");
  if (!runtime.ok()) {
    std::fprintf(stderr, "%s\n", std::string(runtime.status().message()).c_str());
    return 1;
  }
  char dir[] = "/tmp/assay-bench-container-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  const std::string workspace = absl::StrCat(dir, "/ws");
  const std::string state = absl::StrCat(dir, "/state");
  if (mkdir(workspace.c_str(), 0755) != 0) return 1;

  std::vector<double> plain, job;
  for (int i = 0; i < n + 1; ++i) {  // run 0 of each is a warm-up, not counted
    absl::Time t0 = absl::Now();
    auto r = assay::RunCommand({runtime->path, "--log-level=error", "run", "--rm", "--pull=never",
                                "--network", "none", image, "/bin/sh", "-e", "-c", "true"},
                               {}, {}, {}, absl::Seconds(120));
    const double plain_s = absl::ToDoubleSeconds(absl::Now() - t0);
    if (!r.ok() || r->exit_code != 0) {
      std::fprintf(stderr, "podman run failed: %s\n", r.ok() ? r->err.c_str() : "timeout");
      return 1;
    }

    assay::ContainerJob cj;
    cj.agent_name = "bench";
    cj.agent_dir = dir;
    cj.job_id = i + 1;
    cj.attempt = 1;
    cj.image.name = image;
    cj.image.pull = assay::ContainerImageToRun::Pull::kNever;
    cj.state_dir = state;
    assay::ContainerExecutor executor(*runtime, cj, "bench");
    assay::JobRunRequest req;
    req.steps = {{"step", "true"}};
    req.workdir = workspace;
    req.executor = &executor;
    assay::CancelFlag cancel;
    t0 = absl::Now();
    assay::JobRunResult res = assay::RunJob(req, cancel, [](std::string_view) {});
    const double job_s = absl::ToDoubleSeconds(absl::Now() - t0);
    if (res.outcome != assay::JobRunOutcome::kSucceeded) {
      std::fprintf(stderr, "container job failed: %s\n", res.message.c_str());
      return 1;
    }
    if (i == 0) continue;
    plain.push_back(plain_s);
    job.push_back(job_s);
  }
  const double p = Median(plain), j = Median(job);
  std::printf("runs: %d each (after one warm-up), image %s, runtime %s\n", n, image.c_str(),
              runtime->path.c_str());
  std::printf("podman run --rm (one step):             median %.3f s\n", p);
  std::printf("container job (prepare+step+cleanup):   median %.3f s\n", j);
  std::printf("ratio job / podman run:                 %.2f\n", p > 0 ? j / p : 0);
  rmdir(workspace.c_str());
  rmdir(state.c_str());
  rmdir(dir);
  return 0;
}
