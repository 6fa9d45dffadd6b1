#pragma once
// Issue 11: GPU load for the dashboard's agents page. A thread samples the GPUs the agent
// announced (NVML or nvidia-smi, or the --gpu-inventory capture read again) every `interval`,
// and the heartbeat sends the newest sample. Why a thread of its own: nvidia-smi can take
// seconds on a busy machine, and a heartbeat must never wait for it (leases ride on them).

#include <functional>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/gpu_inventory.h"

namespace assay {

class GpuUsageSampler {
 public:
  using Source = std::function<absl::StatusOr<std::vector<GpuInfo>>()>;
  // Samples at once, then every `interval` until destroyed.
  GpuUsageSampler(Source source, absl::Duration interval);
  ~GpuUsageSampler();
  GpuUsageSampler(const GpuUsageSampler&) = delete;
  GpuUsageSampler& operator=(const GpuUsageSampler&) = delete;

  // The newest good sample (empty before the first one, and after a failed one: a stale
  // sample must not pass for a fresh one).
  std::vector<GpuInfo> Latest() const;

 private:
  void Loop();

  Source source_;
  absl::Duration interval_;
  mutable absl::Mutex mu_;
  std::vector<GpuInfo> latest_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: started after the members it uses
};

}  // namespace assay
