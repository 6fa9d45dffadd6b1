// The Kubernetes target (server/deploy/kubernetes.h): the environment's target checked field by
// field, the exact API calls each traffic mode makes for a weight, and the calls sent to a
// local API server stand-in that records them (no Kubernetes API server runs here).
#include <stdlib.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <deque>
#include <fstream>
#include <mutex>

#include <boost/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/proc/subprocess.h"
#include "server/deploy/kubernetes.h"
#include "server/http/http_server.h"
#include "tests/support/recording_server.h"

namespace assay::deploy {
namespace {

namespace json = boost::json;

const std::string kImage = "registry.example.com/acme/llm@sha256:" + std::string(64, 'a');

KubernetesSpec Spec(const std::string& text) {
  auto s = ParseKubernetesTarget(json::parse(text).as_object());
  INFO(text << " -> " << s.status().ToString());
  REQUIRE(s.ok());
  return *s;
}

std::string Err(const std::string& text) {
  auto s = ParseKubernetesTarget(json::parse(text).as_object());
  return s.ok() ? "ok" : std::string(s.status().message());
}

// "METHOD PATH CONTENT-TYPE" per call.
std::vector<std::string> Lines(const std::vector<KubeCall>& calls) {
  std::vector<std::string> out;
  for (const KubeCall& c : calls)
    out.push_back(absl::StrCat(c.method, " ", c.path, " ", c.content_type));
  return out;
}

TEST_CASE("kubernetes target: fields, defaults and refusals", "[deploy][kubernetes]") {
  KubernetesSpec s = Spec(R"({"kind": "kubernetes", "namespace": "llm", "app": "bot"})");
  CHECK(s.ns == "llm");
  CHECK(s.app == "bot");
  CHECK(s.traffic == KubernetesSpec::Traffic::kService);
  CHECK(s.replicas == 2);
  CHECK(s.port == 8080);
  CHECK(
      json::serialize(KubernetesTargetJson(s)) ==
      R"({"kind":"kubernetes","namespace":"llm","app":"bot","traffic":"service","replicas":2,"port":8080})");
  KubernetesSpec g = Spec(absl::StrCat(
      R"({"kind": "kubernetes", "namespace": "llm", "app": "bot", "traffic": "gateway",
          "gateway": "edge", "route": "bot", "replicas": 3, "port": 8000, "image": ")",
      kImage, R"("})"));
  CHECK(g.traffic == KubernetesSpec::Traffic::kGateway);
  CHECK(g.image == kImage);
  CHECK(g.gateway == "edge");

  const std::string base = R"({"kind": "kubernetes", "namespace": "llm", "app": "bot", )";
  const std::string label = " of a-z 0-9 -, starting and ending with a letter or digit";
  CHECK(Err(R"({"kind": "kubernetes", "app": "bot"})") == "target.namespace: is required");
  CHECK(Err(R"({"kind": "kubernetes", "namespace": "../kube-system", "app": "bot"})") ==
        "target.namespace: must be a DNS label: 1 to 63" + label);
  CHECK(Err(R"({"kind": "kubernetes", "namespace": "LLM", "app": "bot"})") ==
        "target.namespace: must be a DNS label: 1 to 63" + label);
  CHECK(Err(absl::StrCat(R"({"kind": "kubernetes", "namespace": "llm", "app": ")",
                         std::string(41, 'a'), R"("})")) ==
        "target.app: must be a DNS label: 1 to 40" + label);
  CHECK(Err(base + R"("app": "bot-"})") == "target.app: must be a DNS label: 1 to 40" + label);
  CHECK(Err(base + R"("traffic": "mesh"})") ==
        "target.traffic: must be service (blue-green by the Service's selector), replicas "
        "(canary by replica ratio) or gateway (canary by HTTPRoute weights)");
  CHECK(Err(base + R"("replicas": 0})") == "target.replicas: must be an integer from 1 to 100");
  CHECK(Err(base + R"("replicas": 101})") == "target.replicas: must be an integer from 1 to 100");
  CHECK(Err(base + R"("port": 70000})") == "target.port: must be an integer from 1 to 65535");
  CHECK(Err(base + R"("image": "registry.example.com/acme/llm:latest"})") ==
        "target.image: must be an image by digest: NAME@sha256:<64 hex>");
  CHECK(Err(absl::StrCat(base, R"("image": "a\"b@sha256:)", std::string(64, 'a'), R"("})")) ==
        "target.image: must be an image by digest: NAME@sha256:<64 hex>");
  CHECK(Err(base + R"("traffic": "gateway", "route": "bot"})") == "target.gateway: is required");
  CHECK(Err(base + R"("traffic": "gateway", "gateway": "edge"})") == "target.route: is required");
  CHECK(Err(base + R"("route": "bot"})") == "target.route: goes with traffic: gateway only");
  CHECK(Err(base + R"("api_server": "https://evil.example.com"})") ==
        "target.api_server: unknown field (expected namespace, app, traffic, replicas, port, "
        "image, gateway, route)");
}

TEST_CASE("kubernetes target: a Service switches all at once, so it carries blue-green only",
          "[deploy][kubernetes]") {
  auto strategy = [](const std::string& text) {
    auto s = ParseStrategy(json::parse(text), "strategy");
    REQUIRE(s.ok());
    return *s;
  };
  const KubernetesSpec service = Spec(R"({"kind": "kubernetes", "namespace": "n", "app": "a"})");
  const KubernetesSpec replicas =
      Spec(R"({"kind": "kubernetes", "namespace": "n", "app": "a", "traffic": "replicas"})");
  CHECK(CheckKubernetesStrategy(service, strategy(R"({"blue_green": {}})")).ok());
  CHECK(CheckKubernetesStrategy(service, strategy(R"({"canary": {"steps": [{"weight": 100}]}})"))
            .ok());
  CHECK(CheckKubernetesStrategy(service, strategy(R"({"canary": {"steps": [{"weight": 10}]}})"))
            .message() ==
        "strategy: weight 10 cannot be carried by the environment's kubernetes target, which "
        "switches its Service all at once (traffic: service); use blue_green, or traffic: "
        "replicas or gateway");
  CHECK(!CheckKubernetesStrategy(service, strategy(R"({"rolling": {"batch": "25%"}})")).ok());
  CHECK(CheckKubernetesStrategy(replicas, strategy(R"({"canary": {"steps": [{"weight": 10}]}})"))
            .ok());
}

TEST_CASE("kubernetes target: the calls of each traffic mode", "[deploy][kubernetes]") {
  const Workload model{kImage, "bot", "12", 3};
  SECTION("service: the new colour at full size, the Service on the old one until 100%") {
    const KubernetesSpec s = Spec(R"({"kind": "kubernetes", "namespace": "llm", "app": "bot"})");
    auto calls = RenderApply(s, model, 0, "bot-2", "bot-1");
    CHECK(Lines(calls) ==
          std::vector<std::string>{
              "PATCH /apis/apps/v1/namespaces/llm/deployments/bot-2?fieldManager=assay&force=true "
              "application/apply-patch+yaml",
              "PATCH /api/v1/namespaces/llm/services/bot?fieldManager=assay&force=true "
              "application/apply-patch+yaml"});
    CHECK(json::parse(calls[0].body) == json::parse(absl::StrCat(R"({
      "apiVersion": "apps/v1", "kind": "Deployment",
      "metadata": {"name": "bot-2", "namespace": "llm", "labels": {"app.kubernetes.io/name": "bot",
        "app.kubernetes.io/managed-by": "assay", "assay.dev/colour": "bot-2"}},
      "spec": {"replicas": 2,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "bot", "assay.dev/colour": "bot-2"}},
        "template": {
          "metadata": {"labels": {"app.kubernetes.io/name": "bot",
            "app.kubernetes.io/managed-by": "assay", "assay.dev/colour": "bot-2"}},
          "spec": {"automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "server", "image": ")",
                                                                 kImage, R"(",
              "ports": [{"name": "http", "containerPort": 8080}],
              "env": [{"name": "ASSAY_DEPLOYMENT", "value": "12"},
                      {"name": "ASSAY_MODEL_NAME", "value": "bot"},
                      {"name": "ASSAY_MODEL_VERSION", "value": "3"}],
              "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
              "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]}}}],
            "volumes": [{"name": "tmp", "emptyDir": {}}]}}}})")));
    CHECK(json::parse(calls[1].body) == json::parse(R"({"apiVersion": "v1", "kind": "Service",
      "metadata": {"name": "bot", "namespace": "llm", "labels": {"app.kubernetes.io/name": "bot",
        "app.kubernetes.io/managed-by": "assay"}},
      "spec": {"selector": {"app.kubernetes.io/name": "bot", "assay.dev/colour": "bot-1"},
        "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]}})"));
    auto promoted = RenderApply(s, model, 100, "bot-2", "bot-1");
    CHECK(json::parse(promoted[1].body).at("spec").at("selector") ==
          json::parse(R"({"app.kubernetes.io/name": "bot", "assay.dev/colour": "bot-2"})"));
    // No stable colour yet: the Service takes the new one at once.
    auto first = RenderApply(s, model, 0, "bot-2", "");
    CHECK(json::parse(first[1].body).at("spec").at("selector").at("assay.dev/colour") == "bot-2");
  }
  SECTION("replicas: pods in proportion, the gaining side first") {
    const KubernetesSpec s = Spec(
        R"({"kind": "kubernetes", "namespace": "llm", "app": "bot", "traffic": "replicas", "replicas": 4})");
    const Workload image{kImage, "", "13", std::nullopt};
    auto up = RenderApply(s, image, 10, "bot-2", "bot-1");
    CHECK(Lines(up) ==
          std::vector<std::string>{
              "PATCH /apis/apps/v1/namespaces/llm/deployments/bot-2?fieldManager=assay&force=true "
              "application/apply-patch+yaml",
              "PATCH /api/v1/namespaces/llm/services/bot?fieldManager=assay&force=true "
              "application/apply-patch+yaml",
              "PATCH /apis/apps/v1/namespaces/llm/deployments/bot-1/scale "
              "application/merge-patch+json"});
    CHECK(json::parse(up[0].body).at("spec").at("replicas") == 1);
    CHECK(json::parse(up[0].body)
              .at("spec")
              .at("template")
              .at("spec")
              .at("containers")
              .at(0)
              .at("env") == json::parse(R"([{"name": "ASSAY_DEPLOYMENT", "value": "13"}])"));
    CHECK(json::parse(up[1].body).at("spec").at("selector") ==
          json::parse(R"({"app.kubernetes.io/name": "bot"})"));
    CHECK(up[2].body == R"({"spec":{"replicas":4}})");
    auto half = RenderApply(s, image, 50, "bot-2", "bot-1");
    CHECK(json::parse(half[0].body).at("spec").at("replicas") == 2);
    CHECK(half[2].body == R"({"spec":{"replicas":2}})");
    auto all = RenderApply(s, image, 100, "bot-2", "bot-1");
    CHECK(json::parse(all[0].body).at("spec").at("replicas") == 4);
    CHECK(all[2].body == R"({"spec":{"replicas":0}})");
    // Back: the old colour scales up before the new one goes to zero.
    auto back = RenderApply(s, image, 0, "bot-2", "bot-1");
    REQUIRE(back.size() == 3);
    CHECK(back[0].path == "/apis/apps/v1/namespaces/llm/deployments/bot-1/scale");
    CHECK(back[0].body == R"({"spec":{"replicas":4}})");
    CHECK(json::parse(back[1].body).at("spec").at("replicas") == 0);
  }
  SECTION("gateway: each colour's Service, and the HTTPRoute's weights") {
    const KubernetesSpec s = Spec(R"({"kind": "kubernetes", "namespace": "llm", "app": "bot",
        "traffic": "gateway", "gateway": "edge", "route": "bot-route", "port": 8000})");
    auto calls = RenderApply(s, model, 25, "bot-2", "bot-1");
    CHECK(Lines(calls) ==
          std::vector<std::string>{
              "PATCH /apis/apps/v1/namespaces/llm/deployments/bot-2?fieldManager=assay&force=true "
              "application/apply-patch+yaml",
              "PATCH /api/v1/namespaces/llm/services/bot-2?fieldManager=assay&force=true "
              "application/apply-patch+yaml",
              "PATCH /apis/gateway.networking.k8s.io/v1/namespaces/llm/httproutes/"
              "bot-route?fieldManager=assay&force=true application/apply-patch+yaml"});
    CHECK(json::parse(calls[1].body).at("spec").at("selector") ==
          json::parse(R"({"app.kubernetes.io/name": "bot", "assay.dev/colour": "bot-2"})"));
    CHECK(json::parse(calls[2].body) == json::parse(R"({
      "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
      "metadata": {"name": "bot-route", "namespace": "llm", "labels": {
        "app.kubernetes.io/name": "bot", "app.kubernetes.io/managed-by": "assay"}},
      "spec": {"parentRefs": [{"name": "edge"}], "rules": [{"backendRefs": [
        {"name": "bot-2", "port": 8000, "weight": 25},
        {"name": "bot-1", "port": 8000, "weight": 75}]}]}})"));
    CHECK(Lines(RenderRetire(s, "bot-1")) ==
          std::vector<std::string>{"DELETE /apis/apps/v1/namespaces/llm/deployments/bot-1 ",
                                   "DELETE /api/v1/namespaces/llm/services/bot-1 "});
    CHECK(RenderManifests(calls).substr(0, 4) == "---\n");
  }
}

// The objects of every traffic mode against the Kubernetes API schema as the official client
// models it (deploy/k8s/validate.py schema: Debian's python3-kubernetes; the Gateway API's
// HTTPRoute by its own small schema there). kubectl's client dry run needs an API server.
TEST_CASE("kubernetes target: what it writes passes the API schema", "[deploy][kubernetes]") {
  auto validate = [](const std::string& manifests) {
    auto r =
        RunCommand({"/usr/bin/python3", std::string(ASSAY_SOURCE_DIR) + "/deploy/k8s/validate.py",
                    "schema", "kubernetes-target"},
                   {}, {}, manifests, absl::Seconds(60));
    REQUIRE(r.ok());
    return absl::StrCat(r->exit_code, " ", r->out, r->err);
  };
  const Workload model{kImage, "bot", "12", 3};
  std::string all;
  for (const char* traffic : {"service", "replicas", "gateway"}) {
    const std::string gateway =
        std::string(traffic) == "gateway" ? R"(, "gateway": "edge", "route": "bot")" : "";
    const KubernetesSpec s = Spec(
        absl::StrCat(R"({"kind": "kubernetes", "namespace": "llm", "app": "bot", "traffic": ")",
                     traffic, "\"", gateway, "}"));
    all += RenderManifests(RenderApply(s, model, 30, "bot-2", "bot-1"));
  }
  CHECK(validate(all) == "0 ");
  // The check is not blind: a misspelt field and a wrong type fail it, named.
  std::string bad = RenderManifests(RenderApply(
      Spec(R"({"kind": "kubernetes", "namespace": "llm", "app": "bot"})"), model, 0, "bot-2", ""));
  bad = absl::StrReplaceAll(
      bad, {{R"("automountServiceAccountToken":false)", R"("automountServiceAccountToken":"no")"},
            {R"("readOnlyRootFilesystem")", R"("readOnlyRootFileSystem")"}});
  CHECK(validate(bad) ==
        "1 kubernetes-target: Deployment bot-2.spec.template.spec.automountServiceAccountToken: "
        "must be a bool, not 'no'\nkubernetes-target: Deployment "
        "bot-2.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem: unknown "
        "field of V1SecurityContext\n");
}

using testing::RecordingServer;

std::string Header(const http::Request& r, const std::string& name) {
  return RecordingServer::Header(r, name);
}

TEST_CASE("kubernetes target: calls reach the API server with the operator's token",
          "[deploy][kubernetes]") {
  char dir[] = "/tmp/assay-kube-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string token = std::string(dir) + "/token";
  std::ofstream(token) << "sa-token-1\n";
  RecordingServer api(
      {{200, "{}"},
       {200, "{}"},
       {404, R"({"kind": "Status", "message": "deployments.apps \"bot-1\" not found"})"},
       {409,
        R"({"kind": "Status", "message": "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.selector"})"}});
  KubernetesApi k{api.url(), token, "", absl::Seconds(5)};
  const KubernetesSpec s = Spec(R"({"kind": "kubernetes", "namespace": "llm", "app": "bot"})");
  const Workload w{kImage, "", "7", std::nullopt};
  KubernetesTarget target(s, &k, &w);
  CHECK(target.Describe() == "kubernetes llm/bot");
  REQUIRE(target.Apply(100, {{"bot-2", "llm/bot-2"}}, {{"bot-1", "llm/bot-1"}}, false).ok());
  CHECK(*target.Retire({{"bot-1", "llm/bot-1"}}) == true);  // 404: already gone
  absl::Status refused = target.Apply(0, {{"bot-3", "llm/bot-3"}}, {}, false);
  CHECK(refused.message() ==
        "kubernetes: PATCH /apis/apps/v1/namespaces/llm/deployments/bot-3 answered HTTP 409: "
        "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.selector");
  std::vector<http::Request> got = api.requests();
  REQUIRE(got.size() == 4);
  CHECK(got[0].method == "PATCH");
  CHECK(got[0].target ==
        "/apis/apps/v1/namespaces/llm/deployments/bot-2?fieldManager=assay&force=true");
  CHECK(Header(got[0], "Content-Type") == "application/apply-patch+yaml");
  CHECK(Header(got[0], "Authorization") == "Bearer sa-token-1");
  CHECK(std::string(json::parse(got[0].body)
                        .at("spec")
                        .at("template")
                        .at("spec")
                        .at("containers")
                        .at(0)
                        .at("image")
                        .as_string()) == kImage);
  CHECK(got[2].method == "DELETE");
  CHECK(got[2].target == "/apis/apps/v1/namespaces/llm/deployments/bot-1");
  CHECK(got[2].body.empty());

  // A token rotated on disk is read at the next call.
  std::ofstream(token, std::ios::trunc) << "sa-token-2";
  REQUIRE(target.Apply(100, {{"bot-4", "llm/bot-4"}}, {}, false).ok());
  CHECK(Header(api.requests().back(), "Authorization") == "Bearer sa-token-2");

  // The operator's configuration, not the environment's, says where and with what.
  std::ofstream(token, std::ios::trunc) << "a\nb";
  CHECK(target.Apply(100, {{"bot-4", "llm/bot-4"}}, {}, false).message() ==
        "the Kubernetes token file " + token + " holds no usable token");
  KubernetesApi none;
  KubernetesTarget unconfigured(s, &none, &w);
  CHECK(unconfigured.Apply(100, {{"bot-4", "llm/bot-4"}}, {}, false).message() ==
        "the server has no Kubernetes API server: its operator must start it with "
        "--kubernetes-api URL (and --kubernetes-token-file, --kubernetes-ca-file)");
  const Workload no_image{"", "bot", "8", 2};
  KubernetesTarget imageless(s, &k, &no_image);
  CHECK(imageless.Apply(100, {{"bot-5", "llm/bot-5"}}, {}, false).message() ==
        "the environment's kubernetes target has no image for a model version: set its "
        "target.image, the model server image");
  unlink(token.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace assay::deploy
