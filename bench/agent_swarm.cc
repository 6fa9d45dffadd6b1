// assay-bench-swarm: many simulated agents on one real assay-server. See bench/README.md
// ("Scheduler benchmarks", 3).
//
// Opens --agents bidi Connect streams (gRPC callback API) spread round-robin over --channels
// channels. Each channel gets its own channel argument, so gRPC gives each its own subchannel
// and HTTP/2 connection (channels with equal arguments would share one). Each stream sends
// Hello {name: sim-NNNNN, 1 slot} and then an empty Heartbeat every --heartbeat-interval; the
// heartbeats of all streams are spread evenly over the interval.
//
// Once every stream has its Welcome, it waits --settle, then samples the server (--server-pid:
// utime+stime from /proc/PID/stat, VmRSS and VmHWM from /proc/PID/status, threads, open fds),
// waits --window, samples again and prints the figures (and one `RESULT {json}` line). Every
// wait is bounded; the program cancels its streams and exits at the end.
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "assay/v1/agent.grpc.pb.h"
#include "common/base/config.h"

namespace assay::bench {
namespace {

std::atomic<bool> g_stop{false};

struct ProcSample {
  double cpu_s = 0;  // utime + stime
  long rss_kb = 0, hwm_kb = 0, threads = 0, fds = 0;
  bool ok = false;
};

ProcSample SampleProc(long pid) {
  ProcSample s;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return s;
  auto close = line.rfind(')');
  if (close == std::string::npos) return s;
  std::istringstream rest(line.substr(close + 2));
  std::string f[15];
  for (auto& v : f) rest >> v;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  s.cpu_s = (std::atof(f[11].c_str()) + std::atof(f[12].c_str())) / hz;  // fields 14, 15
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  while (std::getline(status, line)) {
    auto num = [&] { return std::atol(line.c_str() + line.find(':') + 1); };
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kb = num();
    if (line.rfind("VmHWM:", 0) == 0) s.hwm_kb = num();
    if (line.rfind("Threads:", 0) == 0) s.threads = num();
  }
  if (DIR* d = opendir(absl::StrCat("/proc/", pid, "/fd").c_str())) {
    while (dirent* e = readdir(d)) s.fds += e->d_name[0] != '.';
    closedir(d);
  }
  s.ok = true;
  return s;
}

double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

class Swarm;

class SimAgent final : public grpc::ClientBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  SimAgent(Swarm* swarm, int index) : swarm_(swarm), index_(index) {}
  void Begin(v1::AgentService::Stub* stub, const std::string& token, const std::string& name);
  void SendHeartbeat();
  void Cancel() { ctx_.TryCancel(); }
  bool welcomed() const { return welcomed_.load(); }
  absl::Duration connect_latency() const { return welcome_at_ - started_at_; }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& s) override;

 private:
  Swarm* swarm_;
  const int index_;
  grpc::ClientContext ctx_;
  v1::AgentMessage hello_, heartbeat_;
  v1::ServerMessage in_;
  std::mutex mu_;
  bool writing_ = false, pending_heartbeat_ = false, broken_ = false, hold_removed_ = false;
  std::atomic<bool> welcomed_{false};
  absl::Time started_at_, welcome_at_;
};

class Swarm {
 public:
  void Welcomed() {
    std::lock_guard<std::mutex> l(mu_);
    ++welcomed_;
    last_welcome_ = absl::Now();
    cv_.notify_all();
  }
  void Ended(int index, const grpc::Status& s) {
    std::lock_guard<std::mutex> l(mu_);
    ++ended_;
    if (!g_stop.load()) {
      ++ended_early_;
      if (ended_early_ <= 5) {
        std::cerr << absl::StrFormat("stream sim-%05d ended: code %d: %s\n", index,
                                     static_cast<int>(s.error_code()), s.error_message());
      }
    }
    cv_.notify_all();
  }
  void HeartbeatSent() { heartbeats_.fetch_add(1); }
  void ServerMessage() { server_messages_.fetch_add(1); }

  // Waits until `pred` holds or `deadline`; returns whether it held.
  template <typename P>
  bool WaitFor(absl::Time deadline, P pred) {
    std::unique_lock<std::mutex> l(mu_);
    while (!pred(welcomed_, ended_)) {
      if (absl::Now() >= deadline) return false;
      cv_.wait_for(l, std::chrono::milliseconds(100));
    }
    return true;
  }
  int welcomed() {
    std::lock_guard<std::mutex> l(mu_);
    return welcomed_;
  }
  int ended() {
    std::lock_guard<std::mutex> l(mu_);
    return ended_;
  }
  int ended_early() {
    std::lock_guard<std::mutex> l(mu_);
    return ended_early_;
  }
  absl::Time last_welcome() {
    std::lock_guard<std::mutex> l(mu_);
    return last_welcome_;
  }
  int64_t heartbeats() const { return heartbeats_.load(); }
  int64_t server_messages() const { return server_messages_.load(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int welcomed_ = 0, ended_ = 0, ended_early_ = 0;
  absl::Time last_welcome_;
  std::atomic<int64_t> heartbeats_{0}, server_messages_{0};
};

void SimAgent::Begin(v1::AgentService::Stub* stub, const std::string& token,
                     const std::string& name) {
  ctx_.AddMetadata("authorization", "Bearer " + token);
  auto* h = hello_.mutable_hello();
  h->set_name(name);
  h->set_cpu_slots(1);
  h->set_version("bench-swarm");
  heartbeat_.mutable_heartbeat();
  started_at_ = absl::Now();
  stub->async()->Connect(&ctx_, this);
  writing_ = true;
  // Why a hold: OnDone must not run while another thread may still start a heartbeat write;
  // the hold is removed once the stream broke (read failed) and no write is in flight.
  AddHold();
  StartWrite(&hello_);
  StartRead(&in_);
  StartCall();
}

void SimAgent::SendHeartbeat() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (broken_) return;
    if (writing_) {
      pending_heartbeat_ = true;
      return;
    }
    writing_ = true;
  }
  swarm_->HeartbeatSent();
  StartWrite(&heartbeat_);
}

void SimAgent::OnWriteDone(bool ok) {
  bool again = false, release = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    writing_ = false;
    if (ok && pending_heartbeat_ && !broken_) {
      pending_heartbeat_ = false;
      writing_ = again = true;
    }
    if (broken_ && !writing_ && !hold_removed_) release = hold_removed_ = true;
  }
  if (again) {
    swarm_->HeartbeatSent();
    StartWrite(&heartbeat_);
  }
  if (release) RemoveHold();
}

void SimAgent::OnReadDone(bool ok) {
  if (!ok) {  // the stream is ending (cancelled by us or closed by the server)
    bool release = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      broken_ = true;
      if (!writing_ && !hold_removed_) release = hold_removed_ = true;
    }
    if (release) RemoveHold();
    return;
  }
  swarm_->ServerMessage();
  if (in_.has_welcome() && !welcomed_.load()) {
    welcome_at_ = absl::Now();
    welcomed_ = true;
    swarm_->Welcomed();
  }
  StartRead(&in_);
}

void SimAgent::OnDone(const grpc::Status& s) { swarm_->Ended(index_, s); }

double Pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

int Run(int argc, char** argv) {
  const std::vector<OptionSpec> specs = {
      {"server", "127.0.0.1:9090", "the server's gRPC address"},
      {"token", "", "agent token", true, false, {}, /*secret=*/true},
      {"agents", "10000", "streams (agents sim-00000 ...)"},
      {"channels", "20", "gRPC channels (one HTTP/2 connection each)"},
      {"heartbeat-interval", "10s", "per stream"},
      {"connect-deadline", "300s", "give up waiting for every Welcome after this long"},
      {"settle", "10s", "wait after the last Welcome before the measurement window"},
      {"window", "60s", "measurement window"},
      {"server-pid", "0", "the assay-server process to sample"},
      {"hold", "0s", "keep the streams open this long after the window (e.g. for a profiler)"},
  };
  auto cfg = Config::Parse(argc, argv, specs, "assay-bench-swarm");
  if (!cfg.ok()) {
    bool help = cfg.status().code() == absl::StatusCode::kCancelled;
    std::cerr << cfg.status().message() << "\n";
    return help ? 0 : 2;
  }
  auto geti = [&](const char* k) {
    auto v = cfg->GetInt(k);
    if (!v.ok()) {
      std::cerr << v.status().message() << "\n";
      std::exit(2);
    }
    return *v;
  };
  auto getd = [&](const char* k) {
    auto v = cfg->GetDuration(k);
    if (!v.ok()) {
      std::cerr << v.status().message() << "\n";
      std::exit(2);
    }
    return *v;
  };
  const int n = static_cast<int>(geti("agents"));
  const int n_channels = std::max<int>(1, static_cast<int>(geti("channels")));
  const long server_pid = static_cast<long>(geti("server-pid"));
  const absl::Duration interval = getd("heartbeat-interval");
  const absl::Duration settle = getd("settle"), window = getd("window"), hold = getd("hold");
  const absl::Duration connect_deadline = getd("connect-deadline");
  signal(SIGINT, [](int) { g_stop = true; });
  signal(SIGTERM, [](int) { g_stop = true; });

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::AgentService::Stub>> stubs;
  for (int c = 0; c < n_channels; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("assay.bench.channel", c);  // distinct arguments: a connection of its own
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels.push_back(
        grpc::CreateCustomChannel(cfg->Get("server"), grpc::InsecureChannelCredentials(), args));
    stubs.push_back(v1::AgentService::NewStub(channels.back()));
  }

  Swarm swarm;
  std::vector<std::unique_ptr<SimAgent>> agents;
  agents.reserve(n);
  const absl::Time t0 = absl::Now();
  const double self0 = SelfCpuSeconds();
  for (int i = 0; i < n && !g_stop.load(); ++i) {
    agents.push_back(std::make_unique<SimAgent>(&swarm, i));
    agents.back()->Begin(stubs[i % n_channels].get(), cfg->Get("token"),
                         absl::StrFormat("sim-%05d", i));
  }
  const double started_s = absl::ToDoubleSeconds(absl::Now() - t0);

  // Heartbeats: stream i at t0 + interval * (k + 1 + i / n), k = 0, 1, ...
  std::thread beats([&] {
    for (int64_t k = 0; !g_stop.load(); ++k) {
      for (int i = 0; i < static_cast<int>(agents.size()) && !g_stop.load(); ++i) {
        absl::Time due = t0 + interval * (static_cast<double>(k + 1) +
                                          static_cast<double>(i) / static_cast<double>(n));
        while (!g_stop.load() && absl::Now() < due) {
          absl::SleepFor(std::min(due - absl::Now(), absl::Milliseconds(100)));
        }
        if (agents[i]->welcomed()) agents[i]->SendHeartbeat();
      }
    }
  });

  absl::Time last_progress = absl::Now();
  const bool all = swarm.WaitFor(t0 + connect_deadline, [&](int welcomed, int ended) {
    if (absl::Now() - last_progress > absl::Seconds(5)) {
      std::cerr << absl::StrFormat("  %.0f s: %d of %d welcomed, %d ended\n",
                                   absl::ToDoubleSeconds(absl::Now() - t0), welcomed, n, ended);
      last_progress = absl::Now();
    }
    return welcomed >= n || welcomed + ended >= n || g_stop.load();
  });
  const int welcomed = swarm.welcomed();
  const double connect_s = absl::ToDoubleSeconds(swarm.last_welcome() - t0);
  std::vector<double> lat;
  for (const auto& a : agents) {
    if (a->welcomed()) lat.push_back(absl::ToDoubleMilliseconds(a->connect_latency()));
  }
  std::printf("== %d simulated agents over %d channels, heartbeat every %s\n", n, n_channels,
              absl::FormatDuration(interval).c_str());
  std::printf("  streams started in          %.2f s\n", started_s);
  std::printf("  welcomed                    %d of %d%s\n", welcomed, n,
              all && welcomed >= n ? "" : "  (NOT ALL)");
  std::printf("  time to the last Welcome    %.2f s (%.0f connects/s)\n", connect_s,
              connect_s > 0 ? welcomed / connect_s : 0.0);
  std::printf("  per-stream connect latency  p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", Pct(lat, 50),
              Pct(lat, 99), Pct(lat, 100));
  const double self_connect = SelfCpuSeconds() - self0;
  ProcSample after_connect = SampleProc(server_pid);

  boost::json::object result{{"agents", n},
                             {"channels", n_channels},
                             {"heartbeat_s", absl::ToDoubleSeconds(interval)},
                             {"welcomed", welcomed},
                             {"connect_s", connect_s},
                             {"connect_p50_ms", Pct(lat, 50)},
                             {"connect_p99_ms", Pct(lat, 99)},
                             {"client_cpu_connect_s", self_connect}};
  if (after_connect.ok) {
    result["server_cpu_connect_s"] = after_connect.cpu_s;
    result["server_rss_connected_kb"] = after_connect.rss_kb;
  }
  if (welcomed > 0 && !g_stop.load()) {
    const absl::Time settle_end = absl::Now() + settle;
    while (!g_stop.load() && absl::Now() < settle_end) absl::SleepFor(absl::Milliseconds(100));
    const ProcSample a = SampleProc(server_pid);
    const double self_a = SelfCpuSeconds();
    const int64_t hb_a = swarm.heartbeats();
    const absl::Time w0 = absl::Now();
    const int ended_before = swarm.ended();
    while (!g_stop.load() && absl::Now() < w0 + window) absl::SleepFor(absl::Milliseconds(100));
    const double w = absl::ToDoubleSeconds(absl::Now() - w0);
    const ProcSample b = SampleProc(server_pid);
    const double self_b = SelfCpuSeconds();
    const int64_t hb = swarm.heartbeats() - hb_a;
    const int ended_in_window = swarm.ended() - ended_before;
    std::printf(
        "  window                      %.1f s, %lld heartbeats sent (%.0f/s), %d streams "
        "ended in it\n",
        w, static_cast<long long>(hb), static_cast<double>(hb) / w, ended_in_window);
    result["window_s"] = w;
    result["heartbeats_per_s"] = static_cast<double>(hb) / w;
    result["ended_in_window"] = ended_in_window;
    result["client_cpu_pct"] = 100 * (self_b - self_a) / w;
    std::printf("  client CPU                  %.1f%% of one core (connect phase %.2f s)\n",
                100 * (self_b - self_a) / w, self_connect);
    if (a.ok && b.ok) {
      const double pct = 100 * (b.cpu_s - a.cpu_s) / w;
      std::printf("  server CPU in window        %.2f s = %.1f%% of one core\n", b.cpu_s - a.cpu_s,
                  pct);
      std::printf("  server CPU to connect all   %.2f s (from its start)\n", after_connect.cpu_s);
      std::printf("  server RSS                  %.1f MiB (VmHWM %.1f MiB), %ld threads, %ld fds\n",
                  b.rss_kb / 1024.0, b.hwm_kb / 1024.0, b.threads, b.fds);
      result["server_cpu_window_s"] = b.cpu_s - a.cpu_s;
      result["server_cpu_pct"] = pct;
      result["server_rss_kb"] = b.rss_kb;
      result["server_hwm_kb"] = b.hwm_kb;
      result["server_threads"] = b.threads;
      result["server_fds"] = b.fds;
    } else if (server_pid > 0) {
      std::printf("  server process %ld could not be sampled (gone?)\n", server_pid);
      result["server_gone"] = true;
    }
    const absl::Time hold_end = absl::Now() + hold;
    while (!g_stop.load() && absl::Now() < hold_end) absl::SleepFor(absl::Milliseconds(100));
  }
  result["ended_early"] = swarm.ended_early();
  std::printf("  streams that ended early    %d\n", swarm.ended_early());
  std::printf("RESULT %s\n", boost::json::serialize(result).c_str());
  std::fflush(stdout);

  g_stop = true;
  beats.join();
  for (auto& a : agents) a->Cancel();
  const bool closed = swarm.WaitFor(absl::Now() + absl::Seconds(30), [&](int, int ended) {
    return ended >= static_cast<int>(agents.size());
  });
  if (!closed) {
    std::cerr << "not every stream ended within 30 s after cancel; exiting anyway\n";
    std::fflush(nullptr);
    _exit(all ? 0 : 3);
  }
  agents.clear();
  return all && welcomed >= n ? 0 : 3;
}

}  // namespace
}  // namespace assay::bench

int main(int argc, char** argv) { return assay::bench::Run(argc, argv); }
