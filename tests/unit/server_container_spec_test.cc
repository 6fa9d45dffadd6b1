// The container keys on their way from the plan to jobs.spec and into the Assignment (issue 9).
#include <catch2/catch.hpp>

#include "server/scheduler/container_spec.h"
#include "server/scheduler/requirements.h"

namespace assay {
namespace {

TEST_CASE("container spec: image, services and limits reach the assignment exactly") {
  PlannedJob job;
  job.image = ImageSpec{"localhost/py:3", "never", "app", "/bin/bash"};
  job.runs_on.cpus = 2;
  job.runs_on.memory_gb = 1.5;
  ServiceSpec db;
  db.name = "db";
  db.image = ImageSpec{"postgres:15", "always", "", ""};
  db.env = {{"B", "2"}, {"A", "1"}};
  db.command = {"postgres", "-c", "fsync=off"};
  db.health = HealthSpec{"pg_isready", 2, 5, 3};
  job.services.push_back(db);
  boost::json::object spec;
  AddContainerSpec(job, spec);
  CHECK(
      boost::json::serialize(spec) ==
      R"({"image":{"name":"localhost/py:3","pull":"never","user":"app","entrypoint":"/bin/bash"},)"
      R"("container_limits":{"cpus":2,"memory_mb":1536},"services":[{"name":"db","image":)"
      R"({"name":"postgres:15","pull":"always"},"env":[["B","2"],["A","1"]],"command":)"
      R"(["postgres","-c","fsync=off"],"health":{"cmd":"pg_isready","interval_s":2,)"
      R"("retries":5,"timeout_s":3}}]})");
  v1::Assignment a;
  ContainerSpecToAssignment(spec, a);
  CHECK(a.image().name() == "localhost/py:3");
  CHECK(a.image().pull() == v1::ContainerImage::PULL_NEVER);
  CHECK(a.image().user() == "app");
  CHECK(a.image().entrypoint() == "/bin/bash");
  CHECK(a.cpus() == 2);
  CHECK(a.memory_mb() == 1536);
  REQUIRE(a.services_size() == 1);
  const v1::Service& s = a.services(0);
  CHECK(s.name() == "db");
  CHECK(s.image().pull() == v1::ContainerImage::PULL_ALWAYS);
  CHECK(s.env().size() == 2);
  CHECK(s.env().at("A") == "1");
  CHECK(std::vector<std::string>(s.command().begin(), s.command().end()) ==
        std::vector<std::string>{"postgres", "-c", "fsync=off"});
  CHECK(s.health().cmd() == "pg_isready");
  CHECK(s.health().interval_ms() == 2000);
  CHECK(s.health().retries() == 5);
  CHECK(s.health().timeout_ms() == 3000);
}

TEST_CASE("container spec: a job without an image adds and sets nothing") {
  PlannedJob job;
  boost::json::object spec{{"steps", boost::json::array{}}};
  AddContainerSpec(job, spec);
  CHECK(boost::json::serialize(spec) == R"({"steps":[]})");
  v1::Assignment a;
  ContainerSpecToAssignment(spec, a);
  CHECK_FALSE(a.has_image());
  CHECK(a.services_size() == 0);
}

TEST_CASE("container spec: a job with an image requires the container executor") {
  RunsOnSpec r;
  CHECK(RequirementsJson(r, false, "container") == R"({"cpus":1,"executor":"container"})");
  CHECK(RequirementsJson(r) == R"({"cpus":1})");
}

}  // namespace
}  // namespace assay
