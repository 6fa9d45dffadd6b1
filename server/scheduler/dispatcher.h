#pragma once
// Pushes queued jobs to connected agents. One thread owns the dispatch loop; it wakes on
// Kick() (a job became queued, a slot was freed, an agent connected) and on a periodic
// sweep that rescues jobs of lost agents (expired leases). Claims happen in PostgreSQL
// (JobStore::ClaimBatch), so several servers on one database never hand out a job twice.

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "assay/v1/agent.pb.h"
#include "common/base/clock.h"
#include "common/crypto/sealed.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/fit.h"
#include "server/store/job_images.h"
#include "server/store/jobs.h"
#include "server/store/secrets.h"

namespace assay {

// Where messages to one connected agent go. Send never blocks; it returns false (and does
// nothing) once the stream is gone or ending, so the message never reaches the agent. Close
// ends the stream with `reason`.
class AgentChannel {
 public:
  virtual ~AgentChannel() = default;
  virtual bool Send(const v1::ServerMessage& msg) = 0;
  virtual void Close(const std::string& reason) = 0;
};

struct DispatcherOptions {
  absl::Duration lease = absl::Seconds(25);          // an agent silent this long is lost
  absl::Duration sweep_interval = absl::Seconds(1);  // lease-expiry check period
  KeyRing secret_key;  // opens repos' sealed clone credentials for assignments
  // Repository secrets for the jobs that list them (server/secrets/job_secrets.h); null: such
  // jobs fail. Not owned; outlives the Dispatcher.
  store::SecretStore* secrets = nullptr;
  // Issue 9, build_image: resolves `image: ${{ jobs.NAME.image }}` (built_image.h); null: such
  // jobs fail. Not owned; outlives the Dispatcher.
  store::JobImageStore* images = nullptr;
};

// What one job of an agent holds.
struct JobUse {
  int cpus = 1;
  double memory_gb = 0;
  std::vector<uint32_t> gpus;
  bool gpu_shared = false;
};

class Dispatcher {
 public:
  // *jobs, *metrics and *clock must outlive the Dispatcher.
  Dispatcher(store::JobStore* jobs, Metrics* metrics, const Clock* clock, DispatcherOptions opts);
  ~Dispatcher();
  void Start();
  void Stop();  // joins the loop; idempotent

  // `capacity`: what the agent offers (its usage fields are ignored); `busy`: the jobs it
  // still runs and what they hold. Replaces (and closes) an earlier channel of the same
  // agent id.
  void AgentConnected(AgentCapacity capacity, std::map<int64_t, JobUse> busy,
                      std::shared_ptr<AgentChannel> channel);
  // Shorthand: a CPU-only agent with `slots` CPUs whose busy jobs take one CPU each.
  void AgentConnected(int64_t agent_id, std::vector<std::string> labels, int slots,
                      std::set<int64_t> busy_jobs, std::shared_ptr<AgentChannel> channel);
  // Ignored unless `channel` is the agent's current one.
  void AgentDisconnected(int64_t agent_id, const AgentChannel* channel);
  // A job of this agent ended (result, rejection, stale): its slot is free again.
  void JobReleased(int64_t agent_id, int64_t job_id);
  // Issue 9, lifecycle: the agent takes no new job while `reason` is set (see
  // AgentCapacity::not_accepting); "" lets it take jobs again (and wakes the loop). Ignored for
  // an agent not connected here. AgentConnected's capacity carries the state at connect.
  void SetNotAccepting(int64_t agent_id, const std::string& reason);
  // Tells the agent (if connected here) to stop the attempt.
  void SendCancel(int64_t agent_id, int64_t job_id, const std::string& token,
                  const std::string& reason);
  void Kick();
  int ConnectedAgents();
  std::vector<int64_t> ConnectedAgentIds();
  // Ends every agent stream (server shutdown); agents reconnect to whoever serves next.
  void CloseAll(const std::string& reason);
  bool closing();  // CloseAll was called
  const DispatcherOptions& options() const { return opts_; }

  // One dispatch pass, synchronously: claims and sends until no free slot gets a job.
  // Returns the number of assignments sent. A claim that cannot be sent (the agent's stream
  // is gone, or the job's spec is malformed) is handed back to the queue at once
  // (JobStore::Unassign), and an agent whose stream is gone gets nothing more. Public for
  // tests.
  int DispatchOnce();

 private:
  struct AgentState {
    AgentCapacity capacity;  // usage fields kept in step with `busy`
    std::map<int64_t, JobUse> busy;
    std::shared_ptr<AgentChannel> channel;
  };
  static void Apply(AgentCapacity& cap, const JobUse& use, int sign);
  void Loop();
  void Sweep();
  // One pass: read the queue once, place what fits on this server's agents, claim in one go.
  int DispatchPass();
  // Hands a claim that was not sent back to the queue; logs what could not be done.
  void Unassign(const store::ClaimedJob& job, const std::string& why);
  // Ends a claim that can never run (a secret it lists does not exist) as failed, with `why`
  // as its message and its log ("assay: <why>").
  void FailClaim(const store::ClaimedJob& job, const std::string& why);

  store::JobStore* jobs_;
  Metrics* metrics_;
  const Clock* clock_;
  const DispatcherOptions opts_;

  absl::Mutex mu_;
  std::map<int64_t, AgentState> agents_ ABSL_GUARDED_BY(mu_);
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Builds the Assignment for a claimed job (spec_json: {"steps":[..],"env":{..},"timeout_s":N},
// and optionally "artifacts":{"paths":[..],"when":..,"if_no_files":..,"expire_in_s":N} and
// "artifact_needs":[..], copied into Assignment.artifacts and artifact_needs),
// with CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES set to exactly its GPUs (GpuEnvironment).
// A job's sealed clone credential, if any, is opened with `secret_key` (sealed for
// RowAad("repos", repo_id, "clone_credential")) into clone_username and clone_password
// (kInternal "cannot open the clone credential of job N" when it cannot be).
absl::StatusOr<v1::Assignment> BuildAssignment(const store::ClaimedJob& job,
                                               const KeyRing& secret_key = KeyRing());

}  // namespace assay
