// assay-agent: flags → AgentOptions → Agent::Run, until SIGINT/SIGTERM.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

#include "absl/synchronization/mutex.h"
#include "agent/agent.h"
#include "agent/executor_choice.h"
#include "agent/job_user.h"
#include "agent/sandbox_executor.h"
#include "common/base/config.h"
#include "common/base/log.h"
#include "common/base/signals.h"

int main(int argc, char** argv) {
  // Debian's Abseil checks every lock for deadlock cycles (a debug aid); at 10,000 agent
  // streams that costs ~10 MiB and CPU. Lock order is kept by design instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Every value is checked against its rule by Config::Parse (common/base/config.h).
  const std::vector<assay::OptionSpec> specs = {
      {"server", "127.0.0.1:9090", "the server's gRPC address HOST:PORT", false, false,
       assay::HostPort()},
      {"token",
       "",
       "the shared agent token (servers with --allow-shared-agent-token only; agents should "
       "enroll instead)",
       false,
       false,
       {},
       /*secret=*/true},
      // Agent access (issue 8): enrollment, and the TLS channel with the pinned server CA.
      {"enroll-token",
       "",
       "one-time enrollment token (assay agents token create), exchanged at the first start for "
       "the agent's own credential, kept in WORK_DIR/agent.credential (a secret: give "
       "--enroll-token-file PATH or ASSAY_ENROLL_TOKEN)",
       false,
       false,
       {},
       /*secret=*/true},
      {"server-ca", "",
       "PEM CA the server's certificate must be signed by (the server's DATA_DIR/tls/ca.pem; "
       "default: the system's CAs)"},
      {"grpc-insecure", "", "talk plaintext gRPC (servers with --grpc-insecure only)", false, true},
      {"tls-cert", "", "PEM client certificate for servers that require mutual TLS"},
      {"tls-key", "", "PEM private key of --tls-cert"},
      {"name", "", "unique agent name (default: the host name)"},
      {"labels", "", "comma-separated labels jobs can ask for"},
      {"slots", "1", "CPU slots: a job takes runs_on.cpus of them (default 1)", false, false,
       assay::IntIn(1, 4096)},
      {"memory-gb", "", "memory offered to jobs, decimal GB (default: MemTotal of /proc/meminfo)",
       false, false, assay::NumberIn(0, 100000)},
      {"work-dir", "", "directory for the repository cache and job workspaces (required)"},
      {"allow-local-repos", "false",
       "fetch file:// and absolute-path clone URLs (as the server's --allow-local-repos)", false,
       true},
      {"kill-grace", "10s", "time between SIGTERM and SIGKILL when a job is stopped", false, false,
       assay::DurationIn(absl::ZeroDuration(), absl::Hours(1))},
      {"log-buffer-kb", "4096",
       "unacknowledged log bytes kept in memory per job, in KiB; the rest waits in "
       "<work-dir>/spool until the server has it",
       false, false, assay::IntIn(64, 1024 * 1024)},
      {"gpu-inventory", "",
       "read GPUs from an `nvidia-smi --query-gpu` CSV or `nvidia-smi -q -x` capture instead of "
       "discovering them (NVML, then nvidia-smi)"},
      {"print-gpus", "", "print the GPUs this agent would announce, as JSON, and exit", false,
       true},
      // Issue 8 (security): who jobs run as, and whether this agent takes untrusted work.
      {"job-user", "",
       "run steps as this unprivileged user (name or UID:GID); required when the agent runs as "
       "root ('root' to accept running jobs as root)"},
      // Issue 9: the container executor.
      {"container-runtime", "",
       "podman or docker (a name on PATH or an absolute path) for jobs with `image:`; 'none' to "
       "refuse them; empty: podman, else docker, when one is on PATH"},
      {"accept-untrusted", "",
       "run jobs of untrusted pipelines (e.g. forks' pull requests); use a separate machine", false,
       true},
      // Issue 9: stopping and draining, the disk floor.
      {"drain-timeout", "10m",
       "on SIGTERM/SIGINT: how long running jobs may still take before they are canceled (0s: "
       "cancel at once); a second signal cancels them at once",
       false, false, assay::DurationIn(absl::ZeroDuration(), absl::Hours(24 * 7))},
      {"min-free-disk-gb", "1",
       "take no job while the work dir's file system has less free space than this, decimal GB "
       "(0: no floor)",
       false, false, assay::NumberIn(0, 1000000)},
      {"cache-budget-gb", "10",
       "the local copy of cache chunks (WORK_DIR/chunk-cache) keeps at most this much, decimal "
       "GB; least recently used chunks go first (0: none kept between jobs)",
       false, false, assay::NumberIn(0, 1000000)},
      {"disk-check-interval", "10s", "how often the free disk space is checked", false, false,
       assay::DurationIn(absl::Milliseconds(100), absl::Hours(1))},
      // Issue 9: where jobs run.
      {"executors", "",
       "comma-separated executors this agent runs jobs in: container, sandbox, host (default: "
       "those that isolate and are installed: container with podman/docker, sandbox with "
       "bwrap; host only when listed)"},
      {"bwrap", "", "path of bubblewrap's bwrap for the sandbox executor (default: bwrap on PATH)"},
  };
  auto cfg = assay::Config::Parse(argc, argv, specs, "assay-agent");
  if (!cfg.ok()) {
    bool help = cfg.status().code() == absl::StatusCode::kCancelled;
    std::cerr << (help ? "" : "assay-agent: ") << cfg.status().message() << "\n";
    return help ? 0 : 2;
  }
  // No child (git, a step) inherits the token from the environment.
  assay::UnsetSecretEnvironment(specs);
  assay::AgentOptions o;
  o.server = cfg->Get("server");
  o.token = cfg->Get("token");
  // A secret option: from a file, the environment or the config file, never argv (and already
  // removed from the environment above, so that no job inherits it).
  o.enroll_token = cfg->Get("enroll-token");
  o.grpc_insecure = cfg->GetBool("grpc-insecure");
  for (auto [flag, target] :
       {std::pair{"server-ca", &o.server_ca_pem}, std::pair{"tls-cert", &o.client_cert_pem},
        std::pair{"tls-key", &o.client_key_pem}}) {
    const std::string& f = cfg->Get(flag);
    if (f.empty()) continue;
    std::ifstream in(f);
    if (!in) {
      std::cerr << "assay-agent: --" << flag << ": cannot read " << f << "\n";
      return 2;
    }
    target->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (o.client_cert_pem.empty() != o.client_key_pem.empty()) {
    std::cerr << "assay-agent: --tls-cert and --tls-key go together\n";
    return 2;
  }
  o.name = cfg->Get("name");
  if (o.name.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    o.name = host;
  }
  o.labels = cfg->GetList("labels");
  o.work_dir = cfg->Get("work-dir");
  o.allow_local_repos = cfg->GetBool("allow-local-repos");
  if (o.work_dir.empty() && !cfg->GetBool("print-gpus")) {
    std::cerr << "assay-agent: option --work-dir is required (or set ASSAY_WORK_DIR)\n";
    return 2;
  }
  auto slots = cfg->GetInt("slots");
  auto grace = cfg->GetDuration("kill-grace");
  for (const absl::Status& s : {slots.status(), grace.status()}) {
    if (!s.ok()) {
      std::cerr << "assay-agent: " << s.message() << "\n";
      return 2;
    }
  }
  o.slots = static_cast<int>(*slots);
  o.log_memory_bytes = static_cast<size_t>(cfg->GetInt("log-buffer-kb").value_or(4096)) << 10;
  if (const std::string& mem = cfg->Get("memory-gb"); !mem.empty()) {
    (void)absl::SimpleAtod(mem, &o.memory_gb);  // a number from 0 to 1e6 (checked above)
  } else {
    o.memory_gb = assay::SystemMemoryGb();
  }
  const std::string& inventory = cfg->Get("gpu-inventory");
  auto gpus = inventory.empty() ? assay::DiscoverGpus() : assay::LoadGpuInventoryFile(inventory);
  o.gpu_inventory_file = inventory;
  if (gpus.ok()) {
    o.gpus = *gpus;
  } else if (!inventory.empty() || gpus.status().code() != absl::StatusCode::kNotFound) {
    std::cerr << "assay-agent: " << gpus.status().message() << "\n";
    return 2;
  }
  const std::string& runtime_option = cfg->Get("container-runtime");
  if (auto runtime = assay::DetectContainerRuntime(runtime_option); runtime.ok()) {
    o.container_runtime = *runtime;
  } else if (!runtime_option.empty() && runtime_option != "none") {
    std::cerr << "assay-agent: " << runtime.status().message() << "\n";
    return 2;
  }
  if (cfg->GetBool("print-gpus")) {
    // {"gpus": [...], "container_gpus": "cdi" | "gpus" | null}: how a container gets its GPUs.
    std::string json = assay::GpuInventoryJson(o.gpus);
    json.pop_back();  // the closing '}'
    const auto& rt = o.container_runtime;
    json += rt.has_value() ? absl::StrCat(",\"container_gpus\":\"",
                                          std::string(assay::GpuModeName(rt->gpu_mode)), "\"}")
                           : std::string(",\"container_gpus\":null}");
    std::cout << json << "\n";
    return 0;
  }
  if (o.container_runtime.has_value()) {
    // An agent that was killed (SIGKILL, power loss) left its job containers behind.
    auto removed = assay::RemoveContainerLeftovers(*o.container_runtime, o.name, o.work_dir);
    if (!removed.ok()) {
      assay::LogWarn("agent", "cannot remove leftover containers: ", removed.status().ToString());
    } else if (*removed > 0) {
      assay::LogInfo("agent", "removed ", *removed, " container(s) left by an earlier run");
    }
  }
  o.kill_grace = *grace;
  auto job_user = assay::ResolveJobUser(cfg->Get("job-user"), geteuid());
  if (!job_user.ok()) {
    std::cerr << "assay-agent: " << job_user.status().message() << "\n";
    return 2;
  }
  o.job_user = *job_user;
  if (geteuid() == 0 && !o.job_user.has_value()) {
    assay::LogWarn("agent",
                   "--job-user root: jobs run as root and can read this agent's token "
                   "and change its cache; use an unprivileged --job-user");
  }
  o.accept_untrusted = cfg->GetBool("accept-untrusted");
  o.drain_timeout = cfg->GetDuration("drain-timeout").value_or(absl::Minutes(10));
  o.disk_check_interval = cfg->GetDuration("disk-check-interval").value_or(absl::Seconds(10));
  (void)absl::SimpleAtod(cfg->Get("min-free-disk-gb"), &o.min_free_disk_gb);  // checked above
  (void)absl::SimpleAtod(cfg->Get("cache-budget-gb"), &o.cache_budget_gb);    // checked above
  {
    const char* path = getenv("PATH");
    const std::string path_env = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
    const std::vector<std::string> asked = cfg->GetList("executors");
    const bool wants_sandbox =
        asked.empty() || std::find(asked.begin(), asked.end(), "sandbox") != asked.end();
    assay::ExecutorsAvailable available;
    available.bwrap = assay::FindBwrap(cfg->Get("bwrap"), path_env);
    if (available.bwrap.ok() && wants_sandbox) {
      // Why probe: bwrap may be installed where user namespaces are disabled.
      if (absl::Status probe = assay::ProbeBwrap(*available.bwrap, absl::Seconds(30));
          !probe.ok()) {
        available.bwrap = probe;
      }
    }
    available.container_cli = assay::FindContainerCli(path_env);
    auto executors = assay::ResolveExecutors(asked, available);
    if (!executors.ok()) {
      std::cerr << "assay-agent: " << executors.status().message() << "\n";
      return 2;
    }
    o.executors = *executors;
    if (available.bwrap.ok()) o.bwrap_path = *available.bwrap;
    // The sandbox hides the work dir by path and needs absolute workspaces.
    o.work_dir = std::filesystem::absolute(o.work_dir).lexically_normal().string();
    while (o.work_dir.size() > 1 && o.work_dir.back() == '/') o.work_dir.pop_back();
  }

  // Before any thread starts, so that every thread inherits the mask.
  const sigset_t set = assay::BlockStopSignals();

  assay::Agent agent(o);
  // The first signal drains (no new jobs; running ones finish, within --drain-timeout), the
  // second cancels running jobs, the third stops at once (Agent::Drain).
  std::thread waiter([&] {
    while (true) {
      int sig = assay::WaitForStopSignal(set);
      agent.Drain(sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
  });
  absl::Status s = agent.Run();
  if (!s.ok()) {
    std::cerr << "assay-agent: " << s.message() << "\n";
    // Why _exit: the signal waiter thread is blocked in sigwait and cannot be joined.
    _exit(s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1);
  }
  _exit(0);
}
