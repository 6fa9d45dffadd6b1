#include "server/pipeline/repo_lanes.h"

#include <utility>

namespace assay {

RepoLanes::RepoLanes(int workers) : workers_(workers < 1 ? 1 : workers) {}

RepoLanes::~RepoLanes() { Stop(); }

void RepoLanes::Start() {
  absl::MutexLock l(&mu_);
  if (running_ || stopping_) return;
  running_ = true;
  for (int i = 0; i < workers_; ++i) threads_.emplace_back([this] { Work(); });
}

void RepoLanes::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
    running_ = false;
  }
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  std::vector<Task> dropped;
  {
    absl::MutexLock l(&mu_);
    for (auto& [lane, tasks] : lanes_) {
      for (auto& t : tasks) dropped.push_back(std::move(t));
    }
    lanes_.clear();
    ready_.clear();
  }
  for (auto& t : dropped) {
    if (t.drop) t.drop();
  }
}

bool RepoLanes::Submit(int64_t lane, Task task) {
  {
    absl::MutexLock l(&mu_);
    if (running_) {
      auto [it, inserted] = lanes_.try_emplace(lane);
      it->second.push_back(std::move(task));
      // A lane already present is either running (it is put back when its task returns) or
      // already waiting in ready_.
      if (inserted) ready_.push_back(lane);
      return true;
    }
  }
  if (task.drop) task.drop();
  return false;
}

bool RepoLanes::WaitForStop(absl::Duration d) {
  absl::MutexLock l(&mu_);
  auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  return mu_.AwaitWithTimeout(absl::Condition(&stopping), d);
}

void RepoLanes::Work() {
  while (true) {
    int64_t lane = 0;
    Task task;
    {
      absl::MutexLock l(&mu_);
      auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !ready_.empty();
      };
      mu_.Await(absl::Condition(&has_work));
      if (stopping_) return;
      lane = ready_.front();
      ready_.pop_front();
      auto& tasks = lanes_.at(lane);
      task = std::move(tasks.front());
      tasks.pop_front();
    }
    task.run();
    absl::MutexLock l(&mu_);
    if (stopping_) return;  // Stop() drops what is left
    auto it = lanes_.find(lane);
    if (it->second.empty()) {
      lanes_.erase(it);
    } else {
      ready_.push_back(lane);
    }
  }
}

}  // namespace assay
