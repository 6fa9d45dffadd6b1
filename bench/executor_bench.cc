// assay-bench-executor: the cost of one step in the sandbox executor against the host
// executor, through the agent's own step runner (RunJob): a one-step job `true`, N times each,
// alternating, in a fresh workspace under a fresh agent-like work dir. Prints per-executor
// median, p90 and mean wall time in milliseconds and the sandbox/host ratio of medians.
// Usage: assay-bench-executor [N=200] [STEP=true]

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "agent/sandbox_executor.h"
#include "agent/step_runner.h"

namespace {

double RunOnce(assay::Executor* executor, const std::string& ws, const std::string& step) {
  assay::JobRunRequest req;
  req.steps = {{"bench", step}};
  req.workdir = ws;
  req.executor = executor;
  req.timeout = absl::Seconds(60);
  assay::CancelFlag cancel;
  auto start = std::chrono::steady_clock::now();
  assay::JobRunResult r = assay::RunJob(req, cancel, [](std::string_view) {});
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (r.outcome != assay::JobRunOutcome::kSucceeded) {
    std::fprintf(stderr, "step failed: %s\n", r.message.c_str());
    exit(1);
  }
  return ms;
}

void Print(const char* name, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  std::printf("%-8s n=%zu median=%.2f ms p90=%.2f ms mean=%.2f ms\n", name, v.size(),
              v[v.size() / 2], v[v.size() * 9 / 10], mean);
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::max(1, atoi(argv[1])) : 200;
  const std::string step = argc > 2 ? argv[2] : "true";
  auto bwrap = assay::FindBwrap("", "/usr/local/bin:/usr/bin:/bin");
  if (!bwrap.ok()) {
    std::fprintf(stderr, "%s\n", std::string(bwrap.status().message()).c_str());
    return 2;
  }
  std::string root = (std::filesystem::temp_directory_path() / "executor-bench-XXXXXX").string();
  if (mkdtemp(root.data()) == nullptr) return 2;
  const std::string work = root + "/agent", ws = work + "/jobs/job-1-1";
  std::filesystem::create_directories(ws);
  assay::SandboxOptions o;
  o.bwrap_path = *bwrap;
  o.hidden = {work};
  assay::SandboxExecutor sandbox(o);
  assay::HostExecutor host;
  std::vector<double> s, h;
  for (int i = 0; i < 5; ++i) RunOnce(&sandbox, ws, step), RunOnce(&host, ws, step);  // warm up
  for (int i = 0; i < n; ++i) {
    s.push_back(RunOnce(&sandbox, ws, step));
    h.push_back(RunOnce(&host, ws, step));
  }
  std::filesystem::remove_all(root);
  std::printf("one-step job `%s`, %d runs each, alternating\n", step.c_str(), n);
  Print("host", h);
  Print("sandbox", s);
  std::sort(s.begin(), s.end());
  std::sort(h.begin(), h.end());
  std::printf("sandbox/host (medians): %.2fx, +%.2f ms per step\n", s[n / 2] / h[n / 2],
              s[n / 2] - h[n / 2]);
  return 0;
}
