// The commit-status outbox (migration 0004) on a real PostgreSQL: what is due, claimed once,
// skipped while locked, split between concurrent claimers; repo settings round trip.

#include <algorithm>
#include <barrier>
#include <set>
#include <thread>

#include "common/crypto/crypto.h"
#include "server/store/migrations.h"
#include "server/store/status_outbox.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

void TurnOn(DbFixture& f) {
  store::CommitStatusSettings s;
  s.api_url = "https://api.github.com";
  s.token_sealed = "sealed-bytes\x01\x02";
  s.context = "ci/assay";
  auto r = f.repos.SetCommitStatus(f.repo_id, s);
  REQUIRE(r.ok());
}

TEST_CASE("status outbox: a new pipeline is due once; each state change once more", "[db]") {
  DbFixture f;
  TurnOn(f);
  store::StatusOutbox outbox(&f.db);
  int64_t pid = f.CreatePipeline({Job("build")});
  auto due = outbox.Claim(10);
  REQUIRE(due.ok());
  REQUIRE(due->size() == 1);
  const store::DueStatus& d = (*due)[0];
  CHECK(d.pipeline_id == pid);
  CHECK(d.state == "running");
  CHECK(d.commit_sha == kSha);
  CHECK(d.repo_name == "acme/app");
  CHECK(d.provider == "github");
  CHECK(d.api_url == "https://api.github.com");
  CHECK(d.token_sealed == std::string("sealed-bytes\x01\x02"));
  CHECK(d.repository == "");
  CHECK(d.context == "ci/assay");
  CHECK(f.One("SELECT status_reported FROM pipelines WHERE id = " + std::to_string(pid)) ==
        "running");
  CHECK(outbox.Claim(10)->empty());

  REQUIRE(f.pipelines.Cancel(pid).ok());
  due = outbox.Claim(10);
  REQUIRE(due.ok());
  REQUIRE(due->size() == 1);
  CHECK((*due)[0].state == "canceled");
  CHECK(outbox.Claim(10)->empty());
}

TEST_CASE("status outbox: pipelines of repos with reporting off are never due", "[db]") {
  DbFixture f;
  store::StatusOutbox outbox(&f.db);
  int64_t pid = f.CreatePipeline({Job("build")});
  CHECK(f.One("SELECT status_reported FROM pipelines WHERE id = " + std::to_string(pid)) ==
        "running");
  CHECK(outbox.Claim(10)->empty());
  REQUIRE(f.pipelines.Cancel(pid).ok());
  CHECK(outbox.Claim(10)->empty());
  CHECK(f.Count("SELECT count(*) FROM pipelines WHERE status_reported IS DISTINCT FROM state") ==
        0);
  // Turning reporting on later reports only what changes afterwards.
  int64_t second = f.CreatePipeline({Job("build")});
  TurnOn(f);
  CHECK(outbox.Claim(10)->empty());
  REQUIRE(f.pipelines.Cancel(second).ok());
  auto due = outbox.Claim(10);
  REQUIRE(due.ok());
  REQUIRE(due->size() == 1);
  CHECK((*due)[0].pipeline_id == second);
  CHECK((*due)[0].state == "canceled");
  CHECK((*due)[0].api_url == "https://api.github.com");
}

TEST_CASE("status outbox: a row locked elsewhere is skipped, not waited for", "[db]") {
  DbFixture f;
  TurnOn(f);
  store::StatusOutbox outbox(&f.db);
  int64_t p1 = f.CreatePipeline({Job("build")});
  store::NewPipeline second = f.Pipeline({Job("build")});
  auto p2 = f.pipelines.Create(second);
  REQUIRE(p2.ok());
  {
    pqxx::work tx(f.raw);  // another replica (or the dispatcher) holds p1's row lock
    tx.exec("SELECT 1 FROM pipelines WHERE id = " + std::to_string(p1) + " FOR UPDATE");
    auto due = outbox.Claim(10);
    REQUIRE(due.ok());
    REQUIRE(due->size() == 1);
    CHECK((*due)[0].pipeline_id == *p2);
    tx.commit();
  }
  auto due = outbox.Claim(10);
  REQUIRE(due.ok());
  REQUIRE(due->size() == 1);
  CHECK((*due)[0].pipeline_id == p1);
}

TEST_CASE("status outbox: concurrent claimers split the due pipelines, none twice", "[db]") {
  DbFixture f;
  TurnOn(f);
  std::set<int64_t> created;
  for (int i = 0; i < 60; ++i) created.insert(f.CreatePipeline({Job("build")}));
  store::Db db2(f.tdb.dsn(), 2);
  store::StatusOutbox a(&f.db), b(&db2);
  std::vector<int64_t> got_a, got_b;
  absl::Status err_a, err_b;  // Why not REQUIRE in the threads: Catch2 is not thread-safe
  std::barrier start(2);
  auto run = [&](store::StatusOutbox& o, std::vector<int64_t>& got, absl::Status& err) {
    start.arrive_and_wait();
    for (;;) {
      auto due = o.Claim(7);
      if (!due.ok()) {
        err = due.status();
        return;
      }
      if (due->empty()) return;
      for (const auto& d : *due) got.push_back(d.pipeline_id);
    }
  };
  std::thread ta([&] { run(a, got_a, err_a); });
  std::thread tb([&] { run(b, got_b, err_b); });
  ta.join();
  tb.join();
  CHECK(err_a.ok());
  CHECK(err_b.ok());
  std::vector<int64_t> all = got_a;
  all.insert(all.end(), got_b.begin(), got_b.end());
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<int64_t>(created.begin(), created.end()));
}

TEST_CASE("repos: commit status settings round trip; off clears them", "[db]") {
  DbFixture f;
  store::CommitStatusSettings s;
  s.api_url = "https://gitlab.example.com";
  s.token_sealed = "sealed";
  s.repository = "group/sub/app";
  auto on = f.repos.SetCommitStatus(f.repo_id, s);
  REQUIRE(on.ok());
  CHECK(on->status_api_url == "https://gitlab.example.com");
  CHECK(on->status_token_sealed == "sealed");
  CHECK(on->status_repository == "group/sub/app");
  CHECK(on->status_context == "");
  CHECK(f.repos.Get(f.repo_id)->status_repository == "group/sub/app");
  auto off = f.repos.SetCommitStatus(f.repo_id, std::nullopt);
  REQUIRE(off.ok());
  CHECK(off->status_api_url == "");
  CHECK(off->status_token_sealed == "");
  CHECK(f.Query("SELECT status_api_url, status_token_enc, status_repository, status_context "
                "FROM repos") == Rows{{"NULL", "NULL", "NULL", "NULL"}});
  auto missing = f.repos.SetCommitStatus(999, std::nullopt);
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK(missing.status().message() == "repository 999 does not exist");
}

TEST_CASE("migration 0004: pipelines from before it are not reported", "[db]") {
  testing::TestDatabase tdb(false);
  pqxx::connection c(tdb.dsn());
  std::vector<store::Migration> first;
  for (const auto& m : store::EmbeddedMigrations()) {
    if (m.version < 4) first.push_back(m);
  }
  REQUIRE(store::ApplyMigrations(c, first).ok());
  {
    pqxx::work tx(c);
    tx.exec("INSERT INTO repos (name, provider, clone_url) VALUES ('a/b', 'github', 'x')");
    tx.exec(std::string("INSERT INTO pipelines (repo_id, event, ref, commit_sha, state, "
                        "finished_at) VALUES (1, 'push', 'refs/heads/main', '") +
            kSha + "', 'succeeded', now())");
    tx.exec(std::string("INSERT INTO pipelines (repo_id, event, ref, commit_sha, state) VALUES "
                        "(1, 'push', 'refs/heads/main', '") +
            kSha + "', 'running')");
    tx.commit();
  }
  REQUIRE(store::ApplyMigrations(c, store::EmbeddedMigrations()).ok());
  store::Db db(tdb.dsn(), 1);
  store::StatusOutbox outbox(&db);
  CHECK(outbox.Claim(10)->empty());
}

}  // namespace
}  // namespace assay::dbtest
