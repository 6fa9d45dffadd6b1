// The model registry's store (issue 10, server/store/models.h) on a real PostgreSQL: versions
// registered from a job's artifacts with their exact rows, replays, lineage, concurrent
// registrations and alias moves, the audit, the artifact sweeper leaving a version's chunks
// alone, and hostile input for every field.

#include <atomic>
#include <catch2/catch.hpp>
#include <random>
#include <set>
#include <thread>

#include "server/artifacts/sweeper.h"
#include "tests/db/models_rig.h"

namespace assay::dbtest {
namespace {

std::string S(int64_t v) { return std::to_string(v); }

TEST_CASE("models: a version takes the job's files under model/, with its source, exact rows",
          "[db]") {
  DbFixture f;
  ModelRig rig(f);
  const std::string weights = ModelBytes(2500, 1), config = "{\"layers\": 2}\n";
  const int64_t job = rig.TrainJob({{"model/weights.bin", weights},
                                    {"model/cfg/config.json", config},
                                    {"log.txt", "x"},
                                    {"modelish.txt", "not under model/"}},
                                   absl::Hours(1), 1000);
  store::RegisterVersionRequest req = rig.Request("support-bot", job);
  req.params_json = R"({"lr":0.5,"layers":[1,2]})";
  req.metrics_json = R"({"loss":1.25,"steps":10})";
  req.datasets = {{"data/train.jsonl", std::string(64, 'a'), ""},
                  {"data/big.csv", "", std::string(32, 'b')}};
  req.tags = {{"team", "nlp"}};
  req.description = "first";
  auto v = rig.models.RegisterVersion(req);
  REQUIRE(v.ok());
  CHECK(v->model == "support-bot");
  CHECK(v->version == 1);
  CHECK(v->status == "ready");
  CHECK(v->description == "first");
  CHECK(v->repo_id == f.repo_id);
  CHECK(v->repo == "acme/app");
  CHECK(v->commit_sha == kSha);
  CHECK(v->job_id == job);
  CHECK(v->job_name == "train");
  CHECK(v->source_path == "model/");
  CHECK(v->params_json == R"({"lr": 0.5, "layers": [1, 2]})");
  CHECK(v->metrics_json == R"({"loss": 1.25, "steps": 10})");
  CHECK(v->datasets_json == R"([{"path": "data/train.jsonl", "sha256": ")" + std::string(64, 'a') +
                                R"("}, {"md5": ")" + std::string(32, 'b') +
                                R"(", "path": "data/big.csv"}])");
  CHECK(v->parent_version == std::nullopt);
  CHECK(v->files == 2);
  CHECK(v->bytes == static_cast<int64_t>(weights.size() + config.size()));
  CHECK(v->tags == std::map<std::string, std::string>{{"team", "nlp"}});
  CHECK(v->aliases.empty());
  CHECK(v->created_at == kT0);
  CHECK_FALSE(v->replayed);
  // The files, relative to model/, as the manifest had them; their chunks referenced.
  CHECK(f.Query("SELECT path, size, mode, sha256, array_length(chunks, 1) FROM "
                "model_version_files ORDER BY path") ==
        Rows{{"cfg/config.json", S(config.size()), "420", HexSha256(config), "1"},
             {"weights.bin", "2500", "420", HexSha256(weights), "3"}});
  CHECK(f.Count("SELECT count(*) FROM model_chunk_refs") == 4);
  CHECK(
      f.Query("SELECT name, last_version, (extract(epoch from created_at))::bigint FROM models") ==
      Rows{{"support-bot", "1", "1700000000"}});

  // A replay of the same request: the same version, nothing new.
  auto again = rig.models.RegisterVersion(req);
  REQUIRE(again.ok());
  CHECK(again->version == 1);
  CHECK(again->replayed);
  CHECK(f.Count("SELECT count(*) FROM model_versions") == 1);
  CHECK(f.One("SELECT last_version FROM models") == "1");
  // The same job and path with other fields: refused, nothing written.
  req.metrics_json = R"({"loss":1.0})";
  auto other = rig.models.RegisterVersion(req);
  CHECK(other.status() ==
        absl::AlreadyExistsError("job " + S(job) +
                                 "'s 'model/' is already version 1 of 'support-bot' (registered "
                                 "with other fields)"));
  CHECK(f.One("SELECT last_version FROM models") == "1");

  // Version 2 from another job, with version 1 as its parent; a prefix without '/' works too.
  const int64_t job2 = rig.TrainJob({{"out/w.bin", "w2"}});
  store::RegisterVersionRequest req2 = rig.Request("support-bot", job2);
  req2.path = "out";
  req2.parent = V(1);
  auto v2 = rig.models.RegisterVersion(req2);
  REQUIRE(v2.ok());
  CHECK(v2->version == 2);
  CHECK(v2->parent_version == 1);
  CHECK(v2->source_path == "out/");
  auto files = rig.models.Files("support-bot", V(2));
  REQUIRE(files.ok());
  REQUIRE(files->size() == 1);
  CHECK((*files)[0].path == "w.bin");
  auto m = rig.models.GetModel("support-bot");
  REQUIRE(m.ok());
  CHECK(m->latest_version == 2);
  CHECK(m->versions == 2);
}

TEST_CASE("models: registration refuses what it cannot take, naming it, and writes nothing",
          "[db]") {
  DbFixture f;
  ModelRig rig(f);
  const int64_t job = rig.TrainJob({{"model/w.bin", "w"}});
  auto refused = [&](store::RegisterVersionRequest r) {
    auto v = rig.models.RegisterVersion(r);
    REQUIRE_FALSE(v.ok());
    CHECK(f.Count("SELECT count(*) FROM model_versions") == 0);
    return v.status();
  };
  auto r = rig.Request("m", job);
  r.model = std::string(129, 'a');
  CHECK(refused(r) ==
        absl::InvalidArgumentError("model name '" + std::string(80, 'a') +
                                   "...' must be 1 to 128 characters of A-Z a-z 0-9 _ . -"));
  r.model = "../etc";
  CHECK(refused(r).code() == absl::StatusCode::kInvalidArgument);
  r.model = "a/b";
  CHECK(refused(r).code() == absl::StatusCode::kInvalidArgument);
  r.model = "";
  CHECK(refused(r).code() == absl::StatusCode::kInvalidArgument);
  r = rig.Request("m", 999999);
  CHECK(refused(r) == absl::NotFoundError("job 999999 not found"));
  r = rig.Request("m", job);
  r.path = "../model";
  CHECK(refused(r) ==
        absl::InvalidArgumentError("field 'path': artifact path '../model': has a '..' segment"));
  r.path = "/etc";
  CHECK(refused(r) ==
        absl::InvalidArgumentError("field 'path': artifact path '/etc': is absolute"));
  r.path = "weights/";
  CHECK(refused(r) ==
        absl::FailedPreconditionError("job " + S(job) + " has no artifact files under 'weights/'"));
  r = rig.Request("m", job);
  r.parent = V(1);
  CHECK(refused(r) == absl::NotFoundError("parent version: model 'm' has no version 1"));
  r.parent = A("production");
  CHECK(refused(r) == absl::NotFoundError("parent version: model 'm' has no alias 'production'"));
  r = rig.Request("m", job);
  for (int i = 0; i < 65; ++i) r.tags["k" + S(i)] = "v";
  CHECK(refused(r) == absl::InvalidArgumentError("65 tags; at most 64 are allowed"));
  r = rig.Request("m", job);
  r.tags["bad key"] = "v";
  CHECK(refused(r).code() == absl::StatusCode::kInvalidArgument);
  r = rig.Request("m", job);
  r.description = std::string(16385, 'd');
  CHECK(refused(r) ==
        absl::InvalidArgumentError("field 'description' is 16385 bytes; at most 16384"));
  r = rig.Request("m", job);
  r.params_json = "[1]";
  CHECK(refused(r) == absl::InvalidArgumentError("field 'params' must be a JSON object"));
  r.params_json = R"({"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}})";
  CHECK(refused(r) ==
        absl::InvalidArgumentError("field 'params' is nested more than 8 levels deep"));
  r.params_json = "{\"x\":\"" + std::string(70000, 'p') + "\"}";
  CHECK(refused(r) ==
        absl::InvalidArgumentError("field 'params' is 70008 bytes as JSON; at most 65536"));
  r = rig.Request("m", job);
  r.metrics_json = R"({"loss":"low"})";
  CHECK(refused(r) == absl::InvalidArgumentError("metric 'loss' must be a number"));
  r = rig.Request("m", job);
  r.datasets = {{"data/x", "ABC", ""}};
  CHECK(refused(r) ==
        absl::InvalidArgumentError("datasets[0].sha256 must be 64 lowercase hex digits"));
  r.datasets = {{"../x", std::string(64, 'a'), ""}};
  CHECK(refused(r) ==
        absl::InvalidArgumentError("datasets[0].path: artifact path '../x': has a '..' segment"));

  // A job that failed, and one whose artifacts expired and were swept.
  const int64_t failed = rig.TrainJob({{"model/w.bin", "w"}}, absl::Hours(1), 1 << 20, "failed");
  CHECK(refused(rig.Request("m", failed)) ==
        absl::FailedPreconditionError("job " + S(failed) +
                                      " is failed; only a succeeded job's artifacts can be "
                                      "registered"));
  f.clock.Advance(absl::Hours(2));
  REQUIRE(rig.artifacts.DeleteExpired(f.clock.Now(), 100).ok());
  CHECK(refused(rig.Request("m", job)) ==
        absl::FailedPreconditionError("job " + S(job) +
                                      " has no artifacts (none uploaded, or expired)"));
  // The model rows made on the way were rolled back with each refusal.
  CHECK(f.Count("SELECT count(*) FROM models") == 0);
}

TEST_CASE("models: RegisterVersion runs inside the caller's transaction, as a job's finish will",
          "[db]") {
  DbFixture f;
  ModelRig rig(f);
  // The job's artifacts committed while it ran; the finish marks it succeeded and registers
  // in one transaction. A rollback leaves neither.
  f.CreatePipeline({Job("train")});
  store::ClaimedJob c = f.ClaimOne(rig.agent);
  REQUIRE(rig.artifacts
              .Commit(c.job_id, c.attempt, f.repo_id,
                      {rig.Put("a.bin", "A", 1 << 20), rig.Put("sub/b.bin", "B", 1 << 20)},
                      f.clock.Now(), f.clock.Now() + absl::Hours(1))
              .ok());
  store::RegisterVersionRequest req = rig.Request("m", c.job_id);
  req.path = "";  // every file of the job
  for (const bool commit : {false, true}) {
    absl::Status s = store::InTransaction(f.db, [&](pqxx::work& tx, store::Connection& conn) {
      tx.exec(
          "UPDATE jobs SET state = 'succeeded', finished_at = now(), attempt_token = NULL, "
          "lease_expires_at = NULL WHERE id = " +
          S(c.job_id));
      auto v = store::RegisterVersion(tx, conn, req);
      if (!v.ok()) return v.status();
      if (v->version != 1 || v->files != 2 || v->source_path != "") {
        return absl::InternalError("unexpected version");
      }
      return commit ? absl::OkStatus() : absl::AbortedError("the finish failed later");
    });
    if (!commit) {
      CHECK(s == absl::AbortedError("the finish failed later"));
      CHECK(f.Count("SELECT count(*) FROM models") == 0);
      CHECK(f.JobState(c.job_id) == "assigned");
    } else {
      REQUIRE(s.ok());
    }
  }
  CHECK(f.Query("SELECT path FROM model_version_files ORDER BY path") ==
        Rows{{"a.bin"}, {"sub/b.bin"}});
  CHECK(f.One("SELECT last_version FROM models") == "1");
}

TEST_CASE("models: a sweep while a registration is open skips that job's artifacts and chunks",
          "[db]") {
  DbFixture f;
  ModelRig rig(f);
  const int64_t job = rig.TrainJob({{"model/w.bin", "weights"}}, absl::Hours(1));
  const absl::Time later = f.clock.Now() + absl::Hours(48);
  auto blob = [&] { return rig.blobs->PathOf(HexSha256("weights")); };
  absl::Status s = store::InTransaction(f.db, [&](pqxx::work& tx, store::Connection& conn) {
    auto v = store::RegisterVersion(tx, conn, rig.Request("m", job));
    if (!v.ok()) return v.status();
    // Another replica sweeps now, on its own connections: the expired manifest is locked by
    // this registration (skipped), so its chunk is still referenced.
    auto expired = rig.artifacts.DeleteExpired(later, 100);
    auto chunks = rig.artifacts.DeleteUnreferencedChunks(
        later, 100, [&](const std::string& h) { return rig.blobs->Delete(h); });
    if (!expired.ok() || !chunks.ok() || *expired != 0 || *chunks != 0) {
      return absl::InternalError("the sweep touched a job being registered");
    }
    return absl::OkStatus();
  });
  REQUIRE(s.ok());
  // Once registered, the manifest goes; the chunk stays for the version.
  CHECK(*rig.artifacts.DeleteExpired(later, 100) == 1);
  CHECK(*rig.artifacts.DeleteUnreferencedChunks(
            later, 100, [&](const std::string& h) { return rig.blobs->Delete(h); }) == 0);
  CHECK(std::filesystem::exists(blob()));
}

TEST_CASE("models: the database keeps lineage within one model and aliases on real versions",
          "[db]") {
  DbFixture f;
  ModelRig rig(f);
  rig.Register("a", rig.TrainJob({{"model/w", "1"}}));
  rig.Register("a", rig.TrainJob({{"model/w", "2"}}));
  rig.Register("a", rig.TrainJob({{"model/w", "2b"}}));
  rig.Register("b", rig.TrainJob({{"model/w", "3"}}));
  // b has no version 2: a parent naming a's version 2 in b is refused by the foreign key.
  const std::string b = f.One("SELECT id FROM models WHERE name = 'b'");
  CHECK_THROWS_WITH(
      f.Exec("UPDATE model_versions SET version = 9, parent_version = 2 WHERE model_id = " + b),
      Catch::Contains("model_versions_model_id_parent_version_fkey"));
  CHECK_THROWS_WITH(f.Exec("INSERT INTO model_aliases VALUES (" + b + ", 'prod', 2, now())"),
                    Catch::Contains("model_aliases_model_id_version_fkey"));
  CHECK_THROWS_WITH(f.Exec("INSERT INTO model_aliases VALUES (" + b + ", '42', 1, now())"),
                    Catch::Contains("model_aliases_alias_check"));
  // Through the store: a's version 2 is not b's.
  auto r = rig.Request("b", rig.TrainJob({{"model/w", "4"}}));
  r.parent = V(2);
  CHECK(rig.models.RegisterVersion(r).status() ==
        absl::NotFoundError("parent version: model 'b' has no version 2"));
}

TEST_CASE("models: concurrent registrations of one model get versions 1 to N, none twice", "[db]") {
  DbFixture f;
  ModelRig rig(f);
  constexpr int kThreads = 8;
  std::vector<int64_t> jobs;
  for (int i = 0; i < kThreads; ++i) jobs.push_back(rig.TrainJob({{"model/w", "w" + S(i)}}));
  store::Db pool(f.tdb.dsn(), kThreads);
  store::ModelStore models(&pool);
  std::vector<absl::StatusOr<store::ModelVersion>> got(kThreads, absl::UnknownError("not run"));
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      got[i] = models.RegisterVersion(rig.Request("racer", jobs[i]));
    });
  }
  for (auto& t : threads) t.join();
  std::set<int> versions;
  for (const auto& v : got) {
    INFO(v.status().ToString());
    REQUIRE(v.ok());
    versions.insert(v->version);
  }
  CHECK(versions == std::set<int>{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(f.Query("SELECT count(*), count(DISTINCT job_id), max(version) FROM model_versions") ==
        Rows{{"8", "8", "8"}});
  CHECK(f.One("SELECT last_version FROM models WHERE name = 'racer'") == "8");
}

TEST_CASE(
    "models: aliases set, move and delete, each change audited, a missing version "
    "changes nothing",
    "[db]") {
  DbFixture f;
  ModelRig rig(f);
  for (int i = 0; i < 3; ++i) rig.Register("m", rig.TrainJob({{"model/w", S(i)}}));
  auto who = rig.Admin("first cut");
  who.actor = "alice";
  auto set = rig.models.SetAlias("m", "production", V(1), who);
  REQUIRE(set.ok());
  CHECK(set->version == 1);
  CHECK(set->previous == std::nullopt);
  CHECK(set->changed);
  f.clock.Advance(absl::Seconds(10));
  auto moved = rig.models.SetAlias("m", "production", V(3), rig.Admin("better eval"));
  REQUIRE(moved.ok());
  CHECK(moved->previous == 1);
  // The same again: nothing changes, no audit row.
  auto same = rig.models.SetAlias("m", "production", V(3), rig.Admin("again"));
  REQUIRE(same.ok());
  CHECK_FALSE(same->changed);
  // An alias names a version wherever one is accepted.
  auto copy = rig.models.SetAlias("m", "staging", A("production"), rig.Admin());
  REQUIRE(copy.ok());
  CHECK(copy->version == 3);
  auto byalias = rig.models.GetVersion("m", A("staging"));
  REQUIRE(byalias.ok());
  CHECK(byalias->version == 3);
  CHECK(byalias->aliases == std::vector<std::string>{"production", "staging"});
  // A version that does not exist: 404 naming it, the alias unchanged, no audit row.
  CHECK(rig.models.SetAlias("m", "production", V(9), rig.Admin()).status() ==
        absl::NotFoundError("model 'm' has no version 9"));
  CHECK(rig.models.SetAlias("m", "production", A("canary"), rig.Admin()).status() ==
        absl::NotFoundError("model 'm' has no alias 'canary'"));
  CHECK(rig.models.SetAlias("nope", "production", V(1), rig.Admin()).status() ==
        absl::NotFoundError("model 'nope' not found"));
  CHECK(
      rig.models.SetAlias("m", "123", V(1), rig.Admin()).status() ==
      absl::InvalidArgumentError("alias '123' must not be a number (it would read as a version)"));
  CHECK(rig.models.SetAlias("m", "Prod", V(1), rig.Admin()).status().code() ==
        absl::StatusCode::kInvalidArgument);
  auto long_reason = rig.Admin(std::string(1025, 'r'));
  CHECK(rig.models.SetAlias("m", "production", V(2), long_reason).status() ==
        absl::InvalidArgumentError("field 'reason' is 1025 bytes; at most 1024"));
  f.clock.Advance(absl::Seconds(10));
  auto gone = rig.models.DeleteAlias("m", "production", rig.Admin("retired"));
  REQUIRE(gone.ok());
  CHECK(*gone == 3);
  CHECK(rig.models.DeleteAlias("m", "production", rig.Admin()).status() ==
        absl::NotFoundError("model 'm' has no alias 'production'"));
  CHECK(f.Query("SELECT alias, version FROM model_aliases") == Rows{{"staging", "3"}});
  CHECK(
      f.Query("SELECT model_name, alias, from_version, to_version, principal, client_addr, "
              "actor, reason, (extract(epoch from at))::bigint FROM model_alias_events "
              "ORDER BY id") ==
      Rows{
          {"m", "production", "NULL", "1", "admin", "127.0.0.1", "alice", "first cut",
           "1700000000"},
          {"m", "production", "1", "3", "admin", "127.0.0.1", "NULL", "better eval", "1700000010"},
          {"m", "staging", "NULL", "3", "admin", "127.0.0.1", "NULL", "", "1700000010"},
          {"m", "production", "3", "NULL", "admin", "127.0.0.1", "NULL", "retired", "1700000020"}});
  auto history = rig.models.AliasHistory("m", "production", 50);
  REQUIRE(history.ok());
  REQUIRE(history->size() == 3);
  CHECK((*history)[0].to_version == std::nullopt);
  CHECK((*history)[2].actor == "alice");
  // Archiving a version an alias points at is refused; then the alias cannot go to it.
  CHECK(rig.models.UpdateVersion("m", V(3), std::nullopt, "archived").status() ==
        absl::FailedPreconditionError(
            "version 3 of 'm' has aliases (staging); move them before archiving"));
  REQUIRE(rig.models.UpdateVersion("m", V(2), "old", "archived").ok());
  CHECK(rig.models.SetAlias("m", "staging", V(2), rig.Admin()).status() ==
        absl::FailedPreconditionError("version 2 of 'm' is archived; it cannot take an alias"));
  // Deleting the model: refused while aliases point at it, unless forced; the audit stays.
  CHECK(rig.models.DeleteModel("m", false) ==
        absl::FailedPreconditionError("model 'm' has aliases (staging → 3); delete them first, "
                                      "or delete with force=true"));
  REQUIRE(rig.models.DeleteModel("m", true).ok());
  CHECK(f.Count("SELECT count(*) FROM model_versions") == 0);
  CHECK(f.Query("SELECT count(*), count(model_id) FROM model_alias_events") == Rows{{"4", "0"}});
}

TEST_CASE("models: concurrent alias moves leave an audit chain that ends at the final alias",
          "[db]") {
  DbFixture f;
  ModelRig rig(f);
  for (int i = 0; i < 5; ++i) rig.Register("m", rig.TrainJob({{"model/w", S(i)}}));
  constexpr int kThreads = 6, kMoves = 15;
  store::Db pool(f.tdb.dsn(), kThreads);
  store::ModelStore models(&pool);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < kMoves; ++i) {
        auto who = rig.Admin("thread " + S(t));
        absl::Status s = (rng() % 5 == 0)
                             ? models.DeleteAlias("m", "prod", who).status()
                             : models.SetAlias("m", "prod", V(1 + rng() % 5), who).status();
        if (!s.ok() && s.code() != absl::StatusCode::kNotFound) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures.load() == 0);
  // Replaying the audit from nothing gives the alias as it is: each row starts where the one
  // before it ended.
  Rows events = f.Query(
      "SELECT coalesce(from_version::text, '-'), coalesce(to_version::text, '-') FROM "
      "model_alias_events ORDER BY id");
  REQUIRE(!events.empty());
  std::string current = "-";
  for (const auto& e : events) {
    CHECK(e[0] == current);
    CHECK(e[0] != e[1]);
    current = e[1];
  }
  Rows alias = f.Query("SELECT version FROM model_aliases WHERE alias = 'prod'");
  CHECK(current == (alias.empty() ? "-" : alias[0][0]));
}

TEST_CASE(
    "models: the sweeper never deletes a version's chunks: after the job's artifacts expire, the "
    "version's files stay byte-identical",
    "[db]") {
  DbFixture f;
  ModelRig rig(f);
  const std::string weights = ModelBytes(3 * 1000 + 17, 5), shared = "shared with the log";
  const int64_t job = rig.TrainJob(
      {{"model/weights.bin", weights}, {"model/shared.txt", shared}, {"other.txt", "gone"}},
      absl::Hours(1), 1000);
  rig.Register("m", job);
  artifacts::SweeperOptions so;
  so.chunk_grace = absl::Minutes(1);
  artifacts::Sweeper sweeper(&rig.artifacts, rig.blobs.get(), &f.clock, so);
  f.clock.Advance(absl::Hours(2));
  auto n = sweeper.RunOnce();
  REQUIRE(n.ok());
  CHECK(n->manifests == 1);
  CHECK(n->chunks == 1);  // other.txt's only
  CHECK(f.Count("SELECT count(*) FROM artifacts") == 0);
  CHECK_FALSE(rig.blobs->Has(HexSha256("gone")).value());
  auto files = rig.models.Files("m", V(1));
  REQUIRE(files.ok());
  REQUIRE(files->size() == 2);
  for (const auto& file : *files) {
    std::string bytes;
    for (const auto& h : file.chunks) bytes += rig.blobs->Read(h, 0, -1).value();
    CHECK(bytes == (file.path == "weights.bin" ? weights : shared));
    CHECK(HexSha256(bytes) == file.sha256);
  }
  // Once the model is deleted, its chunks go with the next sweep.
  REQUIRE(rig.models.DeleteModel("m", false).ok());
  n = sweeper.RunOnce();
  REQUIRE(n.ok());
  CHECK(n->chunks == 5);
  CHECK(f.Count("SELECT count(*) FROM artifact_chunks") == 0);
}

}  // namespace
}  // namespace assay::dbtest
