#pragma once
// Where a deployment moves traffic (docs/deployments.md "Targets"): HAProxy through its runtime
// API (server/deploy/haproxy.h), or a command target, a program of the server's deploy hooks
// told what to do. The controller asks a target for the same few things whatever it is, and
// asks again, with the same arguments, when a tick was cut short: every call is idempotent.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/deploy/spec.h"
#include "server/deploy/haproxy.h"
#include "server/deploy/hooks.h"

namespace assay::deploy {

class Target {
 public:
  virtual ~Target() = default;
  // What the target serves now, for a first deployment to an environment with no record of
  // what is live. A target that cannot tell (a command, Kubernetes) answers none.
  virtual absl::StatusOr<std::vector<HaproxyServer>> Present() const {
    return std::vector<HaproxyServer>();
  }
  // Sends `weight` percent of requests to `fresh` and the rest to `old` (`rolling`: by whole
  // servers rather than weights; see HaproxyTarget::Apply).
  virtual absl::Status Apply(int weight, const std::vector<TargetServer>& fresh,
                             const std::vector<TargetServer>& old, bool rolling) const = 0;
  // Takes `servers` out for good; false while that is not finished yet (call again later).
  virtual absl::StatusOr<bool> Retire(const std::vector<TargetServer>& servers) const = 0;
  // For messages: "haproxy backend 'llm'", "command target 'switch-traffic'".
  virtual std::string Describe() const = 0;
};

// A HAProxy backend through its runtime API.
class HaproxyBackendTarget : public Target {
 public:
  HaproxyBackendTarget(std::string runtime_api, std::string backend, const AddressPolicy* policy,
                       absl::Duration timeout)
      : runtime_(std::move(runtime_api), policy, timeout),
        haproxy_(&runtime_, std::move(backend)) {}
  HaproxyBackendTarget(const HaproxyBackendTarget&) = delete;
  HaproxyBackendTarget& operator=(const HaproxyBackendTarget&) = delete;

  absl::StatusOr<std::vector<HaproxyServer>> Present() const override {
    return runtime_.Servers(haproxy_.backend());
  }
  absl::Status Apply(int weight, const std::vector<TargetServer>& fresh,
                     const std::vector<TargetServer>& old, bool rolling) const override {
    return haproxy_.Apply(weight, fresh, old, rolling);
  }
  absl::StatusOr<bool> Retire(const std::vector<TargetServer>& servers) const override {
    return haproxy_.Retire(servers);
  }
  std::string Describe() const override;

 private:
  HaproxyRuntime runtime_;
  HaproxyTarget haproxy_;
};

// A program of the server's deploy hooks (server/deploy/hooks.h) that moves traffic however
// the operator's setup needs. Each call runs it once:
//   arguments: the configured ones, placeholders ({{version}}, {{environment}}, ...) replaced;
//   stdin:     {"action": "apply"|"retire", "weight": 25, "rolling": false,
//               "new": [{"name", "address"}], "old": [...], "environment", "deployment",
//               "version", "previous_version"}
//   env:       ASSAY_DEPLOY_ACTION, ASSAY_DEPLOY_WEIGHT, ASSAY_DEPLOY_ROLLING (0 or 1),
//              ASSAY_DEPLOY_NEW and ASSAY_DEPLOY_OLD (space-separated addresses),
//              ASSAY_ENVIRONMENT, ASSAY_DEPLOYMENT, ASSAY_VERSION, ASSAY_PREVIOUS_VERSION.
// A retire names the servers to take out as "old" (weight 0, "new" empty). Exit 0: done. A retire
// that must wait (connections still draining) exits 75 (EX_TEMPFAIL) and is asked again. Anything
// else is the target refusing: the controller pauses or retries with "command target 'NAME': exit
// 3: <its last line of stderr>".
class CommandTarget : public Target {
 public:
  // `context` is read at each call (the controller fills previous_version once it knows it).
  CommandTarget(const Hooks* hooks, std::vector<std::string> command, const Placeholders* context,
                absl::Duration timeout)
      : hooks_(hooks), command_(std::move(command)), context_(context), timeout_(timeout) {}

  absl::Status Apply(int weight, const std::vector<TargetServer>& fresh,
                     const std::vector<TargetServer>& old, bool rolling) const override;
  absl::StatusOr<bool> Retire(const std::vector<TargetServer>& servers) const override;
  std::string Describe() const override;

 private:
  // Runs the program; its exit code, or an error naming the target.
  absl::StatusOr<int> Call(const char* action, int weight, bool rolling,
                           const std::vector<TargetServer>& fresh,
                           const std::vector<TargetServer>& old) const;

  const Hooks* hooks_;
  std::vector<std::string> command_;
  const Placeholders* context_;
  absl::Duration timeout_;
};

inline constexpr int kHookTryAgain = 75;  // EX_TEMPFAIL

}  // namespace assay::deploy
