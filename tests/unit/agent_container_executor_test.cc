// The container executor's command lines, exactly (issue 9). No runtime is run here.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "agent/container_executor.h"
#include "agent/step_runner.h"

namespace assay {
namespace {

using Argv = std::vector<std::string>;

ContainerJob Job() {
  ContainerJob job;
  job.agent_name = "gpu-1";
  job.agent_dir = "/var/lib/assay";
  job.job_id = 42;
  job.attempt = 2;
  job.image.name = "localhost/py:3";
  job.state_dir = "/var/lib/assay/containers";
  return job;
}

ContainerRuntime Podman(ContainerGpuMode mode = ContainerGpuMode::kGpus) {
  return ContainerRuntime{"/usr/bin/podman", false, mode};
}

const Argv kLabels = {"--label", "assay.agent=gpu-1", "--label", "assay.agent_dir=/var/lib/assay",
                      "--label", "assay.job=42"};

Argv Cat(Argv a, const Argv& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST_CASE("container executor: names carry the job, the attempt and the suffix") {
  ContainerExecutor e(Podman(), Job(), "0badcafe");
  CHECK(e.container_name() == "assay-42-2-0badcafe");
  CHECK(e.network_name() == "assay-42-2-0badcafe-net");
  CHECK(e.env_file() == "/var/lib/assay/containers/assay-42-2-0badcafe.env");
}

TEST_CASE("container executor: the job container's exact command line") {
  ContainerJob job = Job();
  job.cpus = 4;
  job.memory_mb = 1536;
  job.default_user = "1001:1001";
  ContainerExecutor e(Podman(), job, "0badcafe");
  CHECK(
      e.JobRunArgv("/w/jobs/job-42-2") ==
      Cat(Cat({"/usr/bin/podman", "--log-level=error", "run", "--detach", "--pull=never", "--name",
               "assay-42-2-0badcafe", "--network", "assay-42-2-0badcafe-net", "--hostname", "job"},
              kLabels),
          {"--mount", "type=bind,source=/w/jobs/job-42-2,destination=/workspace", "--workdir",
           "/workspace", "--user", "1001:1001", "--cpus", "4", "--memory", "1536m", "--entrypoint",
           "/bin/sh", "--", "localhost/py:3", "-c",
           "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"}));
  CHECK(e.NetworkCreateArgv() ==
        Cat({"/usr/bin/podman", "--log-level=error", "network", "create"},
            Cat(kLabels, {"--opt", "isolate=true", "--disable-dns", "assay-42-2-0badcafe-net"})));
  CHECK(e.RemoveArgv() == Argv{"/usr/bin/podman", "--log-level=error", "rm", "--force", "--ignore",
                               "--time", "0", "assay-42-2-0badcafe"});
  CHECK(e.NetworkRemoveArgv() == Argv{"/usr/bin/podman", "--log-level=error", "network", "rm",
                                      "--force", "--time", "0", "assay-42-2-0badcafe-net"});
}

TEST_CASE("container executor: network: none gives the job container no network at all") {
  ContainerJob job = Job();
  job.no_network = true;
  ContainerExecutor e(Podman(), job, "0badcafe");
  CHECK(e.JobRunArgv("/w") ==
        Cat(Cat({"/usr/bin/podman", "--log-level=error", "run", "--detach", "--pull=never",
                 "--name", "assay-42-2-0badcafe", "--network", "none", "--hostname", "job"},
                kLabels),
            {"--mount", "type=bind,source=/w,destination=/workspace", "--workdir", "/workspace",
             "--entrypoint", "/bin/sh", "--", "localhost/py:3", "-c",
             "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"}));
}

TEST_CASE("container executor: the image's user and shell win over the defaults") {
  ContainerJob job = Job();
  job.image.user = "app";
  job.image.entrypoint = "/bin/bash";
  job.default_user = "1001:1001";
  ContainerExecutor e(Podman(), job, "s");
  const Argv run = e.JobRunArgv("/w");
  const Argv user = {"--user", "app"};
  CHECK(std::search(run.begin(), run.end(), user.begin(), user.end()) != run.end());
  CHECK(e.ExecArgv({"build", "make all"}) ==
        Argv{"/usr/bin/podman", "--log-level=error", "exec", "--workdir", "/workspace",
             "--env-file", "/var/lib/assay/containers/assay-42-2-s.env", "--user", "app",
             "assay-42-2-s", "/bin/bash", "-e", "-c", "make all"});
}

TEST_CASE("container executor: exactly the job's GPUs, by CDI or --gpus") {
  ContainerJob job = Job();
  job.gpu_indices = {1, 3};
  const Argv cdi = ContainerExecutor(Podman(ContainerGpuMode::kCdi), job, "s").JobRunArgv("/w");
  const Argv cdi_part = {"--device", "nvidia.com/gpu=1", "--device", "nvidia.com/gpu=3"};
  CHECK(std::search(cdi.begin(), cdi.end(), cdi_part.begin(), cdi_part.end()) != cdi.end());
  CHECK(std::find(cdi.begin(), cdi.end(), "--gpus") == cdi.end());
  const Argv gpus = ContainerExecutor(Podman(), job, "s").JobRunArgv("/w");
  const Argv gpus_part = {"--gpus", "device=1,3"};
  CHECK(std::search(gpus.begin(), gpus.end(), gpus_part.begin(), gpus_part.end()) != gpus.end());
  CHECK(std::find(gpus.begin(), gpus.end(), "--device") == gpus.end());
  const Argv docker =
      ContainerExecutor(ContainerRuntime{"/usr/bin/docker", true, ContainerGpuMode::kGpus}, job,
                        "s")
          .JobRunArgv("/w");
  const Argv docker_part = {"--gpus", "\"device=1,3\""};
  CHECK(std::search(docker.begin(), docker.end(), docker_part.begin(), docker_part.end()) !=
        docker.end());
}

TEST_CASE("container executor: a service's exact command line, its env in a file") {
  ContainerJob job = Job();
  ServiceToRun db;
  db.name = "db";
  db.image.name = "postgres:15";
  db.env = {{"POSTGRES_PASSWORD", "s3cret-value"}};
  db.command = {"postgres", "-c", "fsync=off"};
  job.services.push_back(db);
  ContainerExecutor e(Podman(), job, "s");
  CHECK(
      e.ServiceRunArgv(db) ==
      Cat(Cat({"/usr/bin/podman", "--log-level=error", "run", "--detach", "--pull=never", "--name",
               "assay-42-2-s-svc-db", "--network", "assay-42-2-s-net", "--network-alias", "db"},
              kLabels),
          {"--env-file", "/var/lib/assay/containers/assay-42-2-s-svc-db.env", "--", "postgres:15",
           "postgres", "-c", "fsync=off"}));
  CHECK(e.RemoveArgv() == Argv{"/usr/bin/podman", "--log-level=error", "rm", "--force", "--ignore",
                               "--time", "0", "assay-42-2-s", "assay-42-2-s-svc-db"});
  // With services the network keeps podman's name server: they are reached by name.
  CHECK(e.NetworkCreateArgv() == Cat({"/usr/bin/podman", "--log-level=error", "network", "create"},
                                     Cat(kLabels, {"--opt", "isolate=true", "assay-42-2-s-net"})));
}

TEST_CASE("container executor: docker's command lines differ where its CLI does") {
  ContainerExecutor e(ContainerRuntime{"/usr/bin/docker", true, ContainerGpuMode::kGpus}, Job(),
                      "s");
  CHECK(e.RemoveArgv() == Argv{"/usr/bin/docker", "rm", "--force", "assay-42-2-s"});
  CHECK(e.NetworkCreateArgv() ==
        Cat({"/usr/bin/docker", "network", "create"}, Cat(kLabels, {"assay-42-2-s-net"})));
  CHECK(e.NetworkRemoveArgv() == Argv{"/usr/bin/docker", "network", "rm", "assay-42-2-s-net"});
}

TEST_CASE("container executor: a step's values never reach its command line") {
  // The one test here that touches the filesystem: the env file is the point.
  char dir[] = "/tmp/assay-container-unit-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  ContainerJob job = Job();
  job.state_dir = std::string(dir) + "/state";
  ContainerExecutor e(Podman(), job, "s");
  JobRunRequest req;
  req.env = {{"API_TOKEN", "tok-123456"}};
  auto process = e.StepCommand(req, {"s", "echo $API_TOKEN"},
                               {"API_TOKEN=tok-123456", "PATH=/bin", "LD_PRELOAD=/x.so"});
  REQUIRE(process.ok());
  CHECK(process->argv == e.ExecArgv({"s", "echo $API_TOKEN"}));
  CHECK(process->path == "/usr/bin/podman");
  CHECK_FALSE(process->as_job_user);
  for (const std::string& arg : process->argv) CHECK(arg.find("tok-123456") == std::string::npos);
  // The runtime's own environment is the agent's, never the job's (LD_PRELOAD, API_TOKEN).
  for (const std::string& var : process->env) {
    CHECK(var.find("tok-123456") == std::string::npos);
    CHECK(var.rfind("LD_PRELOAD=", 0) == std::string::npos);
  }
  // The env file (empty here: Prepare sets the job's names) is mode 0600 in a 0700 directory.
  struct stat st;
  REQUIRE(stat(e.env_file().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(stat(job.state_dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  unlink(e.env_file().c_str());
  rmdir(job.state_dir.c_str());
  rmdir(dir);
}

TEST_CASE("container executor: the env file keeps the job's names in order, refuses newlines") {
  const std::vector<std::string> env = {"PATH=/usr/bin", "B=2", "A=x=y", "HOME=/root"};
  CHECK(*ContainerExecutor::EnvFileText(env, {"A", "B", "MISSING"}) == "A=x=y\nB=2\n");
  auto bad = ContainerExecutor::EnvFileText({"KEY=line1\nline2"}, {"KEY"});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(bad.status().message() ==
        "variable KEY has a multi-line value, which the container executor cannot pass (env "
        "files hold one line per variable)");
}

TEST_CASE("container executor: runtime detection") {
  CHECK(DetectContainerRuntime("none").status().code() == absl::StatusCode::kNotFound);
  CHECK(DetectContainerRuntime("/nonexistent/podman").status().message() ==
        "container runtime '/nonexistent/podman' not found");
  CHECK(GpuModeName(ContainerGpuMode::kCdi) == "cdi");
  CHECK(GpuModeName(ContainerGpuMode::kGpus) == "gpus");
}

TEST_CASE("container executor: a job of one step runs it as the container's command") {
  ContainerJob job = Job();
  job.default_user = "1001:1001";
  ContainerExecutor e(Podman(), job, "s");
  CHECK(e.SingleStepRunArgv("/w", {"build", "make all"}, {"CERT"}) ==
        Cat(Cat({"/usr/bin/podman", "--log-level=error", "run", "--rm", "--pull=never", "--name",
                 "assay-42-2-s", "--network", "assay-42-2-s-net", "--hostname", "job"},
                kLabels),
            {"--mount", "type=bind,source=/w,destination=/workspace", "--workdir", "/workspace",
             "--user", "1001:1001", "--env-file", "/var/lib/assay/containers/assay-42-2-s.env",
             "--env", "CERT", "--entrypoint", "/bin/sh", "--", "localhost/py:3", "-e", "-c",
             "make all"}));
  CHECK(e.ExecArgv({"build", "make all"}, {"CERT", "KEY"}) ==
        Argv{"/usr/bin/podman", "--log-level=error", "exec", "--workdir", "/workspace",
             "--env-file", "/var/lib/assay/containers/assay-42-2-s.env", "--env", "CERT", "--env",
             "KEY", "--user", "1001:1001", "assay-42-2-s", "/bin/sh", "-e", "-c", "make all"});
}

TEST_CASE("container executor: file secrets are mounted read-only at /run/secrets") {
  ContainerJob job = Job();
  job.secrets_dir = "/w/jobs/job-42-2.secrets";
  job.file_secrets = {"CERT"};
  const std::string mount = std::string("type=bind,source=/w/jobs/job-42-2.secrets,") +
                            "destination=/run/secrets,readonly=true" +
                            (geteuid() == 0 ? ",U=true" : "");
  for (const Argv& run : {ContainerExecutor(Podman(), job, "s").JobRunArgv("/w"),
                          ContainerExecutor(Podman(), job, "s").SingleStepRunArgv("/w", {}, {})}) {
    const Argv part = {"--mount", mount};
    CHECK(std::search(run.begin(), run.end(), part.begin(), part.end()) != run.end());
  }
  // Services never get them.
  ServiceToRun db;
  db.name = "db";
  db.image.name = "postgres:15";
  job.services.push_back(db);
  const Argv svc = ContainerExecutor(Podman(), job, "s").ServiceRunArgv(db);
  CHECK(std::find(svc.begin(), svc.end(), "--mount") == svc.end());
  // Docker has no U option.
  const Argv docker =
      ContainerExecutor(ContainerRuntime{"/usr/bin/docker", true, ContainerGpuMode::kGpus}, job,
                        "s")
          .JobRunArgv("/w");
  const Argv docker_part = {"--mount",
                            "type=bind,source=/w/jobs/job-42-2.secrets,destination=/run/secrets,"
                            "readonly=true"};
  CHECK(std::search(docker.begin(), docker.end(), docker_part.begin(), docker_part.end()) !=
        docker.end());
}

TEST_CASE("container executor: a multi-line secret goes through the runtime's environment") {
  std::vector<std::string> through, runtime_env;
  const std::string big(ContainerExecutor::kEnvFileMaxValue + 1, 'x');
  const std::vector<std::string> env = {"A=1",      "CERT=l1\nl2\n",      "BIG=" + big,
                                        "CR=a\rb",  "PLAIN=x y $z '\" #", "GODEBUG=a\nb",
                                        "NOTE=m\nn"};
  auto text = ContainerExecutor::SplitEnv(env, {"A", "CERT", "BIG", "CR", "PLAIN"},
                                          {"CERT", "BIG", "CR"}, &through, &runtime_env);
  REQUIRE(text.ok());
  CHECK(*text == "A=1\nPLAIN=x y $z '\" #\n");
  CHECK(through == std::vector<std::string>{"CERT", "BIG", "CR"});
  CHECK(runtime_env == std::vector<std::string>{"CERT=l1\nl2\n", "BIG=" + big, "CR=a\rb"});
  // A secret whose name the runtime reads: refused, naming it and the way out.
  through.clear();
  runtime_env.clear();
  auto go = ContainerExecutor::SplitEnv(env, {"GODEBUG"}, {"GODEBUG"}, &through, &runtime_env);
  REQUIRE_FALSE(go.ok());
  CHECK(go.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(go.status().message() ==
        "secret GODEBUG has a multi-line value, which the container executor passes only "
        "through the runtime's own environment, and the runtime reads a variable of that name; "
        "deliver it with `as: file`");
  // A variable that is not a secret (the pipeline's env:, perhaps untrusted): refused.
  auto note = ContainerExecutor::SplitEnv(env, {"NOTE"}, {"CERT"}, &through, &runtime_env);
  REQUIRE_FALSE(note.ok());
  CHECK(note.status().message() ==
        "variable NOTE has a multi-line value, which the container executor cannot pass (env "
        "files hold one line per variable)");
  auto long_plain = ContainerExecutor::SplitEnv(env, {"BIG"}, {}, &through, &runtime_env);
  CHECK(long_plain.status().message() ==
        "variable BIG has a value longer than 61440 bytes, which the container executor cannot "
        "pass (env files hold one line per variable)");
  CHECK(through.empty());
  CHECK(runtime_env.empty());
}

TEST_CASE("container executor: the names the runtime reads") {
  for (const char* name : {"GODEBUG", "GOMAXPROCS", "CONTAINERS_CONF", "CONTAINER_HOST",
                           "DOCKER_HOST", "XDG_RUNTIME_DIR", "HTTPS_PROXY", "LC_ALL", "TZ",
                           "NOTIFY_SOCKET", "LISTEN_FDS", "_CONTAINERS_USERNS_CONFIGURED",
                           "REGISTRY_AUTH_FILE", "SSL_CERT_FILE", "TMPDIR", "PATH", "LD_PRELOAD"}) {
    INFO(name);
    CHECK(ContainerExecutor::RuntimeReadsVariable(name));
  }
  for (const char* name : {"GOOGLE_CREDENTIALS", "HF_TOKEN", "SSH_KEY", "API_KEY", "TLS_CERT"}) {
    INFO(name);
    CHECK_FALSE(ContainerExecutor::RuntimeReadsVariable(name));
  }
}

TEST_CASE("container executor: a step sees its file secrets at /run/secrets, values off argv") {
  // The runtime is /bin/true here: every call Prepare makes succeeds and runs nothing.
  char dir[] = "/tmp/assay-container-unit-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  ContainerJob job = Job();
  job.state_dir = std::string(dir) + "/state";
  job.secrets_dir = std::string(dir) + "/job.secrets";
  job.file_secrets = {"CERT"};
  job.env_secrets = {"KEY", "TOKEN"};
  ContainerExecutor e(ContainerRuntime{"/bin/true", false, ContainerGpuMode::kGpus}, job, "s");
  JobRunRequest req;
  req.steps = {{"only", "cat \"$CERT_FILE\""}};
  req.workdir = "/w";
  req.env = {{"KEY", "k1-line\nk2-line"},
             {"TOKEN", "tok-single"},
             {"CERT_FILE", job.secrets_dir + "/CERT"}};
  CancelFlag cancel;
  REQUIRE(e.Prepare(req, absl::InfiniteFuture(), cancel, [](std::string_view) {}).ok());
  auto process = e.StepCommand(req, req.steps[0],
                               {"PATH=/bin", "KEY=k1-line\nk2-line", "TOKEN=tok-single",
                                "CERT_FILE=" + job.secrets_dir + "/CERT"});
  REQUIRE(process.ok());
  // One step: the container's own command, the multi-line secret by name only.
  CHECK(process->argv == e.SingleStepRunArgv("/w", req.steps[0], {"KEY"}));
  for (const std::string& arg : process->argv) CHECK(arg.find("-line") == std::string::npos);
  CHECK(std::count(process->env.begin(), process->env.end(), "KEY=k1-line\nk2-line") == 1);
  for (const std::string& var : process->env) CHECK(var.find("tok-single") == std::string::npos);
  std::ifstream in(e.env_file());
  std::stringstream text;
  text << in.rdbuf();
  CHECK(text.str() == "TOKEN=tok-single\nCERT_FILE=/run/secrets/CERT\n");
  e.Cleanup(req, [](std::string_view) {});
  CHECK(access(e.env_file().c_str(), F_OK) != 0);
  rmdir(job.state_dir.c_str());
  rmdir(dir);
}

TEST_CASE("container executor: the runtime calls of a job, in order, for each shape") {
  // The runtime is a script that records its arguments: the calls Prepare and Cleanup make
  // (the step's own process is the runner's, not run here), as a sorted list.
  char dir[] = "/tmp/assay-container-unit-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string fake = std::string(dir) + "/podman", calls = std::string(dir) + "/calls";
  {
    std::ofstream f(fake);
    f << "#!/bin/sh\nshift\necho \"$1 $2\" >> " << calls << "\n";
  }
  REQUIRE(chmod(fake.c_str(), 0755) == 0);
  // Each call a runtime path of its own (a copy of the script), so that what an earlier call
  // found present (the agent's image memory is per runtime path) does not count; `same_runtime`
  // reuses the last one.
  int runtimes = 0;
  std::string runtime;
  auto run = [&](bool network, size_t steps, bool by_itself, int exit_code, bool service,
                 const std::string& service_image = "localhost/db:1",
                 ContainerImageToRun::Pull pull = ContainerImageToRun::Pull::kIfMissing,
                 bool same_runtime = false) {
    unlink(calls.c_str());
    if (!same_runtime) {
      runtime = fake + "-" + std::to_string(++runtimes);
      std::filesystem::copy_file(fake, runtime);
      REQUIRE(chmod(runtime.c_str(), 0755) == 0);
    }
    ContainerJob job = Job();
    job.state_dir = std::string(dir) + "/state";
    job.no_network = !network;
    if (service) {
      ServiceToRun db;
      db.name = "db";
      db.image.name = service_image;
      db.image.pull = pull;
      job.services.push_back(db);
    }
    ContainerExecutor e(ContainerRuntime{runtime, false, ContainerGpuMode::kGpus}, job, "s");
    JobRunRequest req;
    for (size_t i = 0; i < steps; ++i) req.steps.push_back({"s", "true"});
    req.workdir = dir;
    CancelFlag cancel;
    REQUIRE(e.Prepare(req, absl::InfiniteFuture(), cancel, [](std::string_view) {}).ok());
    e.StepEnded(req.steps[0], by_itself, exit_code);
    e.Cleanup(req, [](std::string_view) {});
    // Sorted: the image checks and the network's creation run at the same time.
    std::ifstream in(calls);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    std::sort(lines.begin(), lines.end());
    std::string text;
    for (const std::string& line : lines) text += line + "\n";
    return text;
  };
  // One step, no network: image check, then nothing (the step's `run --rm` removed it).
  CHECK(run(false, 1, true, 1, false) == "image exists\n");
  // ... unless it was stopped, killed, or podman itself failed (125).
  CHECK(run(false, 1, false, 0, false) == "image exists\nrm --force\n");
  CHECK(run(false, 1, true, 125, false) == "image exists\nrm --force\n");
  // A job network: created, and one call removes it with every container on it.
  CHECK(run(true, 1, true, 0, false) == "image exists\nnetwork create\nnetwork rm\n");
  // Several steps: the waiting job container, the same one removal.
  CHECK(run(true, 2, true, 0, false) == "image exists\nnetwork create\nnetwork rm\nrun --detach\n");
  CHECK(run(false, 2, true, 0, false) == "image exists\nrm --force\nrun --detach\n");
  // A service: its image, its container on the network.
  CHECK(run(true, 1, true, 0, true) ==
        "image exists\nimage exists\nnetwork create\nnetwork rm\nrun --detach\n");
  // A service of the job's own image: checked once. Unless the service asks for a pull.
  CHECK(run(true, 1, true, 0, true, "localhost/py:3") ==
        "image exists\nnetwork create\nnetwork rm\nrun --detach\n");
  CHECK(run(true, 1, true, 0, true, "localhost/py:3", ContainerImageToRun::Pull::kAlways) ==
        "image exists\nnetwork create\nnetwork rm\npull --\nrun --detach\n");
  // The next job with the same runtime trusts what the last one found (the job's image and the
  // service's), unless it asks for a pull; a run that failed in the runtime (125) forgets the
  // job's image, so the job after it asks again.
  const auto kIfMissing = ContainerImageToRun::Pull::kIfMissing;
  CHECK(run(true, 1, true, 0, true, "localhost/py:3", kIfMissing, true) ==
        "network create\nnetwork rm\nrun --detach\n");
  CHECK(run(false, 1, true, 0, false, "", kIfMissing, true) == "");
  CHECK(run(false, 1, true, 125, false, "", kIfMissing, true) == "rm --force\n");
  CHECK(run(false, 1, true, 0, false, "", kIfMissing, true) == "image exists\n");
  CHECK(run(true, 1, true, 0, true, "localhost/db:1", ContainerImageToRun::Pull::kAlways, true) ==
        "network create\nnetwork rm\npull --\nrun --detach\n");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace assay
