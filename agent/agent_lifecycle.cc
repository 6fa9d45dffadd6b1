// Agent lifecycle (issue 9): draining after a stop signal or an admin's drain, the disk
// floor, and the AgentState messages that tell the server. The Agent's other members are in
// agent.cc.
#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/lifecycle.h"
#include "common/base/log.h"

namespace assay {

std::string Agent::OwnStateLocked() const {
  if (stop_signals_ > 0) return DrainingReason(drain_why_);
  return disk_reason_;
}

std::string Agent::RefusalLocked() const {
  if (shutdown_) return "agent is shutting down";
  if (std::string own = OwnStateLocked(); !own.empty()) return absl::StrCat("agent is ", own);
  if (server_drained_) return "agent is draining (drained by an admin)";
  return "";
}

void Agent::SendStateLocked() {
  const std::string state = OwnStateLocked();
  // Not connected: the next Hello carries the state (and sets sent_state_).
  if (state == sent_state_ || writer_ == nullptr) return;
  v1::AgentMessage m;
  m.mutable_state()->set_accepting(state.empty());
  m.mutable_state()->set_reason(state);
  WriteLocked(m);
  sent_state_ = state;
}

void Agent::CancelAllLocked(const std::string& reason) {
  for (auto& [id, j] : jobs_) {
    if (j->finished || j->cancel->canceled()) continue;
    LogInfo("agent", "job ", id, ": ", reason);
    j->cancel_reason = reason;
    j->cancel->Cancel();
  }
}

void Agent::Drain(const std::string& why) {
  {
    absl::MutexLock l(&mu_);
    ++stop_signals_;
    int running = 0;
    for (const auto& [id, j] : jobs_) running += j->finished ? 0 : 1;
    if (stop_signals_ == 1) {
      drain_why_ = why;
      drain_deadline_ = absl::Now() + opts_.drain_timeout;
      LogInfo("agent", why, ": draining: no new jobs; ", running, " running job(s) ",
              opts_.drain_timeout == absl::ZeroDuration()
                  ? "are canceled now"
                  : absl::StrCat("may take up to ", absl::FormatDuration(opts_.drain_timeout),
                                 " (--drain-timeout)"),
              "; then the agent exits. Another ", why, " cancels them at once.");
      SendStateLocked();
      lifecycle_wake_ = true;
      return;
    }
    if (stop_signals_ == 2) {
      drain_canceled_ = true;
      CancelAllLocked(absl::StrCat("stopped by the agent: it is stopping (a second ", why, ")"));
      lifecycle_wake_ = true;
      return;
    }
  }
  LogInfo("agent", why, " again: stopping without delivering what is left");
  Shutdown();
}

void Agent::OnDrain(const v1::Drain& d) {
  absl::MutexLock l(&mu_);
  if (d.resume()) {
    if (server_drained_) LogInfo("agent", "resumed by the server: taking jobs again");
    server_drained_ = false;
    server_drain_reason_.clear();
    server_cancel_at_ = absl::InfiniteFuture();
  } else {
    server_drained_ = true;
    server_drain_reason_ = d.reason();
    server_cancel_at_ =
        d.has_cancel_after_ms()
            ? absl::Now() + absl::Milliseconds(std::max<int64_t>(0, d.cancel_after_ms()))
            : absl::InfiniteFuture();
    LogInfo("agent", "drained by an admin", d.reason().empty() ? "" : ": ", d.reason(),
            "; no new jobs until resumed",
            d.has_cancel_after_ms()
                ? absl::StrCat("; running jobs are canceled in ",
                               absl::FormatDuration(absl::Milliseconds(d.cancel_after_ms())))
                : "");
  }
  lifecycle_wake_ = true;
}

void Agent::CheckDisk() {
  if (opts_.min_free_disk_gb <= 0) return;
  absl::StatusOr<double> free = FreeDiskGb(opts_.work_dir);
  if (!free.ok()) {
    // Why keep the last state: a failing statvfs says nothing about the space.
    LogWarn("agent", "checking free disk failed: ", free.status().ToString());
    return;
  }
  const std::string reason = DiskFloorReason(*free, opts_.min_free_disk_gb);
  absl::MutexLock l(&mu_);
  if (reason == disk_reason_) return;
  if (reason.empty()) {
    LogInfo("agent", "free disk ", *free, " GB is above the floor again: taking jobs");
  } else {
    LogWarn("agent", reason, " (--min-free-disk-gb)");
  }
  disk_reason_ = reason;
  SendStateLocked();
}

void Agent::LifecycleLoop() {
  absl::Time next_disk = absl::Now();
  while (true) {
    if (absl::Now() >= next_disk) {
      CheckDisk();
      next_disk = absl::Now() + opts_.disk_check_interval;
    }
    absl::MutexLock l(&mu_);
    if (shutdown_) return;
    const absl::Time now = absl::Now();
    if (stop_signals_ > 0 && !drain_canceled_ && now >= drain_deadline_) {
      drain_canceled_ = true;
      CancelAllLocked(DrainTimeoutMessage(drain_why_, opts_.drain_timeout));
    }
    if (server_drained_ && now >= server_cancel_at_) {
      server_cancel_at_ = absl::InfiniteFuture();
      CancelAllLocked("stopped by the agent: an admin drained it and the drain's timeout passed");
    }
    if (stop_signals_ > 0 && jobs_.empty()) {
      // Every result is acknowledged (a job leaves jobs_ only then): nothing is left to give.
      LogInfo("agent", "drained: no job left to run or deliver; exiting");
      shutdown_ = true;
      if (ctx_ != nullptr) ctx_->TryCancel();
      return;
    }
    absl::Time wake = next_disk;
    if (stop_signals_ > 0 && !drain_canceled_) wake = std::min(wake, drain_deadline_);
    if (server_drained_) wake = std::min(wake, server_cancel_at_);
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return shutdown_ || lifecycle_wake_ || (stop_signals_ > 0 && jobs_.empty());
    };
    mu_.AwaitWithDeadline(absl::Condition(&woken), wake);
    lifecycle_wake_ = false;
  }
}

}  // namespace assay
