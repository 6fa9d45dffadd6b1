#include "agent/container_executor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <future>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "agent/image_build.h"
#include "agent/step_runner.h"
#include "assay/v1/agent.pb.h"
#include "common/base/log.h"
#include "common/proc/spawn.h"
#include "common/proc/subprocess.h"

extern char** environ;

namespace assay {
namespace {

// Bounds of the runtime's calls (each also bounded by the job's deadline where one applies).
constexpr absl::Duration kQuickCall = absl::Seconds(60);  // exists, create, run -d, rm
constexpr absl::Duration kPullCall = absl::Minutes(10);
constexpr absl::Duration kCleanupCall = absl::Seconds(60);
// How long an image this agent found (or pulled) counts as present without asking the runtime
// again (ImagesSeen).
constexpr absl::Duration kImageSeenFor = absl::Minutes(5);
constexpr size_t kMessageTail = 400;  // bytes of a failed call's stderr kept in a message

// The keep-alive of the job container: a shell that waits until it is killed.
constexpr const char* kKeepAlive = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

absl::Duration Bound(absl::Time deadline, absl::Duration most) {
  if (deadline == absl::InfiniteFuture()) return most;
  return std::max(absl::ZeroDuration(), std::min(most, deadline - absl::Now()));
}

std::string Tail(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.size() > kMessageTail) text = "..." + text.substr(text.size() - kMessageTail);
  return text;
}

// The runtime's own environment: this process's PATH, HOME, ... (never the job's).
std::vector<std::string> RuntimeEnvp() {
  std::vector<std::string> envp;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    // CONTAINERS_REGISTRIES_CONF: the operator's registries.conf (e.g. an insecure loopback
    // registry that build_image pushed to; docs/images.md).
    for (std::string_view keep :
         {"PATH=", "HOME=", "LANG=", "TZ=", "XDG_RUNTIME_DIR=", "CONTAINERS_REGISTRIES_CONF="}) {
      if (entry.substr(0, keep.size()) == keep) envp.emplace_back(entry);
    }
  }
  if (std::none_of(envp.begin(), envp.end(),
                   [](const std::string& e) { return e.rfind("PATH=", 0) == 0; })) {
    envp.emplace_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
  return envp;
}

absl::StatusOr<CommandResult> Call(const std::vector<std::string>& argv, absl::Duration timeout) {
  if (timeout <= absl::ZeroDuration()) {
    return absl::DeadlineExceededError(absl::StrCat("no time left for ", DescribeCommand(argv)));
  }
  absl::StatusOr<CommandResult> r = RunCommandInEnvironment(argv, {}, RuntimeEnvp(), {}, timeout);
  if (!r.ok() && r.status().code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::DeadlineExceededError(absl::StrCat(
        DescribeCommand(argv), " did not finish within ", FormatSeconds(timeout), "s"));
  }
  return r;
}

// Runs and requires exit 0; the error names the command and its stderr.
absl::StatusOr<CommandResult> CallOk(const std::vector<std::string>& argv, absl::Duration timeout) {
  absl::StatusOr<CommandResult> r = Call(argv, timeout);
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return absl::InternalError(absl::StrCat(DescribeCommand(argv), " exited with code ",
                                            r->exit_code, ": ", Tail(r->err)));
  }
  return r;
}

std::string UserFor(const ContainerImageToRun& image, const std::string& fallback) {
  return image.user.empty() ? fallback : image.user;
}

bool CdiHasNvidia(const std::vector<std::string>& dirs) {
  for (const std::string& dir : dirs) {
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) continue;
    bool found = false;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      std::ifstream in(dir + "/" + name);
      std::stringstream text;
      text << in.rdbuf();
      // A spec's `kind: nvidia.com/gpu` (YAML) or "kind":"nvidia.com/gpu" (JSON).
      if (text.str().find("nvidia.com/gpu") != std::string::npos) found = true;
    }
    closedir(d);
    if (found) return true;
  }
  return false;
}

}  // namespace

std::string_view GpuModeName(ContainerGpuMode mode) {
  return mode == ContainerGpuMode::kCdi ? "cdi" : "gpus";
}

absl::StatusOr<ContainerRuntime> DetectContainerRuntime(std::string_view configured,
                                                        const std::vector<std::string>& cdi_dirs) {
  if (configured == "none") return absl::NotFoundError("--container-runtime none");
  const char* path_env = getenv("PATH");
  const std::string path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  ContainerRuntime rt;
  if (!configured.empty()) {
    absl::StatusOr<std::string> found = configured[0] == '/'
                                            ? absl::StatusOr<std::string>(std::string(configured))
                                            : FindExecutable(configured, path);
    if (!found.ok() || access(found->c_str(), X_OK) != 0) {
      return absl::NotFoundError(
          absl::StrCat("container runtime '", std::string(configured), "' not found"));
    }
    rt.path = *found;
  } else {
    for (std::string_view name : {"podman", "docker"}) {
      absl::StatusOr<std::string> found = FindExecutable(name, path);
      if (found.ok()) {
        rt.path = *found;
        break;
      }
    }
    if (rt.path.empty()) return absl::NotFoundError("neither podman nor docker is on PATH");
  }
  const std::string base = rt.path.substr(rt.path.rfind('/') + 1);
  rt.docker = base.find("docker") != std::string::npos;
  rt.gpu_mode = CdiHasNvidia(cdi_dirs) ? ContainerGpuMode::kCdi : ContainerGpuMode::kGpus;
  return rt;
}

ContainerExecutor::ContainerExecutor(ContainerRuntime runtime, ContainerJob job, std::string suffix)
    : runtime_(std::move(runtime)),
      job_(std::move(job)),
      container_(absl::StrCat("assay-", job_.job_id, "-", job_.attempt, "-", suffix)),
      network_(container_ + "-net") {}

std::vector<std::string> ContainerExecutor::Base() const {
  std::vector<std::string> argv = {runtime_.path};
  // Why: podman writes "failed to connect to syslog" and other notices on stderr.
  if (!runtime_.docker) argv.push_back("--log-level=error");
  return argv;
}

std::vector<std::string> ContainerExecutor::Labels() const {
  return {"--label", absl::StrCat("assay.agent=", job_.agent_name),
          "--label", absl::StrCat("assay.agent_dir=", job_.agent_dir),
          "--label", absl::StrCat("assay.job=", job_.job_id)};
}

std::string ContainerExecutor::ServiceContainerName(const ServiceToRun& s) const {
  return absl::StrCat(container_, "-svc-", s.name);
}

std::string ContainerExecutor::env_file() const {
  return absl::StrCat(job_.state_dir, "/", container_, ".env");
}

std::vector<std::string> ContainerExecutor::NetworkCreateArgv() const {
  std::vector<std::string> argv = Base();
  argv.insert(argv.end(), {"network", "create"});
  for (std::string& l : Labels()) argv.push_back(std::move(l));
  // Why isolate: netavark routes between bridge networks unless told not to; measured, a
  // container on another job's network reached this job's service by its IP. isolate=true
  // drops traffic between isolated networks (every job network is one). Docker's bridge
  // networks are isolated from each other already.
  if (!runtime_.docker) argv.insert(argv.end(), {"--opt", "isolate=true"});
  // Why no DNS without services: podman's name server (aardvark-dns) is one daemon for every
  // network, started by whichever podman command first needs it. Started by a one-step job's
  // `podman run`, it was a process of that job: killed with the job's leftovers, taking name
  // resolution from every other job's services, and its start-up complaint about syslog landed
  // in the job's log. Names are only needed to reach services, which the agent starts itself
  // (outside any job's process scope) before the first step.
  if (!runtime_.docker && job_.services.empty()) argv.push_back("--disable-dns");
  argv.push_back(network_);
  return argv;
}

std::vector<std::string> ContainerExecutor::ServiceRunArgv(const ServiceToRun& s) const {
  std::vector<std::string> argv = Base();
  argv.insert(argv.end(), {"run", "--detach", "--pull=never", "--name", ServiceContainerName(s),
                           "--network", network_, "--network-alias", s.name});
  for (std::string& l : Labels()) argv.push_back(std::move(l));
  if (!s.env.empty()) {
    argv.insert(argv.end(),
                {"--env-file", absl::StrCat(job_.state_dir, "/", ServiceContainerName(s), ".env")});
  }
  if (!s.image.user.empty()) argv.insert(argv.end(), {"--user", s.image.user});
  if (!s.image.entrypoint.empty()) argv.insert(argv.end(), {"--entrypoint", s.image.entrypoint});
  argv.push_back("--");
  argv.push_back(s.image.name);
  argv.insert(argv.end(), s.command.begin(), s.command.end());
  return argv;
}

std::vector<std::string> ContainerExecutor::ContainerFlags(const std::string& workspace) const {
  std::vector<std::string> argv = {"--name",     container_,
                                   "--network",  job_.no_network ? std::string("none") : network_,
                                   "--hostname", "job"};
  for (std::string& l : Labels()) argv.push_back(std::move(l));
  // Why --mount: -v splits its argument at ':', which a workspace path may hold.
  argv.insert(argv.end(),
              {"--mount",
               absl::StrCat("type=bind,source=", workspace, ",destination=", kContainerWorkspace),
               "--workdir", kContainerWorkspace});
  if (!job_.secrets_dir.empty()) {
    // Why U=true (podman, agent as root): the files are 0400 and the directory 0500, owned by
    // the job user; the container's user may be another (`image.user`, or the image's USER),
    // which podman resolves in the image and chowns the directory to. A rootless agent could
    // not remove a directory chowned to a subordinate uid: there the container's root (the
    // agent's uid) reads them, see docs/executors.md.
    argv.insert(argv.end(),
                {"--mount", absl::StrCat("type=bind,source=", job_.secrets_dir,
                                         ",destination=", kContainerSecretsDir, ",readonly=true",
                                         !runtime_.docker && geteuid() == 0 ? ",U=true" : "")});
  }
  if (std::string user = UserFor(job_.image, job_.default_user); !user.empty()) {
    argv.insert(argv.end(), {"--user", user});
  }
  if (job_.cpus > 0) argv.insert(argv.end(), {"--cpus", std::to_string(job_.cpus)});
  if (job_.memory_mb > 0) argv.insert(argv.end(), {"--memory", absl::StrCat(job_.memory_mb, "m")});
  if (!job_.gpu_indices.empty()) {
    if (runtime_.gpu_mode == ContainerGpuMode::kCdi) {
      for (uint32_t g : job_.gpu_indices) {
        argv.insert(argv.end(), {"--device", absl::StrCat("nvidia.com/gpu=", g)});
      }
    } else {
      std::string list;
      for (uint32_t g : job_.gpu_indices) absl::StrAppend(&list, list.empty() ? "" : ",", g);
      // Why the quotes for docker: it reads --gpus as CSV, where a bare comma splits fields.
      argv.insert(argv.end(), {"--gpus", runtime_.docker ? absl::StrCat("\"device=", list, "\"")
                                                         : absl::StrCat("device=", list)});
    }
  }
  return argv;
}

std::vector<std::string> ContainerExecutor::JobRunArgv(const std::string& workspace) const {
  std::vector<std::string> argv = Base();
  argv.insert(argv.end(), {"run", "--detach", "--pull=never"});
  for (std::string& f : ContainerFlags(workspace)) argv.push_back(std::move(f));
  const std::string shell = job_.image.entrypoint.empty() ? "/bin/sh" : job_.image.entrypoint;
  argv.insert(argv.end(), {"--entrypoint", shell, "--", job_.image.name, "-c", kKeepAlive});
  return argv;
}

std::vector<std::string> ContainerExecutor::SingleStepRunArgv(
    const std::string& workspace, const StepSpecToRun& step,
    const std::vector<std::string>& through_env) const {
  std::vector<std::string> argv = Base();
  argv.insert(argv.end(), {"run", "--rm", "--pull=never"});
  for (std::string& f : ContainerFlags(workspace)) argv.push_back(std::move(f));
  argv.insert(argv.end(), {"--env-file", env_file()});
  for (const std::string& name : through_env) argv.insert(argv.end(), {"--env", name});
  const std::string shell = job_.image.entrypoint.empty() ? "/bin/sh" : job_.image.entrypoint;
  argv.insert(argv.end(), {"--entrypoint", shell, "--", job_.image.name, "-e", "-c", step.run});
  return argv;
}

std::vector<std::string> ContainerExecutor::ExecArgv(
    const StepSpecToRun& step, const std::vector<std::string>& through_env) const {
  std::vector<std::string> argv = Base();
  argv.insert(argv.end(), {"exec", "--workdir", kContainerWorkspace, "--env-file", env_file()});
  for (const std::string& name : through_env) argv.insert(argv.end(), {"--env", name});
  if (std::string user = UserFor(job_.image, job_.default_user); !user.empty()) {
    argv.insert(argv.end(), {"--user", user});
  }
  const std::string shell = job_.image.entrypoint.empty() ? "/bin/sh" : job_.image.entrypoint;
  argv.insert(argv.end(), {container_, shell, "-e", "-c", step.run});
  return argv;
}

std::vector<std::string> ContainerExecutor::RemoveArgv() const {
  std::vector<std::string> argv = Base();
  argv.insert(argv.end(), {"rm", "--force"});
  if (!runtime_.docker) argv.insert(argv.end(), {"--ignore", "--time", "0"});
  argv.push_back(container_);
  for (const ServiceToRun& s : job_.services) argv.push_back(ServiceContainerName(s));
  return argv;
}

std::vector<std::string> ContainerExecutor::NetworkRemoveArgv() const {
  std::vector<std::string> argv = Base();
  argv.insert(argv.end(), {"network", "rm"});
  // podman: --force removes the containers on the network first (--time 0: SIGKILL at once).
  if (!runtime_.docker) argv.insert(argv.end(), {"--force", "--time", "0"});
  argv.push_back(network_);
  return argv;
}

absl::StatusOr<std::string> ContainerExecutor::EnvFileText(const std::vector<std::string>& env,
                                                           const std::vector<std::string>& names) {
  std::vector<std::string> through, runtime_env;
  return SplitEnv(env, names, {}, &through, &runtime_env);
}

bool ContainerExecutor::RuntimeReadsVariable(std::string_view name) {
  // Prefixes (and whole names) read by podman, docker, conmon, runc/crun, netavark, containers'
  // libraries, Go's runtime and net/http, glibc and systemd's protocols. Secret names are
  // [A-Z_][A-Z0-9_]* without LD_*, PATH, HOME, TMPDIR, ... already (secret_rules.h).
  static constexpr std::string_view kPrefixes[] = {
      "_",        "LD_",        "CGO_",        "CONTAINER",  "PODMAN",    "DOCKER",   "BUILDAH",
      "BUILDKIT", "STORAGE_",   "REGISTRY",    "REGISTRIES", "XDG_",      "SSL_",     "LC_",
      "LANG",     "MALLOC_",    "GLIBC_",      "LISTEN_",    "SYSTEMD_",  "DBUS_",    "CDI_",
      "NVIDIA_",  "CUDA_",      "OCI_",        "RUNC_",      "CRUN_",     "CONMON",   "NETAVARK",
      "AARDVARK", "CNI_",       "TMP",         "TEMP",       "SUDO_",     "OPENSSL_", "GNUTLS_",
      "GCONV_",   "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",   "ALL_PROXY", "FTP_PROXY"};
  static constexpr std::string_view kNames[] = {
      "PATH",        "HOME",        "USER",        "LOGNAME", "SHELL",   "PWD",
      "IFS",         "ENV",         "TZ",          "TERM",    "DISPLAY", "NOTIFY_SOCKET",
      "HOSTALIASES", "RES_OPTIONS", "LOCALDOMAIN", "NLSPATH", "BASH_ENV"};
  for (std::string_view p : kPrefixes) {
    if (name.substr(0, p.size()) == p) return true;
  }
  for (std::string_view n : kNames) {
    if (name == n) return true;
  }
  // Go's runtime and toolchain: GOGC, GODEBUG, GOMAXPROCS, GOTRACEBACK, GOMEMLIMIT, ... (no
  // '_'; GOOGLE_KEY is not one of them).
  if (name.substr(0, 2) == "GO" && name.find('_') == std::string_view::npos) return true;
  return false;
}

absl::StatusOr<std::string> ContainerExecutor::SplitEnv(const std::vector<std::string>& env,
                                                        const std::vector<std::string>& names,
                                                        const std::vector<std::string>& secrets,
                                                        std::vector<std::string>* through_env,
                                                        std::vector<std::string>* runtime_env) {
  std::string text;
  for (const std::string& name : names) {
    std::optional<std::string_view> value = LookupEnv(env, name);
    if (!value.has_value()) continue;
    const bool multi_line = value->find_first_of("\r\n") != std::string_view::npos;
    if (!multi_line && value->size() <= kEnvFileMaxValue) {
      absl::StrAppend(&text, name, "=", std::string(*value), "\n");
      continue;
    }
    const char* what = multi_line ? "a multi-line value" : "a value longer than 61440 bytes";
    if (std::find(secrets.begin(), secrets.end(), name) == secrets.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("variable ", name, " has ", what,
                       ", which the container executor cannot pass (env files hold one line per "
                       "variable)"));
    }
    if (RuntimeReadsVariable(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "secret ", name, " has ", what,
          ", which the container executor passes only through the runtime's own environment, "
          "and the runtime reads a variable of that name; deliver it with `as: file`"));
    }
    through_env->push_back(name);
    runtime_env->push_back(absl::StrCat(name, "=", std::string(*value)));
  }
  return text;
}

absl::Status ContainerExecutor::WriteEnvFile(const std::string& path,
                                             const std::string& text) const {
  if (mkdir(job_.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("mkdir ", job_.state_dir, ": ", strerror(errno)));
  }
  const std::string tmp = path + ".tmp";
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return absl::InternalError(absl::StrCat("open ", tmp, ": ", strerror(errno)));
  if (absl::Status s = WriteAll(fd.get(), text); !s.ok()) return s;
  fd.Reset();
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("rename ", tmp, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

namespace {

// The images this agent process found present (or pulled) lately, by name and runtime. Why:
// `image exists` is a runtime start (~25-50 ms) on every container job's critical path, and the
// image of the last job is nearly always the image of the next. Cost: an image removed by
// someone else within kImageSeenFor makes the job's `run --pull=never` fail with the runtime's
// own words ("image not known", exit 125) instead of the agent's message; that failure forgets
// the image (ContainerExecutor::StepEnded, Prepare), so the next job checks again.
class ImagesSeen {
 public:
  static ImagesSeen& Get() {
    static ImagesSeen* seen = new ImagesSeen();
    return *seen;
  }
  bool Recently(const std::string& runtime, const std::string& image) {
    absl::MutexLock l(&mu_);
    auto it = seen_.find({runtime, image});
    return it != seen_.end() && absl::Now() - it->second < kImageSeenFor;
  }
  void Saw(const std::string& runtime, const std::string& image) {
    absl::MutexLock l(&mu_);
    if (seen_.size() >= 4096) seen_.clear();  // bounded: an agent sees few images
    seen_[{runtime, image}] = absl::Now();
  }
  void Forget(const std::string& runtime, const std::string& image) {
    absl::MutexLock l(&mu_);
    seen_.erase({runtime, image});
  }

 private:
  absl::Mutex mu_;
  std::map<std::pair<std::string, std::string>, absl::Time> seen_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::Status ContainerExecutor::EnsureImage(const ContainerImageToRun& image,
                                            std::string_view key_view, absl::Time deadline,
                                            const JobLogFn& log) {
  const std::string key(key_view);
  if (image.pull != ContainerImageToRun::Pull::kAlways &&
      ImagesSeen::Get().Recently(runtime_.path, image.name)) {
    return absl::OkStatus();
  }
  std::vector<std::string> exists = Base();
  if (runtime_.docker) {
    exists.insert(exists.end(), {"image", "inspect", "--format", "{{.Id}}", image.name});
  } else {
    exists.insert(exists.end(), {"image", "exists", image.name});
  }
  bool present = false;
  if (image.pull != ContainerImageToRun::Pull::kAlways) {
    absl::StatusOr<CommandResult> r = Call(exists, Bound(deadline, kQuickCall));
    if (!r.ok()) return r.status();
    present = r->exit_code == 0;
  }
  if (present) {
    ImagesSeen::Get().Saw(runtime_.path, image.name);
    return absl::OkStatus();
  }
  if (image.pull == ContainerImageToRun::Pull::kNever) {
    return absl::FailedPreconditionError(absl::StrCat(
        key, ": image '", image.name, "' is not on this agent and ", key, ".pull is 'never'"));
  }
  log(absl::StrCat("assay: pulling image ", image.name, "\n"));
  std::vector<std::string> pull = Base();
  // Issue 9: the credential of an image a build_image step pushed (only for the job's image).
  const std::string auth_dir = absl::StrCat(job_.state_dir, "/", container_, ".auth");
  const bool auth = key == "image" && !job_.pull_auth_json.empty();
  if (auth) {
    if (mkdir(job_.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::InternalError(absl::StrCat("cannot create ", job_.state_dir));
    }
    if (mkdir(auth_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::InternalError(absl::StrCat("cannot create ", auth_dir));
    }
    unlink((auth_dir + "/config.json").c_str());
    if (absl::Status w = WriteEnvFile(auth_dir + "/config.json", job_.pull_auth_json); !w.ok()) {
      return w;
    }
    if (runtime_.docker) pull.insert(pull.end(), {"--config", auth_dir});
  }
  pull.push_back("pull");
  if (auth && !runtime_.docker) pull.insert(pull.end(), {"--authfile", auth_dir + "/config.json"});
  if (!runtime_.docker) pull.push_back("--");
  pull.push_back(image.name);
  absl::StatusOr<CommandResult> r = CallOk(pull, Bound(deadline, kPullCall));
  if (auth) {
    unlink((auth_dir + "/config.json").c_str());
    rmdir(auth_dir.c_str());
  }
  if (!r.ok()) {
    return absl::Status(r.status().code(), absl::StrCat(key, ": cannot pull image '", image.name,
                                                        "': ", r.status().message()));
  }
  ImagesSeen::Get().Saw(runtime_.path, image.name);
  return absl::OkStatus();
}

absl::Status ContainerExecutor::WaitHealthy(const ServiceToRun& s, size_t index,
                                            absl::Time deadline, CancelFlag& cancel,
                                            const JobLogFn& log) {
  if (s.health_cmd.empty()) return absl::OkStatus();
  std::vector<std::string> argv = Base();
  argv.insert(argv.end(), {"exec", ServiceContainerName(s), "/bin/sh", "-c", s.health_cmd});
  std::string last;
  for (int attempt = 1; attempt <= s.health_retries; ++attempt) {
    if (cancel.canceled()) return absl::CancelledError("canceled while waiting for services");
    absl::StatusOr<CommandResult> r =
        Call(argv, Bound(deadline, std::min(s.health_timeout, kQuickCall)));
    if (r.ok() && r->exit_code == 0) {
      log(absl::StrCat("assay: service ", s.name, " is healthy\n"));
      return absl::OkStatus();
    }
    last = r.ok() ? absl::StrCat("exit code ", r->exit_code, ": ", Tail(r->err + r->out))
                  : std::string(r.status().message());
    if (absl::Now() >= deadline) break;
    if (attempt == s.health_retries) break;
    // Sleeps the interval, waking at once for a cancel.
    pollfd p = {cancel.fd(), POLLIN, 0};
    poll(&p, 1, PollTimeoutMs(std::min(deadline, absl::Now() + s.health_interval)));
  }
  return absl::UnavailableError(absl::StrCat("services[", index, "] '", s.name,
                                             "' is not healthy after ", s.health_retries,
                                             " checks; last: ", last));
}

absl::Status ContainerExecutor::Prepare(const JobRunRequest& req, absl::Time deadline,
                                        CancelFlag& cancel, const JobLogFn& log) {
  if (runtime_.path.empty()) {
    return absl::FailedPreconditionError(
        "this agent has no container runtime (podman or docker; see --container-runtime)");
  }
  log(absl::StrCat("assay: container executor: ", runtime_.path, ", image ", job_.image.name,
                   ", container ", container_, "\n"));
  // Why at the same time as the image checks: neither needs the other, and each is a runtime
  // start (~50 ms) on the job's critical path (bench/README.md).
  std::future<absl::StatusOr<CommandResult>> network;
  if (!job_.no_network) {
    network_made_ = true;  // (or perhaps made: a timeout may come after the runtime did it)
    network = std::async(std::launch::async, [this, deadline] {
      return CallOk(NetworkCreateArgv(), Bound(deadline, kQuickCall));
    });
  }
  absl::Status images = EnsureImage(job_.image, "image", deadline, log);
  // An image already ensured for this job (a service of the job's own image, two services of
  // one) is not checked again, unless this one asks to be pulled and the earlier one was not.
  std::vector<std::pair<std::string, bool>> ensured = {
      {job_.image.name, job_.image.pull == ContainerImageToRun::Pull::kAlways}};
  for (size_t i = 0; images.ok() && i < job_.services.size(); ++i) {
    const ContainerImageToRun& image = job_.services[i].image;
    const bool pull = image.pull == ContainerImageToRun::Pull::kAlways;
    if (std::any_of(ensured.begin(), ensured.end(),
                    [&](const auto& e) { return e.first == image.name && (e.second || !pull); })) {
      continue;
    }
    images = EnsureImage(image, absl::StrCat("services[", i, "].image"), deadline, log);
    ensured.emplace_back(image.name, pull);
  }
  if (network.valid()) {
    absl::StatusOr<CommandResult> made = network.get();
    if (images.ok() && !made.ok()) return made.status();
  }
  if (!images.ok()) return images;
  for (size_t i = 0; i < job_.services.size(); ++i) {
    const ServiceToRun& s = job_.services[i];
    if (!s.env.empty()) {
      std::vector<std::string> entries, names;
      for (const auto& [k, v] : s.env) {
        entries.push_back(absl::StrCat(k, "=", v));
        names.push_back(k);
      }
      absl::StatusOr<std::string> text = EnvFileText(entries, names);
      if (!text.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("services[", i, "].env: ", text.status().message()));
      }
      if (absl::Status w = WriteEnvFile(
              absl::StrCat(job_.state_dir, "/", ServiceContainerName(s), ".env"), *text);
          !w.ok()) {
        return w;
      }
    }
    if (absl::StatusOr<CommandResult> r = CallOk(ServiceRunArgv(s), Bound(deadline, kQuickCall));
        !r.ok()) {
      ImagesSeen::Get().Forget(runtime_.path, s.image.name);
      return absl::Status(r.status().code(),
                          absl::StrCat("services[", i, "] '", s.name, "': ", r.status().message()));
    }
  }
  for (size_t i = 0; i < job_.services.size(); ++i) {
    if (absl::Status s = WaitHealthy(job_.services[i], i, deadline, cancel, log); !s.ok()) {
      return s;
    }
  }
  // A job of one step needs no container that waits: StepCommand runs the step as the
  // container's command (what one step installs, no later step could see anyway).
  single_step_ = req.steps.size() == 1;
  if (!single_step_) {
    if (absl::StatusOr<CommandResult> r =
            CallOk(JobRunArgv(req.workdir), Bound(deadline, kQuickCall));
        !r.ok()) {
      ImagesSeen::Get().Forget(runtime_.path, job_.image.name);
      return r.status();
    }
  }
  job_env_names_.clear();
  for (const auto& [name, value] : req.env) {
    if (std::find(job_env_names_.begin(), job_env_names_.end(), name) == job_env_names_.end()) {
      job_env_names_.push_back(name);
    }
  }
  job_env_names_.push_back("ASSAY_JOB_INSTANCE");
  return absl::OkStatus();
}

absl::StatusOr<StepProcess> ContainerExecutor::StepCommand(const JobRunRequest& req,
                                                           const StepSpecToRun& step,
                                                           const std::vector<std::string>& env) {
  std::vector<std::string> inside = env;
  auto set = [&inside](const std::string& name, const std::string& value) {
    for (std::string& e : inside) {
      if (e.rfind(name + "=", 0) == 0) {
        e = absl::StrCat(name, "=", value);
        return;
      }
    }
    inside.push_back(absl::StrCat(name, "=", value));
  };
  set("ASSAY_WORKSPACE", kContainerWorkspace);
  if (!job_.gpu_indices.empty()) {
    // Inside the container the job's GPUs are numbered from 0.
    std::string visible;
    for (size_t i = 0; i < job_.gpu_indices.size(); ++i) {
      absl::StrAppend(&visible, i == 0 ? "" : ",", i);
    }
    set("CUDA_VISIBLE_DEVICES", visible);
  }
  for (const std::string& name :
       job_.secrets_dir.empty() ? std::vector<std::string>{} : job_.file_secrets) {
    set(absl::StrCat(name, "_FILE"), absl::StrCat(kContainerSecretsDir, "/", name));
  }
  std::vector<std::string> through_env, runtime_env = RuntimeEnvp();
  std::vector<std::string> values;
  absl::StatusOr<std::string> text =
      SplitEnv(inside, job_env_names_, job_.env_secrets, &through_env, &values);
  if (!text.ok()) return text.status();
  if (absl::Status w = WriteEnvFile(env_file(), *text); !w.ok()) return w;
  StepProcess p;
  p.argv = single_step_ ? SingleStepRunArgv(req.workdir, step, through_env)
                        : ExecArgv(step, through_env);
  p.path = p.argv[0];
  // Why after the agent's own: a secret's name is never one the runtime reads, and the
  // runtime's entries (PATH, HOME, ...) must stay the agent's.
  runtime_env.insert(runtime_env.end(), values.begin(), values.end());
  p.env = std::move(runtime_env);
  p.as_job_user = false;  // the runtime runs as the agent; --user sets the user inside
  return p;
}

void ContainerExecutor::StepEnded(const StepSpecToRun&, bool by_itself, int exit_code) {
  // Why under 125: podman's own errors are 125 (the container may exist); 126 and 127 are
  // kept out too, to be safe.
  if (single_step_) removed_by_runtime_ = by_itself && exit_code >= 0 && exit_code < 125;
  // The runtime's own failure (an image removed since it was seen, among others): the next job
  // asks the runtime again.
  if (single_step_ && exit_code == 125) ImagesSeen::Get().Forget(runtime_.path, job_.image.name);
}

void ContainerExecutor::Cleanup(const JobRunRequest&, const JobLogFn& log) {
  if (runtime_.path.empty()) return;
  bool removed = false;
  if (!runtime_.docker && network_made_) {
    // Every container of the job is on its network (Prepare makes none before it).
    absl::StatusOr<CommandResult> n = CallOk(NetworkRemoveArgv(), kCleanupCall);
    removed = n.ok();
    if (!n.ok()) LogWarn("agent", "job ", job_.job_id, ": ", n.status().ToString());
  }
  if (!removed) {
    if (!removed_by_runtime_ || !job_.services.empty()) {
      absl::StatusOr<CommandResult> r = CallOk(RemoveArgv(), kCleanupCall);
      if (!r.ok()) {
        log(absl::StrCat("assay: cannot remove the job's containers: ", r.status().message(),
                         "\n"));
        LogWarn("agent", "job ", job_.job_id, ": ", r.status().ToString());
      }
    }
    if (network_made_) {
      absl::StatusOr<CommandResult> n = Call(NetworkRemoveArgv(), kCleanupCall);
      // A network that was never made (its creation failed) is not a problem.
      if (!n.ok()) LogWarn("agent", "job ", job_.job_id, ": ", n.status().ToString());
    }
  }
  unlink(env_file().c_str());
  for (const ServiceToRun& s : job_.services) {
    unlink(absl::StrCat(job_.state_dir, "/", ServiceContainerName(s), ".env").c_str());
  }
}

namespace {

ContainerImageToRun ImageOf(const v1::ContainerImage& image) {
  ContainerImageToRun out;
  out.name = image.name();
  out.pull = image.pull() == v1::ContainerImage::PULL_NEVER ? ContainerImageToRun::Pull::kNever
             : image.pull() == v1::ContainerImage::PULL_ALWAYS
                 ? ContainerImageToRun::Pull::kAlways
                 : ContainerImageToRun::Pull::kIfMissing;
  out.user = image.user();
  out.entrypoint = image.entrypoint();
  return out;
}

std::string RandomSuffix() {
  unsigned char bytes[4] = {0, 0, 0, 0};
  UniqueFd fd(open("/dev/urandom", O_RDONLY | O_CLOEXEC));
  if (fd.valid() && read(fd.get(), bytes, sizeof(bytes)) == sizeof(bytes)) {
    return absl::StrFormat("%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3]);
  }
  return absl::StrFormat("%08x", static_cast<unsigned>(getpid() ^ absl::ToUnixNanos(absl::Now())));
}

}  // namespace

std::unique_ptr<ContainerExecutor> ContainerExecutorFor(
    const v1::Assignment& a, const std::optional<ContainerRuntime>& runtime,
    const std::string& agent_name, const std::string& agent_dir,
    const std::optional<JobIdentity>& job_user, const std::string& secrets_dir) {
  if (!a.has_image()) return nullptr;
  ContainerJob job;
  job.agent_name = agent_name;
  job.agent_dir = agent_dir;
  job.job_id = a.job_id();
  job.attempt = a.attempt();
  job.image = ImageOf(a.image());
  for (const v1::Service& s : a.services()) {
    ServiceToRun out;
    out.name = s.name();
    out.image = ImageOf(s.image());
    // Sorted by name: a proto map has no order.
    for (const auto& [k, v] : s.env()) out.env.emplace_back(k, v);
    std::sort(out.env.begin(), out.env.end());
    out.command.assign(s.command().begin(), s.command().end());
    out.health_cmd = s.health().cmd();
    if (s.health().interval_ms() > 0)
      out.health_interval = absl::Milliseconds(s.health().interval_ms());
    if (s.health().retries() > 0) out.health_retries = static_cast<int>(s.health().retries());
    if (s.health().timeout_ms() > 0)
      out.health_timeout = absl::Milliseconds(s.health().timeout_ms());
    job.services.push_back(std::move(out));
  }
  job.cpus = a.cpus();
  job.memory_mb = a.memory_mb();
  job.no_network = a.network() == "none";
  job.gpu_indices.assign(a.gpu_indices().begin(), a.gpu_indices().end());
  if (job_user.has_value()) job.default_user = absl::StrCat(job_user->uid, ":", job_user->gid);
  job.state_dir = absl::StrCat(agent_dir, "/containers");
  for (const v1::JobSecret& s : a.secrets()) {
    if (!s.withheld().empty()) continue;
    (s.as_file() ? job.file_secrets : job.env_secrets).push_back(s.name());
  }
  if (!job.file_secrets.empty()) job.secrets_dir = secrets_dir;
  if (a.has_image_pull_credential()) {
    const v1::RegistryCredential& c = a.image_pull_credential();
    absl::StatusOr<std::string> auth =
        AuthFileText({c.registry()}, absl::StrCat(c.username(), ":", c.password()));
    if (auth.ok()) job.pull_auth_json = std::move(*auth);
  }
  return std::make_unique<ContainerExecutor>(runtime.value_or(ContainerRuntime{}), std::move(job),
                                             RandomSuffix());
}

absl::StatusOr<int> RemoveContainerLeftovers(const ContainerRuntime& runtime,
                                             const std::string& agent_name,
                                             const std::string& agent_dir, absl::Duration timeout) {
  std::vector<std::string> base = {runtime.path};
  if (!runtime.docker) base.push_back("--log-level=error");
  const std::vector<std::string> filters = {
      "--filter", absl::StrCat("label=assay.agent=", agent_name), "--filter",
      absl::StrCat("label=assay.agent_dir=", agent_dir)};
  std::vector<std::string> ps = base;
  ps.insert(ps.end(), {"ps", "--all", "--quiet"});
  ps.insert(ps.end(), filters.begin(), filters.end());
  absl::StatusOr<CommandResult> listed = CallOk(ps, timeout);
  if (!listed.ok()) return listed.status();
  std::vector<std::string> ids = absl::StrSplit(listed->out, '\n', absl::SkipWhitespace());
  if (!ids.empty()) {
    std::vector<std::string> rm = base;
    rm.insert(rm.end(), {"rm", "--force"});
    if (!runtime.docker) rm.insert(rm.end(), {"--ignore", "--time", "0"});
    rm.insert(rm.end(), ids.begin(), ids.end());
    if (absl::StatusOr<CommandResult> r = CallOk(rm, timeout); !r.ok()) return r.status();
  }
  std::vector<std::string> nets = base;
  nets.insert(nets.end(), {"network", "ls", "--quiet"});
  nets.insert(nets.end(), filters.begin(), filters.end());
  absl::StatusOr<CommandResult> listed_nets = CallOk(nets, timeout);
  if (!listed_nets.ok()) return listed_nets.status();
  const std::vector<std::string> net_ids =
      absl::StrSplit(listed_nets->out, '\n', absl::SkipWhitespace());
  if (!net_ids.empty()) {  // one call for all of them
    std::vector<std::string> rm = base;
    rm.insert(rm.end(), {"network", "rm"});
    if (!runtime.docker) rm.insert(rm.end(), {"--force", "--time", "0"});
    rm.insert(rm.end(), net_ids.begin(), net_ids.end());
    if (absl::StatusOr<CommandResult> r = CallOk(rm, timeout); !r.ok()) return r.status();
  }
  return static_cast<int>(ids.size());
}

}  // namespace assay
