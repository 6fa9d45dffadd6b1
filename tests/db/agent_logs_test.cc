// Job logs under hostile volume (issue 8, item 8): the per-attempt quota and its marker,
// paged reads, chunks that break the protocol (seq 0, empty, oversize) and a flood of them
// over a real stream, and the bounded outbound queue of a stream whose agent does not read.
// Issue 9: chunks stored in batches (one transaction) give what one call per chunk gives, and
// the server masks an attempt's secret values in the chunks it stores.

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "assay/v1/agent.grpc.pb.h"
#include "common/base/secret_masker.h"
#include "server/agents/agent_service.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "server/secrets/job_secrets.h"
#include "server/store/logs.h"
#include "server/store/secrets.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

std::string S(int64_t v) { return std::to_string(v); }

// Bytes of the given size that depend on `seed`, so chunks differ.
std::string Bytes(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('A' + (seed * 13 + i) % 50);
  return s;
}

TEST_CASE("logs: past its quota a job stores one marker and drops the rest, acknowledged", "[db]") {
  DbFixture f;
  f.CreatePipeline({Job("a")});
  auto a = f.ClaimOne(f.Agent("agent-1"));
  constexpr int64_t kQuota = 10;
  auto append = [&](int64_t seq, const std::string& data) {
    auto r = f.jobs.AppendLog(a.job_id, a.attempt_token, seq, data, kQuota);
    REQUIRE(r.ok());
    return *r;
  };
  CHECK(append(1, "abcdef") == store::Fence::kOk);
  CHECK(append(1, "abcdef") == store::Fence::kDuplicate);  // a resend is counted once
  CHECK(append(2, "ghijkl") == store::Fence::kDropped);    // crosses: cut to 4 bytes + marker
  CHECK(append(3, "mnop") == store::Fence::kDropped);
  CHECK(append(2, "ghijkl") == store::Fence::kDuplicate);
  const std::string marker =
      "\n[assay] log truncated: job exceeded its 10 bytes log quota; later output was dropped\n";
  CHECK(store::LogTruncationMarker(kQuota) == marker);
  CHECK(store::LogTruncationMarker(int64_t{100} << 20) ==
        "\n[assay] log truncated: job exceeded its 100 MiB log quota; later output was "
        "dropped\n");
  auto log = f.jobs.ReadLog(a.job_id);
  REQUIRE(log.ok());
  CHECK(*log == "abcdefghij" + marker);
  CHECK(f.Query("SELECT seq, octet_length(data) FROM log_chunks ORDER BY seq") ==
        Rows{{"1", "6"}, {"2", S(4 + static_cast<int64_t>(marker.size()))}});
  CHECK(f.Query("SELECT log_bytes, log_truncated FROM job_attempts") == Rows{{"10", "t"}});
  // The result is still recorded.
  auto out = f.FinishJob(a, "succeeded", 0);
  CHECK(out.fence == store::Fence::kOk);
  CHECK(f.One("SELECT state FROM jobs WHERE id = " + S(a.job_id)) == "succeeded");
  // A chunk that lands exactly on the quota is stored whole, with no marker yet.
  f.CreatePipeline({Job("b")});
  auto b = f.ClaimOne(f.Agent("agent-2"));
  REQUIRE(f.jobs.AppendLog(b.job_id, b.attempt_token, 1, std::string(10, 'x'), kQuota).value() ==
          store::Fence::kOk);
  REQUIRE(f.jobs.AppendLog(b.job_id, b.attempt_token, 2, "y", kQuota).value() ==
          store::Fence::kDropped);
  CHECK(f.jobs.ReadLog(b.job_id).value() == std::string(10, 'x') + marker);
  // A stale token changes nothing.
  CHECK(f.jobs.AppendLog(b.job_id, "not-the-token", 3, "z", kQuota).value() ==
        store::Fence::kStale);
}

TEST_CASE("logs: a paged read returns a log larger than a page byte for byte", "[db]") {
  DbFixture f;
  f.CreatePipeline({Job("a")});
  auto a = f.ClaimOne(f.Agent("agent-1"));
  std::string want;
  // Chunks of varied size, some larger than the page, stored out of order.
  const std::vector<size_t> sizes = {1000, 70000, 5, 300000, 64 * 1024, 1, 250000, 12345};
  for (int64_t seq = static_cast<int64_t>(sizes.size()); seq >= 1; --seq) {
    REQUIRE(f.jobs.AppendLog(a.job_id, a.attempt_token, seq, Bytes(sizes[seq - 1], seq)).ok());
  }
  for (size_t i = 0; i < sizes.size(); ++i) want += Bytes(sizes[i], static_cast<int>(i + 1));
  // Stored out of order, the chunks join the log (get their byte offsets) once the ones
  // before them are there: the log reads in seq order.
  store::LogStore logs(&f.db);
  auto head = logs.Head(a.job_id, false);
  REQUIRE(head.ok());
  CHECK(head->attempt == 1);
  CHECK(head->size == static_cast<int64_t>(want.size()));
  std::string got;
  int pages = 0;
  size_t largest = 0;
  while (true) {
    auto page = logs.Read(a.job_id, 1, static_cast<int64_t>(got.size()), INT64_MAX, 128 * 1024);
    REQUIRE(page.ok());
    if (page->data.empty()) break;
    ++pages;
    largest = std::max(largest, page->data.size());
    got += page->data;
    REQUIRE(pages < 100);
  }
  CHECK(got.size() == want.size());
  CHECK(got == want);
  // Pages of exactly the page size, whatever the chunks' sizes: 698,887 bytes in 6.
  CHECK(pages == 6);
  CHECK(largest == 128 * 1024);
  // No log yet: nothing to read. No job: kNotFound.
  f.CreatePipeline({Job("b")});
  auto b = f.ClaimOne(f.Agent("agent-2"));
  auto empty = logs.Head(b.job_id, false);
  REQUIRE(empty.ok());
  CHECK(empty->attempt == 0);
  CHECK(empty->size == 0);
  CHECK(logs.Read(b.job_id, 1, 0, INT64_MAX, 1024).value().data.empty());
  auto missing = logs.Head(999999, false);
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(missing.status().message() == "job 999999 does not exist");
}

// One agent connection over the real protocol; every read is bounded by the call deadline.
class AgentConn {
 public:
  AgentConn(v1::AgentService::Stub* stub, const std::string& token) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    ctx_.AddMetadata("authorization", "Bearer " + token);
    stream_ = stub->Connect(&ctx_);
  }
  bool Write(const v1::AgentMessage& m) { return stream_->Write(m); }
  bool Read(v1::ServerMessage* m) { return stream_->Read(m); }
  // Reads until the server ends the stream; returns its status and counts what it read.
  grpc::Status Drain(int* read = nullptr) {
    v1::ServerMessage m;
    while (stream_->Read(&m)) {
      if (read != nullptr) ++*read;
    }
    return stream_->Finish();
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerMessage>> stream_;
};

// The agent service on a local port over the fixture's stores.
struct Service {
  static constexpr const char* kToken = "agent-token-for-tests";
  Metrics metrics;
  Dispatcher dispatcher;
  std::unique_ptr<AgentServiceImpl> impl;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::AgentService::Stub> stub;

  Service(DbFixture& f, const std::function<void(AgentServiceDeps&)>& tune,
          DispatcherOptions options = DispatcherOptions{absl::Seconds(25)})
      : dispatcher(&f.jobs, &metrics, &f.clock, std::move(options)) {
    AgentServiceDeps deps{&f.agents, &f.jobs, &dispatcher, &metrics, kToken};
    tune(deps);
    impl = std::make_unique<AgentServiceImpl>(deps);
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(impl.get());
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
    stub = v1::AgentService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                         grpc::InsecureChannelCredentials()));
  }
  ~Service() {
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server.reset();
    impl.reset();
  }

  // Connects `name` and reads its welcome.
  std::unique_ptr<AgentConn> Hello(const std::string& name) {
    auto conn = std::make_unique<AgentConn>(stub.get(), kToken);
    v1::AgentMessage m;
    m.mutable_hello()->set_name(name);
    m.mutable_hello()->set_cpu_slots(1);
    REQUIRE(conn->Write(m));
    v1::ServerMessage in;
    REQUIRE(conn->Read(&in));
    REQUIRE(in.has_welcome());
    for (int i = 0; i < 2000 && dispatcher.ConnectedAgents() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return conn;
  }
};

v1::AgentMessage Chunk(int64_t job, const std::string& token, uint64_t seq, std::string data) {
  v1::AgentMessage m;
  m.mutable_log()->set_job_id(job);
  m.mutable_log()->set_attempt_token(token);
  m.mutable_log()->set_seq(seq);
  m.mutable_log()->set_data(std::move(data));
  return m;
}

TEST_CASE("logs: over a stream, chunks past the quota are acknowledged and the result recorded",
          "[db]") {
  DbFixture f;
  Service svc(f, [](AgentServiceDeps& d) { d.job_log_limit_bytes = 16; });
  auto conn = svc.Hello("agent-1");
  f.CreatePipeline({Job("a")});
  REQUIRE(svc.dispatcher.DispatchOnce() == 1);
  v1::ServerMessage in;
  REQUIRE(conn->Read(&in));
  REQUIRE(in.has_assignment());
  const auto a = in.assignment();
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    REQUIRE(conn->Write(Chunk(a.job_id(), a.attempt_token(), seq, "0123456789")));
  }
  v1::AgentMessage r;
  r.mutable_result()->set_job_id(a.job_id());
  r.mutable_result()->set_attempt_token(a.attempt_token());
  r.mutable_result()->set_outcome(v1::JOB_OUTCOME_SUCCEEDED);
  r.mutable_result()->set_last_log_seq(5);
  REQUIRE(conn->Write(r));
  std::vector<std::string> acks;
  while (true) {
    REQUIRE(conn->Read(&in));
    REQUIRE(in.has_ack());
    acks.push_back(S(static_cast<int64_t>(in.ack().log_seq())) + " " +
                   (in.ack().refused() ? "refused " : "") +
                   (in.ack().result_recorded() ? "recorded " : "") + in.ack().message());
    if (in.ack().result_recorded()) break;
  }
  const std::string dropped = "the job's log quota is reached; chunk dropped";
  CHECK(acks == std::vector<std::string>{"1 ", "2 " + dropped, "3 " + dropped, "4 " + dropped,
                                         "5 " + dropped, "5 recorded "});
  CHECK(f.jobs.ReadLog(a.job_id()).value() == "0123456789012345" + store::LogTruncationMarker(16));
  CHECK(f.One("SELECT state FROM jobs WHERE id = " + S(a.job_id())) == "succeeded");
}

TEST_CASE("logs: a chunk with seq 0, no data or too much data ends the stream unacknowledged",
          "[db]") {
  DbFixture f;
  Service svc(f, [](AgentServiceDeps& d) { d.max_log_chunk_bytes = 1000; });
  f.CreatePipeline({Job("a")});
  auto a = f.ClaimOne(f.Agent("agent-0"));
  struct Case {
    uint64_t seq;
    std::string data, message;
  };
  for (const Case& c :
       {Case{0, "x", "log chunk seq must be >= 1"}, Case{1, "", "log chunk data must not be empty"},
        Case{1, std::string(1001, 'x'), "log chunk data must be at most 1000 bytes, got 1001"}}) {
    INFO(c.message);
    auto conn = svc.Hello("agent-1");
    REQUIRE(conn->Write(Chunk(a.job_id, a.attempt_token, c.seq, c.data)));
    int read = 0;
    grpc::Status st = conn->Drain(&read);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message() == c.message);
    CHECK(read == 0);  // no ack
  }
  CHECK(f.Count("SELECT count(*) FROM log_chunks") == 0);
  // Exactly 1,000 bytes is allowed.
  auto conn = svc.Hello("agent-1");
  REQUIRE(conn->Write(Chunk(a.job_id, a.attempt_token, 1, std::string(1000, 'x'))));
  v1::ServerMessage in;
  REQUIRE(conn->Read(&in));
  CHECK(in.ack().log_seq() == 1);
}

TEST_CASE("logs: a flood of 100,000 empty chunks is refused at the first and holds nothing",
          "[db]") {
  DbFixture f;
  Service svc(f, [](AgentServiceDeps&) {});
  f.CreatePipeline({Job("a")});
  auto a = f.ClaimOne(f.Agent("flood"));
  auto conn = svc.Hello("flood");
  // The server reads one message at a time and ends the stream at the first empty chunk; the
  // writes after it stop once the stream is gone (flow control, then the finished call).
  int written = 0;
  for (uint64_t seq = 1; seq <= 100000; ++seq) {
    if (!conn->Write(Chunk(a.job_id, a.attempt_token, seq, ""))) break;
    ++written;
  }
  INFO("chunks the client could write before the stream ended: " << written);
  int read = 0;
  grpc::Status st = conn->Drain(&read);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message() == "log chunk data must not be empty");
  CHECK(read == 0);
  CHECK(written < 100000);
  CHECK(f.Count("SELECT count(*) FROM log_chunks") == 0);
  // Nothing was queued for it but its welcome.
  CHECK(svc.impl->peak_outbound_messages() == 1);
}

TEST_CASE(
    "logs: an agent that does not read fills its bounded queue, the stream ends with "
    "RESOURCE_EXHAUSTED and a job sent to it goes back to the queue",
    "[db]") {
  DbFixture f;
  constexpr size_t kMax = 64;
  Service svc(f, [](AgentServiceDeps& d) { d.max_outbound_messages = kMax; });
  auto conn = svc.Hello("sleepy");
  // Each result without an outcome is answered with an ack (no database work): a cheap way
  // to make the server write while the agent reads nothing.
  v1::AgentMessage bad;
  bad.mutable_result()->set_job_id(1);
  bad.mutable_result()->set_attempt_token("t");
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; i < 100000; ++i) {
      if (!conn->Write(bad)) break;
      ++written;
    }
  });
  // Bounded wait for the queue to fill (the transport's buffers first).
  for (int i = 0; i < 3000 && svc.impl->peak_outbound_messages() < kMax; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(svc.impl->peak_outbound_messages() == kMax);
  // A job dispatched now is not lost: either the stream has already ended (the agent is gone
  // and the job is not claimed) or the send fails and the claim is undone at once.
  f.CreatePipeline({Job("a")});
  CHECK(svc.dispatcher.DispatchOnce() == 0);
  CHECK(f.One("SELECT state FROM jobs") == "queued");
  CHECK(f.Count("SELECT count(*) FROM job_attempts WHERE state IN ('assigned', 'running')") == 0);
  int read = 0;
  grpc::Status st = conn->Drain(&read);
  writer.join();
  INFO("acks read after the overflow: " << read << ", messages written: " << written.load());
  CHECK(st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(st.error_message() ==
        "the server's queue for this stream is full (64 messages unread); reconnect and resend "
        "what was not acknowledged");
  CHECK(svc.impl->peak_outbound_messages() == kMax);
  REQUIRE(svc.impl->AwaitSessionsEnded(1, absl::Seconds(20)));
}

TEST_CASE("logs: a batch of chunks gives each the fence and row one call per chunk gives", "[db]") {
  using store::Fence;
  constexpr int64_t kQuota = 16;
  // Two jobs of one agent; run once as batches (AppendLogs), once chunk by chunk (AppendLog).
  auto run = [&](bool batched) {
    DbFixture f;
    f.CreatePipeline({Job("a"), Job("b")});
    const int64_t agent = f.Agent("agent-1");
    const store::ClaimedJob a = f.ClaimOne(agent);
    const store::ClaimedJob b = f.ClaimOne(agent);
    const std::string ta = a.attempt_token, tb = b.attempt_token;
    const std::vector<std::vector<store::LogAppend>> batches = {
        {{a.job_id, ta, 1, "a1 "},
         {a.job_id, ta, 2, "a2 "},
         {b.job_id, tb, 1, "b1 "},
         {a.job_id, ta, 2, "a2 again "},  // a resend: already stored in this batch
         {a.job_id, ta, 4, "a4 "},        // ahead of 3: waits without an offset
         {a.job_id, "not-a-token", 5, "x"},
         {a.job_id, ta, 3, "a3 "},  // fills the gap: 4 joins the log
         {a.job_id, ta, 5, "a5 "},
         {a.job_id, ta, 4, "a4 again"},
         {b.job_id, tb, 2, "b2-crosses-quota"},  // cut to what fits, then the marker
         {b.job_id, tb, 3, "b3"}},
        {{a.job_id, ta, 6, "a6 "}, {b.job_id, tb, 3, "b3"}, {a.job_id, ta, 7, "a7"}},
    };
    std::vector<Fence> fences;
    for (const auto& batch : batches) {
      if (batched) {
        auto got = f.jobs.AppendLogs(batch, kQuota);
        REQUIRE(got.ok());
        fences.insert(fences.end(), got->begin(), got->end());
      } else {
        for (const auto& c : batch) {
          auto got = f.jobs.AppendLog(c.job_id, c.token, c.seq, c.data, kQuota, c.read_unix_us);
          REQUIRE(got.ok());
          fences.push_back(*got);
        }
      }
    }
    const std::string marker = store::LogTruncationMarker(kQuota);
    CHECK(f.jobs.ReadLog(a.job_id).value() == "a1 a2 a3 a4 a5 a" + marker);
    CHECK(f.jobs.ReadLog(b.job_id).value() == "b1 b2-crosses-qu" + marker);
    CHECK(f.Query("SELECT seq, start_offset FROM log_chunks WHERE job_id = " + S(a.job_id) +
                  " ORDER BY seq") ==
          Rows{{"1", "0"}, {"2", "3"}, {"3", "6"}, {"4", "9"}, {"5", "12"}, {"6", "15"}});
    CHECK(f.Query("SELECT job_id = " + S(a.job_id) +
                  ", log_bytes, log_truncated FROM job_attempts ORDER BY job_id") ==
          Rows{{"t", "16", "t"}, {"f", "16", "t"}});
    return fences;
  };
  const std::vector<Fence> want = {
      Fence::kOk,      Fence::kOk,      Fence::kOk,      Fence::kDuplicate, Fence::kOk,
      Fence::kStale,   Fence::kOk,      Fence::kOk,      Fence::kDuplicate, Fence::kDropped,
      Fence::kDropped, Fence::kDropped, Fence::kDropped, Fence::kDropped};
  CHECK(run(true) == want);
  CHECK(run(false) == want);
}

TEST_CASE("logs: a batch with a seq below 1 stores nothing", "[db]") {
  DbFixture f;
  f.CreatePipeline({Job("a")});
  const store::ClaimedJob a = f.ClaimOne(f.Agent("agent-1"));
  auto got = f.jobs.AppendLogs(
      {{a.job_id, a.attempt_token, 1, "one"}, {a.job_id, a.attempt_token, 0, "zero"}});
  CHECK(got.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(got.status().message() == "log chunk seq must be >= 1");
  CHECK(f.Count("SELECT count(*) FROM log_chunks") == 0);
}

TEST_CASE("logs: the server masks the attempt's secret values in the chunks it stores",
          "[db][secrets]") {
  DbFixture f;
  store::SecretStore secrets{&f.db};
  const KeyRing keys{std::string(32, '\x07')};
  const std::string value = "hunter2-token";
  auto sealed = keys.Seal(value, SecretAad(f.repo_id, "", "API_KEY"));
  REQUIRE(sealed.ok());
  REQUIRE(secrets.Put(f.repo_id, "", "API_KEY", *sealed, 200).ok());
  DispatcherOptions o{absl::Seconds(25)};
  o.secret_key = keys;
  o.secrets = &secrets;
  Service svc(
      f, [](AgentServiceDeps&) {}, o);
  auto conn = svc.Hello("agent-1");
  store::NewJob job = Job("a");
  job.spec_json = R"({"steps":[{"name":"s","run":"true"}],"env":{},"timeout_s":60,)"
                  R"("secrets":[{"name":"API_KEY","as":"env"}]})";
  f.CreatePipeline({job, Job("plain")});
  REQUIRE(svc.dispatcher.DispatchOnce() == 1);  // one slot: the job with the secret first
  v1::ServerMessage in;
  REQUIRE(conn->Read(&in));
  REQUIRE(in.has_assignment());
  const auto a = in.assignment();
  REQUIRE(a.secrets_size() == 1);
  REQUIRE(a.secrets(0).value() == value);
  CHECK(svc.impl->ingest_masks().size() == 1);
  // An agent that masks nothing: the value, its base64, and the value split across two chunks
  // (left to the agent's masker: each chunk is masked on its own).
  const std::vector<std::string> chunks = {
      "token=" + value + "\n", Base64Encode(value, false) + "\n", "split hunt", "er2-token\n"};
  uint64_t seq = 0;
  for (const auto& c : chunks) REQUIRE(conn->Write(Chunk(a.job_id(), a.attempt_token(), ++seq, c)));
  v1::AgentMessage r;
  r.mutable_result()->set_job_id(a.job_id());
  r.mutable_result()->set_attempt_token(a.attempt_token());
  r.mutable_result()->set_outcome(v1::JOB_OUTCOME_SUCCEEDED);
  r.mutable_result()->set_last_log_seq(seq);
  REQUIRE(conn->Write(r));
  std::vector<uint64_t> acked;
  while (true) {
    REQUIRE(conn->Read(&in));
    REQUIRE(in.has_ack());
    if (in.ack().result_recorded()) break;
    acked.push_back(in.ack().log_seq());
  }
  CHECK(acked == std::vector<uint64_t>{1, 2, 3, 4});
  CHECK(f.jobs.ReadLog(a.job_id()).value() == "token=***\n***\nsplit hunter2-token\n");
  // The result is recorded: the values are forgotten.
  CHECK(svc.impl->ingest_masks().size() == 0);
}

}  // namespace
}  // namespace assay::dbtest
