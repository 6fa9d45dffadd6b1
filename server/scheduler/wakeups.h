#pragma once
// Wake-ups across server replicas, on the server's one LISTEN connection (store::Listener):
//   assay_jobs    a job became queued (sent by the transaction that queued it) → Kick()
//   assay_cancel  "<agent id> <job id> <token>": an attempt was canceled → if the agent's
//                 stream is on this server, tell it to stop
// Notifications are only hints: after every (re)connection of the listener the dispatcher is
// kicked to re-read the queue, and its periodic pass and the agents' heartbeats (which report
// attempts that are no longer live) keep everything correct without them.
// Its own thread marks this server's connected agents as seen every `touch_interval`, so other
// replicas (and "why is it waiting?") can tell live agents from those of a crashed server.

#include <atomic>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/scheduler/dispatcher.h"
#include "server/store/agents.h"
#include "server/store/listener.h"

namespace assay {

class Wakeups {
 public:
  // Registers its channels on *listener, which must not be started yet. *listener, *dispatcher
  // and *agents must outlive this object; stop the listener before destroying it.
  Wakeups(store::Listener* listener, Dispatcher* dispatcher, store::AgentStore* agents,
          absl::Duration touch_interval = absl::Seconds(10));
  ~Wakeups();
  void Start();  // the touch thread
  void Stop();   // returns at once; idempotent
  int64_t received() const { return received_.load(); }

 private:
  void OnCancel(const std::string& payload);
  void TouchLoop();

  Dispatcher* dispatcher_;
  store::AgentStore* agents_;
  const absl::Duration touch_interval_;
  std::atomic<int64_t> received_{0};
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace assay
