#include "server/scheduler/fit.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <set>
#include <string_view>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace assay {
namespace {

int FreeCpus(const AgentCapacity& a) { return std::max(0, a.cpus_total - a.cpus_used); }
double FreeMemoryGb(const AgentCapacity& a) {
  return std::max(0.0, a.memory_gb_total - a.memory_gb_used);
}

bool HasLabels(const JobRequirements& job, const AgentCapacity& agent) {
  for (const std::string& label : job.labels) {
    if (std::find(agent.labels.begin(), agent.labels.end(), label) == agent.labels.end()) {
      return false;
    }
  }
  return true;
}

bool ModelMatches(const JobRequirements& job, const GpuSlot& gpu) {
  return job.gpu_model.empty() || fnmatch(job.gpu_model.c_str(), gpu.model.c_str(), 0) == 0;
}

// Model and memory, regardless of what runs on the GPU.
bool GpuMatches(const JobRequirements& job, const GpuSlot& gpu) {
  return ModelMatches(job, gpu) && GpuHasMemory(gpu.memory_mb, job.gpu_memory_gb);
}

int IdleGpus(const AgentCapacity& a) {
  return static_cast<int>(std::count_if(a.gpus.begin(), a.gpus.end(), [](const GpuSlot& g) {
    return g.exclusive_jobs == 0 && g.shared_jobs == 0;
  }));
}

double GpuGb(uint64_t memory_mb) { return static_cast<double>(memory_mb) * 1048576.0 / 1e9; }

// What a machine has, rounded down to one decimal so "has 85.5 GB" never overstates.
std::string HaveGb(double gb) {
  std::string s = absl::StrFormat("%.1f", std::floor(gb * 10 + 1e-9) / 10);
  if (absl::EndsWith(s, ".0")) s.resize(s.size() - 2);
  return s;
}

// What a job asks, as written (up to two decimals).
std::string AskGb(double gb) {
  std::string s = absl::StrFormat("%.2f", gb);
  while (absl::EndsWith(s, "0")) s.pop_back();
  if (absl::EndsWith(s, ".")) s.pop_back();
  return s;
}

std::string Plural(int n, const std::string& one, const std::string& many) {
  return absl::StrCat(n, " ", n == 1 ? one : many);
}

// "3 agents carry label gpu" / "1 agent is connected".
std::string Scope(const JobRequirements& job, size_t n) {
  int count = static_cast<int>(n);
  if (job.labels.empty()) return Plural(count, "agent is connected", "agents are connected");
  return absl::StrCat(Plural(count, "agent carries", "agents carry"),
                      job.labels.size() == 1 ? " label " : " labels ",
                      absl::StrJoin(job.labels, ", "));
}

// "2 free GPUs of model \"*H100*\" with >= 40 GB for shared use".
std::string GpuWords(const JobRequirements& job, int n, bool free) {
  std::string s = Plural(n, free ? "free GPU" : "GPU", free ? "free GPUs" : "GPUs");
  if (!job.gpu_model.empty()) absl::StrAppend(&s, " of model \"", job.gpu_model, "\"");
  if (job.gpu_memory_gb > 0) absl::StrAppend(&s, " with >= ", AskGb(job.gpu_memory_gb), " GB");
  if (free && job.gpu_shared) absl::StrAppend(&s, " for shared use");
  return s;
}

bool Offers(const AgentCapacity& agent, std::string_view executor) {
  return std::find(agent.executors.begin(), agent.executors.end(), executor) !=
         agent.executors.end();
}

// Whether `agent` has an executor for the job, trust left aside.
bool HasExecutorFor(const JobRequirements& job, const AgentCapacity& agent) {
  if (job.executor == "container") return Offers(agent, "container");
  return Offers(agent, "sandbox") || Offers(agent, "host");
}

// Whether `agent` runs the job isolated enough: an untrusted job never on the host.
bool IsolatesFor(const JobRequirements& job, const AgentCapacity& agent) {
  if (!job.untrusted) return true;
  if (job.executor == "container") return Offers(agent, "container");
  return Offers(agent, "sandbox");
}

}  // namespace

bool GpuHasMemory(uint64_t memory_mb, double gb) {
  return static_cast<double>(memory_mb) * 1048576.0 >= gb * 1e9;
}

std::vector<const GpuSlot*> UsableGpus(const JobRequirements& job, const AgentCapacity& agent) {
  std::vector<const GpuSlot*> out;
  for (const GpuSlot& gpu : agent.gpus) {
    if (gpu.exclusive_jobs > 0) continue;
    if (!job.gpu_shared && gpu.shared_jobs > 0) continue;
    if (!GpuMatches(job, gpu)) continue;
    out.push_back(&gpu);
  }
  return out;
}

bool Fits(const JobRequirements& job, const AgentCapacity& agent) {
  if (!agent.not_accepting.empty()) return false;
  if (job.untrusted && !agent.accepts_untrusted) return false;
  if (!HasExecutorFor(job, agent) || !IsolatesFor(job, agent)) return false;
  if (!HasLabels(job, agent)) return false;
  if (FreeCpus(agent) < job.cpus) return false;
  if (job.memory_gb > 0 && FreeMemoryGb(agent) < job.memory_gb) return false;
  if (job.gpus > 0 && static_cast<int>(UsableGpus(job, agent).size()) < job.gpus) return false;
  return true;
}

std::optional<Placement> ChooseAgent(const JobRequirements& job,
                                     const std::vector<AgentCapacity>& agents) {
  // Smaller key wins: (no-GPU-agent first for CPU jobs, GPUs left usable, free CPUs, id).
  using Key = std::tuple<int, int, int, int64_t>;
  const AgentCapacity* best = nullptr;
  Key best_key{};
  for (const AgentCapacity& agent : agents) {
    if (!Fits(job, agent)) continue;
    Key key = job.gpus > 0 ? Key{0, static_cast<int>(UsableGpus(job, agent).size()),
                                 FreeCpus(agent), agent.agent_id}
                           : Key{agent.gpus.empty() ? 0 : 1, IdleGpus(agent), FreeCpus(agent),
                                 agent.agent_id};
    if (!best || key < best_key) {
      best = &agent;
      best_key = key;
    }
  }
  if (!best) return std::nullopt;
  Placement placement;
  placement.agent_id = best->agent_id;
  if (job.gpus > 0) {
    std::vector<const GpuSlot*> usable = UsableGpus(job, *best);
    std::sort(usable.begin(), usable.end(), [](const GpuSlot* a, const GpuSlot* b) {
      return std::tie(a->memory_mb, a->index) < std::tie(b->memory_mb, b->index);
    });
    for (int i = 0; i < job.gpus; ++i) placement.gpu_indices.push_back(usable[i]->index);
    std::sort(placement.gpu_indices.begin(), placement.gpu_indices.end());
  }
  return placement;
}

namespace {

// `a` as it would be with no job running and taking jobs.
AgentCapacity Idle(const AgentCapacity& a) {
  AgentCapacity idle = a;
  idle.not_accepting.clear();
  idle.cpus_used = 0;
  idle.memory_gb_used = 0;
  for (GpuSlot& g : idle.gpus) g.exclusive_jobs = g.shared_jobs = 0;
  return idle;
}

// ExplainWait over agents that all take jobs.
std::string ExplainWaitAmong(const JobRequirements& job, const std::vector<AgentCapacity>& agents);

}  // namespace

std::string ExplainWait(const JobRequirements& job, const std::vector<AgentCapacity>& agents) {
  std::vector<AgentCapacity> open;
  std::vector<const AgentCapacity*> could;  // take no jobs now, but could run this one
  bool open_could = false;
  for (const AgentCapacity& a : agents) {
    if (a.not_accepting.empty()) {
      open.push_back(a);
      open_could = open_could || Fits(job, Idle(a));
    } else if (Fits(job, Idle(a))) {
      could.push_back(&a);
    }
  }
  if (!could.empty() && !open_could) {
    if (could.size() == 1) {
      return absl::StrCat("agent ", could[0]->name, " is ", could[0]->not_accepting);
    }
    std::vector<std::string> parts;
    for (const AgentCapacity* a : could) {
      parts.push_back(absl::StrCat("agent ", a->name, " is ", a->not_accepting));
    }
    return absl::StrCat("the agents that could run it take no jobs now: ",
                        absl::StrJoin(parts, "; "));
  }
  return ExplainWaitAmong(job, open);
}

namespace {

std::string ExplainWaitAmong(const JobRequirements& job, const std::vector<AgentCapacity>& agents) {
  if (agents.empty()) return "no agent is connected";
  std::vector<const AgentCapacity*> labeled;
  bool any_executor = false, any_accepts = false, any_isolates = false;
  for (const AgentCapacity& a : agents) {
    if (!HasExecutorFor(job, a)) continue;
    any_executor = true;
    if (job.untrusted && !a.accepts_untrusted) continue;
    any_accepts = true;
    if (!IsolatesFor(job, a)) continue;
    any_isolates = true;
    if (HasLabels(job, a)) labeled.push_back(&a);
  }
  const bool container = job.executor == "container";
  if (!any_executor) {
    return container ? "needs the container executor (the job has image:): no connected agent "
                       "offers it (start one with --executors container)"
                     : "needs the sandbox or host executor (the job has no image:): no connected "
                       "agent offers either";
  }
  if (!any_accepts) {
    return "untrusted (fork pull request): no connected agent accepts untrusted jobs (start one "
           "with --accept-untrusted)";
  }
  if (!any_isolates) {
    return container ? "untrusted (fork pull request): no connected agent accepts untrusted jobs "
                       "in a container (start one with --accept-untrusted --executors container)"
                     : "untrusted (fork pull request): no connected agent accepts untrusted jobs "
                       "in a sandbox, and the host executor never runs them (start one with "
                       "--accept-untrusted --executors sandbox)";
  }
  if (labeled.empty()) {
    return absl::StrCat("no connected agent carries ",
                        job.labels.size() == 1 ? "label " : "labels ",
                        absl::StrJoin(job.labels, ", "));
  }
  const std::string scope = Scope(job, labeled.size());

  // Never enough, whatever else runs.
  if (job.gpus > 0) {
    if (!job.gpu_model.empty()) {
      std::set<std::string> models;
      bool any = false;
      for (const AgentCapacity* a : labeled) {
        for (const GpuSlot& g : a->gpus) {
          models.insert(g.model);
          any = any || ModelMatches(job, g);
        }
      }
      if (!any) {
        return absl::StrCat("no agent has a GPU of model \"", job.gpu_model, "\": ", scope,
                            models.empty()
                                ? ", none has a GPU"
                                : ", their GPU models are " + absl::StrJoin(models, ", "));
      }
    }
    if (job.gpu_memory_gb > 0) {
      uint64_t largest = 0;
      bool any = false;
      for (const AgentCapacity* a : labeled) {
        for (const GpuSlot& g : a->gpus) {
          if (!ModelMatches(job, g)) continue;
          largest = std::max(largest, g.memory_mb);
          any = any || GpuHasMemory(g.memory_mb, job.gpu_memory_gb);
        }
      }
      if (!any) {
        std::string what = "a GPU";
        if (!job.gpu_model.empty()) absl::StrAppend(&what, " of model \"", job.gpu_model, "\"");
        return absl::StrCat("no agent has ", what, " with >= ", AskGb(job.gpu_memory_gb),
                            " GB: ", scope,
                            largest == 0 ? ", none has a GPU"
                                         : ", the largest has " + HaveGb(GpuGb(largest)) + " GB");
      }
    }
    int most = 0;
    for (const AgentCapacity* a : labeled) {
      most = std::max(most, static_cast<int>(std::count_if(
                                a->gpus.begin(), a->gpus.end(),
                                [&](const GpuSlot& g) { return GpuMatches(job, g); })));
    }
    if (most < job.gpus) {
      return absl::StrCat("no agent has ", GpuWords(job, job.gpus, false), ": ", scope,
                          ", most on one agent is ", most);
    }
  }
  int most_cpus = 0, most_free_cpus = 0;
  double most_memory = 0, most_free_memory = 0;
  int most_free_gpus = 0;
  for (const AgentCapacity* a : labeled) {
    most_cpus = std::max(most_cpus, a->cpus_total);
    most_free_cpus = std::max(most_free_cpus, FreeCpus(*a));
    most_memory = std::max(most_memory, a->memory_gb_total);
    most_free_memory = std::max(most_free_memory, FreeMemoryGb(*a));
    most_free_gpus = std::max(most_free_gpus, static_cast<int>(UsableGpus(job, *a).size()));
  }
  if (most_cpus < job.cpus) {
    return absl::StrCat("no agent has ", Plural(job.cpus, "CPU", "CPUs"), ": ", scope,
                        ", most on one agent is ", most_cpus);
  }
  if (job.memory_gb > 0 && most_memory < job.memory_gb) {
    return absl::StrCat("no agent has ", AskGb(job.memory_gb), " GB of memory: ", scope,
                        ", most on one agent is ", HaveGb(most_memory), " GB");
  }

  // Busy now.
  if (job.gpus > 0 && most_free_gpus < job.gpus) {
    return absl::StrCat("no agent has ", GpuWords(job, job.gpus, true), ": ", scope,
                        ", most free GPUs on one agent is ", most_free_gpus);
  }
  if (most_free_cpus < job.cpus) {
    return absl::StrCat("no agent has ", Plural(job.cpus, "free CPU", "free CPUs"), ": ", scope,
                        ", most free CPUs on one agent is ", most_free_cpus);
  }
  if (job.memory_gb > 0 && most_free_memory < job.memory_gb) {
    return absl::StrCat("no agent has ", AskGb(job.memory_gb), " GB of free memory: ", scope,
                        ", most free memory on one agent is ", HaveGb(most_free_memory), " GB");
  }
  std::optional<Placement> placement = ChooseAgent(job, agents);
  if (placement) {
    for (const AgentCapacity& a : agents) {
      if (a.agent_id == placement->agent_id) {
        return absl::StrCat("agent ", a.name, " (id ", a.agent_id, ") can take it now");
      }
    }
  }
  std::vector<std::string> parts;
  if (job.gpus > 0) parts.push_back(GpuWords(job, job.gpus, true));
  parts.push_back(Plural(job.cpus, "free CPU", "free CPUs"));
  if (job.memory_gb > 0) parts.push_back(AskGb(job.memory_gb) + " GB of free memory");
  std::string list = parts.back();
  if (parts.size() > 1) {
    list = absl::StrCat(absl::StrJoin(parts.begin(), parts.end() - 1, ", "), " and ", parts.back());
  }
  return absl::StrCat("no agent has ", list, " at once: ", scope);
}

}  // namespace

std::vector<size_t> OrderQueue(const std::vector<QueuedJob>& jobs,
                               const std::map<int64_t, int>& running_per_repo) {
  // Jobs by priority (highest first), then per repository oldest first.
  std::map<int, std::map<int64_t, std::deque<size_t>>, std::greater<int>> groups;
  for (size_t i = 0; i < jobs.size(); ++i) groups[jobs[i].priority][jobs[i].repo_id].push_back(i);
  auto older = [&](size_t a, size_t b) {
    return std::tie(jobs[a].queued_at, jobs[a].job_id) <
           std::tie(jobs[b].queued_at, jobs[b].job_id);
  };
  std::map<int64_t, int> running = running_per_repo;
  std::vector<size_t> order;
  order.reserve(jobs.size());
  for (auto& [priority, repos] : groups) {
    // (running, head's queued_at, head's job id, repo): the smallest is offered next.
    using Entry = std::tuple<int, absl::Time, int64_t, int64_t>;
    std::set<Entry> ready;
    auto entry = [&, &repos = repos](int64_t repo) {
      size_t head = repos[repo].front();
      return Entry{running[repo], jobs[head].queued_at, jobs[head].job_id, repo};
    };
    for (auto& [repo, queue] : repos) {
      std::sort(queue.begin(), queue.end(), older);
      ready.insert(entry(repo));
    }
    while (!ready.empty()) {
      int64_t repo = std::get<3>(*ready.begin());
      ready.erase(ready.begin());
      order.push_back(repos[repo].front());
      repos[repo].pop_front();
      ++running[repo];
      if (!repos[repo].empty()) ready.insert(entry(repo));
    }
  }
  return order;
}

std::vector<std::pair<std::string, std::string>> GpuEnvironment(const Placement& placement) {
  if (placement.gpu_indices.empty()) {
    return {{"CUDA_VISIBLE_DEVICES", ""}, {"NVIDIA_VISIBLE_DEVICES", "void"}};
  }
  std::string list = absl::StrJoin(placement.gpu_indices, ",");
  return {{"CUDA_VISIBLE_DEVICES", list}, {"NVIDIA_VISIBLE_DEVICES", list}};
}

}  // namespace assay
