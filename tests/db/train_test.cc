// Training in the store (issue 10, migration 0021, server/store/train.h): metric points,
// checkpoints and their chunks, the step-end report, and the registration of a train step's
// model in the transaction that marks its job succeeded, against a real PostgreSQL.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/evals/train_spec.h"
#include "server/store/train.h"
#include "tests/db/models_rig.h"

namespace assay::dbtest {
namespace {

// A job whose step 1 is `train:` (step 0 a plain run), registering model `model`.
store::NewJob TrainJobSpec(const std::string& name, const std::string& model,
                           const std::string& parent = "") {
  evals::TrainSpec t;
  t.name = "fit";
  t.command = "python3 train.py";
  t.model = model;
  t.params_json = R"({"lr":0.003,"steps":300})";
  t.parent = parent;
  store::NewJob j = Job(name);
  j.spec_json = R"({"steps":[{"name":"prep","run":"true"},{"name":"fit","run":"","train":)" +
                evals::TrainSpecToJson(t) + R"(}],"env":{},"timeout_s":3600})";
  return j;
}

int64_t Count(DbFixture& f, const std::string& sql) { return std::stoll(f.Query(sql).at(0).at(0)); }

TEST_CASE("train store: points are kept per attempt, a resend changes nothing, bad ones refused",
          "[db]") {
  DbFixture f;
  store::TrainStore train(&f.db);
  f.CreatePipeline({TrainJobSpec("ft", "charlm")});
  store::ClaimedJob c = f.ClaimOne(f.Agent("a1"));
  CHECK(train.TrainStepOf(c.job_id, 1).ok());
  auto not_train = train.TrainStepOf(c.job_id, 0);
  REQUIRE_FALSE(not_train.ok());
  CHECK(not_train.status().message() ==
        "step 0 of job " + std::to_string(c.job_id) + " is not a train step");
  CHECK_FALSE(train.TrainStepOf(c.job_id, 7).ok());

  const absl::Time t = absl::FromUnixSeconds(1'700'000'000);
  std::vector<store::TrainPoint> pts = {
      {"loss", 10, 1.5, t, 0}, {"loss", 20, 0.1 + 0.2, t, 0}, {"lr", 10, 3e-3, t, 0}};
  CHECK(train.AddPoints(c.job_id, c.attempt, 1, pts).value() == 3);
  CHECK(train.AddPoints(c.job_id, c.attempt, 1, pts).value() == 0);  // a resend
  CHECK(train.AddPoints(c.job_id, 2, 1, {{"loss", 10, 9, t, 0}}).value() == 1);

  for (const store::TrainPoint& bad :
       {store::TrainPoint{"", 1, 1, t, 0}, store::TrainPoint{"x\ny", 1, 1, t, 0},
        store::TrainPoint{std::string(129, 'n'), 1, 1, t, 0},
        store::TrainPoint{"\xff\xfe", 1, 1, t, 0}, store::TrainPoint{"loss", -1, 1, t, 0},
        store::TrainPoint{"loss", 1, std::numeric_limits<double>::quiet_NaN(), t, 0},
        store::TrainPoint{"loss", 1, std::numeric_limits<double>::infinity(), t, 0}}) {
    auto r = train.AddPoints(c.job_id, c.attempt, 1, {pts[0], bad});
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(r.status().message() ==
          "ReportTrainMetrics: point 1: a name of 1 to 128 bytes without control characters, a "
          "step >= 0 and a finite value are required");
  }
  auto many =
      train.AddPoints(c.job_id, c.attempt, 1,
                      std::vector<store::TrainPoint>(store::kMaxTrainPointsPerCall + 1, pts[0]));
  CHECK(many.status().code() == absl::StatusCode::kInvalidArgument);

  auto runs = train.RunsOf(c.job_id);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 1);
  const store::TrainRunView& v = (*runs)[0];
  CHECK(v.step_index == 1);
  CHECK(v.name == "fit");
  CHECK(v.model == "charlm");
  REQUIRE(v.series.size() == 2);
  const auto& loss = v.series.at("loss");
  REQUIRE(loss.size() == 3);
  CHECK((loss[0].step == 10 && loss[0].attempt == 1 && loss[0].value == 1.5));
  CHECK((loss[1].step == 10 && loss[1].attempt == 2 && loss[1].value == 9));
  CHECK((loss[2].step == 20 && loss[2].value == 0.1 + 0.2));  // exact: no digits lost
  CHECK(v.series.at("lr")[0].value == 3e-3);
  CHECK(loss[0].at == t);
}

TEST_CASE("train store: an attempt past its point budget is refused with RESOURCE_EXHAUSTED",
          "[db]") {
  DbFixture f;
  store::TrainStore train(&f.db);
  f.CreatePipeline({TrainJobSpec("ft", "charlm")});
  store::ClaimedJob c = f.ClaimOne(f.Agent("a1"));
  std::vector<store::TrainPoint> batch;
  for (size_t i = 0; i < store::kMaxTrainPointsPerCall; ++i) {
    batch.push_back({"loss", static_cast<int64_t>(i), 1, f.clock.Now(), 0});
  }
  int64_t sent = 0;
  for (int64_t k = 0; sent + static_cast<int64_t>(batch.size()) <= store::kMaxTrainPointsPerAttempt;
       ++k) {
    for (auto& p : batch) p.name = "s" + std::to_string(k);
    REQUIRE(train.AddPoints(c.job_id, c.attempt, 1, batch).ok());
    sent += static_cast<int64_t>(batch.size());
  }
  CHECK(sent == store::kMaxTrainPointsPerAttempt);
  auto over = train.AddPoints(c.job_id, c.attempt, 1, {{"more", 1, 1, f.clock.Now(), 0}});
  REQUIRE_FALSE(over.ok());
  CHECK(over.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(Count(f, "SELECT count(*) FROM train_metrics") == store::kMaxTrainPointsPerAttempt);
}

TEST_CASE(
    "train store: checkpoints need their chunks and their directory, the newest two are "
    "kept, and a restore serves exactly their chunks",
    "[db]") {
  DbFixture f;
  ModelRig rig(f);
  store::TrainStore train(&f.db);
  f.CreatePipeline({TrainJobSpec("ft", "charlm")});
  store::ClaimedJob c = f.ClaimOne(rig.agent);
  const std::string dir = store::CheckpointDirOf(1);
  CHECK(dir == ".assay/train/1/checkpoints");

  auto outside = train.CommitCheckpoint(c.job_id, c.attempt, 1, 5,
                                        {rig.Put("model/x.pt", "x", 1024)}, f.clock.Now());
  REQUIRE_FALSE(outside.ok());
  CHECK(outside.status().message() ==
        "CommitCheckpoint: path 'model/x.pt' is not under .assay/train/1/checkpoints/");
  auto other_step = train.CommitCheckpoint(
      c.job_id, c.attempt, 1, 5, {rig.Put(".assay/train/0/checkpoints/step-5", "x", 1024)},
      f.clock.Now());
  CHECK(other_step.status().code() == absl::StatusCode::kInvalidArgument);
  store::ArtifactFileRow unstored;
  unstored.path = dir + "/step-5/w.pt";
  unstored.size = 3;
  unstored.sha256 = HexSha256("abc");
  unstored.chunks = {HexSha256("abc")};
  auto missing = train.CommitCheckpoint(c.job_id, c.attempt, 1, 5, {unstored}, f.clock.Now());
  CHECK(missing.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(Count(f, "SELECT count(*) FROM train_checkpoints") == 0);

  std::vector<std::string> chunks_of_step;
  for (int64_t step : {10, 30, 20}) {
    store::ArtifactFileRow w = rig.Put(dir + "/step-" + std::to_string(step) + "/w.pt",
                                       "weights@" + std::to_string(step), 1024);
    store::ArtifactFileRow o = rig.Put(dir + "/step-" + std::to_string(step) + "/opt.pt",
                                       "optimizer@" + std::to_string(step), 4);
    auto saved = train.CommitCheckpoint(c.job_id, c.attempt, 1, step, {w, o}, f.clock.Now());
    REQUIRE(saved.ok());
    CHECK(*saved);
    if (step == 30)
      chunks_of_step = w.chunks,
      chunks_of_step.insert(chunks_of_step.end(), o.chunks.begin(), o.chunks.end());
  }
  // A replay of step 30 changes nothing; step 10 was pruned (the newest two by step stay).
  auto again =
      train.CommitCheckpoint(c.job_id, c.attempt, 1, 30,
                             {rig.Put(dir + "/step-30/w.pt", "weights@30", 1024)}, f.clock.Now());
  REQUIRE(again.ok());
  CHECK_FALSE(*again);
  CHECK(Count(f, "SELECT count(*) FROM train_checkpoints") == 2);
  CHECK(Count(f, "SELECT min(step) FROM train_checkpoints") == 20);

  // Attempt 2 (the agent was lost) restores step 30, and may download its chunks only.
  CHECK(train.ChunksReadBy(c.job_id, chunks_of_step).value().empty());
  f.clock.Advance(absl::Seconds(60));
  REQUIRE(f.jobs.ExpireLeases().value() == 1);
  store::ClaimedJob c2 = f.ClaimOne(rig.agent);
  REQUIRE(c2.job_id == c.job_id);
  REQUIRE(c2.attempt == 2);
  auto cp = train.RestoreCheckpoint(c2.job_id, 1);
  REQUIRE(cp.ok());
  REQUIRE(cp->has_value());
  CHECK((*cp)->step == 30);
  CHECK((*cp)->attempt == 1);
  REQUIRE((*cp)->files.size() == 2);
  CHECK((*cp)->files[0].path == dir + "/step-30/opt.pt");
  CHECK((*cp)->files[1].path == dir + "/step-30/w.pt");
  std::vector<std::string> asked = chunks_of_step;
  asked.push_back(HexSha256("weights@20"));
  auto readable = train.ChunksReadBy(c.job_id, asked);
  REQUIRE(readable.ok());
  std::sort(readable->begin(), readable->end());
  std::vector<std::string> want = chunks_of_step;
  std::sort(want.begin(), want.end());
  want.erase(std::unique(want.begin(), want.end()), want.end());
  CHECK(*readable == want);

  // A job that has no checkpoint restores none.
  f.CreatePipeline({TrainJobSpec("ft2", "charlm")});
  store::ClaimedJob other = f.ClaimOne(rig.agent);
  CHECK_FALSE(train.RestoreCheckpoint(other.job_id, 1).value().has_value());

  // Once the job ended an hour ago, its checkpoints go, and their chunks are sweepable.
  f.FinishJob(c2, "failed", 1);
  CHECK(train.DeleteFinishedCheckpoints(f.clock.Now() - absl::Hours(1), 100).value() == 0);
  CHECK(train.DeleteFinishedCheckpoints(f.clock.Now() + absl::Seconds(1), 100).value() == 2);
  CHECK(Count(f, "SELECT count(*) FROM train_checkpoint_chunk_refs") == 0);
}

TEST_CASE(
    "train store: a succeeded train job registers its model with params, final metrics and "
    "datasets, and without model files the job fails instead, registering nothing",
    "[db]") {
  DbFixture f;
  ModelRig rig(f);
  store::TrainStore train(&f.db);

  // Attempt 1 was lost mid-training; attempt 2 resumed from step 20 and finished.
  f.CreatePipeline({TrainJobSpec("ft", "charlm")});
  store::ClaimedJob c = f.ClaimOne(rig.agent);
  const absl::Time t = f.clock.Now();
  REQUIRE(
      train
          .AddPoints(c.job_id, 1, 1,
                     {{"loss", 10, 2.0, t, 0}, {"loss", 20, 1.0, t, 0}, {"loss", 30, 0.9, t, 0}})
          .ok());
  f.clock.Advance(absl::Seconds(60));
  REQUIRE(f.jobs.ExpireLeases().value() == 1);
  store::ClaimedJob c2 = f.ClaimOne(rig.agent);
  REQUIRE(
      train
          .AddPoints(c2.job_id, 2, 1,
                     {{"loss", 30, 0.8, t, 0}, {"loss", 40, 0.5, t, 0}, {"acc", 40, 0.75, t, 0}})
          .ok());
  REQUIRE(train
              .ReportRun(c2.job_id, 2, 1,
                         {{"data/corpus.txt", std::string(64, 'a'), ""},
                          {"data/big.csv", "", std::string(32, 'b')}},
                         20, t)
              .ok());
  std::vector<store::ArtifactFileRow> rows = {rig.Put("model/model.pt", "the weights", 4),
                                              rig.Put("model/config.json", "{}", 1024)};
  REQUIRE(rig.artifacts.Commit(c2.job_id, c2.attempt, f.repo_id, rows, t, t + absl::Hours(1)).ok());
  store::FinishOutcome done = f.FinishJob(c2, "succeeded", 0);
  CHECK(done.fence == store::Fence::kOk);

  auto v = rig.models.GetVersion("charlm", {1, ""});
  REQUIRE(v.ok());
  CHECK(v->job_id == c2.job_id);
  CHECK(v->source_path == "model/");
  CHECK(v->files == 2);
  CHECK(v->params_json == R"({"lr": 0.003, "steps": 300})");
  CHECK(v->metrics_json == R"({"acc": 0.75, "loss": 0.5})");
  CHECK(v->datasets_json == R"([{"path": "data/corpus.txt", "sha256": ")" + std::string(64, 'a') +
                                R"("}, {"md5": ")" + std::string(32, 'b') +
                                R"(", "path": "data/big.csv"}])");
  CHECK(v->tags == std::map<std::string, std::string>{{"source", "train"}, {"train_step", "fit"}});
  auto runs = train.RunsOf(c2.job_id);
  REQUIRE(runs.ok());
  CHECK((*runs)[0].model_version == 1);
  REQUIRE((*runs)[0].attempts.size() == 1);
  CHECK((*runs)[0].attempts[0] == std::pair<int, std::optional<int64_t>>{2, 20});

  // The same, with no files under model/: the job fails with the reason, nothing registered.
  f.CreatePipeline({TrainJobSpec("ft-empty", "charlm")});
  store::ClaimedJob e = f.ClaimOne(rig.agent);
  REQUIRE(rig.artifacts
              .Commit(e.job_id, e.attempt, f.repo_id, {rig.Put("logs/x.txt", "log", 1024)}, t,
                      t + absl::Hours(1))
              .ok());
  f.FinishJob(e, "succeeded", 0);
  CHECK(f.Query("SELECT state, message FROM jobs WHERE id = " + std::to_string(e.job_id)) ==
        Rows{{"failed", "step \"fit\": cannot register model 'charlm': job " +
                            std::to_string(e.job_id) + " has no artifact files under 'model/'"}});
  CHECK(rig.models.ListVersions("charlm", {}).value().size() == 1);

  // An unknown parent fails the job the same way, and leaves no model behind.
  f.CreatePipeline({TrainJobSpec("ft-parent", "fresh", "production")});
  store::ClaimedJob p = f.ClaimOne(rig.agent);
  REQUIRE(rig.artifacts
              .Commit(p.job_id, p.attempt, f.repo_id, {rig.Put("model/m.pt", "w", 1024)}, t,
                      t + absl::Hours(1))
              .ok());
  f.FinishJob(p, "succeeded", 0);
  CHECK(f.Query("SELECT state, message FROM jobs WHERE id = " + std::to_string(p.job_id)) ==
        Rows{{"failed",
              "step \"fit\": cannot register model 'fresh': parent version: model 'fresh' has no "
              "alias 'production'"}});
  CHECK(rig.models.GetModel("fresh").status().code() == absl::StatusCode::kNotFound);
}

// A job whose only step is `promote:`.
store::NewJob PromoteJobSpec(const std::string& name, const evals::PromoteSpec& promote) {
  store::NewJob j = Job(name);
  j.spec_json = R"({"steps":[{"name":"release","run":"","promote":)" +
                evals::PromoteSpecToJson(promote) + R"(}],"env":{},"timeout_s":3600})";
  return j;
}

TEST_CASE(
    "train store: promote moves the alias when its if holds, audited, and refuses what "
    "it must",
    "[db]") {
  DbFixture f;
  ModelRig rig(f);
  store::TrainStore train(&f.db);
  // A pipeline that registered version 1 of charlm and ran eval qa (passed) and safety (failed).
  const int64_t pid = f.CreatePipeline(
      {TrainJobSpec("ft", "charlm"),
       PromoteJobSpec("promote", {"charlm", "staging", "", "evals.qa.passed && branch == 'main'"}),
       PromoteJobSpec("blocked", {"charlm", "production", "", "evals.safety.passed"}),
       PromoteJobSpec("other", {"nomodel", "staging", "", ""}),
       PromoteJobSpec("pinned", {"charlm", "old", "7", ""})});
  store::ClaimedJob ft = f.ClaimOne(rig.agent);
  REQUIRE(ft.job_id == f.JobId(pid, "ft"));
  REQUIRE(rig.artifacts
              .Commit(ft.job_id, ft.attempt, f.repo_id, {rig.Put("model/m.pt", "w", 1024)},
                      f.clock.Now(), f.clock.Now() + absl::Hours(1))
              .ok());
  f.FinishJob(ft, "succeeded", 0);
  REQUIRE(rig.models.GetVersion("charlm", {1, ""}).ok());
  for (const auto& [name, passed] :
       std::vector<std::pair<std::string, bool>>{{"qa", true}, {"safety", false}}) {
    f.Query(
        "INSERT INTO eval_runs (job_id, attempt, step_index, repo_id, pipeline_id, job_name, "
        "name, ref, commit_sha, trusted, complete, passed, finished_at) VALUES (" +
        std::to_string(ft.job_id) + ", 1, " + (name == "qa" ? "5" : "6") + ", " +
        std::to_string(f.repo_id) + ", " + std::to_string(pid) + ", 'ft', '" + name +
        "', 'refs/heads/main', '" + std::string(kSha) + "', true, true, " +
        (passed ? "true" : "false") + ", now()) RETURNING 1");
  }

  auto done = train.Promote(f.JobId(pid, "promote"), 0, rig.models, f.clock.Now());
  REQUIRE(done.ok());
  CHECK(done->promoted);
  CHECK(done->version == 1);
  CHECK_FALSE(done->previous.has_value());
  CHECK(done->message ==
        "promoted: charlm@staging -> version 1 (new alias); `evals.qa.passed && branch == "
        "'main'` is true");
  auto history = rig.models.AliasHistory("charlm", "staging", 10);
  REQUIRE(history.ok());
  REQUIRE(history->size() == 1);
  CHECK((*history)[0].principal ==
        "pipeline " + std::to_string(pid) + " job " + std::to_string(f.JobId(pid, "promote")));
  CHECK((*history)[0].reason == "promote step 'release': if evals.qa.passed && branch == 'main'");
  // Again: nothing moves, no second audit row.
  done = train.Promote(f.JobId(pid, "promote"), 0, rig.models, f.clock.Now());
  REQUIRE(done.ok());
  CHECK_FALSE(done->changed);
  CHECK(done->message == "promoted: charlm@staging already points at version 1");
  CHECK(rig.models.AliasHistory("charlm", "staging", 10)->size() == 1);

  auto blocked = train.Promote(f.JobId(pid, "blocked"), 0, rig.models, f.clock.Now());
  REQUIRE(blocked.ok());
  CHECK_FALSE(blocked->promoted);
  CHECK(blocked->message ==
        "not promoted: charlm@production stays; `evals.safety.passed` is false");
  CHECK(rig.models.AliasHistory("charlm", "production", 10)->empty());

  auto none = train.Promote(f.JobId(pid, "other"), 0, rig.models, f.clock.Now());
  CHECK(none.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(none.status().message() ==
        "pipeline " + std::to_string(pid) +
            " registered no version of model 'nomodel' (a train: step registers one; or give "
            "version:)");
  auto pinned = train.Promote(f.JobId(pid, "pinned"), 0, rig.models, f.clock.Now());
  CHECK(pinned.status().code() == absl::StatusCode::kNotFound);
  auto not_promote = train.Promote(ft.job_id, 1, rig.models, f.clock.Now());
  CHECK(not_promote.status().code() == absl::StatusCode::kInvalidArgument);

  // A fork's pull request never moves an alias.
  store::NewPipeline fork = f.Pipeline({PromoteJobSpec("promote", {"charlm", "staging", "1", ""})});
  fork.trusted = false;
  fork.event = "pull_request";
  auto fork_id = f.pipelines.Create(fork);
  REQUIRE(fork_id.ok());
  auto refused = train.Promote(f.JobId(*fork_id, "promote"), 0, rig.models, f.clock.Now());
  CHECK(refused.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(rig.models.AliasHistory("charlm", "staging", 10)->size() == 1);
}

}  // namespace
}  // namespace assay::dbtest
