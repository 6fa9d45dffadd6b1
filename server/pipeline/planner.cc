#include "server/pipeline/planner.h"

#include <boost/json.hpp>

#include <filesystem>
#include <string_view>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/crypto/crypto.h"
#include "common/evals/eval_spec.h"
#include "common/evals/train_spec.h"
#include "common/git/clone_url.h"
#include "common/pipeline/plan.h"
#include "server/scheduler/container_spec.h"
#include "server/scheduler/requirements.h"
#include "server/webhook/forge.h"

namespace assay {

namespace {

// The lane of deliveries whose repository is not known yet (repository ids start at 1).
constexpr int64_t kIntakeLane = 0;

// Worth trying again: the database (or the connection to it) may come back.
bool IsTransient(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDeadlineExceeded || s.code() == absl::StatusCode::kAborted;
}

constexpr absl::Duration kFirstRetry = absl::Seconds(1);
constexpr absl::Duration kLongestRetry = absl::Seconds(30);

// `plan()`, with any exception turned into kInternal. Why: planning reads a user's file with
// third-party parsers (yaml-cpp, Boost.JSON) on a worker thread; an exception escaping a worker
// would end the server, and the delivery, still 'received', would be planned again at the next
// start and end it again.
template <typename F>
absl::StatusOr<int64_t> Guarded(const char* what, F plan) {
  try {
    return plan();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, " failed: ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(what, " failed: unknown exception"));
  }
}

}  // namespace

Planner::Planner(PlannerDeps deps) : deps_(std::move(deps)), lanes_(deps_.workers) {}

Planner::~Planner() { Stop(); }

void Planner::Start() { lanes_.Start(); }

void Planner::Stop() { lanes_.Stop(); }

void Planner::Enqueue(int64_t delivery_id) {
  lanes_.Submit(kIntakeLane, {[this, delivery_id] { Route(delivery_id); },
                              [delivery_id] {
                                LogInfo("planner", "delivery ", delivery_id,
                                        " left for the next start (planner not running)");
                              }});
}

void Planner::Route(int64_t delivery_id) {
  absl::Duration wait = kFirstRetry;
  while (true) {
    auto d = deps_.deliveries->Get(delivery_id);
    if (d.ok()) {
      if (d->state != "received") return;  // planned before
      const int64_t repo_id = d->repo_id;
      auto row = std::make_shared<const store::Delivery>(*std::move(d));
      lanes_.Submit(repo_id, {[this, row] { PlanQueued(row); },
                              [delivery_id] {
                                LogInfo("planner", "delivery ", delivery_id,
                                        " left for the next start (planner stopping)");
                              }});
      return;
    }
    LogWarn("planner", "delivery ", delivery_id, ": ", d.status().ToString());
    if (!IsTransient(d.status()) || lanes_.WaitForStop(wait)) return;
    wait = std::min(2 * wait, kLongestRetry);
  }
}

void Planner::PlanQueued(const std::shared_ptr<const store::Delivery>& d) {
  absl::Duration wait = kFirstRetry;
  absl::StatusOr<int64_t> r = Guarded("planning", [&] { return PlanLoadedDelivery(*d); });
  while (!r.ok()) {
    LogWarn("planner", "delivery ", d->id, ": ", r.status().ToString());
    if (!IsTransient(r.status())) {
      // Trying again would fail again (and, at every start, again): the delivery ends 'failed'
      // with the reason, unless it was planned before the failure.
      absl::Status s = deps_.deliveries->Finish(d->id, "failed", std::string(r.status().message()));
      if (!s.ok()) LogWarn("planner", "delivery ", d->id, ": ", s.ToString());
      return;
    }
    // Transient (database down): the delivery stays 'received'; try again after a pause, in
    // place, so that the repository's later deliveries still come after it.
    if (lanes_.WaitForStop(wait)) return;
    wait = std::min(2 * wait, kLongestRetry);
    r = Guarded("planning", [&] { return PlanDelivery(d->id); });
  }
}

GitMirror* Planner::MirrorFor(const store::Repo& repo) {
  absl::MutexLock l(&mirrors_mu_);
  auto& m = mirrors_[repo.id];
  if (m == nullptr || m->dir().empty()) {
    GitMirror::Options options;
    options.allow_local = deps_.allow_local_repos;
    if (!repo.clone_credential_sealed.empty()) {
      // A credential that cannot be opened is left out: the fetch then fails as unauthorized,
      // with git's message, rather than with a secret-handling detail.
      if (auto credential = deps_.secret_key.Open(repo.clone_credential_sealed,
                                                  RowAad("repos", repo.id, "clone_credential"));
          credential.ok()) {
        std::tie(options.username, options.password) = SplitCloneCredential(*credential);
      } else {
        LogWarn("planner", "cannot open the clone credential of repository ", repo.id);
      }
    }
    m = std::make_unique<GitMirror>(absl::StrCat(deps_.mirrors_dir, "/", repo.id, ".git"),
                                    repo.clone_url, std::move(options));
  }
  return m.get();
}

std::vector<store::NewJob> JobsFromPlan(const std::vector<PlannedJob>& plan,
                                        const PipelineContext& context) {
  std::vector<store::NewJob> out;
  for (const auto& j : plan) {
    boost::json::array steps;
    for (const auto& s : j.steps) {
      boost::json::object step{{"name", s.name}, {"run", s.run}};
      if (s.build_image.has_value()) step["build_image"] = BuildImageJson(*s.build_image);
      if (s.eval.has_value()) step["eval"] = boost::json::parse(evals::EvalSpecToJson(*s.eval));
      if (s.train.has_value()) {
        step["train"] = boost::json::parse(evals::TrainSpecToJson(*s.train));
      }
      if (s.promote.has_value()) {
        step["promote"] = boost::json::parse(evals::PromoteSpecToJson(*s.promote));
      }
      if (s.deploy.has_value())
        step["deploy"] = boost::json::parse(DeployStepSpecToJson(*s.deploy));
      steps.push_back(std::move(step));
    }
    boost::json::object env;
    for (const auto& [k, v] : context.inputs) env[InputEnvName(k)] = v;
    for (const auto& [k, v] : j.env) env[k] = v;
    // An untrusted pipeline (a fork's pull request) chooses nothing that reaches beyond its own
    // jobs: default priority, at most the default timeout, a concurrency group of its own
    // ("untrusted:G", so it can neither hold up nor be held up by the repository's trusted
    // group G) that never cancels anything. See UntrustedNotes.
    const bool untrusted = !context.trusted;
    const int64_t timeout_s =
        untrusted ? std::min<int64_t>(j.timeout_s, kDefaultJobTimeoutSeconds) : j.timeout_s;
    boost::json::object o{
        {"steps", std::move(steps)}, {"env", std::move(env)}, {"timeout_s", timeout_s}};
    if (!j.matrix.empty()) {
      boost::json::object m;
      for (const auto& [k, v] : j.matrix) m[k] = v;
      o["matrix"] = std::move(m);
    }
    if (j.sweep.has_value()) {  // issue 10: read by server/store/sweep.cc
      boost::json::object params;
      for (const auto& [name, value] : j.sweep->values)
        params[name] = boost::json::parse(value.json);
      boost::json::object sweep{{"name", j.base_name},        {"trial", j.sweep->number},
                                {"trials", j.sweep->trials},  {"method", j.sweep->method},
                                {"metric", j.sweep->metric},  {"goal", j.sweep->goal},
                                {"params", std::move(params)}};
      if (j.sweep->early_stop.has_value()) {
        sweep["early_stop"] = {{"rule", j.sweep->early_stop->rule},
                               {"min_trials", j.sweep->early_stop->min_trials},
                               {"warmup_steps", j.sweep->early_stop->warmup_steps}};
      }
      o["sweep"] = std::move(sweep);
    }
    if (!context.trusted) o["trusted"] = false;
    if (!j.lfs) o["lfs"] = false;
    // Issue 9: read by the dispatcher (BuildAssignment) and the artifact store (expire_in_s).
    if (j.artifacts.has_value()) {
      boost::json::array paths;
      for (const auto& p : j.artifacts->paths) paths.emplace_back(p);
      o["artifacts"] = boost::json::object{{"paths", std::move(paths)},
                                           {"expire_in_s", j.artifacts->expire_in_s},
                                           {"when", j.artifacts->when},
                                           {"if_no_files", j.artifacts->if_no_files}};
    }
    if (!j.artifact_needs.empty()) {
      boost::json::array names;
      for (const auto& n : j.artifact_needs) names.emplace_back(n);
      o["artifact_needs"] = std::move(names);
    }
    if (!j.secrets.empty()) {  // issue 9: what the dispatcher opens (server/secrets/)
      boost::json::array secrets;
      for (const SecretUse& s : j.secrets) {
        secrets.push_back({{"name", s.name}, {"as", s.as_file ? "file" : "env"}});
      }
      o["secrets"] = std::move(secrets);
    }
    if (!j.environment.empty()) o["environment"] = j.environment;
    AddContainerSpec(j, o);
    if (!j.network.empty()) o["network"] = j.network;  // Assignment.network (issue 9)
    if (j.cache.has_value()) {                         // issue 9: Assignment.cache (docs/caches.md)
      boost::json::array paths, restore_keys;
      for (const auto& p : j.cache->paths) paths.emplace_back(p);
      for (const auto& k : j.cache->restore_keys) restore_keys.emplace_back(k);
      o["cache"] = boost::json::object{{"key", j.cache->key},
                                       {"paths", std::move(paths)},
                                       {"restore_keys", std::move(restore_keys)}};
    }
    store::NewJob nj;
    nj.name = j.name;
    nj.needs = j.needs;
    nj.priority = untrusted ? 0 : j.priority;
    nj.skip_reason = j.skip ? j.skip_reason : "";
    nj.spec_json = boost::json::serialize(o);
    nj.labels = j.runs_on.labels;
    nj.requirements_json =
        RequirementsJson(j.runs_on, untrusted, j.image.has_value() ? "container" : "");
    nj.allow_failure = j.allow_failure;
    nj.concurrency_group = j.concurrency.group;
    if (untrusted && !nj.concurrency_group.empty()) {
      nj.concurrency_group = absl::StrCat("untrusted:", nj.concurrency_group);
    }
    nj.cancel_in_progress = !untrusted && j.concurrency.cancel_in_progress;
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

std::vector<std::string> UntrustedNotes() {
  return {"untrusted (fork pull request): runs only on agents started with --accept-untrusted",
          "untrusted (fork pull request): priority, concurrency.cancel_in_progress and timeouts "
          "over 60m in .assay.yml are ignored; concurrency groups are its own"};
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
  bool unavailable = false;  // the mirror could not answer (worth trying again)
};

LoadedSpec LoadSpec(GitMirror* mirror, const std::string& sha) {
  LoadedSpec out;
  // The linter's size limit, applied before the file is read at all.
  auto text = mirror->ReadFile(sha, kPipelineFile, kMaxSpecBytes);
  if (text.status().code() == absl::StatusCode::kOutOfRange) {
    // The same words as the linter's, which sees the same limit after reading.
    out.error = absl::StrCat(kPipelineFile, ":1:1: ", std::string(text.status().message()));
    return out;
  }
  if (!text.ok()) {
    out.missing = text.status().code() == absl::StatusCode::kNotFound;
    out.unavailable = text.status().code() == absl::StatusCode::kUnavailable;
    out.error = out.missing
                    ? absl::StrCat(kPipelineFile, ": no such file at commit ", sha.substr(0, 12))
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

// Whether `spec` plans under `ctx`: a request that would only write an error pipeline is
// refused instead (kInvalidArgument naming the file).
absl::Status Plannable(const PipelineSpec& spec, const ExprContext& ctx) {
  auto plan = PlanJobs(spec, ctx);
  if (plan.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(kPipelineFile, ": ", std::string(plan.status().message())));
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
    LogInfo("planner", repo.name, ": ", entries.size(), " schedule(s) from ", kPipelineFile, " of ",
            repo.default_branch);
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
  if (!p.commit_sha.empty() && p.commit_author.empty()) {
    // What the dashboard shows as the trigger; a commit that cannot be read leaves it empty.
    auto info = MirrorFor(repo)->ReadCommit(p.commit_sha);
    if (info.ok()) {
      p.commit_author = info->author;
      p.commit_message = info->message;
    }
  }
  auto id = deps_.pipelines->Create(p);
  if (!id.ok()) return id.status();
  if (*id == 0) return 0;  // a schedule slot that is no longer due
  if (p.error.empty()) {
    LogInfo("planner", "pipeline ", *id, " (", p.event, ") for ", repo.name, " ", p.ref, " @ ",
            p.commit_sha.substr(0, 12), ": ", p.jobs.size(), " job(s)");
    if (deps_.on_queued) deps_.on_queued();
  } else {
    LogInfo("planner", "pipeline ", *id, " for ", repo.name, " is in error: ", p.error);
  }
  // A re-run of an older commit must not cancel the newer pipelines of its branch.
  if (p.event == "push" && repo.cancel_superseded && !p.rerun_of) {
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
  return PlanLoadedDelivery(*d);
}

absl::StatusOr<int64_t> Planner::PlanLoadedDelivery(const store::Delivery& d) {
  const int64_t delivery_id = d.id;
  if (d.state != "received") return 0;  // planned before
  auto ev = webhook::ParseDelivery(d.provider, d.event, d.delivery_id, d.body);
  if (!ev.ok()) {
    auto s = deps_.deliveries->Finish(delivery_id, "failed", std::string(ev.status().message()));
    if (!s.ok()) return s;
    return 0;
  }
  auto repo = deps_.repos->Get(d.repo_id);
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
  if (!fetched.ok() && fetched.code() != absl::StatusCode::kNotFound &&
      fetched.code() != absl::StatusCode::kInvalidArgument && d.age < deps_.fetch_retry_window) {
    // Nothing written: the delivery stays 'received' and its lane tries again with backoff.
    return absl::UnavailableError(absl::StrCat("delivery ", delivery_id, " (received ",
                                               absl::FormatDuration(d.age),
                                               " ago) waits: ", std::string(fetched.message())));
  }
  if (!fetched.ok()) {
    p.error = absl::StrCat("cannot fetch commit ", ev->after, " from ",
                           RedactCloneUrl(repo->clone_url), ": ", std::string(fetched.message()));
  } else {
    file = LoadSpec(mirror, ev->after);
    if (file.unavailable && d.age < deps_.fetch_retry_window) {
      return absl::UnavailableError(absl::StrCat("delivery ", delivery_id, " waits: ", file.error));
    }
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

// A PlanManual caller and the worker that plans for it. The caller gives up after manual_wait
// unless the worker has started writing; the worker writes only if the caller has not given up.
// So either the caller gets the pipeline, or nothing is written.
struct Planner::ManualCall {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  bool abandoned ABSL_GUARDED_BY(mu) = false;
  bool writing ABSL_GUARDED_BY(mu) = false;
  absl::StatusOr<int64_t> result ABSL_GUARDED_BY(mu) = absl::UnknownError("not planned");

  void Finish(absl::StatusOr<int64_t> r) {
    absl::MutexLock l(&mu);
    result = std::move(r);
    done = true;
  }
};

absl::StatusOr<int64_t> Planner::CallOnLane(int64_t repo_id, const std::string& what,
                                            const LaneWork& work) {
  auto call = std::make_shared<ManualCall>();
  lanes_.Submit(repo_id,
                {[call, what, work] {
                   {
                     absl::MutexLock l(&call->mu);
                     if (call->abandoned) return;
                   }
                   auto may_write = [&call] {
                     absl::MutexLock l(&call->mu);
                     call->writing = !call->abandoned;
                     return call->writing;
                   };
                   call->Finish(Guarded(what.c_str(), [&] { return work(may_write); }));
                 },
                 [call] { call->Finish(absl::UnavailableError("the planner is not running")); }});
  absl::MutexLock l(&call->mu);
  auto done = [&call]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(call->mu) { return call->done; };
  if (!call->mu.AwaitWithTimeout(absl::Condition(&done), deps_.manual_wait)) {
    if (!call->writing) {
      call->abandoned = true;
      return absl::UnavailableError(absl::StrCat(
          what, " of repository ", repo_id, " did not finish within ",
          absl::FormatDuration(deps_.manual_wait),
          " (fetching the repository is slow, or its earlier work is); nothing was written: "
          "try again later"));
    }
    // Writing has begun: one transaction, bounded by the database's statement_timeout.
    call->mu.Await(absl::Condition(&done));
  }
  if (call->result.ok()) return *call->result;
  // An error of its own, not a copy sharing `call`'s: the worker may destroy `call` (and the
  // Status it holds) as soon as this caller lets go, and absl releases a shared status
  // representation in library code that TSan does not see.
  return absl::Status(call->result.status().code(), std::string(call->result.status().message()));
}

absl::StatusOr<int64_t> Planner::PlanManual(int64_t repo_id,
                                            const std::optional<std::string>& branch,
                                            const std::map<std::string, std::string>& inputs) {
  return CallOnLane(repo_id, "planning a manual pipeline",
                    [this, repo_id, branch, inputs](const std::function<bool()>& may_write) {
                      return PlanManualNow(repo_id, branch, inputs, may_write);
                    });
}

absl::StatusOr<int64_t> Planner::PlanRerun(int64_t pipeline_id) {
  auto row = deps_.pipelines->Get(pipeline_id);
  if (!row.ok()) return row.status();
  return CallOnLane(row->repo_id, "planning a re-run",
                    [this, r = *std::move(row)](const std::function<bool()>& may_write) {
                      return PlanRerunNow(r, may_write);
                    });
}

absl::StatusOr<int64_t> Planner::PlanRerunNow(const store::PipelineRow& row,
                                              const std::function<bool()>& may_write) {
  auto repo = deps_.repos->Get(row.repo_id);
  if (!repo.ok()) return repo.status();
  ExprContext ctx;
  ctx.event = row.event;
  constexpr std::string_view kHeads = "refs/heads/", kTags = "refs/tags/";
  if (row.ref.rfind(kHeads, 0) == 0) ctx.branch = row.ref.substr(kHeads.size());
  if (row.ref.rfind(kTags, 0) == 0) ctx.tag = row.ref.substr(kTags.size());
  const bool pr = row.event == "pull_request";
  if (pr && row.delivery_id) {
    // A pull request's ref is refs/pull/N/head: its source branch is in the delivery.
    auto d = deps_.deliveries->Get(*row.delivery_id);
    if (!d.ok()) return d.status();
    auto ev = webhook::ParseDelivery(d->provider, d->event, d->delivery_id, d->body);
    if (!ev.ok()) return ev.status();
    ctx.branch = ev->branch;
  }
  if (!row.inputs_json.empty()) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(row.inputs_json, ec);
    if (ec || !v.is_object()) {
      return absl::InternalError(absl::StrCat("pipeline ", row.id,
                                              ": stored inputs are not a "
                                              "JSON object"));
    }
    for (const auto& [k, val] : v.as_object()) {
      ctx.inputs[std::string(k)] =
          val.is_string() ? std::string(val.as_string()) : boost::json::serialize(val);
    }
  }
  GitMirror* mirror = MirrorFor(*repo);
  absl::Status fetched =
      pr ? mirror->EnsureCommitAt(row.commit_sha, row.ref) : mirror->EnsureCommit(row.commit_sha);
  if (!fetched.ok()) return fetched;
  LoadedSpec file = LoadSpec(mirror, row.commit_sha);
  if (!file.spec) return absl::InvalidArgumentError(file.error);
  if (absl::Status plannable = Plannable(*file.spec, ctx); !plannable.ok()) return plannable;
  store::NewPipeline p;
  p.repo_id = repo->id;
  p.event = row.event;
  p.ref = row.ref;
  p.commit_sha = row.commit_sha;
  p.trusted = row.trusted;  // a fork's pull request stays untrusted when re-run
  p.pr_number = row.pr_number;
  p.inputs_json = row.inputs_json;
  p.rerun_of = row.id;
  if (!may_write()) {
    LogInfo("planner", "re-run of pipeline ", row.id, " not written: its caller gave up");
    return absl::CancelledError("the caller gave up");
  }
  return Write(p, *repo, &*file.spec, ctx);
}

absl::StatusOr<int64_t> Planner::PlanManualNow(int64_t repo_id,
                                               const std::optional<std::string>& branch_in,
                                               const std::map<std::string, std::string>& inputs,
                                               const std::function<bool()>& may_write) {
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
  if (absl::Status plannable = Plannable(*file.spec, ctx); !plannable.ok()) return plannable;
  store::NewPipeline p;
  p.repo_id = repo->id;
  p.event = "manual";
  p.ref = absl::StrCat("refs/heads/", branch);
  p.commit_sha = *sha;
  p.inputs_json = InputsJson(*resolved);
  if (!may_write()) {
    LogInfo("planner", "manual pipeline of ", repo->name, " not written: its caller gave up");
    return absl::CancelledError("the caller gave up");
  }
  return Write(p, *repo, &*file.spec, ctx);
}

absl::StatusOr<int64_t> Planner::PlanSchedule(const store::ScheduleRow& s, absl::Time next_run) {
  auto repo = deps_.repos->Get(s.repo_id);
  if (!repo.ok()) return repo.status();
  const std::string branch = s.branch.empty() ? repo->default_branch : s.branch;
  GitMirror* mirror = MirrorFor(*repo);
  auto sha = mirror->FetchBranchHead(branch);
  if (!sha.ok()) {
    if (deps_.schedules == nullptr || (sha.status().code() != absl::StatusCode::kNotFound &&
                                       sha.status().code() != absl::StatusCode::kInvalidArgument)) {
      return sha.status();  // fetch failed: the slot stays due, the next pass tries again
    }
    // No such branch: trying again would not help. The slot is used up with no pipeline.
    LogWarn("planner", "schedule ", s.id, " of ", repo->name, " skips its slot ",
            absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", s.next_run_at, absl::UTCTimeZone()), ": ",
            sha.status().message());
    auto claimed = deps_.schedules->Claim(s.id, s.next_run_at, next_run);
    if (!claimed.ok()) return claimed.status();
    return 0;
  }
  store::NewPipeline p;
  p.repo_id = repo->id;
  p.event = "schedule";
  p.ref = absl::StrCat("refs/heads/", branch);
  p.commit_sha = *sha;
  p.schedule_id = s.id;
  p.scheduled_for = s.next_run_at;
  p.claim_next_run = next_run;
  LoadedSpec file = LoadSpec(mirror, *sha);
  p.error = file.error;
  ExprContext ctx;
  ctx.branch = branch;
  ctx.event = "schedule";
  return Write(p, *repo, file.spec ? &*file.spec : nullptr, ctx);
}

std::future<absl::StatusOr<int64_t>> Planner::SubmitSchedule(const store::ScheduleRow& s,
                                                             absl::Time next_run) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<int64_t>>>();
  auto future = promise->get_future();
  lanes_.Submit(
      s.repo_id,
      {[this, promise, s, next_run] {
         promise->set_value(
             Guarded("planning a schedule slot", [&] { return PlanSchedule(s, next_run); }));
       },
       [promise] { promise->set_value(absl::UnavailableError("the planner is not running")); }});
  return future;
}

}  // namespace assay
