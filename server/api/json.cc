#include "server/api/json.h"

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/git/clone_url.h"
#include "server/api/commit_status_api.h"
#include "server/pipeline/planner.h"

namespace assay::api {

namespace json = boost::json;

json::value TimeJson(absl::Time t) {
  if (t == absl::InfinitePast()) return nullptr;
  return json::value(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone()));
}

json::object RepoJson(const store::Repo& r) {
  return {{"id", r.id},
          {"name", r.name},
          {"provider", r.provider},
          // Redacted for rows stored before credentials were split off (migration 0009).
          {"clone_url", RedactCloneUrl(r.clone_url)},
          {"has_clone_credential", !r.clone_credential_sealed.empty()},
          {"html_url", r.html_url.empty() ? json::value(nullptr) : json::value(r.html_url)},
          {"has_webhook_secret", !r.webhook_secret_sealed.empty()},
          {"default_branch", r.default_branch},
          {"cancel_superseded", r.cancel_superseded},
          {"commit_status", CommitStatusJson(r)},
          {"created_at", TimeJson(r.created_at)}};
}

json::object JobJson(const store::JobRow& j) {
  json::array needs;
  for (const auto& n : j.needs) needs.push_back(json::value(n));
  json::array labels;
  for (const auto& l : j.labels) labels.push_back(json::value(l));
  json::array gpus;
  for (uint32_t g : j.gpu_indices) gpus.push_back(json::value(g));
  boost::system::error_code ec;
  json::value runs_on = json::parse(j.requirements_json.empty() ? "{}" : j.requirements_json, ec);
  if (ec || !runs_on.is_object()) runs_on = json::object();
  runs_on.as_object()["labels"] = std::move(labels);
  return {{"id", j.id},
          {"runs_on", std::move(runs_on)},
          {"gpu_indices", std::move(gpus)},
          {"priority", j.priority},
          {"allow_failure", j.allow_failure},
          {"max_attempts", j.max_attempts},
          {"pipeline_id", j.pipeline_id},
          {"name", j.name},
          {"state", j.state},
          {"needs", std::move(needs)},
          {"attempt", j.attempt},
          {"agent", j.agent.empty() ? json::value(nullptr) : json::value(j.agent)},
          {"exit_code", j.exit_code ? json::value(*j.exit_code) : json::value(nullptr)},
          {"message", j.message.empty() ? json::value(nullptr) : json::value(j.message)},
          {"created_at", TimeJson(j.created_at)},
          {"queued_at", TimeJson(j.queued_at)},
          {"started_at", TimeJson(j.started_at)},
          {"finished_at", TimeJson(j.finished_at)}};
}

absl::StatusOr<json::value> StoredJson(const std::string& text, const std::string& what,
                                       const char* column) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) {
    return absl::DataLossError(
        absl::StrCat(what, ": stored ", column, " is not valid JSON (", ec.message(), ")"));
  }
  return v;
}

absl::StatusOr<json::object> PipelineJson(const store::PipelineRow& p) {
  json::value inputs = nullptr;
  if (!p.inputs_json.empty()) {
    auto parsed = StoredJson(p.inputs_json, absl::StrCat("pipeline ", p.id), "inputs");
    if (!parsed.ok()) return parsed.status();
    inputs = *std::move(parsed);
  }
  json::array errors;
  if (p.state == "error") {
    for (absl::string_view line : absl::StrSplit(p.message, '\n', absl::SkipEmpty())) {
      errors.push_back(json::value(std::string(line)));
    }
  }
  json::array notes;
  if (!p.trusted) {
    for (const std::string& note : UntrustedNotes()) notes.push_back(json::value(note));
  }
  json::object o{
      {"id", p.id},
      {"repo", p.repo},
      {"repo_id", p.repo_id},
      {"event", p.event},
      {"ref", p.ref},
      {"commit_sha", p.commit_sha},
      {"state", p.state},
      {"message", p.message.empty() ? json::value(nullptr) : json::value(p.message)},
      {"trusted", p.trusted},
      {"notes", std::move(notes)},
      {"pr_number", p.pr_number ? json::value(*p.pr_number) : json::value(nullptr)},
      {"errors", std::move(errors)},
      {"inputs", std::move(inputs)},
      {"scheduled_for", TimeJson(p.scheduled_for)},
      {"rerun_of", p.rerun_of ? json::value(*p.rerun_of) : json::value(nullptr)},
      {"delivery_id", p.delivery_id ? json::value(*p.delivery_id) : json::value(nullptr)},
      {"commit_author",
       p.commit_author.empty() ? json::value(nullptr) : json::value(p.commit_author)},
      {"commit_message",
       p.commit_message.empty() ? json::value(nullptr) : json::value(p.commit_message)},
      {"created_at", TimeJson(p.created_at)},
      {"finished_at", TimeJson(p.finished_at)}};
  return o;
}

absl::StatusOr<json::object> AgentJson(const store::AgentRow& ag) {
  auto gpus = StoredJson(ag.gpus_json, absl::StrCat("agent ", ag.id, " (", ag.name, ")"), "gpus");
  if (!gpus.ok()) return gpus.status();
  json::value usage = nullptr;
  if (!ag.gpu_usage_json.empty()) {
    auto u = StoredJson(ag.gpu_usage_json, absl::StrCat("agent ", ag.id, " (", ag.name, ")"),
                        "gpu_usage");
    if (!u.ok()) return u.status();
    usage = *std::move(u);
  }
  json::array labels;
  for (const auto& l : ag.labels) labels.push_back(json::value(l));
  json::array executors;
  for (const auto& e : ag.executors) executors.push_back(json::value(e));
  return json::object{
      {"id", ag.id},
      {"name", ag.name},
      {"state", ag.state},
      {"version", ag.version},
      {"labels", std::move(labels)},
      {"cpu_slots", ag.cpu_slots},
      {"memory_gb", ag.memory_gb},
      {"last_seen_at", TimeJson(ag.last_seen_at)},
      {"access", ag.access},
      {"accept_untrusted", ag.accept_untrusted},
      // Issue 9, lifecycle: the agent's own state and an admin's drain.
      {"accepting", ag.not_accepting.empty()},
      {"state_reason", ag.not_accepting},
      {"drained", ag.drain.drained},
      {"drain_reason", ag.drain.reason},
      {"drain_deadline", ag.drain.deadline ? TimeJson(*ag.drain.deadline) : json::value(nullptr)},
      {"executors", std::move(executors)},
      {"gpus", *std::move(gpus)},
      // Issue 11: each GPU's load as the heartbeats last reported it, and when.
      {"gpu_usage", std::move(usage)},
      {"gpu_usage_at", TimeJson(ag.gpu_usage_at)}};
}

}  // namespace assay::api
