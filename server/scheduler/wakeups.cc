#include "server/scheduler/wakeups.h"

#include <pqxx/pqxx>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/base/log.h"

namespace assay {
namespace {

class Receiver : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& c, const std::string& channel, Dispatcher* d,
           std::atomic<int64_t>* received)
      : pqxx::notification_receiver(c, channel), d_(d), received_(received) {}

  void operator()(const std::string& payload, int /*backend_pid*/) override {
    received_->fetch_add(1);
    if (channel() == "assay_jobs") {
      d_->Kick();
      return;
    }
    std::vector<std::string> parts = absl::StrSplit(payload, ' ');
    int64_t agent = 0, job = 0;
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &agent) ||
        !absl::SimpleAtoi(parts[1], &job)) {
      LogWarn("wakeups", "ignoring malformed assay_cancel payload");
      return;
    }
    // A no-op unless the agent's stream is on this server.
    d_->SendCancel(agent, job, parts[2], "canceled");
    d_->JobReleased(agent, job);
  }

 private:
  Dispatcher* d_;
  std::atomic<int64_t>* received_;
};

}  // namespace

Wakeups::Wakeups(std::string database_url, Dispatcher* dispatcher, store::AgentStore* agents,
                 absl::Duration touch_interval)
    : url_(std::move(database_url)),
      dispatcher_(dispatcher),
      agents_(agents),
      touch_interval_(touch_interval) {}

Wakeups::~Wakeups() { Stop(); }

void Wakeups::Start() { thread_ = std::thread([this] { Loop(); }); }

void Wakeups::Stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void Wakeups::Loop() {
  absl::Time next_touch = absl::Now();
  bool warned = false;
  while (!stopping_) {
    try {
      pqxx::connection conn(url_);
      Receiver jobs(conn, "assay_jobs", dispatcher_, &received_);
      Receiver cancels(conn, "assay_cancel", dispatcher_, &received_);
      if (warned) LogInfo("wakeups", "listening again");
      warned = false;
      // A queued job may have been missed while not listening.
      dispatcher_->Kick();
      while (!stopping_) {
        conn.await_notification(0, 500000);
        if (absl::Now() >= next_touch) {
          absl::Status s = agents_->Touch(dispatcher_->ConnectedAgentIds());
          if (!s.ok()) LogWarn("wakeups", "marking agents seen failed: ", s.ToString());
          next_touch = absl::Now() + touch_interval_;
        }
      }
    } catch (const std::exception& e) {
      if (!warned) LogWarn("wakeups", "LISTEN connection lost (retrying every second): ", e.what());
      warned = true;
      for (int i = 0; i < 10 && !stopping_; ++i) absl::SleepFor(absl::Milliseconds(100));
    }
  }
}

}  // namespace assay
