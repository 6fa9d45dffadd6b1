#include "agent/gpu_usage.h"

#include <utility>

#include "common/base/log.h"

namespace assay {

GpuUsageSampler::GpuUsageSampler(Source source, absl::Duration interval)
    : source_(std::move(source)), interval_(interval), thread_([this] { Loop(); }) {}

GpuUsageSampler::~GpuUsageSampler() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  thread_.join();
}

std::vector<GpuInfo> GpuUsageSampler::Latest() const {
  absl::MutexLock l(&mu_);
  return latest_;
}

void GpuUsageSampler::Loop() {
  bool warned = false;
  while (true) {
    absl::StatusOr<std::vector<GpuInfo>> sample = source_();
    absl::MutexLock l(&mu_);
    if (sample.ok()) {
      latest_ = *std::move(sample);
      warned = false;
    } else {
      latest_.clear();
      if (!warned) LogWarn("agent", "sampling GPU load failed: ", sample.status().ToString());
      warned = true;  // once per run of failures, not every interval
    }
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
    if (mu_.AwaitWithTimeout(absl::Condition(&stop), interval_)) return;
  }
}

}  // namespace assay
