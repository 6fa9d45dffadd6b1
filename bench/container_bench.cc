// assay-bench-container: the container executor's overhead for a one-step job, against the same
// step as a plain `podman run --rm` (with and without a network), and the same job in the
// sandbox and on the host, side by side. Protocol and figures: bench/README.md. Printed, never
// asserted.
//
//   assay-bench-container IMAGE [N]     (IMAGE must be local; N rounds, default 10)

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/container_executor.h"
#include "agent/sandbox_executor.h"
#include "agent/step_runner.h"
#include "common/proc/subprocess.h"

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Seconds `fn` took; exits the program when it fails.
double Time(const char* what, const std::function<bool()>& fn) {
  const absl::Time t0 = absl::Now();
  if (!fn()) {
    std::fprintf(stderr, "%s failed\n", what);
    std::exit(1);
  }
  return absl::ToDoubleSeconds(absl::Now() - t0);
}

bool RunJob(assay::Executor* executor, const std::string& workspace) {
  assay::JobRunRequest req;
  req.steps = {{"step", "true"}};
  req.workdir = workspace;
  req.executor = executor;
  req.timeout = absl::Seconds(120);
  assay::CancelFlag cancel;
  assay::JobRunResult res = assay::RunJob(req, cancel, [](std::string_view) {});
  if (res.outcome != assay::JobRunOutcome::kSucceeded) {
    std::fprintf(stderr, "job: %s\n", res.message.c_str());
  }
  return res.outcome == assay::JobRunOutcome::kSucceeded;
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
  auto bwrap = assay::FindBwrap("", "/usr/local/bin:/usr/bin:/bin");
  char dir[] = "/tmp/assay-bench-container-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  const std::string workspace = absl::StrCat(dir, "/jobs/job-1-1");
  const std::string state = absl::StrCat(dir, "/state");
  std::filesystem::create_directories(workspace);

  auto plain = [&](bool network) {
    std::vector<std::string> cmd = {runtime->path, "--log-level=error", "run", "--rm",
                                    "--pull=never"};
    if (!network) cmd.insert(cmd.end(), {"--network", "none"});
    cmd.insert(cmd.end(), {image, "/bin/sh", "-e", "-c", "true"});
    auto r = assay::RunCommand(cmd, {}, {}, {}, absl::Seconds(120));
    return r.ok() && r->exit_code == 0;
  };
  int job_id = 0;
  auto container = [&](bool network) {
    assay::ContainerJob cj;
    cj.agent_name = "bench";
    cj.agent_dir = dir;
    cj.job_id = ++job_id;
    cj.attempt = 1;
    cj.image.name = image;
    cj.image.pull = assay::ContainerImageToRun::Pull::kNever;
    cj.state_dir = state;
    cj.no_network = !network;
    assay::ContainerExecutor executor(*runtime, cj, "bench");
    return RunJob(&executor, workspace);
  };
  assay::SandboxOptions so;
  if (bwrap.ok()) so.bwrap_path = *bwrap;
  so.hidden = {dir};
  assay::SandboxExecutor sandbox(so);
  assay::HostExecutor host;

  std::vector<double> plain_none, job_none, plain_net, job_net, sandboxed, on_host;
  for (int i = 0; i < n + 1; ++i) {  // round 0 is a warm-up, not counted
    const double a = Time("podman run --network none", [&] { return plain(false); });
    const double b = Time("container job, network: none", [&] { return container(false); });
    const double c = Time("podman run", [&] { return plain(true); });
    const double d = Time("container job", [&] { return container(true); });
    const double e =
        bwrap.ok() ? Time("sandbox job", [&] { return RunJob(&sandbox, workspace); }) : 0;
    const double f = Time("host job", [&] { return RunJob(&host, workspace); });
    if (i == 0) continue;
    plain_none.push_back(a);
    job_none.push_back(b);
    plain_net.push_back(c);
    job_net.push_back(d);
    sandboxed.push_back(e);
    on_host.push_back(f);
  }
  std::printf("one-step job `true`: %d rounds (after one warm-up), image %s, runtime %s\n", n,
              image.c_str(), runtime->path.c_str());
  std::printf("%-46s %10s %8s\n", "", "median s", "ratio");
  const double pn = Median(plain_none), pd = Median(plain_net);
  std::printf("%-46s %10.3f %8s\n", "podman run --rm --network none", pn, "1.00");
  std::printf("%-46s %10.3f %7.2fx\n", "container job, network: none", Median(job_none),
              Median(job_none) / pn);
  std::printf("%-46s %10.3f %8s\n", "podman run --rm (default network)", pd, "1.00");
  std::printf("%-46s %10.3f %7.2fx\n", "container job (its own network)", Median(job_net),
              Median(job_net) / pd);
  if (bwrap.ok()) {
    std::printf("%-46s %10.3f %7.2fx\n", "sandbox job (bwrap; vs podman run --network none)",
                Median(sandboxed), Median(sandboxed) / pn);
  } else {
    std::printf("%-46s %10s\n", "sandbox job", "no bwrap");
  }
  std::printf("%-46s %10.3f %7.2fx\n", "host job (vs podman run --network none)", Median(on_host),
              Median(on_host) / pn);
  std::filesystem::remove_all(dir);
  return 0;
}
