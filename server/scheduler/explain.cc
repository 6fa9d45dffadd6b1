#include "server/scheduler/explain.h"

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/scheduler/requirements.h"

namespace assay {
namespace {

std::vector<GpuSlot> GpusFromJson(const std::string& text) {
  std::vector<GpuSlot> out;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  for (const auto& g : v.get_array()) {
    if (!g.is_object()) continue;
    const auto& o = g.get_object();
    GpuSlot s;
    if (const auto* f = o.if_contains("index"); f && f->is_number()) {
      s.index = static_cast<uint32_t>(f->to_number<int64_t>());
    }
    if (const auto* f = o.if_contains("uuid"); f && f->is_string())
      s.uuid = std::string(f->get_string());
    if (const auto* f = o.if_contains("name"); f && f->is_string())
      s.model = std::string(f->get_string());
    if (const auto* f = o.if_contains("memory_mb"); f && f->is_number()) {
      s.memory_mb = static_cast<uint64_t>(f->to_number<int64_t>());
    }
    out.push_back(std::move(s));
  }
  return out;
}

// "repo id:group" → "group".
std::string GroupName(const std::string& key) {
  size_t colon = key.find(':');
  return colon == std::string::npos ? key : key.substr(colon + 1);
}

}  // namespace

std::string NotAcceptingPhrase(const store::AgentDrain& drain, const std::string& agent_reason) {
  if (drain.drained) {
    if (drain.reason.empty()) return "draining (drained by an admin)";
    return absl::StrCat("draining (drained by an admin: ", drain.reason, ")");
  }
  return agent_reason;
}

ClusterView BuildClusterView(const std::vector<store::AgentRow>& agents,
                             const std::vector<store::LiveUsage>& live, absl::Time now,
                             absl::Duration fresh) {
  ClusterView v;
  std::map<int64_t, size_t> index;
  for (const auto& a : agents) {
    if (a.state != "online" || a.last_seen_at < now - fresh) continue;
    AgentCapacity cap;
    cap.agent_id = a.id;
    cap.name = a.name;
    cap.labels = a.labels;
    cap.cpus_total = a.cpu_slots;
    cap.memory_gb_total = a.memory_gb;
    cap.gpus = GpusFromJson(a.gpus_json);
    cap.accepts_untrusted = a.accept_untrusted;
    cap.not_accepting = NotAcceptingPhrase(a.drain, a.not_accepting);
    cap.executors = a.executors;
    index[a.id] = v.agents.size();
    v.agents.push_back(std::move(cap));
  }
  for (const auto& u : live) {
    if (!u.concurrency_key.empty()) v.group_holder[u.concurrency_key] = u.job_id;
    if (!u.parallel_key.empty()) ++v.parallel_running[u.parallel_key];
    auto it = index.find(u.agent_id);
    if (it == index.end()) continue;
    AgentCapacity& cap = v.agents[it->second];
    const JobRequirements req = RequirementsFromJson(u.labels, u.requirements_json);
    cap.cpus_used += req.cpus;
    cap.memory_gb_used += req.memory_gb;
    for (uint32_t idx : u.gpu_indices) {
      for (GpuSlot& g : cap.gpus) {
        if (g.index == idx) ++(req.gpu_shared ? g.shared_jobs : g.exclusive_jobs);
      }
    }
  }
  return v;
}

std::string WhyWaiting(const store::JobRow& job, const ClusterView& view,
                       const std::vector<store::JobRow>& jobs_of_pipeline) {
  if (job.state == "pending") {
    std::vector<std::string> parts;
    for (const std::string& need : job.needs) {
      for (const auto& other : jobs_of_pipeline) {
        if (other.name == need && other.state != "succeeded" &&
            !(other.allow_failure &&
              (other.state == "failed" || other.state == "timed_out" || other.state == "error"))) {
          parts.push_back(absl::StrCat(need, " (", other.state, ")"));
        }
      }
    }
    if (parts.empty()) return "waiting for the jobs it needs to finish";
    return absl::StrCat("waiting for the jobs it needs: ", absl::StrJoin(parts, ", "));
  }
  if (job.state != "queued") return "";
  if (!job.concurrency_key.empty()) {
    auto it = view.group_holder.find(job.concurrency_key);
    if (it != view.group_holder.end() && it->second != job.id) {
      return absl::StrCat("waiting for concurrency group '", GroupName(job.concurrency_key),
                          "': job ", it->second, " holds it");
    }
  }
  if (!job.parallel_key.empty() && job.max_parallel > 0) {
    auto it = view.parallel_running.find(job.parallel_key);
    const int running = it == view.parallel_running.end() ? 0 : it->second;
    if (running >= job.max_parallel) {
      return absl::StrCat("waiting for max_parallel: ", running, " of ", job.max_parallel,
                          " jobs of '", GroupName(job.parallel_key), "' are running");
    }
  }
  return ExplainWait(RequirementsFromJson(job.labels, job.requirements_json), view.agents);
}

}  // namespace assay
