#pragma once
// Kubernetes as a deployment target (docs/deployments.md "Kubernetes"). Each deployment's new
// version runs as its own Deployment, a *colour* named after the deployment
// (`<app>-<stamp>`, labels app=<app>, assay.dev/colour=<colour>), and traffic moves one of three
// ways, as the environment's `traffic` says:
//   service   blue-green: the Service <app> selects one colour; it switches at 100%.
//   replicas  canary by replica ratio: the Service <app> selects every colour of the app; the
//             new colour gets ceil(replicas × weight%) pods and the old one the rest (through
//             the Deployments' scale subresource).
//   gateway   canary by a Gateway API HTTPRoute <route> (attached to Gateway <gateway>) whose two
//             backendRefs, the colours' own Services <colour>, carry weight% and the rest.
// Objects are written by server-side apply (field manager "assay", forced), scaled through
// /scale, and deleted when a colour is retired: every call is idempotent, so a tick cut short
// is done again whole. The API server, its CA and the token are the server operator's
// (--kubernetes-api, --kubernetes-ca-file, --kubernetes-token-file); an environment names only
// a namespace and an app.

#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/deploy/target.h"

namespace assay::deploy {

struct KubernetesSpec {
  enum class Traffic { kService, kReplicas, kGateway };
  std::string ns, app;  // a DNS-1123 label each; the app also a DNS-1123 label prefix
  Traffic traffic = Traffic::kService;
  int replicas = 2;            // pods of a colour at full traffic, 1 to 100
  int port = 8080;             // the container's port, which the Services target
  std::string image;           // the serving image of model deployments (NAME@sha256:...); "" none
  std::string gateway, route;  // kGateway
};

// The environment's `target` object of kind "kubernetes"; kInvalidArgument "target.FIELD: ..."
// naming what is wrong.
absl::StatusOr<KubernetesSpec> ParseKubernetesTarget(const boost::json::object& target);
boost::json::object KubernetesTargetJson(const KubernetesSpec& spec);

// Which strategies a traffic mode can carry: `service` moves all at once (blue_green, or a
// canary whose weights are 0 and 100 only). kInvalidArgument naming the mode otherwise.
absl::Status CheckKubernetesStrategy(const KubernetesSpec& spec, const Strategy& strategy);

// What the new colour runs: an image deployment's image, or the environment's serving image
// with ASSAY_MODEL_NAME and ASSAY_MODEL_VERSION for a model version.
struct Workload {
  std::string image, model, deployment;
  std::optional<int> version;
};

// One call to the API server.
struct KubeCall {
  std::string method;        // PATCH, DELETE
  std::string path;          // /apis/apps/v1/namespaces/llm/deployments/bot-1a2b
  std::string content_type;  // application/apply-patch+yaml, application/merge-patch+json, ""
  std::string body;          // JSON ("" for DELETE)
};

// The calls that send `weight` percent of requests to colour `fresh` and the rest to `old` (""
// for none), in order: the gaining side first.
std::vector<KubeCall> RenderApply(const KubernetesSpec& spec, const Workload& workload, int weight,
                                  const std::string& fresh, const std::string& old);
// The calls that remove colour `colour` (its Deployment, and its Service in gateway mode).
std::vector<KubeCall> RenderRetire(const KubernetesSpec& spec, const std::string& colour);

// The objects RenderApply writes, as one YAML stream (for docs, `kubectl diff` and tests).
std::string RenderManifests(const std::vector<KubeCall>& calls);

// The operator's connection to a cluster.
struct KubernetesApi {
  std::string url;         // https://10.0.0.1:6443; "" none
  std::string token_file;  // read at each call (service account tokens rotate)
  std::string ca_file;     // the cluster's CA (PEM); "" the system's
  absl::Duration timeout = absl::Seconds(10);
};

// Sends `call`: OK on 2xx (and on 404 for a DELETE: already gone). kUnavailable naming the
// method, path and the API server's message (its Status object's `message`) otherwise.
absl::Status SendKubeCall(const KubernetesApi& api, const KubeCall& call);

class KubernetesTarget : public Target {
 public:
  // `workload` is read at each call. `api` and `workload` must outlive the target.
  KubernetesTarget(KubernetesSpec spec, const KubernetesApi* api, const Workload* workload)
      : spec_(std::move(spec)), api_(api), workload_(workload) {}

  // `fresh` and `old` hold one server each at most: the colour (its name).
  absl::Status Apply(int weight, const std::vector<TargetServer>& fresh,
                     const std::vector<TargetServer>& old, bool rolling) const override;
  absl::StatusOr<bool> Retire(const std::vector<TargetServer>& servers) const override;
  std::string Describe() const override;

 private:
  absl::Status Send(const std::vector<KubeCall>& calls) const;

  KubernetesSpec spec_;
  const KubernetesApi* api_;
  const Workload* workload_;
};

}  // namespace assay::deploy
