// Bad agent input over the real gRPC stream: the server answers with a precise status and
// records nothing it should not.
#include <grpcpp/grpcpp.h>

#include <filesystem>

#include "assay/v1/agent.grpc.pb.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

struct StreamEnd {
  grpc::StatusCode code;
  std::string message;
};

// Opens a Connect stream with `token`, sends `msgs`, half-closes, and returns how the server
// ended the stream.
StreamEnd Converse(const std::string& address, const std::string& token,
                   const std::vector<v1::AgentMessage>& msgs) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = v1::AgentService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  auto stream = stub->Connect(&ctx);
  for (const auto& m : msgs) stream->Write(m);
  stream->WritesDone();
  v1::ServerMessage in;
  while (stream->Read(&in)) {
  }
  grpc::Status s = stream->Finish();
  return {s.error_code(), s.error_message()};
}

v1::AgentMessage Hello(const std::string& name, uint32_t slots) {
  v1::AgentMessage m;
  m.mutable_hello()->set_name(name);
  m.mutable_hello()->set_cpu_slots(slots);
  return m;
}

TEST_CASE("agent stream: bad token, missing hello and bad hello are refused precisely", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  const std::string addr = c.grpc_address();

  StreamEnd no_token = Converse(addr, "", {Hello("a1", 1)});
  CHECK(no_token.code == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(no_token.message == "missing or invalid agent token (authorization: Bearer <token>)");
  StreamEnd wrong = Converse(addr, "not-the-agent-token", {Hello("a1", 1)});
  CHECK(wrong.code == grpc::StatusCode::UNAUTHENTICATED);

  v1::AgentMessage hb;
  hb.mutable_heartbeat();
  StreamEnd first_not_hello = Converse(addr, testing::kAgentToken, {hb});
  CHECK(first_not_hello.code == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(first_not_hello.message == "the first message on a stream must be hello");

  StreamEnd bad_name = Converse(addr, testing::kAgentToken, {Hello("../etc", 1)});
  CHECK(bad_name.code == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(bad_name.message ==
        "hello.name must be 1-100 characters of letters, digits, '_', '.', '-'");
  StreamEnd no_slots = Converse(addr, testing::kAgentToken, {Hello("a1", 0)});
  CHECK(no_slots.code == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(no_slots.message == "hello.cpu_slots must be between 1 and 1024");

  StreamEnd twice = Converse(addr, testing::kAgentToken, {Hello("a1", 1), Hello("a1", 1)});
  CHECK(twice.code == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(twice.message == "hello sent twice on one stream");

  // Only the one well-formed hello registered an agent; nothing else was written.
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM agents")) == 1);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts")) == 0);
  // The server is still serving.
  auto health = MUST(c.Fetch("GET", "/healthz"));
  CHECK(health.status == 200);
}

}  // namespace
}  // namespace assay::e2e

namespace assay::e2e {
namespace {

TEST_CASE("an agent announces the GPUs of an nvidia-smi capture, the API lists them", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  const std::string capture = std::string(ASSAY_SOURCE_DIR) + "/tests/fixtures/gpu/h200-busy-q.xml";
  MUST(c.StartAgent("gpu-1", {"--gpu-inventory", capture, "--labels", "gpu"}));
  MUST(c.WaitForAgents(1));
  auto agents = MUST(c.ApiObject("GET", "/api/v1/agents"));
  const auto& list = agents.at("agents").as_array();
  REQUIRE(list.size() == 1);
  const auto& a = list[0].as_object();
  CHECK(a.at("name").as_string() == "gpu-1");
  CHECK(boost::json::serialize(a.at("labels")) == R"(["gpu"])");
  // Compared as JSON values: PostgreSQL's jsonb keeps its own key order.
  CHECK(a.at("gpus") ==
        boost::json::parse(R"([{"index":0,"memory_mb":143771,"name":"NVIDIA H200",)"
                           R"("uuid":"GPU-964672fc-6cf0-fc7b-0004-1057f80a90b1"}])"));
}

}  // namespace
}  // namespace assay::e2e

namespace assay::e2e {
namespace {

// Issue 11: the agents page's GPU load. The agent samples its GPUs (here: its capture, read
// again) and each heartbeat carries the newest sample; the API shows it with its time.
TEST_CASE("an agent's heartbeats carry its GPUs' load, and the API shows the newest", "[e2e]") {
  Cluster c(Options({"--heartbeat-interval", "500ms"}));
  MUST(c.StartServer());
  const std::string fixtures = std::string(ASSAY_SOURCE_DIR) + "/tests/fixtures/gpu/";
  const std::string capture = c.dir() + "/gpus.csv";
  std::filesystem::copy_file(fixtures + "h200-busy-query.csv", capture);
  MUST(c.StartAgent("gpu-1", {"--gpu-inventory", capture}));
  MUST(c.WaitForAgents(1));
  auto usage = [&c](std::string& seen) {
    auto agents = c.ApiObject("GET", "/api/v1/agents");
    if (!agents.ok()) return std::string();
    const auto& a = agents->at("agents").as_array()[0].as_object();
    seen = boost::json::serialize(a);
    return boost::json::serialize(a.at("gpu_usage"));
  };
  MUST(c.WaitUntil("the busy sample", [&](std::string& seen) {
    return usage(seen) == R"([{"index":0,"memory_used_mb":20085,"utilization_pct":100}])";
  }));
  // The GPU goes idle: a later heartbeat says so.
  std::filesystem::copy_file(fixtures + "h200-idle-query.csv", capture + ".new");
  std::filesystem::rename(capture + ".new", capture);
  MUST(c.WaitUntil("the idle sample", [&](std::string& seen) {
    return usage(seen) == R"([{"index":0,"memory_used_mb":0,"utilization_pct":0}])";
  }));
  std::string seen;
  usage(seen);
  INFO(seen);
  CHECK(seen.find(R"("gpu_usage_at":null)") == std::string::npos);
}

}  // namespace
}  // namespace assay::e2e
