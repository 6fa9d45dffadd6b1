#pragma once
// Wake-ups across server replicas. Every server LISTENs on two PostgreSQL channels:
//   assay_jobs    a job became queued (sent by the transaction that queued it) → Kick()
//   assay_cancel  "<agent id> <job id> <token>": an attempt was canceled → if the agent's
//                 stream is on this server, tell it to stop
// Notifications are only hints: the dispatcher's periodic pass and the agents' heartbeats
// (which report attempts that are no longer live) keep everything correct without them, so
// a lost connection is just reopened after a second.
// The same thread marks this server's connected agents as seen every `touch_interval`, so
// other replicas (and "why is it waiting?") can tell live agents from those of a crashed server.

#include <atomic>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "server/scheduler/dispatcher.h"
#include "server/store/agents.h"

namespace assay {

class Wakeups {
 public:
  // *dispatcher and *agents must outlive this object.
  Wakeups(std::string database_url, Dispatcher* dispatcher, store::AgentStore* agents,
          absl::Duration touch_interval = absl::Seconds(10));
  ~Wakeups();
  void Start();
  void Stop();  // returns within about a second; idempotent
  int64_t received() const { return received_.load(); }

 private:
  void Loop();

  const std::string url_;
  Dispatcher* dispatcher_;
  store::AgentStore* agents_;
  const absl::Duration touch_interval_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> received_{0};
  std::thread thread_;
};

}  // namespace assay
