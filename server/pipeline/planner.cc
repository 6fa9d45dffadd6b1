#include "server/pipeline/planner.h"

#include <boost/json.hpp>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "server/scheduler/requirements.h"
#include "common/pipeline_plan.h"
#include "server/webhook/forge.h"

namespace assay {

Planner::Planner(PlannerDeps deps) : deps_(std::move(deps)) {}

Planner::~Planner() { Stop(); }

void Planner::Start() { thread_ = std::thread([this] { Loop(); }); }

void Planner::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Planner::Enqueue(int64_t delivery_id) {
  absl::MutexLock l(&mu_);
  queue_.push_back(delivery_id);
}

void Planner::Loop() {
  while (true) {
    int64_t id = 0;
    {
      absl::MutexLock l(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      id = queue_.front();
      queue_.pop_front();
    }
    auto r = PlanDelivery(id);
    if (!r.ok()) {
      // Transient (database down): the delivery stays 'received' and is planned again at
      // the next start; retry once now after a pause so a blip does not strand it.
      LogWarn("planner", "delivery ", id, ": ", r.status().ToString());
      if (r.status().code() == absl::StatusCode::kUnavailable) {
        absl::SleepFor(absl::Seconds(1));
        Enqueue(id);
      }
    }
  }
}

GitMirror* Planner::MirrorFor(const store::Repo& repo) {
  absl::MutexLock l(&mirrors_mu_);
  auto& m = mirrors_[repo.id];
  if (m == nullptr || m->dir().empty()) {
    m = std::make_unique<GitMirror>(
        absl::StrCat(deps_.mirrors_dir, "/", repo.id, ".git"), repo.clone_url);
  }
  return m.get();
}

std::string UnsupportedFeature(const PipelineSpec& spec) {
  // Why refuse: running a job while ignoring what its file asks for (a branch filter, a GPU,
  // a retry policy) would be silently wrong; an error pipeline names what is not honoured.
  auto refuse = [](int line, const std::string& key) {
    return absl::StrCat(kPipelineFile, ":", line, ": ", key,
                        ": parsed and valid, but this server does not act on it yet");
  };
  if (spec.on.pull_request) return refuse(1, "on.pull_request");
  if (!spec.on.schedule.empty()) return refuse(1, "on.schedule");
  if (spec.on.manual) return refuse(1, "on.manual");
  return "";
}

std::vector<store::NewJob> JobsFromPlan(const std::vector<PlannedJob>& plan) {
  std::vector<store::NewJob> out;
  for (const auto& j : plan) {
    boost::json::array steps;
    for (const auto& s : j.steps) steps.push_back({{"name", s.name}, {"run", s.run}});
    boost::json::object env;
    for (const auto& [k, v] : j.env) env[k] = v;
    boost::json::object o{{"steps", std::move(steps)}, {"env", std::move(env)},
                          {"timeout_s", j.timeout_s}};
    if (!j.matrix.empty()) {
      boost::json::object m;
      for (const auto& [k, v] : j.matrix) m[k] = v;
      o["matrix"] = std::move(m);
    }
    store::NewJob nj;
    nj.name = j.name;
    nj.needs = j.needs;
    nj.priority = j.priority;
    nj.skip_reason = j.skip ? j.skip_reason : "";
    nj.spec_json = boost::json::serialize(o);
    nj.labels = j.runs_on.labels;
    nj.requirements_json = RequirementsJson(j.runs_on);
    nj.allow_failure = j.allow_failure;
    nj.concurrency_group = j.concurrency.group;
    nj.cancel_in_progress = j.concurrency.cancel_in_progress;
    nj.base_name = j.base_name;
    nj.max_parallel = j.max_parallel;
    if (j.retry == RetrySpec{}) {
      // No `retry:` key: an attempt lost with its agent runs once more, nothing else does.
      nj.max_attempts = 2;
      nj.retry_on = {"agent_lost"};
    } else {
      nj.max_attempts = 1 + j.retry.max;
      nj.retry_on = j.retry.on;
    }
    out.push_back(std::move(nj));
  }
  return out;
}

absl::StatusOr<int64_t> Planner::PlanDelivery(int64_t delivery_id) {
  auto d = deps_.deliveries->Get(delivery_id);
  if (!d.ok()) return d.status();
  if (d->state != "received") return 0;  // planned before
  auto ev = webhook::ParseDelivery(d->provider, d->event, d->delivery_id, d->body);
  if (!ev.ok()) {
    auto s = deps_.deliveries->Finish(delivery_id, "failed", std::string(ev.status().message()));
    if (!s.ok()) return s;
    return 0;
  }
  if (ev->deleted || (ev->kind != "push" && ev->kind != "tag")) {
    auto s = deps_.deliveries->Finish(delivery_id, "ignored",
                                      ev->deleted ? "ref deleted" : ev->ignore_reason);
    if (!s.ok()) return s;
    return 0;
  }
  auto repo = deps_.repos->Get(d->repo_id);
  if (!repo.ok()) return repo.status();

  store::NewPipeline p;
  p.repo_id = repo->id;
  p.delivery_id = delivery_id;
  p.event = ev->kind;
  p.ref = ev->ref;
  p.commit_sha = ev->after;

  GitMirror* mirror = MirrorFor(*repo);
  absl::Status fetched = mirror->EnsureCommit(ev->after);
  if (!fetched.ok()) {
    p.error = absl::StrCat("cannot fetch commit ", ev->after, " from ", repo->clone_url, ": ",
                           std::string(fetched.message()));
  } else {
    auto text = mirror->ReadFile(ev->after, kPipelineFile);
    if (!text.ok()) {
      p.error = text.status().code() == absl::StatusCode::kNotFound
                    ? absl::StrCat(kPipelineFile, ": no such file at commit ",
                                   ev->after.substr(0, 12))
                    : absl::StrCat(kPipelineFile, ": ", std::string(text.status().message()));
    } else {
      auto spec = ParsePipelineSpec(*text, kPipelineFile);
      if (!spec.ok()) {
        p.error = std::string(spec.status().message());
      } else if (std::string unsupported = UnsupportedFeature(*spec); !unsupported.empty()) {
        p.error = unsupported;
      } else {
        std::string why_not;
        if (!Triggers(*spec, {ev->kind, ev->branch, ev->tag, ev->changed_paths}, &why_not)) {
          // Like GitLab's rules: a push the file's filters exclude makes no pipeline at all.
          auto s = deps_.deliveries->Finish(delivery_id, "ignored", why_not);
          if (!s.ok()) return s;
          LogInfo("planner", "delivery ", delivery_id, " starts no pipeline: ", why_not);
          return 0;
        }
        ExprContext ctx;
        ctx.branch = ev->branch;
        ctx.tag = ev->tag;
        ctx.event = ev->kind;
        auto plan = PlanJobs(*spec, ctx);
        if (!plan.ok()) {
          p.error = absl::StrCat(kPipelineFile, ": ", std::string(plan.status().message()));
        } else {
          p.jobs = JobsFromPlan(*plan);
        }
      }
    }
  }
  auto id = deps_.pipelines->Create(p);
  if (!id.ok()) return id.status();
  if (p.error.empty()) {
    LogInfo("planner", "pipeline ", *id, " for ", repo->name, " ", ev->ref, " @ ",
            ev->after.substr(0, 12), ": ", p.jobs.size(), " job(s)");
    if (deps_.on_queued) deps_.on_queued();
  } else {
    LogInfo("planner", "pipeline ", *id, " for ", repo->name, " is in error: ", p.error);
  }
  return *id;
}

}  // namespace assay
