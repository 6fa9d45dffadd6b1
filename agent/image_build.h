#pragma once
// The `build_image:` step on the agent (issue 9, docs/images.md).
//
// A build step is a process on the agent's own machine, whatever executor runs the job's other
// steps: a fixed shell script (kBuildScript) that runs `buildah bud` (or `podman build` /
// `docker build` when there is no buildah), tags the image with the commit SHA and each listed
// tag and, with push, pushes every reference and writes one "assay: pushed REF@DIGEST" line
// per push. It runs through the step runner like any step: its own process group, the job's
// timeout and cancel, output into the job's (masked) log. Every value reaches the script as a
// positional argument, never as shell text.
//
// Credentials: the step's registry_secret (one of Assignment.secrets, "user:password") becomes
// an auth file of mode 0600 in a private directory of the agent's (0700), named on the command
// line by its path only (--authfile, docker's --config); the directory is removed when the
// ImageBuilds is destroyed. An untrusted pipeline never gets the secret: a push step of one
// fails before anything is built (Command prints why).
//
// The tools see the agent's PATH, HOME, LANG, TZ, TMPDIR, XDG_RUNTIME_DIR and CONTAINERS_CONF,
// CONTAINERS_REGISTRIES_CONF, CONTAINERS_STORAGE_CONF (an operator's registries.conf, e.g. for
// an insecure loopback registry), never the job's variables.

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/container_executor.h"
#include "agent/executor.h"
#include "assay/v1/agent.pb.h"

namespace assay {

// The builder: buildah when found, else the container runtime's own `build`.
struct ImageBuildTool {
  enum class Kind { kNone, kBuildah, kPodman, kDocker } kind = Kind::kNone;
  std::string path;
};

// buildah on `path_env`, else `runtime` (podman or docker), else kNone.
ImageBuildTool FindImageBuildTool(const std::optional<ContainerRuntime>& runtime,
                                  const std::string& path_env);

// The script every build step runs (`/bin/sh -e -c kBuildScript assay-build-image ARGS`).
extern const char* const kBuildScript;

// The references one step tags, primary first: each listed tag's repository with the commit
// SHA as its tag (tags[0]'s first), then each listed tag that names a tag of its own.
std::vector<std::string> BuildReferences(const v1::BuildImageStep& step,
                                         const std::string& commit_sha);

// The registry (host[:port]) of a reference; "docker.io" when it names none.
std::string RegistryHost(const std::string& reference);

// The auth file for `registries`, each with `user:password` (split at the first ':'):
// {"auths":{"HOST":{"auth":"<base64 of user:password>"}}}. kInvalidArgument without a ':'.
absl::StatusOr<std::string> AuthFileText(const std::vector<std::string>& registries,
                                         const std::string& user_password);

class ImageBuilds {
 public:
  // `workspace` is the job's checkout; `private_dir` a path of the agent's, outside the
  // workspace, that does not exist yet (made 0700 on first use). `a` must outlive this.
  ImageBuilds(const v1::Assignment& a, std::string workspace, std::string private_dir,
              ImageBuildTool tool);
  ~ImageBuilds();  // removes private_dir
  ImageBuilds(const ImageBuilds&) = delete;
  ImageBuilds& operator=(const ImageBuilds&) = delete;

  // The process of a.steps(step_index) (a build step). Problems the user can fix (no builder,
  // a missing Containerfile, a context that leads out of the workspace through a symlink, a
  // push in an untrusted pipeline, a missing or malformed secret) give a process that prints
  // "assay: build_image: <problem>" and exits 1, so the job fails with the reason in its log.
  // Errors: kInternal when the private directory or auth file cannot be written.
  absl::StatusOr<StepProcess> Command(size_t step_index);

  // What the build steps that ran pushed, in push order (from their digest files).
  std::vector<v1::BuiltImage> Pushed() const;

  // Why build step `step_index` failed, for the job's message: the refusal ("build_image:
  // <problem>"), or what its script wrote ("build_image: build of REF failed (exit status N):
  // <the tool's last line>", "build_image: push of REF to registry HOST failed (exit status N):
  // <the registry's answer as the tool gave it>"); "" when it did not say (killed, or it did not
  // run). One line of at most 1,000 characters.
  std::string FailureReason(size_t step_index) const;

 private:
  StepProcess Refuse(size_t step_index, const std::string& problem);

  const v1::Assignment& a_;
  const std::string workspace_;
  const std::string private_dir_;
  const ImageBuildTool tool_;
  struct Started {
    size_t step_index;
    std::vector<std::string> references;
    std::string digest_dir;
  };
  std::vector<Started> started_;
  std::map<size_t, std::string> reasons_;       // refusals, by step index
  std::map<size_t, std::string> reason_files_;  // where each started script says why it failed
};

}  // namespace assay
