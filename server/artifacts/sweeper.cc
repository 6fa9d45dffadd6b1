#include "server/artifacts/sweeper.h"

#include <chrono>

#include "common/base/log.h"

namespace assay::artifacts {

absl::StatusOr<SweepCounts> Sweeper::RunOnce() {
  SweepCounts out;
  const absl::Time now = clock_->Now();
  if (caches_ != nullptr) {
    auto n =
        caches_->Sweep(options_.cache_unused_for, options_.batch, options_.max_batches_per_round);
    if (!n.ok()) return n.status();
    out.cache_entries = *n;
  }
  for (int i = 0; train_ != nullptr && i < options_.max_batches_per_round; ++i) {
    auto n =
        train_->DeleteFinishedCheckpoints(now - options_.checkpoints_after_end, options_.batch);
    if (!n.ok()) return n.status();
    out.checkpoints += *n;
    if (*n < options_.batch) break;
  }
  for (int i = 0; i < options_.max_batches_per_round; ++i) {
    auto n = store_->DeleteExpired(now, options_.batch);
    if (!n.ok()) return n.status();
    out.manifests += *n;
    if (*n < options_.batch) break;
  }
  for (int i = 0; i < options_.max_batches_per_round; ++i) {
    auto n = store_->DeleteUnreferencedChunks(
        now - options_.chunk_grace, options_.batch,
        [this](const std::string& h) { return blobs_->Delete(h); });
    if (!n.ok()) return n.status();
    out.chunks += *n;
    if (*n < options_.batch) break;
  }
  return out;
}

void Sweeper::Start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      l.unlock();
      auto n = RunOnce();
      if (!n.ok()) {
        LogWarn("artifacts", "sweep failed: ", n.status().message());
      } else if (n->manifests > 0 || n->chunks > 0 || n->cache_entries > 0) {
        LogInfo("artifacts", "swept ", n->cache_entries, " unused cache entries, ", n->manifests,
                " expired manifests and ", n->chunks, " unreferenced chunks");
      }
      l.lock();
      cv_.wait_for(l, std::chrono::microseconds(absl::ToInt64Microseconds(options_.interval)),
                   [this] { return stop_; });
    }
  });
}

void Sweeper::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace assay::artifacts
