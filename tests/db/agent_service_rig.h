#pragma once
// The agent service on a loopback gRPC port over a DbFixture's stores, with a dispatcher the
// test drives by hand (not started), and a stub to speak to it as an agent would.

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "assay/v1/agent.grpc.pb.h"
#include "server/agents/agent_service.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {

struct AgentServiceRig {
  static constexpr char kToken[] = "agent-token-for-tests";
  Metrics metrics;
  std::unique_ptr<Dispatcher> dispatcher;
  std::unique_ptr<AgentServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::AgentService::Stub> stub;

  // `tune` may change the service's deps before it starts (e.g. its reconnect grace).
  explicit AgentServiceRig(DbFixture& f, DispatcherOptions dopts = {},
                           const std::function<void(AgentServiceDeps&)>& tune = nullptr) {
    dispatcher = std::make_unique<Dispatcher>(&f.jobs, &metrics, &f.clock, dopts);
    AgentServiceDeps deps{&f.agents, &f.jobs, dispatcher.get(), &metrics, kToken};
    if (tune) tune(deps);
    service = std::make_unique<AgentServiceImpl>(deps);
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
    stub = v1::AgentService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                         grpc::InsecureChannelCredentials()));
  }
  ~AgentServiceRig() {
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server.reset();
    service.reset();
  }
  AgentServiceRig(const AgentServiceRig&) = delete;
  AgentServiceRig& operator=(const AgentServiceRig&) = delete;
};

}  // namespace assay::dbtest
