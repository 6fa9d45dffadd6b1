#pragma once
// The deployment controller (docs/deployments.md): a thread in every server replica that takes
// due deployments one at a time under a lease (store::DeploymentStore::Claim) and carries out
// one tick of each: a person's request (pause, resume, promote, abort), the strategy's current
// step (a traffic weight on the target, a pause, an analysis), the background analysis, the
// promotion (traffic, the environment's live version and the registry alias, together), the
// watch after it, and rollbacks (traffic back to the stable servers and the alias back, as one
// audited action with its reason). Every target operation is idempotent, so a tick cut short
// by a crash is done again whole by whoever takes the lease next.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/clock.h"
#include "server/deploy/hooks.h"
#include "server/deploy/kubernetes.h"
#include "server/store/deployments.h"

namespace assay {
class AddressPolicy;
class Metrics;
}  // namespace assay

namespace assay::deploy {

struct ControllerOptions {
  std::string owner;  // this replica's name in leases ("host:pid")
  absl::Duration poll = absl::Milliseconds(200);
  absl::Duration lease = absl::Minutes(2);
  // A target or database error in a tick: tried again after this.
  absl::Duration retry = absl::Seconds(2);
  absl::Duration provider_timeout = absl::Seconds(5);  // one analysis measurement
  absl::Duration target_timeout = absl::Seconds(5);    // one HAProxy command
  // The operator's programs for command targets and job metrics (--deploy-hooks); empty: none.
  std::string hooks_dir;
  // The operator's Kubernetes API server for kubernetes targets (--kubernetes-api); url "": none.
  KubernetesApi kubernetes;
};

class Controller {
 public:
  // `policy` says where the server may connect (Prometheus, web providers, HAProxy's runtime
  // API): the server's --allow-private-hosts. `metrics` may be null. All must outlive this.
  Controller(store::DeploymentStore* store, const AddressPolicy* policy, const Clock* clock,
             Metrics* metrics, ControllerOptions options)
      : store_(store),
        policy_(policy),
        clock_(clock),
        metrics_(metrics),
        options_(std::move(options)),
        hooks_(options_.hooks_dir) {}
  ~Controller() { Stop(); }

  // Takes one due deployment and ticks it. false when none was due.
  absl::StatusOr<bool> TickOnce();

  void Start();
  void Stop();
  // Wakes the loop now (a deployment was created or asked for something).
  void Wake();

 private:
  absl::Status Tick(const store::Deployment& d, store::TickUpdate* u);

  store::DeploymentStore* store_;
  const AddressPolicy* policy_;
  const Clock* clock_;
  Metrics* metrics_;
  ControllerOptions options_;
  Hooks hooks_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool woken_ = false;
  std::thread thread_;
};

}  // namespace assay::deploy
