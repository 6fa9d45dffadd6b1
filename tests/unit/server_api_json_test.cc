// The API's JSON encoders on stored rows, a corrupt JSON column included: an error naming the
// row, never an exception (which a handler turns into an opaque 500).

#include <boost/json.hpp>

#include <catch2/catch.hpp>
#include <string>

#include "server/api/json.h"

namespace assay::api {
namespace {

namespace json = boost::json;

store::PipelineRow Pipeline() {
  store::PipelineRow p;
  p.id = 7;
  p.repo = "acme/app";
  p.event = "manual";
  p.ref = "refs/heads/main";
  p.commit_sha = std::string(40, 'a');
  p.state = "queued";
  return p;
}

TEST_CASE("api json: a pipeline's stored inputs", "[unit][api]") {
  store::PipelineRow p = Pipeline();
  p.inputs_json = R"({"model":"small","n":"3"})";
  auto o = PipelineJson(p);
  REQUIRE(o.ok());
  CHECK(json::serialize(o->at("inputs")) == R"({"model":"small","n":"3"})");
  CHECK(json::serialize(o->at("errors")) == "[]");

  p.inputs_json = "";
  o = PipelineJson(p);
  REQUIRE(o.ok());
  CHECK(o->at("inputs").is_null());

  p.inputs_json = R"({"model": )";
  o = PipelineJson(p);
  CHECK(o.status().code() == absl::StatusCode::kDataLoss);
  CHECK(o.status().message() == "pipeline 7: stored inputs is not valid JSON (incomplete JSON)");
}

TEST_CASE("api json: an agent's stored GPUs", "[unit][api]") {
  store::AgentRow a;
  a.id = 3;
  a.name = "gpu-1";
  a.state = "online";
  a.gpus_json = R"([{"index":0,"model":"H100"}])";
  auto o = AgentJson(a);
  REQUIRE(o.ok());
  CHECK(json::serialize(o->at("gpus")) == R"([{"index":0,"model":"H100"}])");

  a.gpus_json = "[{]";
  o = AgentJson(a);
  CHECK(o.status().code() == absl::StatusCode::kDataLoss);
  CHECK(o.status().message() == "agent 3 (gpu-1): stored gpus is not valid JSON (syntax error)");
}

TEST_CASE("api json: a pipeline in error lists each problem of its message", "[unit][api]") {
  store::PipelineRow p = Pipeline();
  p.state = "error";
  p.message =
      ".assay.yml:4:5: jobs.build.stepz: unknown key 'stepz' (did you mean 'steps'?)\n"
      ".assay.yml:2:3: jobs.build.steps: missing required key 'steps'";
  auto o = PipelineJson(p);
  REQUIRE(o.ok());
  CHECK(json::serialize(o->at("errors")) ==
        R"j([".assay.yml:4:5: jobs.build.stepz: unknown key 'stepz' (did you mean 'steps'?)",)j"
        R"j(".assay.yml:2:3: jobs.build.steps: missing required key 'steps'"])j");
  CHECK(o->at("message").as_string() == p.message);

  // A failed pipeline's message is not a list of file problems.
  p.state = "failed";
  p.message = "job build failed";
  o = PipelineJson(p);
  REQUIRE(o.ok());
  CHECK(json::serialize(o->at("errors")) == "[]");
}

}  // namespace
}  // namespace assay::api

namespace assay::api {
namespace {

TEST_CASE("api json: a repository's clone URL never shows a credential", "[unit][api]") {
  store::Repo r;
  r.id = 3;
  r.name = "acme/app";
  r.provider = "github";
  // A row stored before credentials were split off (migration 0009).
  r.clone_url = "https://alice:hunter2@git.example/acme/app.git";
  boost::json::object j = RepoJson(r);
  CHECK(j.at("clone_url") == boost::json::value("https://***@git.example/acme/app.git"));
  CHECK(j.at("has_clone_credential") == boost::json::value(false));
  r.clone_url = "https://git.example/acme/app.git";
  r.clone_credential_sealed = "sealed";
  j = RepoJson(r);
  CHECK(j.at("clone_url") == boost::json::value("https://git.example/acme/app.git"));
  CHECK(j.at("has_clone_credential") == boost::json::value(true));
  CHECK(boost::json::serialize(j).find("sealed") == std::string::npos);
}

}  // namespace
}  // namespace assay::api
