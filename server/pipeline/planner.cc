#include "server/pipeline/planner.h"

#include <boost/json.hpp>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "server/scheduler/requirements.h"
#include "common/pipeline/plan.h"
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

std::vector<store::NewJob> JobsFromPlan(const std::vector<PlannedJob>& plan,
                                        const PipelineContext& context) {
  std::vector<store::NewJob> out;
  for (const auto& j : plan) {
    boost::json::array steps;
    for (const auto& s : j.steps) steps.push_back({{"name", s.name}, {"run", s.run}});
    boost::json::object env;
    for (const auto& [k, v] : context.inputs) env[InputEnvName(k)] = v;
    for (const auto& [k, v] : j.env) env[k] = v;
    boost::json::object o{{"steps", std::move(steps)}, {"env", std::move(env)},
                          {"timeout_s", j.timeout_s}};
    if (!j.matrix.empty()) {
      boost::json::object m;
      for (const auto& [k, v] : j.matrix) m[k] = v;
      o["matrix"] = std::move(m);
    }
    if (!context.trusted) o["trusted"] = false;
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

std::string PullRequestType(const std::string& action) {
  if (action == "open") return "opened";
  if (action == "reopen") return "reopened";
  if (action == "update" || action == "synchronized") return "synchronize";
  if (action == "close" || action == "merge") return "closed";
  return action;
}

namespace {

// The pipeline file at `sha`: the parsed spec, or why there is none (an error pipeline's
// message). `missing` when the commit has no such file.
struct LoadedSpec {
  std::optional<PipelineSpec> spec;
  std::string error;
  bool missing = false;
};

LoadedSpec LoadSpec(GitMirror* mirror, const std::string& sha) {
  LoadedSpec out;
  auto text = mirror->ReadFile(sha, kPipelineFile);
  if (!text.ok()) {
    out.missing = text.status().code() == absl::StatusCode::kNotFound;
    out.error = out.missing ? absl::StrCat(kPipelineFile, ": no such file at commit ",
                                           sha.substr(0, 12))
                            : absl::StrCat(kPipelineFile, ": ", std::string(text.status().message()));
    return out;
  }
  auto spec = ParsePipelineSpec(*text, kPipelineFile);
  if (!spec.ok()) {
    out.error = std::string(spec.status().message());
    return out;
  }
  out.spec = *std::move(spec);
  return out;
}

std::string InputsJson(const std::map<std::string, std::string>& inputs) {
  boost::json::object o;
  for (const auto& [k, v] : inputs) o[k] = v;
  return boost::json::serialize(o);
}

}  // namespace

absl::Status Planner::RecordSchedules(const store::Repo& repo, const PipelineSpec* spec) {
  if (deps_.schedules == nullptr) return absl::OkStatus();
  std::vector<store::ScheduleEntry> entries;
  if (spec != nullptr) {
    for (const auto& s : spec->on.schedule) entries.push_back({s.cron, s.branch});
  }
  absl::Status s = deps_.schedules->Replace(repo.id, entries);
  if (s.ok()) {
    LogInfo("planner", repo.name, ": ", entries.size(), " schedule(s) from ", kPipelineFile,
            " of ", repo.default_branch);
  }
  return s;
}

absl::StatusOr<int64_t> Planner::Write(store::NewPipeline& p, const store::Repo& repo,
                                       const PipelineSpec* spec, const ExprContext& ctx) {
  if (p.error.empty() && spec != nullptr) {
    auto plan = PlanJobs(*spec, ctx);
    if (!plan.ok()) {
      p.error = absl::StrCat(kPipelineFile, ": ", std::string(plan.status().message()));
    } else {
      p.jobs = JobsFromPlan(*plan, PipelineContext{ctx.inputs, p.trusted});
    }
  }
  auto id = deps_.pipelines->Create(p);
  if (!id.ok()) return id.status();
  if (p.error.empty()) {
    LogInfo("planner", "pipeline ", *id, " (", p.event, ") for ", repo.name, " ", p.ref, " @ ",
            p.commit_sha.substr(0, 12), ": ", p.jobs.size(), " job(s)");
    if (deps_.on_queued) deps_.on_queued();
  } else {
    LogInfo("planner", "pipeline ", *id, " for ", repo.name, " is in error: ", p.error);
  }
  if (p.event == "push" && repo.cancel_superseded) {
    std::vector<int64_t> canceled;
    auto attempts = deps_.pipelines->CancelSuperseded(repo.id, p.ref, *id, &canceled);
    if (!attempts.ok()) {
      LogWarn("planner", "canceling pipelines superseded by ", *id, ": ",
              attempts.status().ToString());
    } else if (!canceled.empty()) {
      // Their agents are told to stop through the store's NOTIFY assay_cancel.
      LogInfo("planner", canceled.size(), " pipeline(s) of ", repo.name, " ", p.ref,
              " superseded by pipeline ", *id);
    }
  }
  return *id;
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
  auto repo = deps_.repos->Get(d->repo_id);
  if (!repo.ok()) return repo.status();
  // The forge knows the default branch best; learn it from any payload that names it.
  if (!ev->default_branch.empty() && ev->default_branch != repo->default_branch &&
      IsValidBranchName(ev->default_branch)) {
    store::RepoSettings set;
    set.default_branch = ev->default_branch;
    auto updated = deps_.repos->Update(repo->id, set);
    if (!updated.ok()) return updated.status();
    LogInfo("planner", repo->name, ": default branch is now ", ev->default_branch);
    repo = *std::move(updated);
  }
  const bool pr = ev->kind == "pull_request";
  if (ev->deleted || (ev->kind != "push" && ev->kind != "tag" && !pr)) {
    auto s = deps_.deliveries->Finish(delivery_id, "ignored",
                                      ev->deleted ? "ref deleted" : ev->ignore_reason);
    if (!s.ok()) return s;
    return 0;
  }

  store::NewPipeline p;
  p.repo_id = repo->id;
  p.delivery_id = delivery_id;
  p.event = ev->kind;
  p.ref = ev->ref;
  p.commit_sha = ev->after;
  if (pr) {
    p.trusted = !ev->fork;
    p.pr_number = ev->pr_number;
  }
  const bool default_branch_push = ev->kind == "push" && ev->branch == repo->default_branch;

  GitMirror* mirror = MirrorFor(*repo);
  absl::Status fetched =
      pr ? mirror->EnsureCommitAt(ev->after, ev->ref) : mirror->EnsureCommit(ev->after);
  LoadedSpec file;
  if (!fetched.ok()) {
    p.error = absl::StrCat("cannot fetch commit ", ev->after, " from ", repo->clone_url, ": ",
                           std::string(fetched.message()));
  } else {
    file = LoadSpec(mirror, ev->after);
    p.error = file.error;
    // Like GitHub Actions: the default branch's file says what runs on a schedule. A file that
    // cannot be parsed leaves the schedules as they were.
    if (default_branch_push && (file.spec || file.missing)) {
      absl::Status s = RecordSchedules(*repo, file.spec ? &*file.spec : nullptr);
      if (!s.ok()) return s;
    }
  }
  if (file.spec) {
    std::string why_not;
    const bool runs =
        pr ? TriggersPullRequest(*file.spec, ev->base_branch, PullRequestType(ev->pr_action),
                                 &why_not)
           : Triggers(*file.spec, {ev->kind, ev->branch, ev->tag, ev->changed_paths}, &why_not);
    if (!runs) {
      // Like GitLab's rules: an event the file's filters exclude makes no pipeline at all.
      auto s = deps_.deliveries->Finish(delivery_id, "ignored", why_not);
      if (!s.ok()) return s;
      LogInfo("planner", "delivery ", delivery_id, " starts no pipeline: ", why_not);
      return 0;
    }
  }
  ExprContext ctx;
  ctx.branch = ev->branch;
  ctx.tag = ev->tag;
  ctx.event = ev->kind;
  return Write(p, *repo, file.spec ? &*file.spec : nullptr, ctx);
}

absl::StatusOr<int64_t> Planner::PlanManual(int64_t repo_id,
                                            const std::optional<std::string>& branch_in,
                                            const std::map<std::string, std::string>& inputs) {
  auto repo = deps_.repos->Get(repo_id);
  if (!repo.ok()) return repo.status();
  const std::string branch = branch_in.value_or(repo->default_branch);
  if (!IsValidBranchName(branch)) {
    return absl::InvalidArgumentError(
        absl::StrCat("field 'branch': '", branch, "' is not a valid branch name"));
  }
  GitMirror* mirror = MirrorFor(*repo);
  auto sha = mirror->FetchBranchHead(branch);
  if (!sha.ok()) return sha.status();
  LoadedSpec file = LoadSpec(mirror, *sha);
  if (!file.spec) return absl::InvalidArgumentError(file.error);
  if (!file.spec->on.manual) {
    return absl::InvalidArgumentError(absl::StrCat(kPipelineFile, " at commit ", sha->substr(0, 12),
                                                   " has no on.manual trigger"));
  }
  auto resolved = ResolveManualInputs(*file.spec->on.manual, inputs);
  if (!resolved.ok()) return resolved.status();
  ExprContext ctx;
  ctx.branch = branch;
  ctx.event = "manual";
  ctx.inputs = *resolved;
  auto plan = PlanJobs(*file.spec, ctx);
  if (!plan.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kPipelineFile, ": ", std::string(plan.status().message())));
  }
  store::NewPipeline p;
  p.repo_id = repo->id;
  p.event = "manual";
  p.ref = absl::StrCat("refs/heads/", branch);
  p.commit_sha = *sha;
  p.inputs_json = InputsJson(*resolved);
  return Write(p, *repo, &*file.spec, ctx);
}

absl::StatusOr<int64_t> Planner::PlanSchedule(const store::ScheduleRow& s, absl::Time slot) {
  auto repo = deps_.repos->Get(s.repo_id);
  if (!repo.ok()) return repo.status();
  const std::string branch = s.branch.empty() ? repo->default_branch : s.branch;
  GitMirror* mirror = MirrorFor(*repo);
  auto sha = mirror->FetchBranchHead(branch);
  if (!sha.ok()) return sha.status();
  store::NewPipeline p;
  p.repo_id = repo->id;
  p.event = "schedule";
  p.ref = absl::StrCat("refs/heads/", branch);
  p.commit_sha = *sha;
  p.schedule_id = s.id;
  p.scheduled_for = slot;
  LoadedSpec file = LoadSpec(mirror, *sha);
  p.error = file.error;
  ExprContext ctx;
  ctx.branch = branch;
  ctx.event = "schedule";
  return Write(p, *repo, file.spec ? &*file.spec : nullptr, ctx);
}

}  // namespace assay
