// Agent sessions and reconnects: the generation each Hello starts, the guarded disconnect and
// lease shortening of a replaced session in the store, and a reconnect storm over the real
// gRPC service (in process, on a simulated clock) in which no job loses its lease or runs
// twice.

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "assay/v1/agent.grpc.pb.h"
#include "server/agents/agent_service.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

std::string S(int64_t v) { return std::to_string(v); }

TEST_CASE("agent sessions: each Hello starts the next generation", "[db]") {
  DbFixture f;
  store::AgentSession first = f.Connect("agent-1");
  store::AgentSession second = f.Connect("agent-1");
  store::AgentSession other = f.Connect("agent-2");
  CHECK(first.generation == 1);
  CHECK(second.id == first.id);
  CHECK(second.generation == 2);
  CHECK(other.generation == 1);
  CHECK(f.Query("SELECT name, generation, state FROM agents ORDER BY name") ==
        Rows{{"agent-1", "2", "online"}, {"agent-2", "1", "online"}});
}

TEST_CASE(
    "agent sessions: a replaced session neither disconnects the agent nor shortens "
    "its leases",
    "[db]") {
  DbFixture f;
  store::AgentSession old_session = f.Connect("agent-1");
  f.CreatePipeline({Job("a"), Job("b")});
  auto a = f.ClaimOne(old_session.id, absl::Seconds(30));
  auto b = f.ClaimOne(old_session.id, absl::Seconds(30));
  const absl::Time t = f.clock.Now();

  // The agent reconnects before the server has handled the end of its old stream.
  store::AgentSession current = f.Connect("agent-1");
  REQUIRE(current.generation == old_session.generation + 1);

  auto shortened = f.jobs.ShortenLeases(old_session, absl::Seconds(5));
  REQUIRE(shortened.ok());
  CHECK(*shortened == 0);
  auto was_current = f.agents.Disconnect(old_session);
  REQUIRE(was_current.ok());
  CHECK_FALSE(*was_current);
  CHECK(f.One("SELECT state FROM agents WHERE id = " + S(current.id)) == "online");
  for (int64_t job : {a.job_id, b.job_id}) {
    CHECK(f.UsOf("jobs", "lease_expires_at", job) == S(Us(t + absl::Seconds(30))));
  }
  f.clock.Advance(absl::Seconds(6));
  auto expired = f.jobs.ExpireLeases();
  REQUIRE(expired.ok());
  CHECK(*expired == 0);

  // The current session's end does both.
  shortened = f.jobs.ShortenLeases(current, absl::Seconds(5));
  REQUIRE(shortened.ok());
  CHECK(*shortened == 2);
  was_current = f.agents.Disconnect(current);
  REQUIRE(was_current.ok());
  CHECK(*was_current);
  CHECK(f.One("SELECT state FROM agents WHERE id = " + S(current.id)) == "offline");
  for (int64_t job : {a.job_id, b.job_id}) {
    CHECK(f.UsOf("jobs", "lease_expires_at", job) ==
          S(Us(t + absl::Seconds(6) + absl::Seconds(5))));
  }
}

// One agent connection over the real protocol. Every read is bounded by the call deadline.
class AgentConn {
 public:
  AgentConn(v1::AgentService::Stub* stub, const std::string& token) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    ctx_.AddMetadata("authorization", "Bearer " + token);
    stream_ = stub->Connect(&ctx_);
  }
  bool Write(const v1::AgentMessage& m) { return stream_->Write(m); }
  bool Read(v1::ServerMessage* m) { return stream_->Read(m); }
  // Reads until the server ends the stream; returns its status.
  grpc::Status Drain() {
    v1::ServerMessage m;
    while (stream_->Read(&m)) {
    }
    return stream_->Finish();
  }
  void Close() {
    stream_->WritesDone();
    Drain();
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerMessage>> stream_;
};

TEST_CASE(
    "agent sessions: an agent reconnecting 50 times while running jobs keeps every "
    "lease, and no job runs twice",
    "[db]") {
  DbFixture f;
  Metrics metrics;
  DispatcherOptions dopts;
  dopts.lease = absl::Seconds(25);
  Dispatcher dispatcher(&f.jobs, &metrics, &f.clock, dopts);  // driven by hand: not started
  const std::string kToken = "agent-token-for-tests";
  AgentServiceDeps deps{&f.agents, &f.jobs, &dispatcher, &metrics, kToken};
  deps.reconnect_grace = absl::Seconds(5);
  auto service = std::make_unique<AgentServiceImpl>(deps);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  REQUIRE(server != nullptr);
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto stub = v1::AgentService::NewStub(channel);

  constexpr int kJobs = 4;
  f.CreatePipeline({Job("j1"), Job("j2"), Job("j3"), Job("j4")});
  std::vector<v1::Assignment> running;
  auto hello = [&] {
    v1::AgentMessage m;
    m.mutable_hello()->set_name("storm");
    m.mutable_hello()->set_cpu_slots(kJobs);
    for (const auto& a : running) {
      auto* h = m.mutable_hello()->add_held_jobs();
      h->set_job_id(a.job_id());
      h->set_attempt_token(a.attempt_token());
    }
    return m;
  };

  auto conn = std::make_unique<AgentConn>(stub.get(), kToken);
  REQUIRE(conn->Write(hello()));
  v1::ServerMessage in;
  REQUIRE(conn->Read(&in));
  REQUIRE(in.has_welcome());
  // The welcome is queued just before the agent joins the dispatcher: wait (bounded).
  for (int i = 0; i < 2000 && dispatcher.ConnectedAgents() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(dispatcher.DispatchOnce() == kJobs);
  for (int i = 0; i < kJobs; ++i) {
    REQUIRE(conn->Read(&in));
    REQUIRE(in.has_assignment());
    running.push_back(in.assignment());
    v1::AgentMessage acc;
    acc.mutable_accepted()->set_job_id(in.assignment().job_id());
    acc.mutable_accepted()->set_attempt_token(in.assignment().attempt_token());
    REQUIRE(conn->Write(acc));
  }
  // Accepted messages are not acknowledged: wait (bounded) until all four are running.
  for (int i = 0; i < 2000 && f.Count("SELECT count(*) FROM jobs WHERE state = 'running'") < kJobs;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(f.Count("SELECT count(*) FROM jobs WHERE state = 'running'") == kJobs);

  // Each reconnect's Hello renews the leases and then replaces the old stream, whose end is
  // handled after that renewal.
  constexpr int kReconnects = 50;
  for (int i = 0; i < kReconnects; ++i) {
    f.clock.Advance(absl::Seconds(1));
    auto next = std::make_unique<AgentConn>(stub.get(), kToken);
    REQUIRE(next->Write(hello()));
    REQUIRE(next->Read(&in));
    REQUIRE(in.has_welcome());
    CHECK(in.welcome().stale_jobs_size() == 0);
    grpc::Status old_end = conn->Drain();
    CHECK(old_end.error_code() == grpc::StatusCode::ABORTED);
    CHECK(old_end.error_message() == "replaced by a newer connection of the same agent");
    conn = std::move(next);
  }
  REQUIRE(service->AwaitSessionsEnded(kReconnects, absl::Seconds(20)));

  const absl::Time t = f.clock.Now();
  CHECK(f.Query("SELECT state, generation FROM agents") == Rows{{"online", S(kReconnects + 1)}});
  for (const auto& a : running) {
    INFO("job " << a.job_id());
    CHECK(f.UsOf("jobs", "lease_expires_at", a.job_id()) == S(Us(t + absl::Seconds(25))));
  }
  // Past the reconnect grace, within the lease: nothing expires.
  f.clock.Advance(absl::Seconds(6));
  auto expired = f.jobs.ExpireLeases();
  REQUIRE(expired.ok());
  CHECK(*expired == 0);

  // Every job finishes on the attempt it started with.
  for (const auto& a : running) {
    v1::AgentMessage r;
    r.mutable_result()->set_job_id(a.job_id());
    r.mutable_result()->set_attempt_token(a.attempt_token());
    r.mutable_result()->set_outcome(v1::JOB_OUTCOME_SUCCEEDED);
    REQUIRE(conn->Write(r));
  }
  std::set<int64_t> recorded;
  while (recorded.size() < kJobs) {
    REQUIRE(conn->Read(&in));
    if (in.has_ack() && in.ack().result_recorded()) recorded.insert(in.ack().job_id());
  }
  CHECK(f.Query("SELECT state, attempt FROM jobs ORDER BY id") == Rows(kJobs, {"succeeded", "1"}));
  CHECK(f.Query("SELECT state, count(*) FROM job_attempts GROUP BY state") ==
        Rows{{"succeeded", S(kJobs)}});

  conn->Close();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server.reset();
  service.reset();
}

}  // namespace
}  // namespace assay::dbtest
