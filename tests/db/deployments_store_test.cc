// The deployment store (issue 12) against a real PostgreSQL: branch protection, one deployment
// per environment and superseding, approvals, requests by state, the controller's lease and the
// fencing of its commits, the alias moved at promotion and put back at rollback only when it
// still points at the deployment's version, and drift's reference from eval examples.
#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "server/store/deployments.h"
#include "server/store/models.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

struct DeployRig {
  DbFixture f;
  store::DeploymentStore store{&f.db};
  store::ModelStore models{&f.db};

  DeployRig() {
    f.Exec(
        "INSERT INTO models (name, last_version, created_at, updated_at) VALUES ('bot', 3, now(), "
        "now())");
    f.Exec(
        "INSERT INTO model_versions (model_id, version, source_path, files, bytes, "
        "request_sha256, created_at) SELECT m.id, v, 'model/', 0, 0, repeat('a', 64), now() FROM "
        "models m, generate_series(1, 3) v");
  }

  store::Environment Env(const std::string& name, std::vector<std::string> branches = {},
                         int approvals = 0) {
    store::EnvironmentPut e;
    e.repo_id = f.repo_id;
    e.name = name;
    e.branches = std::move(branches);
    e.required_approvals = approvals;
    e.target_json = R"({"kind":"haproxy","runtime_api":"127.0.0.1:9999","backend":"llm"})";
    e.now = f.clock.Now();
    auto put = store.PutEnvironment(e);
    REQUIRE(put.ok());
    return *put;
  }

  absl::StatusOr<store::Deployment> Deploy(const std::string& env, int version,
                                           const std::string& ref = "main", bool supersede = false,
                                           const std::string& by = "alice") {
    store::NewDeployment d;
    d.repo_id = f.repo_id;
    d.environment = env;
    d.model = "bot";
    d.version = version;
    d.servers_json = R"([{"name":"v","address":"127.0.0.1:8101"}])";
    d.ref = ref;
    d.strategy_json = R"({"canary":{"steps":[{"weight":10}]}})";
    d.created_by = by;
    d.supersede = supersede;
    d.now = f.clock.Now();
    return store.Create(d);
  }

  std::string State(int64_t id) {
    return f.One("SELECT state FROM deployments WHERE id = " + std::to_string(id));
  }
};

TEST_CASE("deployments store: branches, one per environment, superseding", "[db]") {
  DeployRig r;
  r.Env("production", {"main", "release/*"});
  auto wrong = r.Deploy("production", 2, "dev");
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(wrong.status().message() ==
        "environment 'production' takes deployments from branches main, release/* only; this one "
        "is from 'dev'");
  auto missing = r.Deploy("staging", 2);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message() ==
        absl::StrCat("environment 'staging' of repository ", r.f.repo_id, " not found"));

  auto first = r.Deploy("production", 2, "release/1.2");
  REQUIRE(first.ok());
  CHECK(first->state == "progressing");
  auto second = r.Deploy("production", 3);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(second.status().message() ==
        absl::StrCat("environment 'production' has deployment ", first->id,
                     " (progressing); pause or abort it first: one deployment per environment at "
                     "a time"));
  // A progressing one is never superseded, even when asked.
  CHECK_FALSE(r.Deploy("production", 3, "main", /*supersede=*/true).ok());
  // Paused: refused unless superseded; then it ends, naming its successor.
  r.f.Exec("UPDATE deployments SET state = 'paused' WHERE id = " + std::to_string(first->id));
  auto refused = r.Deploy("production", 3);
  REQUIRE_FALSE(refused.ok());
  CHECK(absl::StrContains(refused.status().message(), "(paused); ask for \"supersede\": true"));
  auto third = r.Deploy("production", 3, "main", /*supersede=*/true);
  REQUIRE(third.ok());
  CHECK(r.State(first->id) == "superseded");
  CHECK(r.f.One("SELECT superseded_by FROM deployments WHERE id = " + std::to_string(first->id)) ==
        std::to_string(third->id));
  // A watching deployment's watch is ended by a newer one.
  r.f.Exec("UPDATE deployments SET state = 'watching' WHERE id = " + std::to_string(third->id));
  auto fourth = r.Deploy("production", 2);
  REQUIRE(fourth.ok());
  CHECK(r.State(third->id) == "succeeded");
  CHECK(r.f.Count("SELECT count(*) FROM deployment_events WHERE deployment_id = " +
                  std::to_string(third->id) + " AND kind = 'watch_ended'") == 1);
  // Deleting an environment is refused while a deployment holds it.
  absl::Status del = r.store.DeleteEnvironment(r.f.repo_id, "production");
  CHECK(del.code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("deployments store: approvals and requests", "[db]") {
  DeployRig r;
  r.Env("production", {}, /*approvals=*/2);
  auto d = r.Deploy("production", 2);
  REQUIRE(d.ok());
  CHECK(d->state == "pending_approval");
  CHECK_FALSE(d->next_at.has_value());
  // The creator cannot approve; a second approval by one approver counts once.
  auto self = r.store.Approve(d->id, "alice", r.f.clock.Now());
  REQUIRE_FALSE(self.ok());
  CHECK(self.status().code() == absl::StatusCode::kPermissionDenied);
  auto one = r.store.Approve(d->id, "bob", r.f.clock.Now());
  REQUIRE(one.ok());
  CHECK(one->state == "pending_approval");
  CHECK(r.store.Approve(d->id, "bob", r.f.clock.Now())->approvals == 1);
  // Pause and resume do not apply while it waits; abort does.
  auto pause = r.store.Request(d->id, "pause", false, "bob", "", r.f.clock.Now());
  REQUIRE_FALSE(pause.ok());
  CHECK(pause.status().message() ==
        absl::StrCat("deployment ", d->id, " is pending_approval; it cannot be asked to pause"));
  auto two = r.store.Approve(d->id, "carol", r.f.clock.Now());
  REQUIRE(two.ok());
  CHECK(two->state == "progressing");
  CHECK(two->approvers == std::vector<std::string>{"bob", "carol"});
  CHECK(two->next_at.has_value());
  auto late = r.store.Approve(d->id, "dave", r.f.clock.Now());
  CHECK(late.status().code() == absl::StatusCode::kFailedPrecondition);

  CHECK_FALSE(r.store.Request(d->id, "resume", false, "bob", "", r.f.clock.Now()).ok());
  CHECK_FALSE(r.store.Request(d->id, "explode", false, "bob", "", r.f.clock.Now()).ok());
  auto asked = r.store.Request(d->id, "promote", true, "bob", "looks good", r.f.clock.Now());
  REQUIRE(asked.ok());
  REQUIRE(asked->requested_json.has_value());
  CHECK(absl::StrContains(*asked->requested_json, R"("action": "promote")"));
  CHECK(absl::StrContains(*asked->requested_json, R"("full": true)"));
  auto missing = r.store.Request(999999, "abort", false, "bob", "", r.f.clock.Now());
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("deployments store: the lease, fenced commits, and the alias at promotion and rollback",
          "[db]") {
  DeployRig r;
  r.Env("production");
  store::AliasChange who;
  who.principal = "admin";
  who.reason = "first";
  who.now = r.f.clock.Now();
  registry::VersionRef v1;
  v1.version = 1;
  REQUIRE(r.models.SetAlias("bot", "production", v1, who).ok());
  auto d = r.Deploy("production", 2);
  REQUIRE(d.ok());

  // One owner at a time; an expired lease is taken over.
  auto a = r.store.Claim("a", r.f.clock.Now(), absl::Minutes(1));
  REQUIRE(a.ok());
  REQUIRE(a->has_value());
  auto b = r.store.Claim("b", r.f.clock.Now(), absl::Minutes(1));
  REQUIRE(b.ok());
  CHECK_FALSE(b->has_value());
  r.f.clock.Advance(absl::Minutes(2));
  auto b2 = r.store.Claim("b", r.f.clock.Now(), absl::Minutes(1));
  REQUIRE(b2.ok());
  REQUIRE(b2->has_value());

  // The lost owner's tick writes nothing.
  store::TickUpdate promote;
  promote.state = "watching";
  promote.weight = 100;
  promote.step = 1;
  promote.live_json = R"({"deployment_id":1,"model":"bot","version":2,"servers":[]})";
  promote.alias = store::TickUpdate::Alias::kMove;
  promote.next_at = r.f.clock.Now();
  auto lost = r.store.Commit(d->id, "a", "progressing", promote, r.f.clock.Now());
  REQUIRE(lost.ok());
  CHECK_FALSE(*lost);
  CHECK(r.State(d->id) == "progressing");
  CHECK(r.models.GetModel("bot")->aliases.at("production") == 1);
  // Nor does a tick that began from another state.
  auto stale = r.store.Commit(d->id, "b", "paused", promote, r.f.clock.Now());
  REQUIRE(stale.ok());
  CHECK_FALSE(*stale);

  // The holder's promotion moves the alias and the environment's live value, one transaction.
  auto won = r.store.Commit(d->id, "b", "progressing", promote, r.f.clock.Now());
  REQUIRE(won.ok());
  CHECK(*won);
  CHECK(r.State(d->id) == "watching");
  CHECK(r.models.GetModel("bot")->aliases.at("production") == 2);
  CHECK(r.f.One("SELECT live->>'version' FROM environments") == "2");
  CHECK(r.f.One("SELECT alias_previous FROM deployments WHERE id = " + std::to_string(d->id)) ==
        "1");

  // Rolled back: the alias goes back to 1, audited as the system with the reason.
  auto c = r.store.Claim("c", r.f.clock.Now(), absl::Minutes(1));
  REQUIRE(c.ok());
  REQUIRE(c->has_value());
  store::TickUpdate back;
  back.state = "rolled_back";
  back.finished = true;
  back.message = "watch breached: error rate";
  back.alias = store::TickUpdate::Alias::kRestore;
  back.audit_action = "rollback deployment 1 of production";
  back.audit_detail = back.message;
  REQUIRE(*r.store.Commit(d->id, "c", "watching", back, r.f.clock.Now()));
  CHECK(r.models.GetModel("bot")->aliases.at("production") == 1);
  CHECK(r.f.One("SELECT reason FROM model_alias_events ORDER BY id DESC LIMIT 1") ==
        absl::StrCat("deployment ", d->id, " rolled back: watch breached: error rate"));
  CHECK(r.f.Count("SELECT count(*) FROM audit_log WHERE actor_kind = 'system' AND detail = "
                  "'watch breached: error rate'") == 1);

  // An alias someone moved meanwhile is left where it is, and the history says so.
  auto d2 = r.Deploy("production", 3);
  REQUIRE(d2.ok());
  auto e = r.store.Claim("e", r.f.clock.Now(), absl::Minutes(1));
  REQUIRE(e->has_value());
  promote.live_json = R"({"deployment_id":2,"model":"bot","version":3,"servers":[]})";
  REQUIRE(*r.store.Commit(d2->id, "e", "progressing", promote, r.f.clock.Now()));
  CHECK(r.models.GetModel("bot")->aliases.at("production") == 3);
  registry::VersionRef v2;
  v2.version = 2;
  REQUIRE(r.models.SetAlias("bot", "production", v2, who).ok());
  auto g = r.store.Claim("g", r.f.clock.Now(), absl::Minutes(1));
  REQUIRE(g->has_value());
  REQUIRE(*r.store.Commit(d2->id, "g", "watching", back, r.f.clock.Now()));
  CHECK(r.models.GetModel("bot")->aliases.at("production") == 2);
  CHECK(r.f.Count("SELECT count(*) FROM deployment_events WHERE deployment_id = " +
                  std::to_string(d2->id) +
                  " AND kind = 'alias' AND message LIKE '%moved by someone else since%'") == 1);
}

TEST_CASE("deployments store: drift's reference is the version's eval examples", "[db]") {
  DeployRig r;
  auto none = r.store.EvalFeature("bot", 2, "prompt_length");
  REQUIRE(none.ok());
  CHECK(none->empty());
  auto bad = r.store.EvalFeature("bot", 2, "latency_ms");
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  const int64_t pipeline = r.f.PipelineOn(kSha);
  r.f.Exec(
      "INSERT INTO eval_runs (job_id, attempt, step_index, repo_id, pipeline_id, job_name, name, "
      "ref, commit_sha, trusted, complete, passed, finished_at, model_version_id) SELECT j.id, 1, "
      "0, j.repo_id, j.pipeline_id, 'eval', 'qa', 'main', repeat('a', 40), true, true, true, "
      "now(), v.id FROM jobs j, model_versions v WHERE v.version = 2 AND j.pipeline_id = " +
      std::to_string(pipeline));
  r.f.Exec(
      "INSERT INTO eval_examples (run_id, idx, example_id, input, expected, output, error, passed, "
      "scores, latency_ms, input_tokens, output_tokens, answered, passes) SELECT r.id, i, 'e' || "
      "i, 'q', 'a', 'a', CASE WHEN i = 3 THEN 'timeout' ELSE '' END, true, '{}', 1, 10 + i, 100 + "
      "i, 1, 1 FROM eval_runs r, generate_series(0, 4) i");
  // Examples that errored are left out.
  CHECK(*r.store.EvalFeature("bot", 2, "prompt_length") == std::vector<double>{10, 11, 12, 14});
  CHECK(*r.store.EvalFeature("bot", 2, "output_length") == std::vector<double>{100, 101, 102, 104});
  CHECK(r.store.EvalFeature("bot", 3, "prompt_length")->empty());
}

}  // namespace
}  // namespace assay::dbtest
