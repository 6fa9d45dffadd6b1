// `assay-agent --print-gpus` (issue 9): the GPUs the agent would announce and how a container
// would get them ("cdi": --device nvidia.com/gpu=N, "gpus": --gpus device=N, null: no container
// runtime), as one line of JSON, without a server or a work dir.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "common/proc/subprocess.h"
#include "tests/e2e/e2e.h"
#include "tests/support/container_image.h"

namespace assay::e2e {
namespace {

constexpr char kH200[] =
    R"({"gpus":[{"index":0,"uuid":"GPU-964672fc-6cf0-fc7b-0004-1057f80a90b1",)"
    R"("name":"NVIDIA H200","driver_version":"580.159.04","memory_total_mb":143771,)"
    R"("memory_used_mb":20085,"utilization_pct":100}])";

CommandResult PrintGpus(const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {
      std::string(ASSAY_BINARY_DIR) + "/agent/assay-agent", "--print-gpus", "--gpu-inventory",
      std::string(ASSAY_SOURCE_DIR) + "/tests/fixtures/gpu/h200-busy-query.csv"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return MUST(RunCommand(argv, {}, {}, {}, absl::Seconds(30)));
}

// Whether this machine has a CDI spec for NVIDIA GPUs where the agent looks (the rule under
// test in the unit tier, with directories of its own: here only the answer matters).
bool HostHasNvidiaCdi() {
  for (const char* dir : {"/etc/cdi", "/var/run/cdi"}) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      std::ifstream in(e.path());
      std::stringstream text;
      text << in.rdbuf();
      if (absl::StrContains(text.str(), "nvidia.com/gpu")) return true;
    }
  }
  return false;
}

TEST_CASE("assay-agent --print-gpus names the GPUs and how a container gets them",
          "[e2e][container]") {
  CommandResult none = PrintGpus({"--container-runtime", "none"});
  INFO(none.err);
  CHECK(none.exit_code == 0);
  CHECK(none.out == std::string(kH200) + R"(,"container_gpus":null})" + "\n");

  const std::string podman = MUST(testing::PodmanPath());
  CommandResult with_podman = PrintGpus({"--container-runtime", podman});
  INFO(with_podman.err);
  CHECK(with_podman.exit_code == 0);
  const std::string mode = HostHasNvidiaCdi() ? "cdi" : "gpus";
  CHECK(with_podman.out == std::string(kH200) + R"(,"container_gpus":")" + mode + "\"}\n");

  CommandResult missing = PrintGpus({"--container-runtime", "/nonexistent/podman"});
  CHECK(missing.exit_code == 2);
  CHECK(missing.out == "");
  CHECK(missing.err == "assay-agent: container runtime '/nonexistent/podman' not found\n");
}

}  // namespace
}  // namespace assay::e2e
