#pragma once
// Merges the many chunk rows of ended attempts into few large ones (LogStore::Compact), in
// bounded steps on its own thread: woken by 'assay_log_ended' (JobStore::Finish), and sweeping
// every `sweep` for attempts it missed (lost or canceled ones, a restart, several replicas).

#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/listener.h"
#include "server/store/logs.h"

namespace assay::logs {

struct CompactorOptions {
  size_t row_target = size_t{1} << 20;  // merged rows hold up to 1 MiB
  size_t step_bytes = size_t{8} << 20;  // bytes rewritten per transaction
  absl::Duration sweep = absl::Seconds(30);
  int batch = 100;  // attempts per sweep
};

class LogCompactor {
 public:
  // `*store` must outlive the compactor.
  LogCompactor(store::LogStore* store, CompactorOptions options = {});
  ~LogCompactor();                         // Stop()
  void Attach(store::Listener* listener);  // before listener->Start()
  void Start();
  void Stop();  // idempotent; returns after the running step
  void Wake();
  // Compacts every ended, uncompacted attempt once (on the caller's thread; for tests and the
  // worker). Returns the number of attempts finished.
  int SweepOnce();

 private:
  void Run();
  store::LogStore* store_;
  const CompactorOptions options_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace assay::logs
