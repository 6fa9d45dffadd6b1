#include "server/scheduler/wakeups.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/base/log.h"

namespace assay {

Wakeups::Wakeups(store::Listener* listener, Dispatcher* dispatcher, store::AgentStore* agents,
                 absl::Duration touch_interval)
    : dispatcher_(dispatcher), agents_(agents), touch_interval_(touch_interval) {
  listener->Listen("assay_jobs", [this](const std::string&) {
    received_.fetch_add(1);
    dispatcher_->Kick();
  });
  listener->Listen("assay_cancel", [this](const std::string& payload) {
    received_.fetch_add(1);
    OnCancel(payload);
  });
  // A job queued while not listening was not announced.
  listener->OnReconnect([this] { dispatcher_->Kick(); });
}

Wakeups::~Wakeups() { Stop(); }

void Wakeups::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { TouchLoop(); });
}

void Wakeups::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Wakeups::OnCancel(const std::string& payload) {
  std::vector<std::string> parts = absl::StrSplit(payload, ' ');
  int64_t agent = 0, job = 0;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &agent) ||
      !absl::SimpleAtoi(parts[1], &job)) {
    LogWarn("wakeups", "ignoring malformed assay_cancel payload");
    return;
  }
  // A no-op unless the agent's stream is on this server.
  dispatcher_->SendCancel(agent, job, parts[2], "canceled");
  dispatcher_->JobReleased(agent, job);
}

void Wakeups::TouchLoop() {
  for (;;) {
    absl::Status s = agents_->Touch(dispatcher_->ConnectedAgentIds());
    if (!s.ok()) LogWarn("wakeups", "marking agents seen failed: ", s.ToString());
    absl::MutexLock l(&mu_);
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    if (mu_.AwaitWithTimeout(absl::Condition(&stop), touch_interval_)) return;
  }
}

}  // namespace assay
