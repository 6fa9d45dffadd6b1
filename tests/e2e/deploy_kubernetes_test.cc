// A Kubernetes target (issue 12) driven by a real server's deployment controller. No
// Kubernetes API server can run here, so a local stand-in records exactly the calls it gets
// (the allowed stand-in for a remote service: docs/deployments.md "Kubernetes" says what a real
// one does with them): a canary by replica ratio scales the new colour up and the old one down
// step by step, and a failed job metric scales the old one back up first and deletes the new
// colour; the token is the operator's, read from its file; bad input is refused when saved.
#include <sys/stat.h>

#include <deque>
#include <fstream>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "server/http/http_server.h"
#include "tests/e2e/e2e.h"
#include "tests/support/recording_server.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

using testing::RecordingServer;

// Each call as "METHOD PATH (replicas N)" (the replicas of an apply or scale), in order.
std::vector<std::string> Calls(const std::vector<http::Request>& requests) {
  std::vector<std::string> out;
  for (const http::Request& r : requests) {
    std::string line = r.method + " " + r.path;
    if (!r.body.empty()) {
      json::value b = json::parse(r.body);
      const json::object* spec =
          b.as_object().if_contains("spec") ? &b.as_object().at("spec").as_object() : nullptr;
      if (spec != nullptr && spec->contains("replicas")) {
        absl::StrAppend(&line, " (replicas ", spec->at("replicas").as_int64(), ")");
      }
    }
    out.push_back(line);
  }
  return out;
}

std::string State(Cluster& c, int64_t id) {
  return JsonString(MUST(c.ApiObject("GET", "/api/v1/deployments/" + std::to_string(id))), "state");
}

TEST_CASE(
    "deployments: a kubernetes target scales colours through the API server, and rolls "
    "back old side first",
    "[e2e]") {
  // Answers an apply with the object, as an API server does.
  RecordingServer api({}, {}, /*echo_body=*/true);
  Cluster c(Options({"--kubernetes-api", api.url()}));
  const std::string hooks = c.dir() + "/hooks";
  REQUIRE(mkdir(hooks.c_str(), 0755) == 0);
  const std::string fail = c.dir() + "/fail";
  std::ofstream(hooks + "/smoke") << "#!/bin/sh\n[ -e " << fail << " ] && exit 1\nexit 0\n";
  REQUIRE(chmod((hooks + "/smoke").c_str(), 0755) == 0);
  const std::string token = c.dir() + "/token";
  std::ofstream(token) << "sa-token\n";
  c.AddServerFlags({"--deploy-hooks", hooks, "--kubernetes-token-file", token});
  MUST(c.StartServer());
  auto repo = MUST(c.ApiObject("POST", "/api/v1/repos",
                               R"({"name":"acme/llm","clone_url":"https://example.com/llm.git"})"));
  const int64_t repo_id = repo.at("id").as_int64();
  const std::string env_path = absl::StrCat("/api/v1/repos/", repo_id, "/environments/production");

  // Refused when saved: the API server is the operator's, names are DNS labels.
  auto bad = MUST(c.Api("PUT", env_path,
                        R"({"target": {"kind": "kubernetes", "namespace": "llm", "app": "bot",
                            "api_server": "https://attacker.example.com"}})"));
  CHECK(bad.status == 400);
  CHECK(absl::StrContains(bad.body, "target.api_server: unknown field"));
  bad = MUST(
      c.Api("PUT", env_path,
            R"({"target": {"kind": "kubernetes", "namespace": "kube-system/x", "app": "bot"}})"));
  CHECK(bad.status == 400);
  CHECK(absl::StrContains(bad.body, "target.namespace: must be a DNS label"));

  auto put = MUST(c.Api("PUT", env_path,
                        R"({"target": {"kind": "kubernetes", "namespace": "llm", "app": "bot",
                            "traffic": "replicas", "replicas": 4, "port": 8000}})"));
  INFO(put.body);
  REQUIRE(put.status == 200);
  const std::string image1 = "registry.example.com/acme/bot@sha256:" + std::string(64, '1');
  const std::string image2 = "registry.example.com/acme/bot@sha256:" + std::string(64, '2');
  const std::string strategy =
      R"({"canary": {"steps": [{"weight": 50}, {"analysis": {"metrics": [{"name": "smoke",
          "provider": {"job": {"command": ["smoke"]}}}]}}]}})";
  auto deploy = [&](const std::string& image, const std::string& extra = "") {
    return MUST(c.Api(
        "POST", "/api/v1/deployments",
        absl::StrCat(R"({"repo_id": )", repo_id, R"(, "environment": "production", "image": ")",
                     image, R"(", "strategy": )", strategy, extra, "}")));
  };
  // A kubernetes environment runs the new version itself: no servers.
  auto with_servers = deploy(image1, R"(, "servers": ["127.0.0.1:8101"])");
  CHECK(with_servers.status == 400);
  CHECK(absl::StrContains(with_servers.body, "give no 'servers'"));

  auto first = deploy(image1);
  INFO(first.body);
  REQUIRE(first.status == 201);
  json::object d1 = json::parse(first.body).as_object();
  const int64_t id1 = d1.at("id").as_int64();
  const std::string colour1 = JsonString(d1.at("servers").at(0).as_object(), "name");
  CHECK(absl::StartsWith(colour1, "bot-"));
  CHECK(JsonString(d1.at("servers").at(0).as_object(), "address") == "llm/" + colour1);
  MUST(c.WaitUntil(
      "first deployment succeeded",
      [&](std::string& seen) {
        seen = State(c, id1);
        return seen == "succeeded";
      },
      absl::Seconds(60)));
  // Nothing stable before it: the new colour takes everything at once.
  const std::string deployments = "/apis/apps/v1/namespaces/llm/deployments/";
  const std::string service = "/api/v1/namespaces/llm/services/bot";
  CHECK(Calls(api.requests()) ==
        std::vector<std::string>{
            "PATCH " + deployments + colour1 + " (replicas 4)", "PATCH " + service,
            "PATCH " + deployments + colour1 + " (replicas 4)", "PATCH " + service});
  for (const http::Request& r : api.requests()) {
    CHECK(r.target.find("?fieldManager=assay&force=true") != std::string::npos);
    bool auth = false;
    for (const auto& [k, v] : r.headers)
      auth = auth || (absl::EqualsIgnoreCase(k, "authorization") && v == "Bearer sa-token");
    CHECK(auth);
  }

  // The second: 50% is two pods of each; its job fails; the old colour scales back up first.
  api.Clear();
  std::ofstream(fail) << "";
  auto second = deploy(image2);
  REQUIRE(second.status == 201);
  json::object d2 = json::parse(second.body).as_object();
  const int64_t id2 = d2.at("id").as_int64();
  const std::string colour2 = JsonString(d2.at("servers").at(0).as_object(), "name");
  MUST(c.WaitUntil(
      "second deployment rolled back",
      [&](std::string& seen) {
        seen = State(c, id2);
        return seen == "rolled_back";
      },
      absl::Seconds(60)));
  CHECK(Calls(api.requests()) ==
        std::vector<std::string>{"PATCH " + deployments + colour2 + " (replicas 2)",
                                 "PATCH " + service,
                                 "PATCH " + deployments + colour1 + "/scale (replicas 2)",
                                 "PATCH " + deployments + colour1 + "/scale (replicas 4)",
                                 "PATCH " + deployments + colour2 + " (replicas 0)",
                                 "PATCH " + service, "DELETE " + deployments + colour2});
  const json::value applied = json::parse(api.requests()[0].body);
  CHECK(std::string(applied.at("spec")
                        .at("template")
                        .at("spec")
                        .at("containers")
                        .at(0)
                        .at("image")
                        .as_string()) == image2);
  CHECK(absl::StrContains(
      JsonString(MUST(c.ApiObject("GET", "/api/v1/deployments/" + std::to_string(id2))), "message"),
      "metric 'smoke'"));
  auto env = MUST(c.ApiObject("GET", env_path));
  CHECK(JsonString(env.at("live").at("servers").at(0).as_object(), "name") == colour1);
}

}  // namespace
}  // namespace assay::e2e
