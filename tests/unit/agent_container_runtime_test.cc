// How the agent finds its container runtime and how it gives a container GPUs (issue 9):
// podman before docker on PATH, a configured name or path, docker's CLI by its name, and CDI
// (`--device nvidia.com/gpu=N`) only when a CDI spec names nvidia.com/gpu. Fake runtimes are
// empty executable files in a temporary directory; none is run.
#include <stdlib.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>

#include "agent/container_executor.h"
#include "tests/unit/artifact_test_util.h"

namespace assay {
namespace {

using testing::TempDir;
using testing::WriteFile;

void Executable(const std::string& path) {
  WriteFile(path, "#!/bin/sh\nexit 0\n");
  REQUIRE(chmod(path.c_str(), 0755) == 0);
}

// Sets PATH for its lifetime.
class ScopedPath {
 public:
  explicit ScopedPath(const std::string& value) {
    const char* old = getenv("PATH");
    had_ = old != nullptr;
    if (had_) old_ = old;
    setenv("PATH", value.c_str(), 1);
  }
  ~ScopedPath() {
    if (had_) {
      setenv("PATH", old_.c_str(), 1);
    } else {
      unsetenv("PATH");
    }
  }
  ScopedPath(const ScopedPath&) = delete;
  ScopedPath& operator=(const ScopedPath&) = delete;

 private:
  bool had_ = false;
  std::string old_;
};

TEST_CASE("container runtime: podman before docker on PATH, a name or a path, docker by its name",
          "[unit][container]") {
  TempDir t;
  const std::string both = t.path + "/both", docker_only = t.path + "/docker-only";
  Executable(both + "/podman");
  Executable(both + "/docker");
  Executable(docker_only + "/docker");
  WriteFile(t.path + "/plain/podman", "not executable");
  const std::vector<std::string> no_cdi = {t.path + "/no-such-cdi-dir"};

  {
    ScopedPath p(t.path + "/empty:" + both);
    absl::StatusOr<ContainerRuntime> rt = DetectContainerRuntime("", no_cdi);
    REQUIRE(rt.ok());
    CHECK(rt->path == both + "/podman");
    CHECK_FALSE(rt->docker);
    CHECK(rt->gpu_mode == ContainerGpuMode::kGpus);
    // A name is looked up on PATH.
    rt = DetectContainerRuntime("docker", no_cdi);
    REQUIRE(rt.ok());
    CHECK(rt->path == both + "/docker");
    CHECK(rt->docker);
  }
  {
    ScopedPath p(docker_only);
    absl::StatusOr<ContainerRuntime> rt = DetectContainerRuntime("", no_cdi);
    REQUIRE(rt.ok());
    CHECK(rt->path == docker_only + "/docker");
    CHECK(rt->docker);
    CHECK(DetectContainerRuntime("podman", no_cdi).status().message() ==
          "container runtime 'podman' not found");
  }
  {
    ScopedPath p(t.path + "/plain");
    absl::StatusOr<ContainerRuntime> rt = DetectContainerRuntime("", no_cdi);
    CHECK(rt.status().code() == absl::StatusCode::kNotFound);
    CHECK(rt.status().message() == "neither podman nor docker is on PATH");
  }
  // An absolute path is taken as it is, but must be executable.
  absl::StatusOr<ContainerRuntime> rt = DetectContainerRuntime(docker_only + "/docker", no_cdi);
  REQUIRE(rt.ok());
  CHECK(rt->path == docker_only + "/docker");
  CHECK(rt->docker);
  CHECK(DetectContainerRuntime(t.path + "/plain/podman", no_cdi).status().message() ==
        "container runtime '" + t.path + "/plain/podman' not found");
}

TEST_CASE("container runtime: CDI when a spec names nvidia.com/gpu, else --gpus",
          "[unit][container]") {
  TempDir t;
  const std::string podman = t.path + "/bin/podman";
  Executable(podman);
  const std::string empty = t.path + "/cdi-empty", other = t.path + "/cdi-other",
                    yaml = t.path + "/cdi-yaml", json = t.path + "/cdi-json";
  std::filesystem::create_directories(empty);
  WriteFile(other + "/amd.yaml", "cdiVersion: 0.5.0\nkind: amd.com/gpu\ndevices: []\n");
  WriteFile(yaml + "/nvidia.yaml", "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: []\n");
  WriteFile(json + "/nvidia.json", R"({"cdiVersion":"0.6.0","kind":"nvidia.com/gpu"})");
  auto mode = [&](const std::vector<std::string>& dirs) {
    absl::StatusOr<ContainerRuntime> rt = DetectContainerRuntime(podman, dirs);
    REQUIRE(rt.ok());
    return std::string(GpuModeName(rt->gpu_mode));
  };
  CHECK(mode({}) == "gpus");
  CHECK(mode({t.path + "/missing", empty}) == "gpus");
  CHECK(mode({other}) == "gpus");
  CHECK(mode({yaml}) == "cdi");
  CHECK(mode({json}) == "cdi");
  CHECK(mode({empty, other, json}) == "cdi");  // any of the directories
}

}  // namespace
}  // namespace assay
