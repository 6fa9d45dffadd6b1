#include "server/scheduler/dispatcher.h"

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace assay {

Dispatcher::Dispatcher(store::JobStore* jobs, Metrics* metrics, const Clock* clock,
                       DispatcherOptions opts)
    : jobs_(jobs), metrics_(metrics), clock_(clock), opts_(opts) {}

Dispatcher::~Dispatcher() { Stop(); }

void Dispatcher::Start() { thread_ = std::thread([this] { Loop(); }); }

void Dispatcher::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Dispatcher::AgentConnected(int64_t agent_id, std::vector<std::string> labels, int slots,
                                std::set<int64_t> busy_jobs,
                                std::shared_ptr<AgentChannel> channel) {
  std::shared_ptr<AgentChannel> old;
  int n = 0;
  {
    absl::MutexLock l(&mu_);
    AgentState& a = agents_[agent_id];
    old = std::move(a.channel);
    a.labels = std::move(labels);
    a.slots = slots;
    a.busy = std::move(busy_jobs);
    a.channel = std::move(channel);
    kicked_ = true;
    n = static_cast<int>(agents_.size());
  }
  if (old) old->Close("replaced by a newer connection of the same agent");
  metrics_->SetConnectedAgents(n);
}

void Dispatcher::AgentDisconnected(int64_t agent_id, const AgentChannel* channel) {
  int n = 0;
  {
    absl::MutexLock l(&mu_);
    auto it = agents_.find(agent_id);
    if (it != agents_.end() && it->second.channel.get() == channel) agents_.erase(it);
    n = static_cast<int>(agents_.size());
  }
  metrics_->SetConnectedAgents(n);
}

void Dispatcher::JobReleased(int64_t agent_id, int64_t job_id) {
  absl::MutexLock l(&mu_);
  auto it = agents_.find(agent_id);
  if (it != agents_.end()) it->second.busy.erase(job_id);
  kicked_ = true;
}

void Dispatcher::SendCancel(int64_t agent_id, int64_t job_id, const std::string& token,
                            const std::string& reason) {
  std::shared_ptr<AgentChannel> ch;
  {
    absl::MutexLock l(&mu_);
    auto it = agents_.find(agent_id);
    if (it == agents_.end()) return;
    ch = it->second.channel;
  }
  v1::ServerMessage m;
  auto* c = m.mutable_cancel();
  c->set_job_id(job_id);
  c->set_attempt_token(token);
  c->set_reason(reason);
  ch->Send(m);
}

void Dispatcher::Kick() {
  absl::MutexLock l(&mu_);
  kicked_ = true;
}

void Dispatcher::CloseAll(const std::string& reason) {
  std::vector<std::shared_ptr<AgentChannel>> channels;
  {
    absl::MutexLock l(&mu_);
    for (auto& [id, a] : agents_) channels.push_back(a.channel);
  }
  for (auto& ch : channels) ch->Close(reason);
}

int Dispatcher::ConnectedAgents() {
  absl::MutexLock l(&mu_);
  return static_cast<int>(agents_.size());
}

absl::StatusOr<v1::Assignment> BuildAssignment(const store::ClaimedJob& job) {
  v1::Assignment a;
  a.set_job_id(job.job_id);
  a.set_attempt_token(job.attempt_token);
  a.set_attempt(job.attempt);
  a.set_pipeline_id(job.pipeline_id);
  a.set_job_name(job.job_name);
  a.set_clone_url(job.clone_url);
  a.set_commit_sha(job.commit_sha);
  a.set_ref(job.ref);
  try {
    boost::json::object spec = boost::json::parse(job.spec_json).as_object();
    for (const auto& s : spec.at("steps").as_array()) {
      auto* step = a.add_steps();
      step->set_name(std::string(s.at("name").as_string()));
      step->set_run(std::string(s.at("run").as_string()));
    }
    if (auto* env = spec.if_contains("env")) {
      for (const auto& [k, v] : env->as_object()) {
        (*a.mutable_env())[std::string(k)] = std::string(v.as_string());
      }
    }
    a.set_timeout_s(static_cast<uint32_t>(spec.at("timeout_s").to_number<int64_t>()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("job ", job.job_id, " has a malformed spec: ", e.what()));
  }
  return a;
}

int Dispatcher::DispatchOnce() {
  int sent = 0;
  for (bool progress = true; progress;) {
    progress = false;
    // Snapshot the agents with free slots; claims run without holding mu_.
    struct Candidate {
      int64_t id;
      std::vector<std::string> labels;
    };
    std::vector<Candidate> free;
    {
      absl::MutexLock l(&mu_);
      std::vector<Candidate> all;
      for (auto& [id, a] : agents_) {
        if (static_cast<int>(a.busy.size()) < a.slots) all.push_back({id, a.labels});
      }
      // Why round-robin: with several idle agents, spread jobs instead of always filling
      // the agent with the lowest id first.
      for (size_t i = 0; i < all.size(); ++i) free.push_back(all[(rr_ + i) % all.size()]);
      ++rr_;
    }
    for (const auto& cand : free) {
      auto claimed = jobs_->Claim(cand.id, cand.labels, opts_.lease);
      if (!claimed.ok()) {
        LogWarn("dispatch", "claim for agent ", cand.id, " failed: ", claimed.status().ToString());
        return sent;
      }
      if (!claimed->has_value()) continue;
      const store::ClaimedJob& job = **claimed;
      auto assignment = BuildAssignment(job);
      std::shared_ptr<AgentChannel> ch;
      {
        absl::MutexLock l(&mu_);
        auto it = agents_.find(cand.id);
        if (it != agents_.end()) {
          ch = it->second.channel;
          it->second.busy.insert(job.job_id);
        }
      }
      if (!assignment.ok() || ch == nullptr) {
        // The agent left between snapshot and claim, or the spec is broken: hand the job
        // back at once instead of waiting for the lease to run out.
        (void)jobs_->Reject(job.job_id, job.attempt_token,
                            assignment.ok() ? "agent disconnected before assignment"
                                            : std::string(assignment.status().message()));
        JobReleased(cand.id, job.job_id);
        continue;
      }
      v1::ServerMessage m;
      *m.mutable_assignment() = std::move(*assignment);
      ch->Send(m);
      metrics_->ObserveDispatchLatency(absl::ToDoubleSeconds(clock_->Now() - job.queued_at));
      ++sent;
      progress = true;
    }
  }
  return sent;
}

void Dispatcher::Sweep() {
  auto expired = jobs_->ExpireLeases();
  if (!expired.ok()) {
    LogWarn("dispatch", "lease sweep failed: ", expired.status().ToString());
  } else if (*expired > 0) {
    LogInfo("dispatch", "requeued or failed ", *expired, " job(s) whose lease expired");
  }
}

void Dispatcher::Loop() {
  absl::Time next_sweep = absl::Now();
  while (true) {
    {
      absl::MutexLock l(&mu_);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return kicked_ || stopping_; };
      mu_.AwaitWithDeadline(absl::Condition(&woken), next_sweep);
      if (stopping_) return;
      kicked_ = false;
    }
    if (absl::Now() >= next_sweep) {
      Sweep();
      next_sweep = absl::Now() + opts_.sweep_interval;
    }
    DispatchOnce();
  }
}

}  // namespace assay
