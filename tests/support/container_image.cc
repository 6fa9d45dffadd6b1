#include "tests/support/container_image.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/proc/spawn.h"
#include "common/proc/subprocess.h"

namespace assay::testing {
namespace {

// Bump when the image's content changes.
constexpr char kBusyboxTag[] = "localhost/assay-test-busybox:2";

}  // namespace

absl::StatusOr<std::string> PodmanPath() {
  const char* path = getenv("PATH");
  absl::StatusOr<std::string> found =
      FindExecutable("podman", path != nullptr ? path : "/usr/bin:/bin");
  if (!found.ok()) {
    return absl::FailedPreconditionError(
        "podman is not installed: the container tests need it (deploy/lib/deps.sh installs it)");
  }
  return found;
}

absl::StatusOr<std::string> BusyboxImage() {
  absl::StatusOr<std::string> podman = PodmanPath();
  if (!podman.ok()) return podman.status();
  absl::StatusOr<CommandResult> exists =
      RunCommand({*podman, "--log-level=error", "image", "exists", kBusyboxTag}, {}, {}, {},
                 absl::Seconds(60));
  if (!exists.ok()) return exists.status();
  if (exists->exit_code == 0) return std::string(kBusyboxTag);
  if (access("/bin/busybox", X_OK) != 0) {
    return absl::FailedPreconditionError("/bin/busybox is missing: install busybox-static");
  }
  char dir_template[] = "/tmp/assay-busybox-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return absl::InternalError("mkdtemp failed");
  const std::string dir = dir_template;
  const std::string root = dir + "/rootfs";
  for (const std::string& d : {root, root + "/bin", root + "/etc", root + "/tmp"}) {
    mkdir(d.c_str(), d.size() > 4 && d.substr(d.size() - 4) == "/tmp" ? 01777 : 0755);
  }
  chmod((root + "/tmp").c_str(), 01777);
  absl::StatusOr<CommandResult> copied =
      RunCommand({"cp", "/bin/busybox", root + "/bin/busybox"}, {}, {}, {}, absl::Seconds(30));
  if (!copied.ok() || copied->exit_code != 0) return absl::InternalError("cannot copy busybox");
  absl::StatusOr<CommandResult> applets =
      RunCommand({"/bin/busybox", "--list"}, {}, {}, {}, absl::Seconds(30));
  if (!applets.ok() || applets->exit_code != 0) {
    return absl::InternalError("busybox --list failed");
  }
  for (absl::string_view applet : absl::StrSplit(applets->out, '\n', absl::SkipWhitespace())) {
    if (applet == "busybox") continue;
    const std::string link = absl::StrCat(root, "/bin/", std::string(applet));
    if (symlink("busybox", link.c_str()) != 0 && errno != EEXIST) {
      return absl::InternalError(absl::StrCat("symlink ", link));
    }
  }
  {
    std::ofstream os(root + "/etc/os-release");
    os << "ID=assay-busybox\nNAME=\"Assay test busybox\"\n";
    std::ofstream passwd(root + "/etc/passwd");
    passwd << "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
    std::ofstream group(root + "/etc/group");
    group << "root:x:0:\nnogroup:x:65534:\n";
    std::ofstream file(dir + "/Containerfile");
    file << "FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\nCMD [\"/bin/sh\"]\n";
  }
  absl::StatusOr<CommandResult> built =
      RunCommand({*podman, "--log-level=error", "build", "--pull=never", "--tag", kBusyboxTag,
                  "--file", dir + "/Containerfile", dir},
                 {}, {}, {}, absl::Minutes(5));
  RunCommand({"rm", "-rf", dir}, {}, {}, {}, absl::Seconds(60)).IgnoreError();
  if (!built.ok()) return built.status();
  if (built->exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("podman build of ", kBusyboxTag, " failed: ", built->err));
  }
  return std::string(kBusyboxTag);
}

}  // namespace assay::testing
