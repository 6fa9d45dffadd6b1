#pragma once
// Pushes queued jobs to connected agents. One thread owns the dispatch loop; it wakes on
// Kick() (a job became queued, a slot was freed, an agent connected) and on a periodic
// sweep that rescues jobs of lost agents (expired leases). Claims happen in PostgreSQL
// (JobStore::Claim), so several servers on one database never hand out a job twice.

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "assay/v1/agent.pb.h"
#include "common/clock.h"
#include "server/metrics/metrics.h"
#include "server/store/jobs.h"

namespace assay {

// Where messages to one connected agent go. Send never blocks; it is a no-op once the
// stream is gone. Close ends the stream with `reason`.
class AgentChannel {
 public:
  virtual ~AgentChannel() = default;
  virtual void Send(const v1::ServerMessage& msg) = 0;
  virtual void Close(const std::string& reason) = 0;
};

struct DispatcherOptions {
  absl::Duration lease = absl::Seconds(30);          // an agent silent this long is lost
  absl::Duration sweep_interval = absl::Seconds(1);  // lease-expiry check period
};

class Dispatcher {
 public:
  // *jobs, *metrics and *clock must outlive the Dispatcher.
  Dispatcher(store::JobStore* jobs, Metrics* metrics, const Clock* clock, DispatcherOptions opts);
  ~Dispatcher();
  void Start();
  void Stop();  // joins the loop; idempotent

  // `busy_jobs`: jobs the agent still runs (from its Hello). Replaces (and closes) an
  // earlier channel of the same agent id.
  void AgentConnected(int64_t agent_id, std::vector<std::string> labels, int slots,
                      std::set<int64_t> busy_jobs, std::shared_ptr<AgentChannel> channel);
  // Ignored unless `channel` is the agent's current one.
  void AgentDisconnected(int64_t agent_id, const AgentChannel* channel);
  // A job of this agent ended (result, rejection, stale): its slot is free again.
  void JobReleased(int64_t agent_id, int64_t job_id);
  // Tells the agent (if connected here) to stop the attempt.
  void SendCancel(int64_t agent_id, int64_t job_id, const std::string& token,
                  const std::string& reason);
  void Kick();
  int ConnectedAgents();
  // Ends every agent stream (server shutdown); agents reconnect to whoever serves next.
  void CloseAll(const std::string& reason);
  const DispatcherOptions& options() const { return opts_; }

  // One dispatch pass, synchronously: claims and sends until no free slot gets a job.
  // Returns the number of assignments sent. Public for tests.
  int DispatchOnce();

 private:
  struct AgentState {
    std::vector<std::string> labels;
    int slots = 1;
    std::set<int64_t> busy;
    std::shared_ptr<AgentChannel> channel;
  };
  void Loop();
  void Sweep();

  store::JobStore* jobs_;
  Metrics* metrics_;
  const Clock* clock_;
  const DispatcherOptions opts_;

  absl::Mutex mu_;
  std::map<int64_t, AgentState> agents_ ABSL_GUARDED_BY(mu_);
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  size_t rr_ ABSL_GUARDED_BY(mu_) = 0;  // round-robin start among agents
  std::thread thread_;
};

// Builds the Assignment for a claimed job (spec_json: {"steps":[..],"env":{..},"timeout_s":N}).
absl::StatusOr<v1::Assignment> BuildAssignment(const store::ClaimedJob& job);

}  // namespace assay
