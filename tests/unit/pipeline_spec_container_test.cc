// The container keys of `.assay.yml` (issue 9): image: and services:.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/pipeline/spec.h"

namespace assay {
namespace {

using Lines = std::vector<std::string>;

// Each problem as "LINE:COL: KEY: MESSAGE" (the file name cut off).
Lines Lint(const std::string& yaml) {
  Lines lines;
  for (const SpecError& error : LintPipelineSpec(yaml, "f.yml")) {
    lines.push_back(error.ToString().substr(6));
  }
  return lines;
}

TEST_CASE("spec container: image as a string and as a mapping parse to the exact model") {
  const std::string yaml = R"(jobs:
  a:
    image: localhost/busybox:1
    steps: [x]
  b:
    image:
      name: "registry.example/py@sha256:abc"
      pull: never
      user: "1000:100"
      entrypoint: /bin/bash
    runs_on: { cpus: 2, memory_gb: 1.5 }
    services:
      - name: db
        image: { name: postgres:15, pull: always }
        env: { POSTGRES_PASSWORD: x, N: 1 }
        command: ["postgres", "-c", "fsync=off"]
        health: { cmd: pg_isready, interval: 2s, retries: 5, timeout: 3s }
      - name: model-server
        image: localhost/llm:1
        command: serve
    steps: [x]
)";
  REQUIRE(Lint(yaml) == Lines{});
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(yaml);
  REQUIRE(spec.ok());
  REQUIRE(spec->jobs.size() == 2);
  CHECK(spec->jobs[0].image == ImageSpec{"localhost/busybox:1", "if_missing", "", ""});
  CHECK(spec->jobs[0].services.empty());
  CHECK(spec->jobs[1].image ==
        ImageSpec{"registry.example/py@sha256:abc", "never", "1000:100", "/bin/bash"});
  REQUIRE(spec->jobs[1].services.size() == 2);
  const ServiceSpec& db = spec->jobs[1].services[0];
  CHECK(db.name == "db");
  CHECK(db.image == ImageSpec{"postgres:15", "always", "", ""});
  CHECK(db.env ==
        std::vector<std::pair<std::string, std::string>>{{"POSTGRES_PASSWORD", "x"}, {"N", "1"}});
  CHECK(db.command == std::vector<std::string>{"postgres", "-c", "fsync=off"});
  CHECK(db.health == HealthSpec{"pg_isready", 2, 5, 3});
  const ServiceSpec& model = spec->jobs[1].services[1];
  CHECK(model.command == std::vector<std::string>{"serve"});
  CHECK(model.health == HealthSpec{});
  CHECK_FALSE(spec->jobs[0].image == std::nullopt);
}

TEST_CASE("spec container: a job without image: has none") {
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec("jobs: {a: {steps: [x]}}\n");
  REQUIRE(spec.ok());
  CHECK(spec->jobs[0].image == std::nullopt);
}

TEST_CASE("spec container: bad image values name file, line and key") {
  CHECK(Lint("jobs:\n  a:\n    image: \"-v /:/host\"\n    steps: [x]\n") ==
        Lines{"3:12: jobs.a.image: invalid image name '-v /:/host': must start with a letter or "
              "digit"});
  CHECK(Lint("jobs:\n  a:\n    image: \"busybox latest\"\n    steps: [x]\n") ==
        Lines{"3:12: jobs.a.image: invalid image name 'busybox latest': use letters, digits and "
              ". _ - / : @ only"});
  CHECK(Lint("jobs:\n  a:\n    image: \"\"\n    steps: [x]\n") ==
        Lines{"3:12: jobs.a.image: image name must not be empty"});
  CHECK(Lint("jobs:\n  a:\n    image: [a]\n    steps: [x]\n") ==
        Lines{"3:12: jobs.a.image: image must be a string or a mapping with 'name', got a list"});
  CHECK(Lint("jobs:\n  a:\n    image: { pull: never }\n    steps: [x]\n") ==
        Lines{"3:5: jobs.a.image.name: missing required key 'name'"});
  CHECK(Lint("jobs:\n  a:\n    image: { name: b, pull: sometimes }\n    steps: [x]\n") ==
        Lines{"3:29: jobs.a.image.pull: unknown pull policy 'sometimes' (allowed: never, "
              "if_missing, always)"});
  CHECK(Lint("jobs:\n  a:\n    image: { name: b, user: \"--privileged\" }\n    steps: [x]\n") ==
        Lines{"3:29: jobs.a.image.user: invalid user '--privileged': use name or name:group "
              "(letters, digits, . _ -; 1 to 64 bytes)"});
  CHECK(Lint("jobs:\n  a:\n    image: { name: b, user: \"a:b:c\" }\n    steps: [x]\n") ==
        Lines{"3:29: jobs.a.image.user: invalid user 'a:b:c': use name or name:group "
              "(letters, digits, . _ -; 1 to 64 bytes)"});
  CHECK(Lint("jobs:\n  a:\n    image: { name: b, entrypoint: sh }\n    steps: [x]\n") ==
        Lines{"3:35: jobs.a.image.entrypoint: entrypoint must be an absolute path to a shell in "
              "the image, got 'sh'"});
  CHECK(Lint("jobs:\n  a:\n    image: { name: b, tag: c }\n    steps: [x]\n") ==
        Lines{"3:23: jobs.a.image.tag: unknown key 'tag' (allowed keys: name, pull, user, "
              "entrypoint)"});
}

TEST_CASE("spec container: an image name longer than the limit is refused") {
  const std::string name(256, 'a');
  CHECK(Lint("jobs:\n  a:\n    image: " + name + "\n    steps: [x]\n") ==
        Lines{"3:12: jobs.a.image: image name is longer than 255 bytes"});
  CHECK(Lint("jobs:\n  a:\n    image: " + name.substr(1) + "\n    steps: [x]\n") == Lines{});
}

TEST_CASE("spec container: bad services name file, line and key") {
  CHECK(Lint("jobs:\n  a:\n    services: [{name: db, image: b}]\n    steps: [x]\n") ==
        Lines{"3:5: jobs.a.services: services need 'image': only a job that runs in a container "
              "has a network on which its services can be reached"});
  CHECK(Lint("jobs:\n  a:\n    image: b\n    services: {db: b}\n    steps: [x]\n") ==
        Lines{"4:15: jobs.a.services: services must be a list of mappings, got a mapping"});
  CHECK(Lint("jobs:\n  a:\n    image: b\n    services: [{name: DB_1, image: b}]\n"
             "    steps: [x]\n") ==
        Lines{"4:23: jobs.a.services[0].name: invalid service name 'DB_1': a DNS label (a-z, "
              "0-9 and '-', 1 to 63 bytes, not starting or ending with '-')"});
  CHECK(Lint("jobs:\n  a:\n    image: b\n    services: [{name: db}]\n    steps: [x]\n") ==
        Lines{"4:16: jobs.a.services[0].image: missing required key 'image'"});
  CHECK(Lint("jobs:\n  a:\n    image: b\n    services: [{name: db, image: b}, {name: db, "
             "image: c}]\n    steps: [x]\n") ==
        Lines{"4:38: jobs.a.services[1].name: service name 'db' is used twice"});
  CHECK(Lint("jobs:\n  a:\n    image: b\n    services: [{name: db, image: b, env: {1X: y}}]\n"
             "    steps: [x]\n") ==
        Lines{"4:43: jobs.a.services[0].env.1X: invalid environment variable name '1X': use "
              "letters, digits and '_', not starting with a digit"});
  CHECK(Lint("jobs:\n  a:\n    image: b\n    services: [{name: db, image: b, command: []}]\n"
             "    steps: [x]\n") ==
        Lines{"4:46: jobs.a.services[0].command: command must be a string or a list of 1 to 64 "
              "strings, got a list of 0"});
  CHECK(Lint("jobs:\n  a:\n    image: b\n    services: [{name: db, image: b, health: {}}]\n"
             "    steps: [x]\n") ==
        Lines{"4:37: jobs.a.services[0].health.cmd: missing required key 'cmd'"});
  CHECK(Lint("jobs:\n  a:\n    image: b\n    services: [{name: db, image: b, health: {cmd: x, "
             "retries: 0, interval: 1h}}]\n    steps: [x]\n") ==
        Lines{"4:63: jobs.a.services[0].health.retries: retries must be an integer from 1 to "
              "1000, got 0",
              "4:76: jobs.a.services[0].health.interval: interval must be at most 600s"});
}

TEST_CASE("spec container: too many services, variables or arguments are refused") {
  std::string services;
  for (int i = 0; i < 9; ++i) services += "{name: s" + std::to_string(i) + ", image: b}, ";
  CHECK(Lint("jobs:\n  a:\n    image: b\n    services: [" + services + "]\n    steps: [x]\n") ==
        Lines{"4:15: jobs.a.services: a job has at most 8 services, got 9"});
  std::string env;
  for (int i = 0; i < 65; ++i) env += "V" + std::to_string(i) + ": x, ";
  const Lines env_errors = Lint(
      "jobs:\n  a:\n    image: b\n    services: [{name: db, image: b, "
      "env: {" +
      env + "}}]\n    steps: [x]\n");
  REQUIRE(env_errors.size() == 1);
  CHECK(env_errors[0].find("jobs.a.services[0].env.V64: a service has at most 64 variables") !=
        std::string::npos);
  std::string args;
  for (int i = 0; i < 65; ++i) args += "a, ";
  CHECK(Lint("jobs:\n  a:\n    image: b\n    services: [{name: db, image: b, command: [" + args +
             "]}]\n    steps: [x]\n") ==
        Lines{"4:46: jobs.a.services[0].command: command must be a string or a list of 1 to 64 "
              "strings, got a list of 65"});
}

}  // namespace
}  // namespace assay

namespace assay {
namespace {

TEST_CASE("network: none or default, and services need the job's network", "[container][network]") {
  absl::StatusOr<PipelineSpec> spec = ParsePipelineSpec(
      "jobs:\n  a:\n    network: none\n    steps: [x]\n  b:\n    network: default\n"
      "    steps: [x]\n");
  REQUIRE(spec.ok());
  CHECK(spec->jobs[0].network == "none");
  CHECK(spec->jobs[1].network == "");
  CHECK(std::string(ParsePipelineSpec("jobs:\n  a:\n    network: host\n    steps: [x]\n")
                        .status()
                        .message()) ==
        ".assay.yml:3:14: jobs.a.network: network must be none or default, got 'host'");
  CHECK(std::string(ParsePipelineSpec("jobs:\n  a:\n    image: localhost/bb:1\n"
                                      "    services: [{name: db, image: localhost/db:1}]\n"
                                      "    network: none\n    steps: [x]\n")
                        .status()
                        .message()) ==
        ".assay.yml:4:5: jobs.a.services: services cannot be used with network: none (they are "
        "reached over the job's network)");
}

}  // namespace
}  // namespace assay
