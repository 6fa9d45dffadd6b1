#pragma once
// The server's one LISTEN/NOTIFY connection. Users register channels with callbacks before
// Start(); one thread holds a dedicated connection (outside the pool, since it holds LISTEN for
// its whole life), waits for notifications and calls the callbacks.
//
// Notifications are hints: PostgreSQL drops those sent while nobody listens (a dropped
// connection, a database restart). So after every (re)connection, once every LISTEN is in place,
// the listener calls each on_reconnect callback, and a user re-scans whatever it may have
// missed. When the connection drops, the listener reconnects with exponential backoff
// (min_backoff doubling to max_backoff); every wait is bounded, so Stop() returns within about
// one `wait` (plus a connection attempt's connect_timeout).
//
// Threads: callbacks run on the listener's thread, one at a time; they must be quick and must
// not call Stop(). Listen and OnReconnect only before Start().

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace assay::store {

struct ListenerOptions {
  absl::Duration wait = absl::Milliseconds(500);         // longest wait for one notification
  absl::Duration min_backoff = absl::Milliseconds(100);  // first wait before reconnecting
  absl::Duration max_backoff = absl::Seconds(5);
  // A connection that has been silent this long is probed with a query, so a peer that vanished
  // without closing the socket is noticed.
  absl::Duration probe_interval = absl::Seconds(10);
  int connect_timeout_s = 5;  // libpq's connect_timeout for each attempt
};

class Listener {
 public:
  using Callback = std::function<void(const std::string& payload)>;

  explicit Listener(std::string dsn, ListenerOptions options = {});
  ~Listener();  // Stop()
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // `channel`: a PostgreSQL identifier of lower-case letters, digits and '_' (it is quoted as
  // is). Several callbacks may share a channel; each gets every notification.
  void Listen(std::string channel, Callback callback);
  // Called after every successful (re)connection, the first included.
  void OnReconnect(std::function<void()> callback);

  void Start();
  void Stop();  // idempotent; joins the thread

  bool listening() const { return listening_.load(); }
  int64_t received() const { return received_.load(); }        // notifications, all channels
  int64_t connections() const { return connections_.load(); }  // successful (re)connections

 private:
  void Run();
  // Connects, listens and serves until the connection breaks or Stop(); returns why it
  // stopped serving ("" for Stop()). Exceptions from libpqxx are caught here.
  std::string ServeOnce();
  // Sleeps `d` or until Stop(); false when stopping.
  bool SleepUnlessStopping(absl::Duration d);

  const std::string dsn_;
  const ListenerOptions options_;
  std::vector<std::pair<std::string, Callback>> channels_;  // fixed after Start()
  std::vector<std::function<void()>> on_reconnect_;         // fixed after Start()

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> listening_{false};
  std::atomic<int64_t> received_{0};
  std::atomic<int64_t> connections_{0};
  std::thread thread_;
};

}  // namespace assay::store
