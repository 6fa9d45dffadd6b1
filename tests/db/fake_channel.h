#pragma once
// A stand-in for an agent's stream in dispatcher tests: it records exactly what
// the dispatcher sent (assignments and cancels, in order) and whether it was
// closed.

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "assay/v1/agent.pb.h"
#include "server/scheduler/dispatcher.h"
#include "server/scheduler/fit.h"

namespace assay::dbtest {

class FakeChannel : public AgentChannel {
 public:
  // A refusing channel is a stream that has ended: Send returns false and records nothing.
  bool Send(const v1::ServerMessage& msg) override {
    absl::MutexLock l(&mu_);
    if (refuse_) return false;
    messages_.push_back(msg);
    return true;
  }
  void Refuse() {
    absl::MutexLock l(&mu_);
    refuse_ = true;
  }
  void Close(const std::string& reason) override {
    absl::MutexLock l(&mu_);
    closed_.push_back(reason);
  }
  std::vector<v1::ServerMessage> Messages() {
    absl::MutexLock l(&mu_);
    return messages_;
  }
  // The assignments received since the last call (in order).
  std::vector<v1::Assignment> TakeAssignments() {
    absl::MutexLock l(&mu_);
    std::vector<v1::Assignment> out;
    for (; taken_ < messages_.size(); ++taken_) {
      if (messages_[taken_].has_assignment()) out.push_back(messages_[taken_].assignment());
    }
    return out;
  }
  // Waits (bounded: about 20 s) until at least `n` messages arrived; false on
  // timeout.
  bool WaitForMessages(size_t n) {
    absl::MutexLock l(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return messages_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(20));
  }
  std::vector<std::string> Closed() {
    absl::MutexLock l(&mu_);
    return closed_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::ServerMessage> messages_ ABSL_GUARDED_BY(mu_);
  size_t taken_ ABSL_GUARDED_BY(mu_) = 0;
  bool refuse_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> closed_ ABSL_GUARDED_BY(mu_);
};

inline GpuSlot Gpu(uint32_t index, std::string model = "NVIDIA H100 80GB HBM3",
                   uint64_t memory_mb = 81559) {
  GpuSlot g;
  g.index = index;
  g.uuid = "GPU-" + std::to_string(index);
  g.model = std::move(model);
  g.memory_mb = memory_mb;
  return g;
}

inline AgentCapacity Capacity(int64_t agent_id, std::string name, int cpus,
                              std::vector<GpuSlot> gpus = {},
                              std::vector<std::string> labels = {}) {
  AgentCapacity c;
  c.agent_id = agent_id;
  c.name = std::move(name);
  c.labels = std::move(labels);
  c.cpus_total = cpus;
  c.memory_gb_total = 64;
  c.gpus = std::move(gpus);
  return c;
}

}  // namespace assay::dbtest
