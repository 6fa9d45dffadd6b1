// The RPCs of a `deploy:` step (issue 12, docs/deployments.md "From a pipeline"): the agent
// asks the server to make the step's deployment, then follows it until it ends, writing its
// events into the job's log. The controller, not the agent, carries the deployment out: a
// lost agent loses nothing but the log lines.

#include <boost/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/pipeline/spec.h"
#include "common/registry/model_input.h"
#include "server/agents/agent_service.h"
#include "server/agents/attempt_rpc.h"

namespace assay {
using attempt_rpc::ToGrpc;

namespace {

namespace json = boost::json;

void Fill(const store::Deployment& d, const std::vector<store::DeploymentEvent>& events,
          v1::DeploymentProgress* out) {
  out->set_deployment_id(d.id);
  out->set_state(d.state);
  out->set_message(d.message);
  out->set_weight(d.weight);
  for (const store::DeploymentEvent& e : events) {
    v1::DeploymentEventLine* line = out->add_events();
    line->set_id(e.id);
    line->set_kind(e.kind);
    line->set_message(e.message);
  }
}

}  // namespace

grpc::ServerUnaryReactor* AgentServiceImpl::StartDeployment(grpc::CallbackServerContext* ctx,
                                                            const v1::DeploymentRequest* request,
                                                            v1::DeploymentProgress* response) {
  return attempt_rpc::Unary(
      this, ctx, request, deps_.deployments != nullptr && deps_.models != nullptr,
      "deployments are not enabled on this server",
      [this, request, response](const store::LiveAttempt& a) {
        auto existing = deps_.deployments->ForJob(a.job_id, a.attempt);
        if (!existing.ok()) return ToGrpc(existing.status());
        if (*existing) {
          Fill(**existing, {}, response);
          return grpc::Status::OK;
        }
        auto step = deps_.deployments->DeployStepOf(a.job_id, request->step_index());
        if (!step.ok()) return ToGrpc(step.status());
        if (!step->trusted) {
          return ToGrpc(absl::PermissionDeniedError(
              "a fork's pull request (an untrusted pipeline) cannot deploy"));
        }
        auto spec = DeployStepSpecFromJson(step->spec_json);
        if (!spec.ok()) return ToGrpc(spec.status());
        store::NewDeployment n;
        n.repo_id = step->repo_id;
        n.environment = spec->environment;
        n.ref = step->ref.rfind("refs/heads/", 0) == 0 ? step->ref.substr(11) : step->ref;
        n.strategy_json = spec->strategy_json;
        n.supersede = spec->supersede;
        n.created_by = absl::StrCat("pipeline ", step->pipeline_id, " job ", a.job_id);
        n.pipeline_id = step->pipeline_id;
        n.job_id = a.job_id;
        n.job_attempt = a.attempt;
        n.now = absl::Now();
        if (!spec->model.empty()) {
          const size_t at = spec->model.find('@');
          auto ref = registry::ParseVersionRef(spec->model.substr(at + 1));
          if (!ref.ok()) return ToGrpc(ref.status());
          auto version = deps_.models->GetVersion(spec->model.substr(0, at), *ref);
          if (!version.ok()) return ToGrpc(version.status());
          n.model = spec->model.substr(0, at);
          n.version = version->version;
        } else {
          n.image = spec->image;
        }
        // A deploy: step brings the servers it started; a kubernetes environment starts its own.
        auto kind_of = [](const std::string& target) {
          boost::system::error_code ec;
          json::value t = json::parse(target, ec);
          const json::value* k = !ec && t.is_object() ? t.as_object().if_contains("kind") : nullptr;
          return k != nullptr && k->is_string() ? std::string(k->as_string()) : std::string();
        };
        if (auto env = deps_.deployments->GetEnvironment(n.repo_id, n.environment);
            env.ok() && kind_of(env->target_json) == "kubernetes") {
          return ToGrpc(absl::FailedPreconditionError(absl::StrCat(
              "environment '", n.environment,
              "' is on kubernetes, where Assay runs the new version itself: deploy to it with "
              "`assay deploy` or POST /api/v1/deployments (no endpoints), not a deploy: step")));
        }
        // The endpoints are named after the job and attempt: unique, and Assay's to remove.
        json::array servers;
        for (size_t i = 0; i < spec->endpoints.size(); ++i) {
          servers.push_back(
              json::object{{"name", absl::StrCat("assay-j", a.job_id, "-", a.attempt, "-", i)},
                           {"address", spec->endpoints[i]}});
        }
        n.servers_json = json::serialize(servers);
        auto created = deps_.deployments->Create(n);
        if (!created.ok()) return ToGrpc(created.status());
        LogInfo("deploy", "job ", a.job_id, " made deployment ", created->id, " to ",
                spec->environment);
        if (deps_.wake_deployments) deps_.wake_deployments();
        Fill(*created, {}, response);
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* AgentServiceImpl::FollowDeployment(grpc::CallbackServerContext* ctx,
                                                             const v1::DeploymentRequest* request,
                                                             v1::DeploymentProgress* response) {
  return attempt_rpc::Unary(
      this, ctx, request, deps_.deployments != nullptr,
      "deployments are not enabled on this server",
      [this, request, response](const store::LiveAttempt& a) {
        auto d = deps_.deployments->ForJob(a.job_id, a.attempt);
        if (!d.ok()) return ToGrpc(d.status());
        if (!*d) {
          return ToGrpc(absl::NotFoundError(
              absl::StrCat("job ", a.job_id, " attempt ", a.attempt, " made no deployment")));
        }
        if (request->abort() && store::DeploymentActive((*d)->state)) {
          std::string reason = request->reason().substr(0, 1000);
          auto asked = deps_.deployments->Request(
              (*d)->id, "abort", false, absl::StrCat("job ", a.job_id), reason, absl::Now());
          if (!asked.ok() && asked.status().code() != absl::StatusCode::kFailedPrecondition) {
            return ToGrpc(asked.status());
          }
          if (deps_.wake_deployments) deps_.wake_deployments();
        }
        auto events =
            deps_.deployments->Events((*d)->id, std::max<int64_t>(0, request->after_event()), 200);
        if (!events.ok()) return ToGrpc(events.status());
        Fill(**d, *events, response);
        return grpc::Status::OK;
      });
}

}  // namespace assay
