// What a hostile agent may send the dashboard's way (issue 11), over the real gRPC stream
// against a real database: step marks with a result (too many, going backwards, a name too
// long) are dropped whole and the result kept; a heartbeat's GPU load is cut to the GPUs the
// agent announced, its utilization clamped.

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "assay/v1/agent.grpc.pb.h"
#include "tests/db/agent_service_rig.h"

namespace assay::dbtest {
namespace {

TEST_CASE("an agent's step marks and GPU load are checked before they are stored",
          "[db][dashboard]") {
  DbFixture f;
  AgentServiceRig rig(f);
  Dispatcher& dispatcher = *rig.dispatcher;
  const int64_t p =
      f.CreatePipeline({Job("too-many"), Job("backwards"), Job("long-name"), Job("good")});
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    ctx.AddMetadata("authorization", std::string("Bearer ") + AgentServiceRig::kToken);
    auto stream = rig.stub->Connect(&ctx);
    v1::AgentMessage hello;
    hello.mutable_hello()->set_name("hostile");
    hello.mutable_hello()->set_cpu_slots(4);
    v1::Gpu* gpu = hello.mutable_hello()->add_gpus();
    gpu->set_index(0);
    gpu->set_uuid("GPU-0");
    gpu->set_name("NVIDIA H200");
    gpu->set_memory_mb(143771);
    REQUIRE(stream->Write(hello));
    v1::ServerMessage in;
    REQUIRE(stream->Read(&in));
    REQUIRE(in.has_welcome());

    // One GPU announced, five reported, utilization out of range.
    v1::AgentMessage hb;
    for (uint32_t i = 0; i < 5; ++i) {
      v1::GpuUsage* u = hb.mutable_heartbeat()->add_gpus();
      u->set_index(i);
      u->set_utilization_pct(500);
      u->set_memory_used_mb(1000 + i);
    }
    REQUIRE(stream->Write(hb));

    for (int i = 0; i < 2000 && dispatcher.ConnectedAgents() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(dispatcher.DispatchOnce() == 4);
    for (int i = 0; i < 4; ++i) {
      REQUIRE(stream->Read(&in));
      REQUIRE(in.has_assignment());
      const v1::Assignment& a = in.assignment();
      v1::AgentMessage r;
      v1::JobResult* result = r.mutable_result();
      result->set_job_id(a.job_id());
      result->set_attempt_token(a.attempt_token());
      result->set_outcome(v1::JOB_OUTCOME_SUCCEEDED);
      auto mark = [&](int index, const std::string& name, uint64_t offset) {
        v1::StepMark* m = result->add_steps();
        m->set_index(index);
        m->set_name(name);
        m->set_log_offset(offset);
      };
      if (a.job_name() == "too-many") {
        for (int n = 0; n <= 1000; ++n) mark(n, "s", static_cast<uint64_t>(n));
      } else if (a.job_name() == "backwards") {
        mark(0, "a", 10);
        mark(1, "b", 5);
      } else if (a.job_name() == "long-name") {
        mark(0, std::string(201, 'n'), 0);
      } else {
        mark(0, "fetch", 0);
        mark(1, "build", 7);
      }
      REQUIRE(stream->Write(r));
    }
    int recorded = 0;
    while (recorded < 4 && stream->Read(&in)) {
      if (in.has_ack() && in.ack().result_recorded()) ++recorded;
    }
    CHECK(recorded == 4);
    stream->WritesDone();
    while (stream->Read(&in)) {
    }
    (void)stream->Finish();
  }
  CHECK(f.Query("SELECT j.name, j.state, coalesce(a.steps::text, 'none') FROM jobs j JOIN "
                "job_attempts a ON a.job_id = j.id ORDER BY j.id") ==
        Rows{{"too-many", "succeeded", "none"},
             {"backwards", "succeeded", "none"},
             {"long-name", "succeeded", "none"},
             {"good", "succeeded",
              R"([{"name": "fetch", "index": 0, "log_offset": 0, "started_at": null}, )"
              R"({"name": "build", "index": 1, "log_offset": 7, "started_at": null}])"}});
  (void)p;
  // The heartbeat was read before the results: its load is stored by now.
  CHECK(f.Query("SELECT gpu_usage::text FROM agents") ==
        Rows{{R"([{"index": 0, "memory_used_mb": 1000, "utilization_pct": 100}])"}});
}

}  // namespace
}  // namespace assay::dbtest
