#include "server/pipeline/schedule_loop.h"

#include <future>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/pipeline/cron.h"

namespace assay {

ScheduleLoop::ScheduleLoop(ScheduleLoopDeps deps) : deps_(std::move(deps)) {}

ScheduleLoop::~ScheduleLoop() { Stop(); }

void ScheduleLoop::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void ScheduleLoop::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void ScheduleLoop::Loop() {
  while (true) {
    auto fired = Tick();
    if (!fired.ok()) LogWarn("schedule", fired.status().ToString());
    absl::MutexLock l(&mu_);
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    if (mu_.AwaitWithTimeout(absl::Condition(&stop), deps_.interval)) return;
  }
}

absl::StatusOr<std::vector<int64_t>> ScheduleLoop::Tick() {
  absl::MutexLock tick(&tick_mu_);
  const absl::Time now = deps_.clock->Now();
  auto due = deps_.schedules->Due(now);
  if (!due.ok()) return due.status();
  struct Pending {
    const store::ScheduleRow* s;
    std::future<absl::StatusOr<int64_t>> planned;
  };
  std::vector<Pending> pending;
  // A schedule no longer due was planned elsewhere, or removed: forget its failures.
  absl::flat_hash_set<int64_t> due_ids;
  for (const store::ScheduleRow& s : *due) due_ids.insert(s.id);
  absl::erase_if(retries_, [&](const auto& r) { return !due_ids.contains(r.first); });
  for (const store::ScheduleRow& s : *due) {
    if (auto it = retries_.find(s.id); it != retries_.end()) {
      if (it->second.slot != s.next_run_at) {
        retries_.erase(it);  // planned (or claimed) elsewhere since
      } else if (now < it->second.not_before) {
        continue;
      }
    }
    auto cron = CronSchedule::Parse(s.cron);
    if (!cron.ok()) {  // cannot happen for rows Replace wrote; skip rather than spin
      LogWarn("schedule", "schedule ", s.id, ": ", cron.status().ToString());
      continue;
    }
    // The slot fired is the one that was due; every later missed slot is skipped, so a server
    // that was down for a week runs a daily schedule once, not seven times.
    pending.push_back({&s, deps_.planner->SubmitSchedule(s, cron->Next(now))});
  }
  std::vector<int64_t> out;
  for (Pending& p : pending) {
    // Bounded by the planner: a fetch has git's time limit, the write the statement_timeout.
    absl::StatusOr<int64_t> id = p.planned.get();
    const store::ScheduleRow& s = *p.s;
    if (id.ok()) {
      retries_.erase(s.id);
      if (*id != 0) out.push_back(*id);
      continue;
    }
    Retry& r = retries_[s.id];
    r.pause = r.slot == s.next_run_at ? std::min(2 * r.pause, deps_.longest_retry)
                                      : std::min(deps_.interval, deps_.longest_retry);
    r.slot = s.next_run_at;
    r.not_before = now + r.pause;
    LogWarn("schedule", "schedule ", s.id, " (", s.cron, ") of repository ", s.repo_id, " for ",
            absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", s.next_run_at, absl::UTCTimeZone()), ": ",
            id.status().ToString(), "; the slot stays due, next try in ",
            absl::FormatDuration(r.pause));
  }
  return out;
}

}  // namespace assay
