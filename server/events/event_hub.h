#pragma once
// Live updates for dashboards (issue 11): GET /api/v1/events streams, as Server-Sent Events,
// every pipeline and job that is created or changes state. The events come from the server's
// one LISTEN/NOTIFY listener (channel 'assay_events', raised by the triggers of migration
// 0025), so every replica's dashboards see every change.
//
// Each subscriber has a bounded queue. A subscriber that falls behind loses its queue and gets
// one "resync" event instead, and so does every subscriber after the listener reconnects
// (notifications sent meanwhile are lost): the page then fetches what it shows again. No
// subscriber holds a thread while it waits: Next hands its sink over, and the hub calls it when
// an event arrives, when `keepalive` passes (an SSE comment, which also finds dead clients), or
// when the hub stops ("": the stream ends).

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/listener.h"

namespace assay::events {

struct HubOptions {
  int max_subscribers = 256;                     // per server; more get 503
  size_t max_queued = 1024;                      // events per subscriber before a resync
  absl::Duration keepalive = absl::Seconds(15);  // a comment after this long without events
};

class EventHub;

// One dashboard's stream. Destroying it unsubscribes.
class Subscription {
 public:
  using Sink = std::function<void(absl::StatusOr<std::string>)>;
  ~Subscription();
  // Calls `sink` exactly once with the next piece of the SSE body: every queued event, or a
  // keepalive comment, or "" when the hub stopped. At most one Next may be pending.
  void Next(Sink sink);

 private:
  friend class EventHub;
  explicit Subscription(EventHub* hub) : hub_(hub) {}
  EventHub* hub_;
};

class EventHub {
 public:
  explicit EventHub(HubOptions options = {});
  ~EventHub();  // Stop()
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // Before listener->Start(). `listener` must outlive the hub (or Stop() it first).
  void Attach(store::Listener* listener);
  void Start();
  // Ends every stream ("" to each pending sink) and joins the timer. Idempotent.
  void Stop();

  // A new subscriber; nullptr when max_subscribers hold one or the hub is stopped. The first
  // piece it gets is an SSE "retry" hint and a "hello" event.
  std::unique_ptr<Subscription> Subscribe();
  // Sends `json` (one JSON object: its "type" names the SSE event) to every subscriber.
  void Publish(const std::string& json);
  // Sends a "resync" event to every subscriber (their queues dropped).
  void ResyncAll();

  int subscribers() const;
  const HubOptions& options() const { return options_; }

 private:
  friend class Subscription;
  struct Sub {
    std::deque<std::string> queue;  // SSE-framed events
    bool overflowed = false;
    Subscription::Sink sink;  // pending Next
    absl::Time deadline = absl::InfiniteFuture();
  };
  void Unsubscribe(Subscription* s);
  void Next(Subscription* s, Subscription::Sink sink);
  // Queues `framed` for every subscriber and collects the sinks that can now be served.
  void Deliver(const std::string& framed, bool resync);
  // Takes what `sub` has queued as one piece (resync first when it overflowed).
  std::string Drain(Sub& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Timer();

  const HubOptions options_;
  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  int64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::pair<Subscription*, Sub>> subs_ ABSL_GUARDED_BY(mu_);
  std::thread timer_;
};

// The SSE frame of one event: "id: SEQ\nevent: TYPE\ndata: JSON\n\n". A JSON object is
// written compactly and TYPE is its "type" (a word of letters, digits, '_' and '-'; "message"
// otherwise). Anything else goes as given, CR and LF made spaces so that no field is forged.
std::string SseFrame(int64_t seq, const std::string& json);

}  // namespace assay::events
