// Sweeps in the store (issue 10, migration 0023, server/store/sweep.h): the median rule that
// stops a trial, and the conclusion once every trial ended (the best marked and registered),
// against a real PostgreSQL.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/evals/train_spec.h"
#include "server/store/sweep.h"
#include "server/store/train.h"
#include "tests/db/models_rig.h"

namespace assay::dbtest {
namespace {

constexpr char kMedianStop[] = R"({"rule":"median","min_trials":2,"warmup_steps":0})";

// Trial `n` of sweep "tune" (`trials` in all): one train step registering model "charlm",
// params {"lr": n / 100}; `early_stop` is the sweep's early_stop JSON ("" for none).
store::NewJob Trial(int n, int trials, const std::string& early_stop = kMedianStop,
                    const std::string& goal = "minimize") {
  evals::TrainSpec t;
  t.name = "fit";
  t.command = "python3 train.py";
  t.model = "charlm";
  const std::string lr = "0.0" + std::to_string(n);
  t.params_json = R"({"lr":)" + lr + "}";
  store::NewJob j = Job("tune (trial " + std::to_string(n) + ")");
  j.base_name = "tune";
  std::string sweep = R"({"name":"tune","trial":)" + std::to_string(n) + R"(,"trials":)" +
                      std::to_string(trials) + R"(,"method":"grid","metric":"loss","goal":")" +
                      goal + R"(","params":{"lr":)" + lr + "}";
  if (!early_stop.empty()) sweep += R"(,"early_stop":)" + early_stop;
  sweep += "}";
  j.spec_json = R"({"steps":[{"name":"fit","run":"","train":)" + evals::TrainSpecToJson(t) +
                R"(}],"env":{},"timeout_s":3600,"sweep":)" + sweep + "}";
  return j;
}

std::vector<store::TrainPoint> Loss(std::vector<std::pair<int64_t, double>> pts, absl::Time t) {
  std::vector<store::TrainPoint> out;
  for (const auto& [step, value] : pts) out.push_back({"loss", step, value, t, 0});
  return out;
}

TEST_CASE("sweep store: the median rule stops a trial worse than the others at its step, only then",
          "[db]") {
  DbFixture f;
  store::TrainStore train(&f.db);
  const int64_t pipeline =
      f.CreatePipeline({Trial(1, 5), Trial(2, 5), Trial(3, 5), Trial(4, 5), Trial(5, 5, "")});
  const int64_t agent = f.Agent("a1");
  const absl::Time t = f.clock.Now();
  std::vector<store::ClaimedJob> c;
  for (int i = 0; i < 5; ++i) c.push_back(f.ClaimOne(agent));

  REQUIRE(train.AddPoints(c[0].job_id, 1, 0, Loss({{10, 1.0}, {20, 0.5}}, t)).ok());
  // One other trial reached step 10: fewer than min_trials (2), so nothing is judged.
  CHECK(train.JudgeTrial(c[0].job_id, c[0].attempt_token, t).value() == "");
  REQUIRE(train.AddPoints(c[1].job_id, 1, 0, Loss({{10, 2.0}, {20, 1.0}}, t)).ok());
  CHECK(train.JudgeTrial(c[1].job_id, c[1].attempt_token, t).value() == "");

  // Trial 3 at step 10: 1.4 against the median 1.5 of 1.0 and 2.0: it goes on.
  REQUIRE(train.AddPoints(c[2].job_id, 1, 0, Loss({{10, 1.4}}, t)).ok());
  CHECK(train.JudgeTrial(c[2].job_id, c[2].attempt_token, t).value() == "");
  CHECK(f.JobState(c[2].job_id) == "assigned");
  // At step 20: 1.2 against the median 0.75 of 0.5 and 1.0: stopped.
  REQUIRE(train.AddPoints(c[2].job_id, 1, 0, Loss({{20, 1.2}}, t)).ok());
  const std::string why =
      "stopped early: loss 1.2 at step 20 is above the median 0.75 of 2 other trials at that step";
  CHECK(train.JudgeTrial(c[2].job_id, c[2].attempt_token, t).value() == why);
  CHECK(f.Query("SELECT state, message FROM jobs WHERE id = " + std::to_string(c[2].job_id)) ==
        Rows{{"succeeded", why}});
  CHECK(f.Query("SELECT state FROM job_attempts WHERE job_id = " + std::to_string(c[2].job_id)) ==
        Rows{{"succeeded"}});
  CHECK(f.Query("SELECT step, value, median, others FROM sweep_stops") ==
        Rows{{"20", "1.2", "0.75", "2"}});
  // Judged again (a resend): the attempt is no longer live, nothing changes.
  CHECK(train.JudgeTrial(c[2].job_id, c[2].attempt_token, t).value() == "");

  // Trial 4 at step 15: each other's point at the greatest step <= 15 among those that reached
  // it: 1.0, 2.0 and (the stopped trial's) 1.4; 1.3 is below their median 1.4.
  REQUIRE(train.AddPoints(c[3].job_id, 1, 0, Loss({{15, 1.3}}, t)).ok());
  CHECK(train.JudgeTrial(c[3].job_id, c[3].attempt_token, t).value() == "");
  // At step 30 nobody else is there yet: too few to judge, however bad.
  REQUIRE(train.AddPoints(c[3].job_id, 1, 0, Loss({{30, 99}}, t)).ok());
  CHECK(train.JudgeTrial(c[3].job_id, c[3].attempt_token, t).value() == "");
  // A stale token, and a trial of a sweep without early_stop, are never judged.
  CHECK(train.JudgeTrial(c[3].job_id, "not-the-token", t).value() == "");
  REQUIRE(train.AddPoints(c[4].job_id, 1, 0, Loss({{10, 50}, {20, 50}}, t)).ok());
  CHECK(train.JudgeTrial(c[4].job_id, c[4].attempt_token, t).value() == "");
  CHECK(f.JobState(c[4].job_id) == "assigned");
  CHECK(f.PipelineState(pipeline) == "running");
}

TEST_CASE("sweep store: goal maximize stops a trial below the median", "[db]") {
  DbFixture f;
  store::TrainStore train(&f.db);
  f.CreatePipeline({Trial(1, 3, kMedianStop, "maximize"), Trial(2, 3, kMedianStop, "maximize"),
                    Trial(3, 3, kMedianStop, "maximize")});
  const int64_t agent = f.Agent("a1");
  const absl::Time t = f.clock.Now();
  std::vector<store::ClaimedJob> c;
  for (int i = 0; i < 3; ++i) c.push_back(f.ClaimOne(agent));
  REQUIRE(train.AddPoints(c[0].job_id, 1, 0, Loss({{5, 0.8}, {6, 0.8}}, t)).ok());
  REQUIRE(train.AddPoints(c[1].job_id, 1, 0, Loss({{5, 0.6}, {6, 0.6}}, t)).ok());
  REQUIRE(train.AddPoints(c[2].job_id, 1, 0, Loss({{5, 0.7}}, t)).ok());  // the median itself
  CHECK(train.JudgeTrial(c[2].job_id, c[2].attempt_token, t).value() == "");
  REQUIRE(train.AddPoints(c[2].job_id, 1, 0, Loss({{6, 0.65}}, t)).ok());
  CHECK(train.JudgeTrial(c[2].job_id, c[2].attempt_token, t).value() ==
        "stopped early: loss 0.65 at step 6 is below the median 0.7 of 2 other trials at that "
        "step");
}

TEST_CASE(
    "sweep store: when the last trial ends the best is marked and registered, and stopped, failed "
    "and tied trials lose",
    "[db]") {
  DbFixture f;
  ModelRig rig(f);
  store::TrainStore train(&f.db);
  const int64_t pipeline = f.CreatePipeline({Trial(1, 4), Trial(2, 4), Trial(3, 4), Trial(4, 4),
                                             Job("after", {
                                                              "tune (trial 1)",
                                                              "tune (trial 2)",
                                                              "tune (trial 3)",
                                                              "tune (trial 4)",
                                                          })});
  const absl::Time t = f.clock.Now();
  std::vector<store::ClaimedJob> c;
  for (int i = 0; i < 4; ++i) c.push_back(f.ClaimOne(rig.agent));
  auto model = [&](const store::ClaimedJob& j, const std::string& weights) {
    REQUIRE(rig.artifacts
                .Commit(j.job_id, j.attempt, f.repo_id, {rig.Put("model/w.bin", weights, 1024)}, t,
                        t + absl::Hours(1))
                .ok());
  };
  // Trial 1: loss ends at 0.5 (step 20), model written, succeeded. Nothing registered yet.
  REQUIRE(train.AddPoints(c[0].job_id, 1, 0, Loss({{10, 0.9}, {20, 0.5}}, t)).ok());
  model(c[0], "weights of trial 1");
  f.FinishJob(c[0], "succeeded", 0);
  CHECK(f.One("SELECT count(*) FROM model_versions") == "0");
  CHECK(f.One("SELECT count(*) FROM sweep_outcomes") == "0");
  // Trial 2 is stopped early by the median rule (min_trials 2: trials 1 and 3 at step 10).
  REQUIRE(train.AddPoints(c[2].job_id, 1, 0, Loss({{10, 0.7}}, t)).ok());
  REQUIRE(train.AddPoints(c[1].job_id, 1, 0, Loss({{10, 5.0}}, t)).ok());
  CHECK(!train.JudgeTrial(c[1].job_id, c[1].attempt_token, t).value().empty());
  // Trial 3 reaches 0.1 but fails; trial 4 ties trial 1 at 0.5 (the lower number wins).
  REQUIRE(train.AddPoints(c[2].job_id, 1, 0, Loss({{20, 0.1}}, t)).ok());
  f.FinishJob(c[2], "failed", 1);
  CHECK(f.One("SELECT count(*) FROM sweep_outcomes") == "0");
  REQUIRE(train.AddPoints(c[3].job_id, 1, 0, Loss({{10, 0.6}, {20, 0.5}}, t)).ok());
  model(c[3], "weights of trial 4");
  f.FinishJob(c[3], "succeeded", 0);

  auto v = rig.models.GetVersion("charlm", {1, ""});
  REQUIRE(v.ok());
  CHECK(v->job_id == c[0].job_id);
  CHECK(v->params_json == R"({"lr": 0.01})");
  CHECK(v->metrics_json == R"({"loss": 0.5})");
  CHECK(v->tags ==
        std::map<std::string, std::string>{
            {"source", "train"}, {"sweep", "tune"}, {"sweep_trial", "1"}, {"train_step", "fit"}});
  CHECK(f.One("SELECT count(*) FROM model_versions") == "1");
  // Trial 3 failed without allow_failure: `after` is skipped and the pipeline failed.
  CHECK(f.PipelineState(pipeline) == "failed");

  auto sweeps = train.SweepsOf(pipeline);
  REQUIRE(sweeps.ok());
  REQUIRE(sweeps->size() == 1);
  const store::SweepView& s = (*sweeps)[0];
  CHECK(s.name == "tune");
  CHECK(s.metric == "loss");
  CHECK(s.goal == "minimize");
  CHECK(s.method == "grid");
  CHECK(s.trials == 4);
  CHECK(s.concluded);
  CHECK(s.best_job_id == c[0].job_id);
  CHECK(s.best_value == 0.5);
  CHECK(s.model == "charlm");
  CHECK(s.model_version == 1);
  CHECK(s.message == "");
  REQUIRE(s.trial_views.size() == 4);
  std::vector<std::string> rows;
  for (const store::SweepTrialView& tv : s.trial_views) {
    rows.push_back(std::to_string(tv.trial) + " " + tv.state + " " + tv.params_json + " " +
                   std::to_string(tv.step.value_or(-1)) + " " +
                   std::to_string(tv.value.value_or(-1)) + (tv.best ? " best" : "") +
                   (tv.stopped_early ? " stopped" : ""));
  }
  CHECK(rows == std::vector<std::string>{
                    R"(1 succeeded {"lr":1E-2} 20 0.500000 best)",
                    R"(2 succeeded {"lr":2E-2} 10 5.000000 stopped)",
                    R"(3 failed {"lr":3E-2} 20 0.100000)",
                    R"(4 succeeded {"lr":4E-2} 20 0.500000)",
                });
  CHECK(train.SweepsOf(999'999).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE(
    "sweep store: a best trial that cannot be registered fails with the reason, and a canceled "
    "sweep registers nothing",
    "[db]") {
  DbFixture f;
  ModelRig rig(f);
  store::TrainStore train(&f.db);
  const absl::Time t = f.clock.Now();
  // The only trial succeeds without model files.
  const int64_t p1 = f.CreatePipeline({Trial(1, 1, "")});
  store::ClaimedJob c = f.ClaimOne(rig.agent);
  REQUIRE(train.AddPoints(c.job_id, 1, 0, Loss({{1, 0.3}}, t)).ok());
  f.FinishJob(c, "succeeded", 0);
  CHECK(f.Query("SELECT state, message FROM jobs WHERE id = " + std::to_string(c.job_id)) ==
        Rows{{"failed",
              "sweep 'tune': the best trial (1) could not be registered: step \"fit\": cannot "
              "register model 'charlm': job " +
                  std::to_string(c.job_id) + " has no artifacts (none uploaded, or expired)"}});
  CHECK(f.PipelineState(p1) == "failed");
  CHECK(f.One("SELECT count(*) FROM model_versions") == "0");
  CHECK(f.Query("SELECT best_job_id, model_version_id FROM sweep_outcomes") ==
        Rows{{std::to_string(c.job_id), "NULL"}});

  // Trial 1 succeeds with a model, trial 2 is canceled: no best, nothing registered.
  const int64_t p2 = f.CreatePipeline({Trial(1, 2, ""), Trial(2, 2, "")});
  store::ClaimedJob d = f.ClaimOne(rig.agent);
  REQUIRE(train.AddPoints(d.job_id, 1, 0, Loss({{1, 0.3}}, t)).ok());
  REQUIRE(rig.artifacts
              .Commit(d.job_id, d.attempt, f.repo_id, {rig.Put("model/w.bin", "w", 1024)}, t,
                      t + absl::Hours(1))
              .ok());
  f.FinishJob(d, "succeeded", 0);
  REQUIRE(f.pipelines.Cancel(p2).ok());
  CHECK(f.One("SELECT count(*) FROM model_versions") == "0");
  CHECK(f.Query("SELECT best_job_id, message FROM sweep_outcomes WHERE pipeline_id = " +
                std::to_string(p2)) ==
        Rows{{"NULL", "a trial was canceled: no best trial is chosen and nothing is registered"}});
}

}  // namespace
}  // namespace assay::dbtest
