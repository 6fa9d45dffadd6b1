#pragma once
// A loopback TCP proxy for tests that cut connections: it accepts on 127.0.0.1 (a free port),
// connects each client to `target_port` on 127.0.0.1 and copies bytes both ways; CutAll()
// drops every open connection at once (both sides see a reset). One thread does everything
// (poll, 100 ms per wait), so Stop() returns within about that; the destructor stops it.

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace assay::testing {

class TcpProxy {
 public:
  explicit TcpProxy(int target_port) : target_port_(target_port) {}
  ~TcpProxy() { Stop(); }
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  absl::Status Start();  // binds and starts the thread; port() is then set
  void Stop();
  int port() const { return port_; }
  // Drops every connection open now; returns how many pairs were dropped.
  int CutAll();
  int64_t accepted() const { return accepted_.load(); }

 private:
  void Run();
  const int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> cut_requests_{0};
  std::atomic<int> last_cut_{0};
  std::atomic<int64_t> accepted_{0};
  absl::Mutex mu_;
  int cut_done_ ABSL_GUARDED_BY(mu_) = 0;
  int cut_count_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace assay::testing
