#include "server/logs/log_followers.h"

#include <algorithm>

#include "absl/strings/numbers.h"

namespace assay::logs {

LogFollowers::LogFollowers(FollowOptions options) : options_(options) {}

LogFollowers::~LogFollowers() { Stop(); }

void LogFollowers::Attach(store::Listener* listener) {
  auto wake = [this](const std::string& payload) {
    int64_t id = 0;
    if (absl::SimpleAtoi(payload, &id)) Wake(id);
  };
  listener->Listen("assay_logs", wake);
  listener->Listen("assay_log_ended", wake);
  listener->OnReconnect([this] { WakeAll(); });
}

void LogFollowers::Start() {
  for (int i = 0; i < std::max(1, options_.threads); ++i) threads_.emplace_back([this] { Work(); });
}

void LogFollowers::Stop() {
  std::multimap<int64_t, Parked> dropped;
  std::deque<std::function<void()>> ready;
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
    dropped.swap(parked_);
    ready.swap(ready_);
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
  // `dropped` and `ready` die here, outside mu_: they hold readers' state.
}

std::shared_ptr<void> LogFollowers::Acquire() {
  absl::MutexLock l(&mu_);
  if (stopping_ || followers_ >= options_.max_followers) return nullptr;
  ++followers_;
  return std::shared_ptr<void>(this, [](LogFollowers* h) {
    absl::MutexLock l(&h->mu_);
    --h->followers_;
  });
}

int LogFollowers::followers() const {
  absl::MutexLock l(&mu_);
  return followers_;
}

void LogFollowers::Park(int64_t job_id, std::function<void()> resume) {
  absl::MutexLock l(&mu_);
  if (stopping_) return;
  parked_.emplace(job_id, Parked{absl::Now() + options_.recheck, std::move(resume)});
}

void LogFollowers::Wake(int64_t job_id) {
  absl::MutexLock l(&mu_);
  auto [lo, hi] = parked_.equal_range(job_id);
  for (auto it = lo; it != hi; ++it) ready_.push_back(std::move(it->second.resume));
  parked_.erase(lo, hi);
}

void LogFollowers::WakeAll() {
  absl::MutexLock l(&mu_);
  for (auto& [id, p] : parked_) ready_.push_back(std::move(p.resume));
  parked_.clear();
}

void LogFollowers::Work() {
  for (;;) {
    std::function<void()> run;
    {
      absl::MutexLock l(&mu_);
      for (;;) {
        if (stopping_) return;
        const absl::Time now = absl::Now();
        absl::Time next = now + options_.recheck;
        for (auto it = parked_.begin(); it != parked_.end();) {
          if (it->second.deadline <= now) {
            ready_.push_back(std::move(it->second.resume));
            it = parked_.erase(it);
          } else {
            next = std::min(next, it->second.deadline);
            ++it;
          }
        }
        if (!ready_.empty()) break;
        auto has_work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return stopping_ || !ready_.empty();
        };
        mu_.AwaitWithDeadline(absl::Condition(&has_work), next);
      }
      run = std::move(ready_.front());
      ready_.pop_front();
    }
    run();
  }
}

}  // namespace assay::logs
