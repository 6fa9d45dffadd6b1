#pragma once
// The container executor (issue 9, docs/executors.md): a job with `image:` runs its steps in a
// container, through the podman (or docker) command line.
//
// Per job: Prepare pulls the images (per their pull policy), creates the job's own network,
// starts the services (reachable by name on that network) and waits for their health checks,
// then starts the job container (the workspace bind-mounted at /workspace, its working
// directory; the image's environment plus the job's variables only; --cpus/--memory from
// runs_on; exactly the job's GPUs) running a shell that only waits. Each step is
// `<runtime> exec ... <container> <shell> -e -c <run>`; a job of one step runs it as the job
// container's own command instead (`run --rm`, attached: one runtime call). Cleanup removes
// the containers and the network. Everything is labelled assay.agent=<agent name>,
// assay.agent_dir=<agent work dir> and assay.job=<job id>, and RemoveLeftovers removes what an
// earlier run of the same agent (same name and work dir) left behind (an agent killed with
// SIGKILL cannot clean up).
//
// Why an env file: a variable's value never goes on a command line (readable by every local user
// through /proc), and the runtime's own environment must not carry names the job chose
// (LD_PRELOAD, CONTAINERS_CONF, HOME, ... would steer a root-run podman). The file is mode 0600
// in a directory of the agent's (0700) and removed by Cleanup. Env files hold one line per
// variable: a secret's value with a newline goes through the runtime's environment instead
// (`--env NAME`, see SplitEnv; secrets are trusted and their names checked), any other is refused
// with a clear error.
//
// Every runtime call has a timeout; none of them takes a value of the job's variables.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/executor.h"

namespace assay {

// How the job's GPUs are given to a container.
enum class ContainerGpuMode {
  kCdi,   // --device nvidia.com/gpu=N (the runtime has a CDI spec for nvidia.com/gpu)
  kGpus,  // --gpus device=N,M (docker, or podman without CDI)
};

struct ContainerRuntime {
  std::string path;     // absolute path of the runtime's binary
  bool docker = false;  // docker's CLI (rm -f without -t, network rm without -f)
  ContainerGpuMode gpu_mode = ContainerGpuMode::kGpus;
};

// `configured` is the agent's --container-runtime: "" (auto: podman, then docker, on PATH),
// "none" (kNotFound), a name looked up on PATH, or an absolute path. kNotFound when none is
// found. The gpu mode is kCdi when a CDI spec in `cdi_dirs` names the kind nvidia.com/gpu.
absl::StatusOr<ContainerRuntime> DetectContainerRuntime(std::string_view configured,
                                                        const std::vector<std::string>& cdi_dirs = {
                                                            "/etc/cdi", "/var/run/cdi"});

// "cdi" or "gpus", as --print-gpus says it.
std::string_view GpuModeName(ContainerGpuMode mode);

struct ContainerImageToRun {
  std::string name;
  enum class Pull { kIfMissing, kNever, kAlways } pull = Pull::kIfMissing;
  std::string user;        // empty: see ContainerJob::default_user
  std::string entrypoint;  // empty: /bin/sh
};

struct ServiceToRun {
  std::string name;  // DNS label (checked by the linter; checked again here)
  ContainerImageToRun image;
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<std::string> command;
  std::string health_cmd;  // empty: no check
  absl::Duration health_interval = absl::Seconds(1);
  int health_retries = 30;
  absl::Duration health_timeout = absl::Seconds(5);
};

// What the executor needs to know of one job attempt (from the Assignment).
struct ContainerJob {
  std::string agent_name;
  std::string agent_dir;  // the agent's --work-dir (a label, so two agents never clash)
  int64_t job_id = 0;
  int attempt = 0;
  ContainerImageToRun image;
  std::vector<ServiceToRun> services;
  uint32_t cpus = 0;       // 0: no --cpus
  uint64_t memory_mb = 0;  // 0: no --memory
  std::vector<uint32_t> gpu_indices;
  // The container's user when the image sets none: "uid:gid" of the agent's --job-user, or
  // empty for the image's own user.
  std::string default_user;
  std::string state_dir;  // where the env file lives (created 0700 by Prepare)
  // `network: none` (Assignment.network): the job container gets no network at all (podman's
  // --network none: a loopback of its own), and no job network is made. Lint refuses services
  // with it.
  bool no_network = false;
  // Secrets (agent/job_secrets.h, docs/secrets.md). `as: file`: the host directory JobSecrets
  // wrote them to ("" when none), bind-mounted read-only at /run/secrets in the job container
  // (never in services), and the names it holds: NAME_FILE becomes /run/secrets/NAME inside.
  std::string secrets_dir;
  std::vector<std::string> file_secrets;
  // `as: env`: the names. A value an env file cannot hold (a newline, or a line longer than the
  // runtime reads) goes to the runtime in its own environment and `--env NAME`, never on argv.
  std::vector<std::string> env_secrets;
  // Issue 9, build_image: set (Assignment.image_pull_credential), the job image is pulled with
  // this auth file's credentials (written 0600 under state_dir, removed after the pull).
  std::string pull_auth_json;
};

// Where the job container sees its `as: file` secrets.
inline constexpr const char* kContainerSecretsDir = "/run/secrets";

// The workspace's path inside the job container.
inline constexpr const char* kContainerWorkspace = "/workspace";

class ContainerExecutor final : public Executor {
 public:
  // `suffix` makes the names unique on this machine (several agents and servers may share a
  // runtime): e.g. 8 random hex digits.
  ContainerExecutor(ContainerRuntime runtime, ContainerJob job, std::string suffix);

  std::string_view kind() const override { return "container"; }
  absl::Status Prepare(const JobRunRequest& req, absl::Time deadline, CancelFlag& cancel,
                       const JobLogFn& log) override;
  absl::StatusOr<StepProcess> StepCommand(const JobRunRequest& req, const StepSpecToRun& step,
                                          const std::vector<std::string>& env) override;
  void StepEnded(const StepSpecToRun& step, bool by_itself, int exit_code) override;
  // podman, with a job network: one `network rm --force --time 0` removes the job's containers
  // and the network (else `rm` then `network rm`; and no `rm` at all when the one step's
  // `run --rm` ended by itself with a code under 125, and there are no services).
  void Cleanup(const JobRunRequest& req, const JobLogFn& log) override;

  // The command lines, exact (tests read them). None holds a variable's value.
  std::vector<std::string> NetworkCreateArgv() const;
  std::vector<std::string> ServiceRunArgv(const ServiceToRun& service) const;
  // The job container of a job of several steps: it only waits, each step is an exec in it.
  std::vector<std::string> JobRunArgv(const std::string& workspace) const;
  // `through_env`: names whose values the runtime takes from its own environment (`--env N`).
  std::vector<std::string> ExecArgv(const StepSpecToRun& step,
                                    const std::vector<std::string>& through_env = {}) const;
  // A job of one step runs it as the job container's own command, attached and `--rm` (one
  // runtime call instead of run, exec and rm; see bench/README.md).
  std::vector<std::string> SingleStepRunArgv(const std::string& workspace,
                                             const StepSpecToRun& step,
                                             const std::vector<std::string>& through_env) const;
  std::vector<std::string> RemoveArgv() const;  // the job container and the services
  std::vector<std::string> NetworkRemoveArgv() const;

  const std::string& container_name() const { return container_; }
  const std::string& network_name() const { return network_; }
  std::string ServiceContainerName(const ServiceToRun& s) const;
  std::string env_file() const;

  // The env file's text for these "NAME=value" entries, keeping only the names in `names`
  // (in that order). kInvalidArgument for a value with a newline (named, value not shown).
  static absl::StatusOr<std::string> EnvFileText(const std::vector<std::string>& env,
                                                 const std::vector<std::string>& names);

  // Splits the job's "NAME=value" entries for `names` between the env file (returned text) and
  // the runtime's environment (`*through_env` gets the names, `*runtime_env` the entries): a
  // value with a newline or longer than kEnvFileMaxValue goes through the environment when its
  // name is in `secrets` and the runtime does not read it (RuntimeReadsVariable); any other
  // such value is kInvalidArgument naming the variable (values never shown).
  static absl::StatusOr<std::string> SplitEnv(const std::vector<std::string>& env,
                                              const std::vector<std::string>& names,
                                              const std::vector<std::string>& secrets,
                                              std::vector<std::string>* through_env,
                                              std::vector<std::string>* runtime_env);

  // Names that podman, docker, conmon, the OCI runtime, Go or libc read from their own
  // environment (GO*, CONTAINERS_*, DOCKER_*, XDG_*, *_PROXY, LC_*, ...): never set there from
  // a job's value.
  static bool RuntimeReadsVariable(std::string_view name);

  // podman reads an env file line by line with a 64 KiB line buffer.
  static constexpr size_t kEnvFileMaxValue = 60 * 1024;

 private:
  std::vector<std::string> Base() const;  // runtime path and global flags
  std::vector<std::string> Labels() const;
  // What the job container's run shares in both shapes: name, network, labels, mounts, user,
  // limits, GPUs.
  std::vector<std::string> ContainerFlags(const std::string& workspace) const;
  absl::Status EnsureImage(const ContainerImageToRun& image, std::string_view key,
                           absl::Time deadline, const JobLogFn& log);
  absl::Status WaitHealthy(const ServiceToRun& s, size_t index, absl::Time deadline,
                           CancelFlag& cancel, const JobLogFn& log);
  absl::Status WriteEnvFile(const std::string& name, const std::string& text) const;

  const ContainerRuntime runtime_;
  const ContainerJob job_;
  const std::string container_;
  const std::string network_;
  std::vector<std::string> job_env_names_;  // the names the job container gets, set by Prepare
  bool single_step_ = false;         // set by Prepare: the one step is the container's command
  bool network_made_ = false;        // Prepare created the job network
  bool removed_by_runtime_ = false;  // the one step's `run --rm` ended by itself (StepEnded)
};

namespace v1 {
class Assignment;
}
struct JobIdentity;

// The executor for an assignment with an image (null without one). `runtime` unset: Prepare
// fails with "this agent has no container runtime ...". The env files live under
// <agent_dir>/containers.
std::unique_ptr<ContainerExecutor> ContainerExecutorFor(
    const v1::Assignment& a, const std::optional<ContainerRuntime>& runtime,
    const std::string& agent_name, const std::string& agent_dir,
    const std::optional<JobIdentity>& job_user, const std::string& secrets_dir = "");

// Removes the containers (forcibly) and networks labelled assay.agent=<agent_name> and
// assay.agent_dir=<agent_dir>, each call bounded by `timeout`. Returns how many containers were
// removed, or the first error.
absl::StatusOr<int> RemoveContainerLeftovers(const ContainerRuntime& runtime,
                                             const std::string& agent_name,
                                             const std::string& agent_dir,
                                             absl::Duration timeout = absl::Seconds(60));

}  // namespace assay
