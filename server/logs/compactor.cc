#include "server/logs/compactor.h"

#include "common/base/log.h"

namespace assay::logs {

LogCompactor::LogCompactor(store::LogStore* store, CompactorOptions options)
    : store_(store), options_(options) {}

LogCompactor::~LogCompactor() { Stop(); }

void LogCompactor::Attach(store::Listener* listener) {
  listener->Listen("assay_log_ended", [this](const std::string&) { Wake(); });
}

void LogCompactor::Start() {
  thread_ = std::thread([this] { Run(); });
}

void LogCompactor::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void LogCompactor::Wake() {
  absl::MutexLock l(&mu_);
  woken_ = true;
}

int LogCompactor::SweepOnce() {
  auto todo = store_->Uncompacted(options_.batch);
  if (!todo.ok()) {
    LogWarn("logs", "listing logs to compact failed: ", todo.status().ToString());
    return 0;
  }
  int done = 0;
  for (const auto& [job_id, attempt] : *todo) {
    int64_t from = 0;
    for (;;) {
      {
        absl::MutexLock l(&mu_);
        if (stopping_) return done;
      }
      auto step = store_->Compact(job_id, attempt, from, options_.row_target, options_.step_bytes);
      if (!step.ok()) {
        LogWarn("logs", "compacting the log of job ", job_id, " attempt ", attempt,
                " failed: ", step.status().ToString());
        break;
      }
      from = step->next_offset;
      if (step->done) {
        ++done;
        break;
      }
    }
  }
  return done;
}

void LogCompactor::Run() {
  for (;;) {
    SweepOnce();
    absl::MutexLock l(&mu_);
    auto wake = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || woken_; };
    mu_.AwaitWithTimeout(absl::Condition(&wake), options_.sweep);
    if (stopping_) return;
    woken_ = false;
  }
}

}  // namespace assay::logs
