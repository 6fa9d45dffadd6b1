#include "server/scheduler/dispatcher.h"

#include <boost/json.hpp>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/crypto/crypto.h"
#include "common/git/clone_url.h"
#include "server/scheduler/built_image.h"
#include "server/scheduler/container_spec.h"
#include "server/scheduler/requirements.h"
#include "server/secrets/job_secrets.h"

namespace assay {

Dispatcher::Dispatcher(store::JobStore* jobs, Metrics* metrics, const Clock* clock,
                       DispatcherOptions opts)
    : jobs_(jobs), metrics_(metrics), clock_(clock), opts_(opts) {}

Dispatcher::~Dispatcher() { Stop(); }

void Dispatcher::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Dispatcher::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Dispatcher::Apply(AgentCapacity& cap, const JobUse& use, int sign) {
  cap.cpus_used += sign * use.cpus;
  cap.memory_gb_used += sign * use.memory_gb;
  for (uint32_t idx : use.gpus) {
    for (GpuSlot& g : cap.gpus) {
      if (g.index != idx) continue;
      (use.gpu_shared ? g.shared_jobs : g.exclusive_jobs) += sign;
    }
  }
}

void Dispatcher::AgentConnected(AgentCapacity capacity, std::map<int64_t, JobUse> busy,
                                std::shared_ptr<AgentChannel> channel) {
  std::shared_ptr<AgentChannel> old;
  int n = 0;
  const int64_t agent_id = capacity.agent_id;
  {
    absl::MutexLock l(&mu_);
    AgentState& a = agents_[agent_id];
    old = std::move(a.channel);
    a.capacity = std::move(capacity);
    a.capacity.cpus_used = 0;
    a.capacity.memory_gb_used = 0;
    for (GpuSlot& g : a.capacity.gpus) g.exclusive_jobs = g.shared_jobs = 0;
    a.busy = std::move(busy);
    for (const auto& [id, use] : a.busy) Apply(a.capacity, use, +1);
    a.channel = std::move(channel);
    kicked_ = true;
    n = static_cast<int>(agents_.size());
  }
  if (old) old->Close("replaced by a newer connection of the same agent");
  metrics_->SetConnectedAgents(n);
}

void Dispatcher::AgentConnected(int64_t agent_id, std::vector<std::string> labels, int slots,
                                std::set<int64_t> busy_jobs,
                                std::shared_ptr<AgentChannel> channel) {
  AgentCapacity cap;
  cap.agent_id = agent_id;
  cap.name = absl::StrCat("agent-", agent_id);
  cap.labels = std::move(labels);
  cap.cpus_total = slots;
  std::map<int64_t, JobUse> busy;
  for (int64_t id : busy_jobs) busy[id] = JobUse{};
  AgentConnected(std::move(cap), std::move(busy), std::move(channel));
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
  if (it != agents_.end()) {
    auto j = it->second.busy.find(job_id);
    if (j != it->second.busy.end()) {
      Apply(it->second.capacity, j->second, -1);
      it->second.busy.erase(j);
    }
  }
  kicked_ = true;
}

void Dispatcher::SetNotAccepting(int64_t agent_id, const std::string& reason) {
  absl::MutexLock l(&mu_);
  auto it = agents_.find(agent_id);
  if (it == agents_.end()) return;
  if (it->second.capacity.not_accepting != reason) kicked_ = kicked_ || reason.empty();
  it->second.capacity.not_accepting = reason;
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
  // Why nothing more on failure: a cancel for a stream that is gone is moot; the agent's
  // reconnect reports the attempt and learns then that it is stale.
  if (!ch->Send(m)) {
    LogInfo("dispatch", "cancel of job ", job_id, " not sent: agent ", agent_id,
            "'s stream has ended");
  }
}

void Dispatcher::Kick() {
  absl::MutexLock l(&mu_);
  kicked_ = true;
}

bool Dispatcher::closing() {
  absl::MutexLock l(&mu_);
  return closing_;
}

std::vector<int64_t> Dispatcher::ConnectedAgentIds() {
  absl::MutexLock l(&mu_);
  std::vector<int64_t> out;
  for (const auto& [id, a] : agents_) out.push_back(id);
  return out;
}

void Dispatcher::CloseAll(const std::string& reason) {
  std::vector<std::shared_ptr<AgentChannel>> channels;
  {
    absl::MutexLock l(&mu_);
    closing_ = true;
    for (auto& [id, a] : agents_) channels.push_back(a.channel);
  }
  for (auto& ch : channels) ch->Close(reason);
}

int Dispatcher::ConnectedAgents() {
  absl::MutexLock l(&mu_);
  return static_cast<int>(agents_.size());
}

absl::StatusOr<v1::Assignment> BuildAssignment(const store::ClaimedJob& job,
                                               const KeyRing& secret_key) {
  v1::Assignment a;
  if (!job.clone_credential_sealed.empty()) {
    auto credential = secret_key.Open(job.clone_credential_sealed,
                                      RowAad("repos", job.repo_id, "clone_credential"));
    if (!credential.ok()) {
      return absl::InternalError(
          absl::StrCat("cannot open the clone credential of job ", job.job_id));
    }
    auto [username, password] = SplitCloneCredential(*credential);
    a.set_clone_username(std::move(username));
    a.set_clone_password(std::move(password));
  }
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
      if (const auto* b = s.as_object().if_contains("build_image")) {
        BuildImageFromJson(*b, *step->mutable_build_image());
      }
      if (const auto* e = s.as_object().if_contains("eval")) {
        step->set_eval_json(boost::json::serialize(*e));
      }
      if (const auto* t = s.as_object().if_contains("train")) {
        step->set_train_json(boost::json::serialize(*t));
      }
      if (const auto* p = s.as_object().if_contains("promote")) {
        step->set_promote_json(boost::json::serialize(*p));
      }
      if (const auto* p = s.as_object().if_contains("deploy")) {
        step->set_deploy_json(boost::json::serialize(*p));
      }
    }
    if (auto* env = spec.if_contains("env")) {
      for (const auto& [k, v] : env->as_object()) {
        (*a.mutable_env())[std::string(k)] = std::string(v.as_string());
      }
    }
    a.set_timeout_s(static_cast<uint32_t>(spec.at("timeout_s").to_number<int64_t>()));
    if (const auto* lfs = spec.if_contains("lfs"); lfs != nullptr && lfs->is_bool()) {
      a.set_skip_lfs(!lfs->get_bool());
    }
    if (auto* artifacts = spec.if_contains("artifacts")) {
      const boost::json::object& rules = artifacts->as_object();
      v1::ArtifactRules* out = a.mutable_artifacts();
      for (const auto& p : rules.at("paths").as_array()) out->add_paths(std::string(p.as_string()));
      out->set_when(std::string(rules.at("when").as_string()));
      out->set_fail_if_no_files(rules.at("if_no_files").as_string() == "error");
    }
    if (auto* needs = spec.if_contains("artifact_needs")) {
      for (const auto& n : needs->as_array()) a.add_artifact_needs(std::string(n.as_string()));
    }
    a.set_untrusted(job.untrusted);
    if (const auto* n = spec.if_contains("network"); n != nullptr && n->is_string()) {
      a.set_network(std::string(n->as_string()));
    }
    Placement placement;
    placement.agent_id = job.agent_id;
    placement.gpu_indices = job.gpu_indices;
    for (const auto& [k, v] : GpuEnvironment(placement)) (*a.mutable_env())[k] = v;
    for (uint32_t idx : job.gpu_indices) a.add_gpu_indices(idx);
    ContainerSpecToAssignment(spec, a);
    if (const auto* cache = spec.if_contains("cache"); cache != nullptr) {  // issue 9, caches
      const boost::json::object& c = cache->as_object();
      v1::CacheRules* out = a.mutable_cache();
      out->set_key(std::string(c.at("key").as_string()));
      for (const auto& p : c.at("paths").as_array()) out->add_paths(std::string(p.as_string()));
      for (const auto& k : c.at("restore_keys").as_array()) {
        out->add_restore_keys(std::string(k.as_string()));
      }
    }
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("job ", job.job_id, " has a malformed spec: ", e.what()));
  }
  return a;
}

int Dispatcher::DispatchOnce() {
  int sent = 0;
  for (int n = DispatchPass(); n > 0; n = DispatchPass()) sent += n;
  return sent;
}

int Dispatcher::DispatchPass() {
  // 1. Snapshot this server's agents that have a free CPU; placement runs on the copy.
  std::vector<AgentCapacity> free;
  {
    absl::MutexLock l(&mu_);
    for (const auto& [id, a] : agents_) {
      // Why check here too: an agent that takes no job (lifecycle) widens no queue filter.
      if (a.capacity.cpus_used < a.capacity.cpus_total && a.capacity.not_accepting.empty()) {
        free.push_back(a.capacity);
      }
    }
  }
  if (free.empty()) return 0;
  store::QueueFilter filter;
  int free_cpus = 0;
  filter.max_cpus = 0;
  std::set<std::string> labels;
  filter.untrusted = false;
  filter.container = filter.process = false;
  filter.untrusted_container = filter.untrusted_sandbox = false;
  for (const auto& a : free) {
    filter.untrusted = filter.untrusted || a.accepts_untrusted;
    // Why filter executors in the query: queued jobs that no free agent could run (container
    // jobs with only host agents) would otherwise fill the per-repository snapshot and hide
    // the runnable jobs behind them.
    auto offers = [&a](const char* e) {
      return std::find(a.executors.begin(), a.executors.end(), e) != a.executors.end();
    };
    filter.container |= offers("container");
    filter.process |= offers("sandbox") || offers("host");
    if (a.accepts_untrusted) {
      filter.untrusted_container |= offers("container");
      filter.untrusted_sandbox |= offers("sandbox");
    }
    const int cpus = a.cpus_total - a.cpus_used;
    free_cpus += cpus;
    filter.max_cpus = std::max(filter.max_cpus, cpus);
    filter.max_gpus = std::max(filter.max_gpus, static_cast<int>(a.gpus.size()));
    labels.insert(a.labels.begin(), a.labels.end());
  }
  filter.any_labels.assign(labels.begin(), labels.end());
  // Why more than the free CPUs: some jobs near the head may not fit any agent's GPUs or
  // memory now; reading a few more lets the jobs behind them run.
  filter.per_repo = std::min(1000, std::max(20, 2 * free_cpus));

  // 2. Read the queue and order it: priority, fair share between repositories, age.
  auto snap = jobs_->Queue(filter);
  if (!snap.ok()) {
    LogWarn("dispatch", "reading the queue failed: ", snap.status().ToString());
    return 0;
  }
  std::vector<QueuedJob> order_in;
  for (const auto& j : snap->jobs)
    order_in.push_back({j.job_id, j.repo_id, j.priority, j.queued_at});
  const std::vector<size_t> order = OrderQueue(order_in, snap->running_per_repo);

  // 3. Place jobs one by one on the copy.
  std::vector<store::ClaimRequest> batch;
  std::map<int64_t, JobUse> uses;
  std::set<std::string>& groups = snap->held_groups;
  std::map<std::string, int>& parallel = snap->running_per_parallel_key;
  for (size_t idx : order) {
    if (free.empty()) break;
    const store::QueuedJobRow& job = snap->jobs[idx];
    if (!job.concurrency_key.empty() && groups.contains(job.concurrency_key)) continue;
    if (!job.parallel_key.empty() && job.max_parallel > 0 &&
        parallel[job.parallel_key] >= job.max_parallel) {
      continue;
    }
    const JobRequirements req = RequirementsFromJson(job.labels, job.requirements_json);
    std::optional<Placement> placed;
    if (job.last_agent_id != 0 && free.size() > 1) {
      // A retry prefers another agent than the one its last attempt ran on.
      std::vector<AgentCapacity> others;
      for (const auto& a : free) {
        if (a.agent_id != job.last_agent_id) others.push_back(a);
      }
      placed = ChooseAgent(req, others);
    }
    if (!placed) placed = ChooseAgent(req, free);
    if (!placed) continue;
    JobUse use{req.cpus, req.memory_gb, placed->gpu_indices, req.gpu_shared};
    for (size_t i = 0; i < free.size(); ++i) {
      if (free[i].agent_id != placed->agent_id) continue;
      Apply(free[i], use, +1);
      if (free[i].cpus_used >= free[i].cpus_total) {
        free[i] = std::move(free.back());
        free.pop_back();
      }
      break;
    }
    if (!job.concurrency_key.empty()) groups.insert(job.concurrency_key);
    if (!job.parallel_key.empty()) ++parallel[job.parallel_key];
    store::ClaimRequest r;
    r.job_id = job.job_id;
    r.agent_id = placed->agent_id;
    r.gpu_indices = placed->gpu_indices;
    r.grouped = !job.concurrency_key.empty() || !job.parallel_key.empty();
    batch.push_back(std::move(r));
    uses[job.job_id] = std::move(use);
  }
  if (batch.empty()) return 0;

  // 4. Claim them all; a job another server took meanwhile is simply not returned. When a
  // transaction failed, what committed before it is still handed out below.
  store::ClaimBatchResult claimed = jobs_->ClaimBatch(batch, opts_.lease);
  if (!claimed.status.ok()) {
    LogWarn("dispatch", "claim failed after ", claimed.claimed.size(), " of ", batch.size(),
            " job(s) were claimed: ", claimed.status.ToString());
  }
  int sent = 0;
  for (const store::ClaimedJob& job : claimed.claimed) {
    auto assignment = BuildAssignment(job, opts_.secret_key);
    if (assignment.ok()) {
      absl::Status s = AttachSecrets(job, opts_.secrets, opts_.secret_key, &*assignment);
      if (s.ok())
        s = ResolveBuiltImage(job, opts_.images, opts_.secrets, opts_.secret_key, &*assignment);
      if (s.code() == absl::StatusCode::kFailedPrecondition ||
          s.code() == absl::StatusCode::kDataLoss) {
        FailClaim(job, std::string(s.message()));
        continue;
      }
      if (!s.ok()) assignment = s;
    }
    if (!assignment.ok()) {
      Unassign(job, std::string(assignment.status().message()));
      continue;
    }
    std::shared_ptr<AgentChannel> ch;
    {
      absl::MutexLock l(&mu_);
      auto it = agents_.find(job.agent_id);
      if (it != agents_.end()) {
        ch = it->second.channel;
        JobUse& use = it->second.busy[job.job_id];
        use = uses[job.job_id];
        Apply(it->second.capacity, use, +1);
      }
    }
    if (ch == nullptr) {
      // The agent left between snapshot and claim: hand the job back at once instead of
      // waiting for the lease to run out.
      Unassign(job, "not delivered: the agent disconnected before the assignment was sent");
      continue;
    }
    v1::ServerMessage m;
    *m.mutable_assignment() = std::move(*assignment);
    if (!ch->Send(m)) {
      // The stream is ending (its session's cleanup will follow): nothing more goes to it.
      AgentDisconnected(job.agent_id, ch.get());
      Unassign(job, "not delivered: the agent's stream ended before the assignment was sent");
      continue;
    }
    metrics_->ObserveDispatchLatency(absl::ToDoubleSeconds(clock_->Now() - job.queued_at));
    ++sent;
  }
  return sent;
}

void Dispatcher::Unassign(const store::ClaimedJob& job, const std::string& why) {
  auto f = jobs_->Unassign(job.job_id, job.attempt_token, why);
  if (!f.ok()) {
    LogWarn("dispatch", "job ", job.job_id, " (", why,
            ") could not be queued again: ", f.status().ToString(),
            "; it is requeued when its lease expires");
  } else if (*f == store::Fence::kStale) {
    LogInfo("dispatch", "job ", job.job_id, " (", why, ") was no longer assigned");
  }
  // No JobReleased: the job holds no slot here (no busy entry yet, or its agent is gone).
}

void Dispatcher::FailClaim(const store::ClaimedJob& job, const std::string& why) {
  LogInfo("dispatch", "job ", job.job_id, " fails before it starts: ", why);
  auto logged =
      jobs_->AppendLog(job.job_id, job.attempt_token, 1, absl::StrCat("assay: ", why, "\n"));
  if (!logged.ok()) {
    LogWarn("dispatch", "job ", job.job_id,
            ": storing its log failed: ", logged.status().ToString());
  }
  store::ResultReport r;
  r.job_id = job.job_id;
  r.attempt_token = job.attempt_token;
  r.state = "failed";
  r.message = why;
  auto f = jobs_->Finish(r);
  if (!f.ok()) {
    // The lease runs out and the sweep requeues it; the next claim fails it again.
    LogWarn("dispatch", "job ", job.job_id, " could not be failed: ", f.status().ToString());
  }
  Kick();  // dependents that are now ready or skipped
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
