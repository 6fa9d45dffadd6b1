#include "server/pipeline/schedule_loop.h"

#include "absl/strings/str_cat.h"
#include "common/pipeline/cron.h"
#include "common/base/log.h"

namespace assay {

ScheduleLoop::ScheduleLoop(ScheduleLoopDeps deps) : deps_(std::move(deps)) {}

ScheduleLoop::~ScheduleLoop() { Stop(); }

void ScheduleLoop::Start() { thread_ = std::thread([this] { Loop(); }); }

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
  const absl::Time now = deps_.clock->Now();
  auto due = deps_.schedules->Due(now);
  if (!due.ok()) return due.status();
  std::vector<int64_t> out;
  for (const store::ScheduleRow& s : *due) {
    auto cron = CronSchedule::Parse(s.cron);
    if (!cron.ok()) {  // cannot happen for rows Replace wrote; skip rather than spin
      LogWarn("schedule", "schedule ", s.id, ": ", cron.status().ToString());
      continue;
    }
    // The slot fired is the one that was due; every later missed slot is skipped, so a server
    // that was down for a week runs a daily schedule once, not seven times.
    auto claimed = deps_.schedules->Claim(s.id, s.next_run_at, cron->Next(now));
    if (!claimed.ok()) return claimed.status();
    if (!*claimed) continue;  // another replica fired it
    auto id = deps_.planner->PlanSchedule(s, s.next_run_at);
    if (!id.ok()) {
      LogWarn("schedule", "schedule ", s.id, " (", s.cron, ") of repository ", s.repo_id,
              " for ", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", s.next_run_at, absl::UTCTimeZone()),
              ": ", id.status().ToString());
      continue;
    }
    out.push_back(*id);
  }
  return out;
}

}  // namespace assay
