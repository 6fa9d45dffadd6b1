// End to end: an agent whose connection dies 50 times while it runs a job, each time in the
// way that leaves the server's side open (the agent sees the break, the server does not), so
// every reconnect's Hello reaches the server before the old stream ends there. The job keeps
// its lease throughout, runs once, and its log arrives exactly once.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

// A TCP proxy on 127.0.0.1 whose client sides can be cut while the upstream sides stay open
// and unread, like a server's view of a peer that vanished without a FIN or RST.
class CuttableProxy {
 public:
  explicit CuttableProxy(int upstream_port) : upstream_port_(upstream_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof(a);
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      FAIL("cannot listen on 127.0.0.1");
    }
    port_ = ntohs(a.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~CuttableProxy() {
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    accept_thread_.join();
    CutClients();
    absl::MutexLock l(&mu_);
    for (int fd : held_upstreams_) ::close(fd);
    ::close(listen_fd_);
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Closes the client side of every open connection; their upstream sides stay open.
  void CutClients() {
    std::vector<std::unique_ptr<Conn>> conns;
    {
      absl::MutexLock l(&mu_);
      conns.swap(conns_);
    }
    for (auto& c : conns) {
      c->cut = true;
      char b = 1;
      (void)!::write(c->wake[1], &b, 1);
      c->pump.join();
      ::shutdown(c->client, SHUT_RDWR);
      ::close(c->client);
      ::close(c->wake[0]);
      ::close(c->wake[1]);
      absl::MutexLock l(&mu_);
      held_upstreams_.push_back(c->upstream);
    }
  }

 private:
  struct Conn {
    int client = -1, upstream = -1;
    int wake[2] = {-1, -1};
    std::atomic<bool> cut{false};
    std::thread pump;
  };

  void AcceptLoop() {
    while (true) {
      int client = ::accept(listen_fd_, nullptr, nullptr);
      if (client < 0) return;
      int upstream = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<uint16_t>(upstream_port_));
      if (upstream < 0 || ::connect(upstream, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        ::close(client);
        if (upstream >= 0) ::close(upstream);
        continue;
      }
      auto c = std::make_unique<Conn>();
      c->client = client;
      c->upstream = upstream;
      if (::pipe(c->wake) != 0) {
        ::close(client);
        ::close(upstream);
        continue;
      }
      Conn* raw = c.get();
      c->pump = std::thread([raw] { Pump(raw); });
      absl::MutexLock l(&mu_);
      conns_.push_back(std::move(c));
    }
  }

  // Copies both ways until either side closes or the connection is cut.
  static void Pump(Conn* c) {
    char buf[16384];
    while (!c->cut) {
      pollfd fds[3] = {{c->client, POLLIN, 0}, {c->upstream, POLLIN, 0}, {c->wake[0], POLLIN, 0}};
      if (::poll(fds, 3, -1) < 0) return;
      if (c->cut || (fds[2].revents & POLLIN)) return;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].revents == 0) continue;
        ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
        if (n <= 0) return;
        const int to = i == 0 ? c->upstream : c->client;
        for (ssize_t off = 0; off < n;) {
          ssize_t w = ::write(to, buf + off, static_cast<size_t>(n - off));
          if (w <= 0) return;
          off += w;
        }
      }
    }
  }

  const int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread accept_thread_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Conn>> conns_ ABSL_GUARDED_BY(mu_);
  std::vector<int> held_upstreams_ ABSL_GUARDED_BY(mu_);
};

TEST_CASE(
    "an agent that reconnects 50 times while running a job keeps its lease, and the job "
    "runs once and its log arrives once",
    "[e2e]") {
  // Why a short grace and rare heartbeats: a replaced stream that shortened the leases would
  // let the sweep expire the job within about a second, long before a heartbeat renews it.
  Cluster c(
      Options({"--lease", "30s", "--heartbeat-interval", "10s", "--reconnect-grace", "200ms"}));
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  const std::string grpc = c.grpc_address();
  CuttableProxy proxy(std::stoi(grpc.substr(grpc.rfind(':') + 1)));
  MUST(c.StartAgent("a1", {"--server", proxy.address()}));
  MUST(c.WaitForAgents(1));

  const std::string flag = c.dir() + "/finish";
  const std::string pipeline_file = absl::StrReplaceAll(R"yml(jobs:
  work:
    steps:
      - name: work
        run: |
          echo "start $ASSAY_ATTEMPT"
          for i in $(seq 1 900); do [ -f FLAG ] && break; sleep 0.1; done
          echo "end $ASSAY_ATTEMPT"
)yml",
                                                        {{"FLAG", flag}});
  int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", pipeline_file}});
  json::object p = MUST(c.WaitForJobState(pipeline_id, "work", "running"));
  const int64_t job_id = JobId(p, "work");
  MUST(c.WaitUntil("the job's first line", [&](std::string& seen) {
    auto got = c.JobLog(job_id);
    seen = got.ok() ? *got : std::string(got.status().message());
    return got.ok() && *got == "start 1\n";
  }));

  constexpr int kReconnects = 50;
  // Each Hello sets the agent's connected_at.
  const std::string kConnectedAt =
      "SELECT (extract(epoch from connected_at) * 1000000)::bigint FROM agents";
  int64_t connected_at = MUST(c.QueryInt(kConnectedAt));
  for (int i = 0; i < kReconnects; ++i) {
    proxy.CutClients();
    MUST(c.WaitUntil(absl::StrCat("reconnect ", i + 1), [&](std::string& seen) {
      auto t = c.QueryInt(kConnectedAt);
      seen = t.ok() ? absl::StrCat("connected_at ", *t) : std::string(t.status().message());
      return t.ok() && *t != connected_at;
    }));
    connected_at = MUST(c.QueryInt(kConnectedAt));
    // Why wait now and then: a shortened lease expires only when the sweep (every second)
    // runs past the 200 ms grace. Nothing asserted depends on this wait in a fixed server.
    if (i % 10 == 9) absl::SleepFor(absl::Milliseconds(1500));
    auto state = c.Query("SELECT state, attempt FROM jobs");
    REQUIRE(state.ok());
    REQUIRE(state->size() == 1);
    INFO("after reconnect " << i + 1);
    REQUIRE((*state)[0][0].value_or("NULL") == "running");
    REQUIRE((*state)[0][1].value_or("NULL") == "1");
  }

  {
    std::ofstream touch(flag);
    REQUIRE(touch.good());
  }
  p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "succeeded");
  json::object job = Job(p, "work");
  CHECK(JsonString(job, "state") == "succeeded");
  CHECK(job.at("attempt").as_int64() == 1);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts")) == 1);
  CHECK(MUST(c.JobLog(job_id)) == "start 1\nend 1\n");
}

}  // namespace
}  // namespace assay::e2e
