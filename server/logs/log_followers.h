#pragma once
// Followers of live job logs (GET /api/v1/jobs/{id}/log?follow=1) on one server: a bounded
// number of slots, and parked readers woken when the job's log changes. The wake-ups come from
// the server's one LISTEN/NOTIFY listener (channels 'assay_logs' and 'assay_log_ended', payload:
// the job id); as notifications are hints, every parked reader is also resumed after `recheck`
// (and all of them after the listener reconnects). No reader holds a thread while parked:
// resumptions run on the hub's own worker threads.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/listener.h"

namespace assay::logs {

struct FollowOptions {
  int max_followers = 64;                        // per server; more get 503
  absl::Duration recheck = absl::Seconds(1);     // a parked reader looks again at least this often
  absl::Duration keepalive = absl::Seconds(15);  // SSE: a comment after this long without data
  // Plain (chunked) follow: the response ends after this long without a byte (the client
  // reconnects with ?offset=); a dead client's slot is freed within it.
  absl::Duration idle_end = absl::Seconds(60);
  int threads = 2;  // workers that run resumed readers (they read the database)
};

class LogFollowers {
 public:
  explicit LogFollowers(FollowOptions options = {});
  ~LogFollowers();  // Stop()
  LogFollowers(const LogFollowers&) = delete;
  LogFollowers& operator=(const LogFollowers&) = delete;

  // Before listener->Start(). `listener` must outlive this hub (or Stop() it first).
  void Attach(store::Listener* listener);
  void Start();
  // Drops every parked reader (never resumed) and joins the workers. Idempotent.
  void Stop();

  // One follower slot, released when the returned handle is destroyed; nullptr when
  // max_followers hold one, or the hub is stopped.
  std::shared_ptr<void> Acquire();
  // Runs `resume` once on a worker: after the job's log changed, after `recheck`, or never if
  // the hub stops first.
  void Park(int64_t job_id, std::function<void()> resume);
  void Wake(int64_t job_id);
  void WakeAll();

  const FollowOptions& options() const { return options_; }
  int followers() const;

 private:
  struct Parked {
    absl::Time deadline;
    std::function<void()> resume;
  };
  void Work();

  const FollowOptions options_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int followers_ ABSL_GUARDED_BY(mu_) = 0;
  std::multimap<int64_t, Parked> parked_ ABSL_GUARDED_BY(mu_);
  std::deque<std::function<void()>> ready_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace assay::logs
