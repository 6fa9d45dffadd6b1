#pragma once
// A container registry on 127.0.0.1 for tests (issue 9, build_image): Debian's docker-registry
// (CNCF distribution) with htpasswd auth, storage under a test directory. Plain http on
// loopback: podman and buildah reach it through a registries.conf that marks it insecure
// (registries_conf(), handed to the agent as CONTAINERS_REGISTRIES_CONF).

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tests/support/process.h"

namespace assay::testing {

class TestRegistry {
 public:
  // Starts /usr/bin/docker-registry with its config, htpasswd file (bcrypt, as distribution
  // requires) and storage under `dir` (created), one account `user`/`password`, and waits (at
  // most 15 s) until GET /v2/ answers 401. kFailedPrecondition when docker-registry is not
  // installed (tests FAIL then: CI installs it).
  static absl::StatusOr<std::unique_ptr<TestRegistry>> Start(const std::string& dir,
                                                             const std::string& user,
                                                             const std::string& password);

  std::string host() const;  // "127.0.0.1:<port>"
  // A registries.conf (v2) with this registry as an insecure (http) location.
  const std::string& registries_conf() const { return registries_conf_; }
  // The digest of repository `repo`'s manifest `tag` as the registry serves it:
  // "sha256:" + sha256 of the manifest bytes (what Docker-Content-Digest says).
  // kNotFound when the registry answers 404.
  absl::StatusOr<std::string> ManifestDigest(const std::string& repo, const std::string& tag);

 private:
  TestRegistry() = default;
  std::string dir_, user_, password_, registries_conf_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace assay::testing
