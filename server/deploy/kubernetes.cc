#include "server/deploy/kubernetes.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <boost/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/net/https_client.h"

namespace assay::deploy {
namespace {

namespace json = boost::json;

constexpr char kName[] = "app.kubernetes.io/name";
constexpr char kManagedBy[] = "app.kubernetes.io/managed-by";
constexpr char kColour[] = "assay.dev/colour";
constexpr char kApply[] = "application/apply-patch+yaml";
constexpr char kMerge[] = "application/merge-patch+json";

absl::Status Bad(std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("target.", std::string(field), ": ", std::string(what)));
}

// RFC 1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most `max` characters.
bool Label(std::string_view s, size_t max = 63) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return false;
    }
  }
  return s.front() != '-' && s.back() != '-';
}

absl::StatusOr<std::string> Str(const json::object& t, const char* key, bool required,
                                size_t max_label) {
  const json::value* v = t.if_contains(key);
  if (v == nullptr) {
    if (required) return Bad(key, "is required");
    return std::string();
  }
  if (!v->is_string() || !Label(v->as_string(), max_label)) {
    return Bad(key, absl::StrCat("must be a DNS label: 1 to ", max_label,
                                 " of a-z 0-9 -, starting and ending with a letter or digit"));
  }
  return std::string(v->as_string());
}

absl::StatusOr<int> Int(const json::object& t, const char* key, int def, int lo, int hi) {
  const json::value* v = t.if_contains(key);
  if (v == nullptr) return def;
  if (!v->is_int64() || v->as_int64() < lo || v->as_int64() > hi) {
    return Bad(key, absl::StrCat("must be an integer from ", lo, " to ", hi));
  }
  return static_cast<int>(v->as_int64());
}

json::object Labels(const KubernetesSpec& s, const std::string& colour) {
  json::object l{{kName, s.app}, {kManagedBy, "assay"}};
  if (!colour.empty()) l[kColour] = colour;
  return l;
}

json::object Selector(const KubernetesSpec& s, const std::string& colour) {
  json::object l{{kName, s.app}};
  if (!colour.empty()) l[kColour] = colour;
  return l;
}

KubeCall ApplyCall(const std::string& path, const json::object& object) {
  return {"PATCH", absl::StrCat(path, "?fieldManager=assay&force=true"), kApply,
          json::serialize(object)};
}

std::string Deployments(const KubernetesSpec& s) {
  return absl::StrCat("/apis/apps/v1/namespaces/", s.ns, "/deployments/");
}
std::string Services(const KubernetesSpec& s) {
  return absl::StrCat("/api/v1/namespaces/", s.ns, "/services/");
}
std::string Routes(const KubernetesSpec& s) {
  return absl::StrCat("/apis/gateway.networking.k8s.io/v1/namespaces/", s.ns, "/httproutes/");
}

KubeCall DeploymentCall(const KubernetesSpec& s, const Workload& w, const std::string& colour,
                        int replicas) {
  json::array env{json::object{{"name", "ASSAY_DEPLOYMENT"}, {"value", w.deployment}}};
  if (!w.model.empty()) {
    env.push_back(json::object{{"name", "ASSAY_MODEL_NAME"}, {"value", w.model}});
    env.push_back(json::object{{"name", "ASSAY_MODEL_VERSION"},
                               {"value", w.version ? std::to_string(*w.version) : ""}});
  }
  json::object container{
      {"name", "server"},
      {"image", w.image},
      {"ports", json::array{json::object{{"name", "http"}, {"containerPort", s.port}}}},
      {"env", std::move(env)},
      {"volumeMounts", json::array{json::object{{"name", "tmp"}, {"mountPath", "/tmp"}}}},
      {"securityContext", json::object{{"allowPrivilegeEscalation", false},
                                       {"readOnlyRootFilesystem", true},
                                       {"capabilities", json::object{{"drop", {"ALL"}}}}}}};
  json::object pod{
      {"automountServiceAccountToken", false},
      {"securityContext",
       json::object{{"runAsNonRoot", true},
                    {"seccompProfile", json::object{{"type", "RuntimeDefault"}}}}},
      {"containers", json::array{std::move(container)}},
      {"volumes", json::array{json::object{{"name", "tmp"}, {"emptyDir", json::object()}}}}};
  json::object tmpl{{"metadata", json::object{{"labels", Labels(s, colour)}}},
                    {"spec", std::move(pod)}};
  json::object spec{{"replicas", replicas},
                    {"selector", json::object{{"matchLabels", Selector(s, colour)}}},
                    {"template", std::move(tmpl)}};
  json::object d{
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata",
       json::object{{"name", colour}, {"namespace", s.ns}, {"labels", Labels(s, colour)}}},
      {"spec", std::move(spec)}};
  return ApplyCall(Deployments(s) + colour, d);
}

KubeCall ServiceCall(const KubernetesSpec& s, const std::string& name, const std::string& colour) {
  json::object svc{
      {"apiVersion", "v1"},
      {"kind", "Service"},
      {"metadata", json::object{{"name", name}, {"namespace", s.ns}, {"labels", Labels(s, "")}}},
      {"spec",
       json::object{{"selector", Selector(s, colour)},
                    {"ports", json::array{json::object{
                                  {"name", "http"}, {"port", s.port}, {"targetPort", "http"}}}}}}};
  return ApplyCall(Services(s) + name, svc);
}

KubeCall ScaleCall(const KubernetesSpec& s, const std::string& colour, int replicas) {
  return {"PATCH", Deployments(s) + colour + "/scale", kMerge,
          json::serialize(json::object{{"spec", json::object{{"replicas", replicas}}}})};
}

}  // namespace

absl::StatusOr<KubernetesSpec> ParseKubernetesTarget(const json::object& t) {
  static const char* kFields[] = {"kind", "namespace", "app",     "traffic", "replicas",
                                  "port", "image",     "gateway", "route"};
  for (const auto& kv : t) {
    bool known = false;
    for (const char* f : kFields) known = known || kv.key() == f;
    if (!known) {
      return Bad(std::string(kv.key()),
                 "unknown field (expected namespace, app, traffic, replicas, port, image, "
                 "gateway, route)");
    }
  }
  KubernetesSpec s;
  auto ns = Str(t, "namespace", true, 63);
  if (!ns.ok()) return ns.status();
  s.ns = *ns;
  // The colours are <app>-<8 digits>: a DNS label of at most 63.
  auto app = Str(t, "app", true, 40);
  if (!app.ok()) return app.status();
  s.app = *app;
  const json::value* traffic = t.if_contains("traffic");
  const std::string mode = traffic == nullptr     ? "service"
                           : traffic->is_string() ? std::string(traffic->as_string())
                                                  : "";
  if (mode == "service") {
    s.traffic = KubernetesSpec::Traffic::kService;
  } else if (mode == "replicas") {
    s.traffic = KubernetesSpec::Traffic::kReplicas;
  } else if (mode == "gateway") {
    s.traffic = KubernetesSpec::Traffic::kGateway;
  } else {
    return Bad("traffic",
               "must be service (blue-green by the Service's selector), replicas "
               "(canary by replica ratio) or gateway (canary by HTTPRoute weights)");
  }
  auto replicas = Int(t, "replicas", 2, 1, 100);
  if (!replicas.ok()) return replicas.status();
  s.replicas = *replicas;
  auto port = Int(t, "port", 8080, 1, 65535);
  if (!port.ok()) return port.status();
  s.port = *port;
  if (const json::value* i = t.if_contains("image")) {
    if (!i->is_string() || !ImageByDigest(i->as_string())) {
      return Bad("image", "must be an image by digest: NAME@sha256:<64 hex>");
    }
    s.image = std::string(i->as_string());
  }
  const bool gw = s.traffic == KubernetesSpec::Traffic::kGateway;
  auto gateway = Str(t, "gateway", gw, 63);
  if (!gateway.ok()) return gateway.status();
  auto route = Str(t, "route", gw, 63);
  if (!route.ok()) return route.status();
  if (!gw && (!gateway->empty() || !route->empty())) {
    return Bad(gateway->empty() ? "route" : "gateway", "goes with traffic: gateway only");
  }
  s.gateway = *gateway;
  s.route = *route;
  return s;
}

json::object KubernetesTargetJson(const KubernetesSpec& s) {
  json::object o{{"kind", "kubernetes"},
                 {"namespace", s.ns},
                 {"app", s.app},
                 {"traffic", s.traffic == KubernetesSpec::Traffic::kService    ? "service"
                             : s.traffic == KubernetesSpec::Traffic::kReplicas ? "replicas"
                                                                               : "gateway"},
                 {"replicas", s.replicas},
                 {"port", s.port}};
  if (!s.image.empty()) o["image"] = s.image;
  if (!s.gateway.empty()) o["gateway"] = s.gateway;
  if (!s.route.empty()) o["route"] = s.route;
  return o;
}

absl::Status CheckKubernetesStrategy(const KubernetesSpec& spec, const Strategy& strategy) {
  if (spec.traffic != KubernetesSpec::Traffic::kService) return absl::OkStatus();
  if (strategy.kind == StrategyKind::kRolling) {
    return absl::InvalidArgumentError(
        "strategy: the environment's kubernetes target switches its Service all at once "
        "(traffic: service); use blue_green, or traffic: replicas or gateway for canary and "
        "rolling steps");
  }
  for (const Step& step : strategy.steps) {
    if (step.kind == Step::Kind::kWeight && step.weight != 0 && step.weight != 100) {
      return absl::InvalidArgumentError(absl::StrCat(
          "strategy: weight ", step.weight,
          " cannot be carried by the environment's kubernetes target, which switches its Service "
          "all at once (traffic: service); use blue_green, or traffic: replicas or gateway"));
    }
  }
  return absl::OkStatus();
}

std::vector<KubeCall> RenderApply(const KubernetesSpec& s, const Workload& w, int weight,
                                  const std::string& fresh, const std::string& old) {
  // With nothing stable to share with, all requests go to the new colour.
  if (old.empty()) weight = 100;
  weight = std::clamp(weight, 0, 100);
  std::vector<KubeCall> calls;
  switch (s.traffic) {
    case KubernetesSpec::Traffic::kService:
      calls.push_back(DeploymentCall(s, w, fresh, s.replicas));
      calls.push_back(ServiceCall(s, s.app, weight >= 100 ? fresh : old));
      break;
    case KubernetesSpec::Traffic::kReplicas: {
      const int fresh_n = (s.replicas * weight + 99) / 100;
      const int old_n = s.replicas - (s.replicas * weight) / 100;
      // The side that gains first: the new colour on the way up, the old one on the way back.
      if (weight == 0 && !old.empty()) calls.push_back(ScaleCall(s, old, old_n));
      calls.push_back(DeploymentCall(s, w, fresh, fresh_n));
      calls.push_back(ServiceCall(s, s.app, ""));
      if (weight > 0 && !old.empty()) calls.push_back(ScaleCall(s, old, old_n));
      break;
    }
    case KubernetesSpec::Traffic::kGateway: {
      calls.push_back(DeploymentCall(s, w, fresh, s.replicas));
      calls.push_back(ServiceCall(s, fresh, fresh));
      json::array backends{json::object{{"name", fresh}, {"port", s.port}, {"weight", weight}}};
      if (!old.empty()) {
        backends.push_back(json::object{{"name", old}, {"port", s.port}, {"weight", 100 - weight}});
      }
      json::object route{
          {"apiVersion", "gateway.networking.k8s.io/v1"},
          {"kind", "HTTPRoute"},
          {"metadata",
           json::object{{"name", s.route}, {"namespace", s.ns}, {"labels", Labels(s, "")}}},
          {"spec",
           json::object{
               {"parentRefs", json::array{json::object{{"name", s.gateway}}}},
               {"rules", json::array{json::object{{"backendRefs", std::move(backends)}}}}}}};
      calls.push_back(ApplyCall(Routes(s) + s.route, route));
      break;
    }
  }
  return calls;
}

std::vector<KubeCall> RenderRetire(const KubernetesSpec& s, const std::string& colour) {
  std::vector<KubeCall> calls{{"DELETE", Deployments(s) + colour, "", ""}};
  if (s.traffic == KubernetesSpec::Traffic::kGateway) {
    calls.push_back({"DELETE", Services(s) + colour, "", ""});
  }
  return calls;
}

std::string RenderManifests(const std::vector<KubeCall>& calls) {
  std::string out;
  for (const KubeCall& c : calls) {
    if (c.content_type != kApply) continue;
    // JSON is YAML: one document per object.
    absl::StrAppend(&out, "---\n", c.body, "\n");
  }
  return out;
}

absl::Status SendKubeCall(const KubernetesApi& api, const KubeCall& call) {
  if (api.url.empty()) {
    return absl::FailedPreconditionError(
        "the server has no Kubernetes API server: its operator must start it with "
        "--kubernetes-api URL (and --kubernetes-token-file, --kubernetes-ca-file)");
  }
  std::vector<std::pair<std::string, std::string>> headers = {{"Accept", "application/json"}};
  if (!call.content_type.empty()) headers.emplace_back("Content-Type", call.content_type);
  if (!api.token_file.empty()) {
    std::ifstream in(api.token_file, std::ios::binary);
    std::stringstream token;
    token << in.rdbuf();
    if (!in.good() && !in.eof()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read the Kubernetes token file ", api.token_file));
    }
    std::string t(absl::StripAsciiWhitespace(token.str()));
    if (t.empty() || t.size() > 64 * 1024 || t.find_first_of("\r\n") != std::string::npos) {
      return absl::FailedPreconditionError(
          absl::StrCat("the Kubernetes token file ", api.token_file, " holds no usable token"));
    }
    headers.emplace_back("Authorization", absl::StrCat("Bearer ", t));
  }
  std::string base = api.url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  TlsClientOptions tls;
  tls.ca_file = api.ca_file;
  auto r = FetchHttpOrHttps(call.method, base + call.path, headers, call.body, api.timeout, tls);
  const std::string what = absl::StrCat(call.method, " ", call.path.substr(0, call.path.find('?')));
  if (!r.ok()) {
    return absl::UnavailableError(absl::StrCat("kubernetes: ", what, ": ", r.status().message()));
  }
  if ((r->status >= 200 && r->status < 300) || (call.method == "DELETE" && r->status == 404)) {
    return absl::OkStatus();
  }
  std::string said;
  boost::system::error_code ec;
  json::value v = json::parse(r->body, ec);
  if (!ec && v.is_object() && v.as_object().if_contains("message") &&
      v.as_object().at("message").is_string()) {
    said = std::string(v.as_object().at("message").as_string());
  } else {
    said = r->body.substr(0, 200);
  }
  if (said.size() > 300) said.resize(300);
  for (char& c : said) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  return absl::UnavailableError(
      absl::StrCat("kubernetes: ", what, " answered HTTP ", r->status, ": ", said));
}

absl::Status KubernetesTarget::Send(const std::vector<KubeCall>& calls) const {
  for (const KubeCall& c : calls) {
    if (absl::Status s = SendKubeCall(*api_, c); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status KubernetesTarget::Apply(int weight, const std::vector<TargetServer>& fresh,
                                     const std::vector<TargetServer>& old, bool) const {
  if (fresh.size() > 1 || old.size() > 1) {
    return absl::FailedPreconditionError(
        "a kubernetes target moves traffic between two colours, not between lists of servers");
  }
  if (workload_ == nullptr || workload_->image.empty()) {
    return absl::FailedPreconditionError(
        "the environment's kubernetes target has no image for a model version: set its "
        "target.image, the model server image");
  }
  if (fresh.empty()) {
    // A cleanup of stale servers: a kubernetes target has none it does not know.
    return absl::OkStatus();
  }
  return Send(RenderApply(spec_, *workload_, weight, fresh[0].name,
                          old.empty() ? std::string() : old[0].name));
}

absl::StatusOr<bool> KubernetesTarget::Retire(const std::vector<TargetServer>& servers) const {
  for (const TargetServer& s : servers) {
    if (absl::Status st = Send(RenderRetire(spec_, s.name)); !st.ok()) return st;
  }
  return true;
}

std::string KubernetesTarget::Describe() const {
  return absl::StrCat("kubernetes ", spec_.ns, "/", spec_.app);
}

}  // namespace assay::deploy
