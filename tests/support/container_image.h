#pragma once
// Container images for tests, made offline (issue 9): no test pulls from a registry.

#include <string>

#include "absl/status/statusor.h"

namespace assay::testing {

// The tag of the tests' busybox image: `FROM scratch` holding /bin/busybox (busybox-static,
// copied from the host's /bin/busybox) with a link for each of its applets in /bin, and an
// /etc/os-release whose ID is "assay-busybox". Built with podman on first use and cached by tag
// (later calls, and later test runs, find it with `podman image exists`). kFailedPrecondition
// when podman or /bin/busybox is missing (tests FAIL then, never skip: CI installs both).
absl::StatusOr<std::string> BusyboxImage();

// The absolute path of podman on PATH; kFailedPrecondition when it is not installed.
absl::StatusOr<std::string> PodmanPath();

}  // namespace assay::testing
