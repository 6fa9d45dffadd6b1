#include "server/deploy/controller.h"

#include <algorithm>
#include <cmath>

#include <boost/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/deploy/spec.h"
#include "server/deploy/analysis.h"
#include "server/deploy/haproxy.h"
#include "server/deploy/kubernetes.h"
#include "server/deploy/target.h"
#include "server/metrics/metrics.h"

namespace assay::deploy {
namespace {

namespace json = boost::json;

int64_t Us(absl::Time t) { return absl::ToUnixMicros(t); }
absl::Time FromUs(int64_t us) { return absl::FromUnixMicros(us); }

json::object ParseObject(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

std::vector<TargetServer> ServersOf(const json::value* v) {
  std::vector<TargetServer> out;
  if (v == nullptr || !v->is_array()) return out;
  for (const json::value& s : v->as_array()) {
    if (!s.is_object()) continue;
    const json::value* n = s.as_object().if_contains("name");
    const json::value* a = s.as_object().if_contains("address");
    if (n && a && n->is_string() && a->is_string()) {
      out.push_back({std::string(n->as_string()), std::string(a->as_string())});
    }
  }
  return out;
}

json::array ServersJson(const std::vector<TargetServer>& servers) {
  json::array out;
  for (const TargetServer& s : servers) out.push_back({{"name", s.name}, {"address", s.address}});
  return out;
}

const char* PhaseLabel(Phase p) {
  switch (p) {
    case Phase::kSuccessful: return "successful";
    case Phase::kFailed: return "failed";
    case Phase::kInconclusive: return "inconclusive";
    case Phase::kError: return "error";
  }
  return "error";
}

// Where an analysis run stands after this tick's measurements.
enum class Verdict { kRunning, kSuccessful, kFailed, kInconclusive, kError };

struct RunResult {
  Verdict verdict = Verdict::kRunning;
  std::string message;
  std::optional<absl::Time> next_due;
};

// Takes the measurements of `spec` due at `now` into `run` ({"started_us", "metrics": {NAME:
// {"taken", "successful", "failed", "inconclusive", "errors_in_row", "next_us"}}}), each one an
// event, and judges the run as Argo Rollouts does.
RunResult Analyze(const AnalysisSpec& spec, json::object& run, absl::Time now,
                  const Placeholders& p, const Providers& providers, const std::string& what,
                  int step, std::vector<store::DeploymentEvent>* events) {
  RunResult out;
  if (!run.contains("started_us")) run["started_us"] = Us(now);
  const absl::Time started = FromUs(run["started_us"].to_number<int64_t>());
  json::object& metrics = run["metrics"].is_object()
                              ? run["metrics"].as_object()
                              : (run["metrics"] = json::object()).as_object();
  bool all_done = true;
  for (const MetricSpec& m : spec.metrics) {
    json::value& slot = metrics[m.name];
    if (!slot.is_object()) {
      slot = json::object{{"taken", 0},         {"successful", 0},
                          {"failed", 0},        {"inconclusive", 0},
                          {"errors_in_row", 0}, {"next_us", Us(started + m.initial_delay)}};
    }
    json::object& st = slot.as_object();
    auto num = [&](const char* k) { return st[k].to_number<int64_t>(); };
    if (m.count > 0 && num("taken") >= m.count) continue;
    all_done = false;
    const absl::Time due = FromUs(num("next_us"));
    if (now < due) {
      if (!out.next_due || due < *out.next_due) out.next_due = due;
      continue;
    }
    Measurement r = Measure(m, p, providers);
    st["next_us"] = Us(now + m.interval);
    // An error is not a measurement taken: `count` needs that many answers, and errors are
    // tried again every interval until consecutive_error_limit.
    if (r.phase == Phase::kError) {
      st["errors_in_row"] = num("errors_in_row") + 1;
    } else {
      st["taken"] = num("taken") + 1;
      st["errors_in_row"] = 0;
      const char* key = r.phase == Phase::kSuccessful ? "successful"
                        : r.phase == Phase::kFailed   ? "failed"
                                                      : "inconclusive";
      st[key] = num(key) + 1;
    }
    json::array values;
    for (size_t i = 0; i < r.values.size() && i < 10; ++i) {
      if (std::isfinite(r.values[i])) {
        values.push_back(r.values[i]);
      } else {
        values.push_back(json::string(std::isnan(r.values[i]) ? "NaN"
                                      : r.values[i] > 0       ? "+Inf"
                                                              : "-Inf"));
      }
    }
    json::object data;
    data["analysis"] = what;
    data["metric"] = m.name;
    data["phase"] = PhaseLabel(r.phase);
    data["values"] = std::move(values);
    data["message"] = r.message;
    if (!r.detail.empty()) data["detail"] = r.detail;
    store::DeploymentEvent e;
    e.at = now;
    e.step = step;
    e.kind = "measurement";
    e.message = absl::StrCat(what, " metric '", m.name, "' ", PhaseLabel(r.phase), ": ", r.message);
    e.data_json = json::serialize(data);
    events->push_back(std::move(e));
    const std::string where = absl::StrCat(what, ", metric '", m.name, "': ");
    // Even a verdict leaves the next measurement due: the watch goes on measuring after an
    // alert.
    if (!out.next_due || now + m.interval < *out.next_due) out.next_due = now + m.interval;
    if (num("failed") > m.failure_limit) {
      out.verdict = Verdict::kFailed;
      out.message = where + r.message;
      return out;
    }
    if (num("errors_in_row") > m.consecutive_error_limit) {
      out.verdict = Verdict::kError;
      out.message = where + r.message;
      return out;
    }
    if (num("inconclusive") > m.inconclusive_limit) {
      out.verdict = Verdict::kInconclusive;
      out.message = where + r.message;
      return out;
    }
    if (m.count == 0 || num("taken") < m.count) {
      const absl::Time next = now + m.interval;
      if (!out.next_due || next < *out.next_due) out.next_due = next;
    }
  }
  if (all_done) out.verdict = Verdict::kSuccessful;
  // A metric just finished its last measurement: check whether all are done now.
  if (!all_done) {
    bool done = true;
    for (const MetricSpec& m : spec.metrics) {
      const json::object& st = metrics[m.name].as_object();
      if (m.count == 0 || st.at("taken").to_number<int64_t>() < m.count) done = false;
    }
    if (done) out.verdict = Verdict::kSuccessful;
  }
  return out;
}

// The analysis run stored under `key` of a deployment's runs, made empty when absent.
json::object& RunOf(json::object& runs, const char* key) {
  json::value& v = runs[key];
  if (!v.is_object()) v = json::object();
  return v.as_object();
}

// The environment's target as saved (checked when it was).
absl::StatusOr<std::unique_ptr<Target>> MakeTarget(const std::string& target_json,
                                                   const AddressPolicy* policy,
                                                   absl::Duration timeout, const Hooks* hooks,
                                                   const Placeholders* context,
                                                   const KubernetesApi* kube, Workload* workload) {
  json::object t = ParseObject(target_json);
  const json::value* kind = t.if_contains("kind");
  const std::string k = kind != nullptr && kind->is_string() ? std::string(kind->as_string()) : "";
  if (k == "haproxy") {
    const json::value* api = t.if_contains("runtime_api");
    const json::value* backend = t.if_contains("backend");
    if (api == nullptr || !api->is_string() || backend == nullptr || !backend->is_string()) {
      return absl::FailedPreconditionError(
          "the environment's haproxy target lacks runtime_api or backend; save it again");
    }
    return std::make_unique<HaproxyBackendTarget>(
        std::string(api->as_string()), std::string(backend->as_string()), policy, timeout);
  }
  if (k == "command") {
    const json::value* c = t.if_contains("command");
    auto command = c != nullptr ? ParseHookCommand(*c, "target.command")
                                : absl::InvalidArgumentError("target.command is missing");
    if (!command.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the environment's command target is not valid (",
                       command.status().message(), "); save it again"));
    }
    absl::Duration limit = absl::Seconds(30);
    if (const json::value* tv = t.if_contains("timeout")) {
      auto d = ParseDurationField(*tv, "target.timeout");
      if (d.ok()) limit = std::min(*d, kMaxHookTimeout);
    }
    return std::make_unique<CommandTarget>(hooks, *std::move(command), context, limit);
  }
  if (k == "kubernetes") {
    auto spec = ParseKubernetesTarget(t);
    if (!spec.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the environment's kubernetes target is not valid (",
                       spec.status().message(), "); save it again"));
    }
    if (workload->image.empty()) workload->image = spec->image;
    return std::make_unique<KubernetesTarget>(*std::move(spec), kube, workload);
  }
  return absl::FailedPreconditionError("the environment's target kind is not supported");
}

}  // namespace

absl::StatusOr<bool> Controller::TickOnce() {
  const absl::Time now = clock_->Now();
  auto claimed = store_->Claim(options_.owner, now, options_.lease);
  if (!claimed.ok()) return claimed.status();
  if (!*claimed) return false;
  const store::Deployment& d = **claimed;
  store::TickUpdate u;
  u.state = d.state;
  u.step = d.step;
  u.weight = d.weight;
  u.step_started_at = d.step_started_at;
  u.runs_json = d.runs_json;
  u.watch_until = d.watch_until;
  u.message = d.message;
  absl::Status s = Tick(d, &u);
  if (!s.ok()) {
    // A tick that could not finish (the environment gone, the database): try again later.
    LogWarn("deploy", "deployment ", d.id, ": ", s.message());
    if (absl::Status r = store_->Release(d.id, options_.owner, now + options_.retry); !r.ok()) {
      return r;
    }
    return true;
  }
  auto written = store_->Commit(d.id, options_.owner, d.state, u, clock_->Now());
  if (!written.ok()) {
    LogWarn("deploy", "deployment ", d.id,
            ": writing the tick failed: ", written.status().message());
    (void)store_->Release(d.id, options_.owner, clock_->Now() + options_.retry);
    return true;
  }
  if (!*written) {
    LogWarn("deploy", "deployment ", d.id, ": changed while its tick ran (lease lost, or ended by ",
            "a newer deployment); its tick is dropped");
    (void)store_->Release(d.id, options_.owner, clock_->Now());
  }
  if (*written && metrics_ != nullptr && u.finished) {
    const char* outcome = u.state == "succeeded" ? "promoted" : u.state.c_str();
    metrics_->DeploymentEnded(d.environment, outcome);
  }
  return true;
}

absl::Status Controller::Tick(const store::Deployment& d, store::TickUpdate* u) {
  const absl::Time now = clock_->Now();
  auto env = store_->GetEnvironment(d.repo_id, d.environment);
  if (!env.ok()) return env.status();
  auto event = [&](const std::string& kind, const std::string& message) {
    store::DeploymentEvent e;
    e.deployment_id = d.id;
    e.at = now;
    e.step = u->step;
    e.kind = kind;
    e.message = message;
    u->events.push_back(std::move(e));
  };

  // What the deployment asked for, as validated when it was made.
  json::value strategy_value = json::parse(d.strategy_json);
  auto strategy = ParseStrategy(strategy_value, "strategy");
  if (!strategy.ok()) {
    u->state = "failed";
    u->finished = true;
    u->next_at.reset();
    u->message = absl::StrCat("the strategy no longer parses: ", strategy.status().message());
    event("failed", u->message);
    return absl::OkStatus();
  }
  json::object env_analysis = ParseObject(env->analysis_json);
  AnalysisSpec watch_spec;
  absl::Duration watch_window = absl::ZeroDuration();
  if (env_analysis.contains("metrics")) {
    json::object metrics_only{{"metrics", env_analysis["metrics"]}};
    auto a = ParseAnalysis(metrics_only, "environment.analysis");
    if (a.ok()) watch_spec = *std::move(a);
  }
  if (const json::value* w = env_analysis.if_contains("watch")) {
    auto dd = ParseDurationField(*w, "environment.analysis.watch", absl::ZeroDuration());
    if (dd.ok()) watch_window = *dd;
  }
  AnalysisSpec background = strategy->background;
  if (background.empty() && strategy->kind != StrategyKind::kBlueGreen) background = watch_spec;

  json::object runs = ParseObject(u->runs_json);
  json::object previous = d.previous_json ? ParseObject(*d.previous_json) : json::object();
  const json::value servers_value = json::parse(d.servers_json);
  std::vector<TargetServer> fresh = ServersOf(&servers_value);
  std::vector<TargetServer> old = ServersOf(previous.if_contains("servers"));

  Placeholders p;
  p.version = d.version ? std::to_string(*d.version) : d.image;
  p.environment = d.environment;
  p.deployment = std::to_string(d.id);
  if (const json::value* pv = previous.if_contains("version"); pv && pv->is_int64()) {
    p.previous_version = std::to_string(pv->as_int64());
  }
  // Drift's reference: the eval examples of the version being deployed.
  ReferenceFn reference;
  if (d.version) {
    reference = [this, model = d.model, version = *d.version](
                    const std::string& feature) -> absl::StatusOr<std::vector<double>> {
      auto values = store_->EvalFeature(model, version, feature);
      if (values.ok() && values->empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "version ", version, " of '", model, "' has no eval examples to take as reference"));
      }
      return values;
    };
  }
  const Providers providers{policy_, options_.provider_timeout, reference, &hooks_};
  Workload workload{d.image, d.model, std::to_string(d.id), d.version};
  auto made = MakeTarget(env->target_json, policy_, options_.target_timeout, &hooks_, &p,
                         &options_.kubernetes, &workload);
  if (!made.ok()) return made.status();
  const Target& target = **made;
  const std::string step_name = absl::StrCat("step ", u->step + 1, " of ", strategy->steps.size());

  auto finish_runs = [&] { u->runs_json = json::serialize(runs); };
  auto next = [&](absl::Time at) {
    if (!u->next_at || at < *u->next_at) u->next_at = at;
  };

  // Traffic back to the stable servers, the new ones out, the alias back: one commit.
  auto rollback = [&](const std::string& end_state, const std::string& why,
                      const std::string& reason_label) -> absl::Status {
    if (absl::Status s = target.Apply(0, fresh, old, false); !s.ok()) {
      // Traffic could not be moved back: say so and try again soon; nothing is recorded as
      // rolled back until it is.
      u->message = absl::StrCat("rolling back (", why, ") failed, trying again: ", s.message());
      event("rollback_failed", u->message);
      // A person's abort stays asked for, so that it is tried again even while paused.
      u->clear_request = false;
      next(now + options_.retry);
      finish_runs();
      return absl::OkStatus();
    }
    auto retired = target.Retire(fresh);
    if (!retired.ok()) event("retire_failed", std::string(retired.status().message()));
    u->state = end_state;
    u->weight = 0;
    u->finished = true;
    u->next_at.reset();
    u->clear_request = true;
    u->message = why;
    u->alias = store::TickUpdate::Alias::kRestore;
    // A promoted deployment handed the environment to the previous one's servers again.
    if (d.state == "watching" && d.previous_json) u->live_json = *d.previous_json;
    event(end_state, absl::StrCat(end_state == "aborted" ? "aborted" : "rolled back", ": ", why,
                                  "; traffic is back on ",
                                  old.empty() ? std::string("no servers")
                                              : absl::StrCat(old.size(), " stable server(s)")));
    u->audit_action = absl::StrCat("rollback deployment ", d.id, " of ", d.environment);
    u->audit_detail = why;
    if (metrics_ != nullptr) metrics_->DeploymentRollback(d.environment, reason_label);
    finish_runs();
    return absl::OkStatus();
  };
  auto pause = [&](const std::string& why) {
    u->state = "paused";
    u->next_at.reset();
    u->message = why;
    event("paused", why);
    finish_runs();
  };
  auto count_run = [&](const char* phase) {
    if (metrics_ != nullptr) metrics_->AnalysisRun(d.environment, phase);
  };

  // 1. A person's request.
  if (d.requested_json) {
    json::object r = ParseObject(*d.requested_json);
    const std::string action = r["action"].is_string() ? std::string(r["action"].as_string()) : "";
    const std::string by = r["by"].is_string() ? std::string(r["by"].as_string()) : "?";
    const std::string reason = r["reason"].is_string() ? std::string(r["reason"].as_string()) : "";
    const std::string said = absl::StrCat(by, reason.empty() ? "" : absl::StrCat(": ", reason));
    u->clear_request = true;
    if (action == "abort") {
      return rollback("aborted", absl::StrCat("aborted by ", said), "manual");
    }
    if (action == "pause" && d.state == "progressing") {
      pause(absl::StrCat("paused by ", said));
      return absl::OkStatus();
    }
    if ((action == "resume" && d.state == "paused") ||
        (action == "promote" && (d.state == "paused" || d.state == "progressing"))) {
      u->state = "progressing";
      const bool full = r["full"].is_bool() && r["full"].as_bool();
      const bool skip_step =
          action == "promote" || (u->step < static_cast<int>(strategy->steps.size()) &&
                                  strategy->steps[u->step].kind == Step::Kind::kPause &&
                                  !strategy->steps[u->step].duration);
      if (full) {
        u->step = static_cast<int>(strategy->steps.size());
      } else if (skip_step && u->step < static_cast<int>(strategy->steps.size()) &&
                 strategy->steps[u->step].kind != Step::Kind::kWeight) {
        ++u->step;
      }
      runs.erase("step");
      runs.erase("background");  // a resumed analysis starts over
      u->step_started_at = now;
      u->message = "";
      event(action == "promote" ? "promoted_by_hand" : "resumed",
            absl::StrCat(action, full ? " (full)" : "", " by ", said));
      next(now);
      finish_runs();
      return absl::OkStatus();
    }
    event("request_ignored",
          absl::StrCat(action, " by ", by, " does not apply to a deployment that is ", d.state));
    next(now);
    finish_runs();
    if (d.state != "progressing" && d.state != "watching") u->next_at.reset();
    return absl::OkStatus();
  }

  // 2. Starting: what serves the environment now is where a rollback goes back to.
  if (d.state == "progressing" && !d.started_at) {
    auto present = target.Present();
    if (!present.ok()) {
      pause(absl::StrCat("starting: ", present.status().message()));
      return absl::OkStatus();
    }
    json::object prev;
    std::vector<TargetServer> stale;
    if (env->live_json) {
      prev = ParseObject(*env->live_json);
      old = ServersOf(prev.if_contains("servers"));
    } else {
      old.clear();
      for (const HaproxyServer& s : *present) {
        bool is_fresh = std::any_of(fresh.begin(), fresh.end(),
                                    [&](const TargetServer& f) { return f.name == s.name; });
        if (is_fresh) continue;
        // Servers another deployment added and left behind are not the stable version.
        if (absl::StartsWith(s.name, "assay-")) {
          stale.push_back({s.name, s.address});
        } else if (!s.maint()) {
          old.push_back({s.name, s.address});
        }
      }
      prev["servers"] = ServersJson(old);
    }
    for (const HaproxyServer& s : *present) {
      const bool known = std::any_of(fresh.begin(), fresh.end(),
                                     [&](const TargetServer& f) { return f.name == s.name; }) ||
                         std::any_of(old.begin(), old.end(),
                                     [&](const TargetServer& f) { return f.name == s.name; });
      if (!known && absl::StartsWith(s.name, "assay-") &&
          std::none_of(stale.begin(), stale.end(),
                       [&](const TargetServer& f) { return f.name == s.name; })) {
        stale.push_back({s.name, s.address});
      }
    }
    if (!stale.empty()) {
      if (absl::Status st = target.Apply(0, {}, stale, false); !st.ok()) {
        pause(absl::StrCat("starting: ", st.message()));
        return absl::OkStatus();
      }
      (void)target.Retire(stale);
      event("cleanup", absl::StrCat("took ", stale.size(),
                                    " server(s) left by earlier deployments out of the backend"));
    }
    u->previous_json = json::serialize(prev);
    previous = prev;
    if (const json::value* pv = previous.if_contains("version"); pv && pv->is_int64()) {
      p.previous_version = std::to_string(pv->as_int64());
    }
    u->started = true;
    u->step_started_at = now;
    event("started", absl::StrCat("started: ", fresh.size(), " new server(s); ", old.size(),
                                  " stable server(s) in ", target.Describe()));
  }

  // 3. After promotion: the old servers' scale-down, and the watch.
  if (d.state == "watching") {
    if (const json::value* at = runs.if_contains("retire_at_us")) {
      if (now >= FromUs(at->to_number<int64_t>())) {
        auto gone = target.Retire(old);
        if (!gone.ok()) {
          event("retire_failed", std::string(gone.status().message()));
          next(now + options_.retry);
        } else if (*gone) {
          runs.erase("retire_at_us");
          event("scaled_down", absl::StrCat(old.size(), " old server(s) out of the backend"));
        } else {
          next(now + absl::Seconds(1));
        }
      } else {
        next(FromUs(at->to_number<int64_t>()));
      }
    }
    const bool watching = !watch_spec.empty() && u->watch_until && now < *u->watch_until;
    if (watching) {
      json::object& run = RunOf(runs, "watch");
      RunResult r = Analyze(watch_spec, run, now, p, providers, "watch", u->step, &u->events);
      if (r.verdict == Verdict::kFailed) {
        count_run("failed");
        return rollback("rolled_back", absl::StrCat("watch breached: ", r.message), "watch");
      }
      if ((r.verdict == Verdict::kInconclusive || r.verdict == Verdict::kError) &&
          !run.contains("alerted")) {
        run["alerted"] = true;
        count_run(r.verdict == Verdict::kError ? "error" : "inconclusive");
        event("watch_alert",
              absl::StrCat("watch ", r.verdict == Verdict::kError ? "error" : "inconclusive", ": ",
                           r.message));
      }
      if (r.next_due) next(*r.next_due);
      next(*u->watch_until);
    }
    if (!runs.contains("retire_at_us") && !watching) {
      u->state = "succeeded";
      u->finished = true;
      u->next_at.reset();
      u->message = "promoted";
      if (!watch_spec.empty()) count_run("successful");
      event("succeeded", watch_spec.empty() ? "done" : "the watch ended without a breach");
    }
    finish_runs();
    return absl::OkStatus();
  }

  if (d.state != "progressing") {
    finish_runs();
    return absl::OkStatus();
  }

  // 4. The background analysis, once the new version takes traffic.
  if (!background.empty() && u->weight > 0) {
    json::object& run = RunOf(runs, "background");
    RunResult r =
        Analyze(background, run, now, p, providers, "background analysis", u->step, &u->events);
    if (r.verdict == Verdict::kFailed) {
      count_run("failed");
      return rollback("rolled_back", absl::StrCat(step_name, ": ", r.message), "analysis");
    }
    if (r.verdict == Verdict::kInconclusive || r.verdict == Verdict::kError) {
      count_run(r.verdict == Verdict::kError ? "error" : "inconclusive");
      pause(absl::StrCat(step_name, ": ", r.verdict == Verdict::kError ? "error" : "inconclusive",
                         " in ", r.message, "; traffic stays at ", u->weight, "%"));
      return absl::OkStatus();
    }
    if (r.next_due) next(*r.next_due);
  }

  // 5. The strategy's steps, as many as can be done now.
  for (int guard = 0; guard < kMaxSteps + 2; ++guard) {
    const std::string name = absl::StrCat("step ", u->step + 1, " of ", strategy->steps.size());
    if (u->step >= static_cast<int>(strategy->steps.size())) {
      // The end: all traffic to the new version, then promotion.
      if (u->weight < 100) {
        if (absl::Status s =
                target.Apply(100, fresh, old, strategy->kind == StrategyKind::kRolling);
            !s.ok()) {
          pause(absl::StrCat("promotion: ", s.message(), "; traffic stays at ", u->weight, "%"));
          return absl::OkStatus();
        }
        u->weight = 100;
        event("weight", "100% of traffic to the new version");
      }
      json::object live{{"deployment_id", d.id}, {"servers", ServersJson(fresh)}};
      if (d.version) {
        live["model"] = d.model;
        live["version"] = *d.version;
      } else {
        live["image"] = d.image;
      }
      u->live_json = json::serialize(live);
      u->alias = store::TickUpdate::Alias::kMove;
      u->state = "watching";
      u->message = "promoted";
      runs.erase("background");
      runs["retire_at_us"] = Us(now + strategy->scale_down_delay);
      next(now + strategy->scale_down_delay);
      if (!watch_spec.empty() && watch_window > absl::ZeroDuration()) {
        u->watch_until = now + watch_window;
        next(now);
      }
      if (!background.empty()) count_run("successful");
      event("promoted",
            absl::StrCat("promoted: the environment serves ",
                         d.version ? absl::StrCat(d.model, " version ", *d.version) : d.image,
                         u->watch_until
                             ? absl::StrCat("; watched until ", absl::FormatTime(*u->watch_until))
                             : std::string()));
      finish_runs();
      return absl::OkStatus();
    }
    const Step& step = strategy->steps[u->step];
    if (!u->step_started_at) u->step_started_at = now;
    if (step.kind == Step::Kind::kWeight) {
      if (absl::Status s =
              target.Apply(step.weight, fresh, old, strategy->kind == StrategyKind::kRolling);
          !s.ok()) {
        pause(absl::StrCat(name, " (weight ", step.weight, "): ", s.message(),
                           "; traffic stays at ", u->weight, "%"));
        return absl::OkStatus();
      }
      u->weight = step.weight;
      event("weight", absl::StrCat(name, ": ", step.weight, "% of traffic to the new version"));
      // The background analysis starts with the first traffic: at the next tick, not after
      // whatever this tick goes on to wait for.
      if (!background.empty() && u->weight > 0 && !runs.contains("background")) next(now);
    } else if (step.kind == Step::Kind::kPause) {
      if (!step.duration) {
        pause(absl::StrCat(name, ": paused until promoted or resumed"));
        return absl::OkStatus();
      }
      const absl::Time end = *u->step_started_at + *step.duration;
      if (now < end) {
        next(end);
        break;
      }
      event("pause_ended", absl::StrCat(name, ": paused ", absl::FormatDuration(*step.duration)));
    } else {
      json::object& run = RunOf(runs, "step");
      RunResult r = Analyze(step.analysis, run, now, p, providers, absl::StrCat(name, " analysis"),
                            u->step, &u->events);
      if (r.verdict == Verdict::kFailed) {
        count_run("failed");
        return rollback("rolled_back", r.message, "analysis");
      }
      if (r.verdict == Verdict::kInconclusive || r.verdict == Verdict::kError) {
        count_run(r.verdict == Verdict::kError ? "error" : "inconclusive");
        pause(absl::StrCat(r.verdict == Verdict::kError ? "error" : "inconclusive", " in ",
                           r.message, "; traffic stays at ", u->weight, "%"));
        return absl::OkStatus();
      }
      if (r.verdict == Verdict::kRunning) {
        if (r.next_due) next(*r.next_due);
        break;
      }
      count_run("successful");
      event("analysis_passed", absl::StrCat(name, ": analysis passed"));
      runs.erase("step");
    }
    ++u->step;
    u->step_started_at = now;
  }
  // Never sleep past a minute: a request or an expired lease is noticed anyway, this only
  // bounds how stale a wrong next_at could leave it.
  next(now + absl::Minutes(1));
  finish_runs();
  return absl::OkStatus();
}

void Controller::Start() {
  std::lock_guard<std::mutex> l(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] {
    for (;;) {
      bool busy = false;
      auto ticked = TickOnce();
      if (!ticked.ok()) {
        LogWarn("deploy", "deployment controller: ", ticked.status().message());
      } else {
        busy = *ticked;
      }
      std::unique_lock<std::mutex> l(mu_);
      if (stop_) return;
      if (busy) continue;  // more may be due
      cv_.wait_for(l, absl::ToChronoMilliseconds(options_.poll), [&] { return stop_ || woken_; });
      woken_ = false;
      if (stop_) return;
    }
  });
}

void Controller::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Controller::Wake() {
  {
    std::lock_guard<std::mutex> l(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

}  // namespace assay::deploy
