// assay-bench-artifacts: artifact throughput (issue 9, "Benchmarks"). Starts its own PostgreSQL
// (tests/support/pg_server) and a real assay-server (blob store `dir` under its data dir) on
// 127.0.0.1; the bench itself plays the agent: it opens Connect with the shared agent token,
// takes the jobs of a two-job pipeline (build uploads, use needs build's artifacts) and moves
// the files with the agent's own code (agent/artifacts.h ArtifactClient::Upload and Download,
// over gRPC, as assay-agent does after and before a job's steps). Then, on the same disk:
//   cp     `cp SRC DST && sync -f DST` of the same file;
//   curl   `curl -o DST` of GET /api/v1/jobs/{id}/artifacts/PATH, then `sync -f DST`; and the
//          same GET into /dev/null (the server and loopback alone);
//   upload ArtifactClient::Upload of a new file (hash pass, ChunksMissing, UploadChunks,
//          CommitArtifacts); the server stores each chunk with fsync; with the agent's default
//          number of parallel streams, and again (another new file) with one stream;
//   download ArtifactClient::Download into an empty workspace, then `sync -f` of the file;
//   cut    the `use` job uploads another new file through tests/support/tcp_proxy, which is
//          cut when half of the file's chunks are stored: resume = the time from the cut until
//          the server stores chunks of the agent's second round (5 more than it held when the
//          agent logged its retry: at most 4, one per stream, were still in flight);
//          total = the whole upload with the cut.
// Every source file is in the page cache (written just before), as a freshly built artifact
// is. Figures are printed; nothing is asserted. Usage: assay-bench-artifacts [MiB] (1024).

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "agent/artifacts.h"
#include "assay/v1/agent.grpc.pb.h"
#include "tests/support/cluster.h"
#include "tests/support/git_repo.h"
#include "tests/support/pg_server.h"
#include "tests/support/tcp_proxy.h"

namespace {

using assay::testing::Cluster;
namespace v1 = assay::v1;
namespace fs = std::filesystem;

void Check(const absl::Status& s) {
  if (!s.ok()) throw std::runtime_error(s.ToString());
}

// `mib` MiB of pseudo-random bytes (incompressible, no repeated chunk), fsynced.
void MakeFile(const std::string& path, int mib, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string buf(1 << 20, '\0');
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("cannot create " + path);
  for (int i = 0; i < mib; ++i) {
    for (size_t k = 0; k < buf.size(); k += 8) {
      const uint64_t v = rng();
      std::memcpy(&buf[k], &v, 8);
    }
    std::fwrite(buf.data(), 1, buf.size(), f);
  }
  std::fflush(f);
  ::fsync(fileno(f));
  std::fclose(f);
}

double Seconds(absl::Time since) { return absl::ToDoubleSeconds(absl::Now() - since); }

double Shell(const std::string& cmd) {
  const absl::Time t0 = absl::Now();
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
  return Seconds(t0);
}

// Chunks stored by the server (files under DATA_DIR/artifacts/sha256/).
int64_t StoredChunks(const std::string& root) {
  int64_t n = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) ++n;
  }
  return n;
}

// The agent side of Connect: hello, then the assignments as they come; heartbeats every second
// for the jobs it holds, so the lease never runs out while a transfer takes its time.
class FakeAgent {
 public:
  FakeAgent(v1::AgentService::Stub* stub, const std::string& token) {
    ctx_.AddMetadata("authorization", "Bearer " + token);
    stream_ = stub->Connect(&ctx_);
    v1::AgentMessage hello;
    hello.mutable_hello()->set_name("bench-artifacts");
    hello.mutable_hello()->set_cpu_slots(1);
    hello.mutable_hello()->set_version("bench");
    hello.mutable_hello()->add_executors("host");
    Write(hello);
    beat_ = std::thread([this] {
      while (!stop_.load()) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        v1::AgentMessage m;
        auto* hb = m.mutable_heartbeat();
        {
          std::lock_guard<std::mutex> l(mu_);
          if (held_.job_id() != 0) *hb->add_running() = held_;
        }
        Write(m);
      }
    });
  }
  ~FakeAgent() {
    stop_ = true;
    beat_.join();
    ctx_.TryCancel();
    stream_->Finish();
  }

  // Waits for the next Assignment and accepts it.
  v1::Assignment Next() {
    v1::ServerMessage m;
    while (stream_->Read(&m)) {
      if (!m.has_assignment()) continue;
      const v1::Assignment& a = m.assignment();
      v1::AgentMessage acc;
      acc.mutable_accepted()->set_job_id(a.job_id());
      acc.mutable_accepted()->set_attempt_token(a.attempt_token());
      {
        std::lock_guard<std::mutex> l(mu_);
        held_.set_job_id(a.job_id());
        held_.set_attempt_token(a.attempt_token());
      }
      Write(acc);
      return a;
    }
    throw std::runtime_error("the Connect stream ended");
  }

  void Succeed(const v1::Assignment& a) {
    v1::AgentMessage m;
    auto* r = m.mutable_result();
    r->set_job_id(a.job_id());
    r->set_attempt_token(a.attempt_token());
    r->set_outcome(v1::JOB_OUTCOME_SUCCEEDED);
    {
      std::lock_guard<std::mutex> l(mu_);
      held_.Clear();
    }
    Write(m);
  }

 private:
  void Write(const v1::AgentMessage& m) {
    std::lock_guard<std::mutex> l(write_mu_);
    stream_->Write(m);
  }

  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerMessage>> stream_;
  std::mutex mu_, write_mu_;
  v1::HeldJob held_;
  std::atomic<bool> stop_{false};
  std::thread beat_;
};

std::unique_ptr<v1::AgentService::Stub> StubTo(const std::string& address) {
  grpc::ChannelArguments args;  // as assay-agent's channel
  args.SetMaxReceiveMessageSize(64 << 20);
  return v1::AgentService::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

double Upload(v1::AgentService::Stub* stub, const v1::Assignment& a, const std::string& ws,
              const std::string& name, assay::UploadSummary* out, size_t streams = 0,
              const std::function<void()>& on_resume = nullptr) {
  assay::ArtifactTransferOptions o;  // the agent's defaults
  if (streams > 0) o.upload_streams = streams;
  assay::ArtifactClient client(stub, assay::testing::kAgentToken, a.job_id(), a.attempt_token(), o);
  assay::CancelFlag cancel;
  const absl::Time t0 = absl::Now();
  auto up =
      client.Upload(ws, {{name, name, 0644}}, std::nullopt, cancel, [&](std::string_view line) {
        if (on_resume) on_resume();
        std::cout << "  " << line;
      });
  if (!up.ok()) throw std::runtime_error(up.status().ToString());
  *out = *up;
  return Seconds(t0);
}

void Row(const std::string& what, double mib, double secs, double cp_mbs) {
  const double mbs = mib / secs;
  std::cout << absl::StrFormat("| %-34s | %8.2f | %9.1f | %5.2fx |\n", what, secs, mbs,
                               cp_mbs > 0 ? mbs / cp_mbs : 1.0);
}

void Run(int mib) {
  auto pg = assay::testing::PgServer::Create();
  if (!pg.ok()) throw std::runtime_error(pg.status().ToString());
  assay::testing::ClusterOptions o;
  o.binary_dir = ASSAY_BINARY_DIR;
  o.admin_dsn = (*pg)->admin_dsn();
  o.server_flags = {"--lease", "10m"};
  Cluster c(o);
  Check(c.StartServer());
  auto repo = assay::testing::GitRepo::Init(c.dir() + "/repo");
  if (!repo.ok()) throw std::runtime_error(repo.status().ToString());
  Check(c.AddRepo("bench/artifacts", repo->clone_url(), "bench-secret"));
  const std::string file =
      "jobs:\n"
      "  build:\n    artifacts: {paths: [big.bin]}\n    steps:\n      - run: 'true'\n"
      "  use:\n    needs: [{job: build, artifacts: true}]\n"
      "    artifacts: {paths: [cut.bin]}\n    steps:\n      - run: 'true'\n";
  auto sha = repo->Commit({{".assay.yml", file}}, {}, "bench");
  if (!sha.ok()) throw std::runtime_error(sha.status().ToString());
  auto delivery = c.Push(Cluster::PushPayload(repo->clone_url(), "bench/artifacts", *sha), "d1",
                         "bench-secret");
  if (!delivery.ok()) throw std::runtime_error(delivery.status().ToString());

  const std::string b = c.dir() + "/bench";
  for (const char* d : {"src", "cp", "curl", "dl"}) fs::create_directories(b + "/" + d);
  std::cout << "making " << mib << " MiB files in " << b << " ...\n";
  MakeFile(b + "/src/big.bin", mib, 1);
  MakeFile(b + "/src/cut.bin", mib, 2);
  MakeFile(b + "/src/one.bin", mib, 3);
  const std::string blobs = c.dir() + "/server-data/artifacts/sha256";

  auto stub = StubTo(c.grpc_address());
  FakeAgent agent(stub.get(), assay::testing::kAgentToken);
  // build: the upload.
  v1::Assignment build = agent.Next();
  assay::UploadSummary up;
  const double up_s = Upload(stub.get(), build, b + "/src", "big.bin", &up);
  agent.Succeed(build);

  // use: the download, then the cut upload.
  v1::Assignment use = agent.Next();
  const absl::Time d0 = absl::Now();
  {
    assay::ArtifactClient client(stub.get(), assay::testing::kAgentToken, use.job_id(),
                                 use.attempt_token());
    assay::CancelFlag cancel;
    auto writer = assay::ArtifactWriter::Open(b + "/dl", std::nullopt);
    if (!writer.ok()) throw std::runtime_error(writer.status().ToString());
    Check(client.Download(*writer, cancel, [](std::string_view l) { std::cout << "  " << l; }));
  }
  Shell("sync -f " + b + "/dl/big.bin");
  const double down_s = Seconds(d0);

  // Why the median of 3: the disk is shared; one cp alone moved by 1.6x between runs.
  std::vector<double> cps;
  for (int i = 0; i < 3; ++i) {
    cps.push_back(Shell("rm -f " + b + "/cp/big.bin && cp " + b + "/src/big.bin " + b +
                        "/cp/big.bin && sync -f " + b + "/cp/big.bin"));
  }
  std::sort(cps.begin(), cps.end());
  const double cp_s = cps[1];
  const double curl_s =
      Shell(absl::StrCat("curl -sS -f -o ", b, "/curl/big.bin -H 'Authorization: Bearer ",
                         assay::testing::kAdminToken, "' ", c.http_url(), "/api/v1/jobs/",
                         build.job_id(), "/artifacts/big.bin && sync -f ", b, "/curl/big.bin"));
  // The same GET into /dev/null: what the server and loopback give without the client's disk.
  const double curl_null_s = Shell(absl::StrCat(
      "curl -sS -f -o /dev/null -H 'Authorization: Bearer ", assay::testing::kAdminToken, "' ",
      c.http_url(), "/api/v1/jobs/", build.job_id(), "/artifacts/big.bin"));
  Shell("cmp " + b + "/src/big.bin " + b + "/dl/big.bin && cmp " + b + "/src/big.bin " + b +
        "/curl/big.bin");
  assay::UploadSummary one_up;
  const double one_s = Upload(stub.get(), use, b + "/src", "one.bin", &one_up, 1);

  // The cut: through a proxy, cut once half of cut.bin's chunks are stored.
  const int64_t before = StoredChunks(blobs);
  const int64_t total_chunks =
      (int64_t{mib} << 20) / static_cast<int64_t>(assay::kArtifactChunkBytes);
  const std::string grpc = c.grpc_address();
  assay::testing::TcpProxy proxy(std::stoi(grpc.substr(grpc.rfind(':') + 1)));
  Check(proxy.Start());
  auto cut_stub = StubTo(absl::StrCat("127.0.0.1:", proxy.port()));
  std::atomic<bool> done{false};
  absl::Time cut_at, resumed_at;
  std::atomic<int64_t> retry_us{0};  // when the agent decided to go on (its log line)
  int64_t at_cut = 0;
  std::thread watcher([&] {
    while (!done.load() && StoredChunks(blobs) - before < total_chunks / 2) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (done.load()) return;
    cut_at = absl::Now();
    proxy.CutAll();
    at_cut = StoredChunks(blobs);
    while (!done.load() && retry_us.load() == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // Why +5: up to 4 chunks (one per stream) may still be stored after the retry decision
    // from the first round; the 5th new one comes from the second round.
    const int64_t at_retry = StoredChunks(blobs);
    while (!done.load() && StoredChunks(blobs) < at_retry + 5) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    resumed_at = absl::Now();
  });
  assay::UploadSummary cut_up;
  double cut_s = 0;
  try {
    cut_s = Upload(cut_stub.get(), use, b + "/src", "cut.bin", &cut_up, 0, [&] {
      int64_t zero = 0;
      retry_us.compare_exchange_strong(zero, absl::ToUnixMicros(absl::Now()));
    });
  } catch (...) {
    done = true;
    watcher.join();
    throw;
  }
  done = true;
  watcher.join();
  agent.Succeed(use);

  const double cp_mbs = mib / cp_s;
  std::cout << "\n" << mib << " MiB, one file, same disk (" << b << ")\n";
  std::cout << "| what                               |   secs   |  MiB/s    | vs cp |\n"
               "|------------------------------------|---------:|----------:|------:|\n";
  Row(absl::StrFormat("cp + sync -f (median; %.2f-%.2f s)", cps[0], cps[2]), mib, cp_s, cp_mbs);
  Row("curl GET .../artifacts/big.bin + sync", mib, curl_s, cp_mbs);
  Row("curl GET ... -o /dev/null (no disk)", mib, curl_null_s, cp_mbs);
  Row(absl::StrCat("agent upload, ", assay::ArtifactTransferOptions().upload_streams,
                   " streams (default)"),
      mib, up_s, cp_mbs);
  Row("agent upload, 1 stream", mib, one_s, cp_mbs);
  Row("agent download (gRPC) + sync -f", mib, down_s, cp_mbs);
  Row("agent upload, cut at 50 %", mib, cut_s, cp_mbs);
  std::cout << absl::StrFormat(
      "cut at 50 %%: %d of %d chunks stored at the cut; the agent decided to resume %.3f s "
      "after the cut; resumed (second round storing chunks) %.2f s after the cut; "
      "upload rounds %d; %.1f MiB new\n",
      at_cut - before, total_chunks,
      static_cast<double>(retry_us.load() - absl::ToUnixMicros(cut_at)) / 1e6,
      resumed_at > cut_at ? absl::ToDoubleSeconds(resumed_at - cut_at) : -1.0, cut_up.attempts,
      static_cast<double>(cut_up.new_bytes) / (1 << 20));
}

}  // namespace

int main(int argc, char** argv) {
  int mib = 1024;
  if (argc > 1 && (!absl::SimpleAtoi(argv[1], &mib) || mib < 8 || mib > 8192)) {
    std::cerr << "usage: assay-bench-artifacts [MiB 8..8192]\n";
    return 2;
  }
  try {
    Run(mib);
  } catch (const std::exception& e) {
    std::cerr << "assay-bench-artifacts: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
