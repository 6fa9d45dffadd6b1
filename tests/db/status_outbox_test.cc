// The commit-status outbox (migrations 0004, 0006) on a real PostgreSQL: what is due, claimed
// under a lease, superseded, fenced, skipped while locked, split between concurrent claimers;
// repo settings round trip.

#include <algorithm>
#include <barrier>
#include <map>
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

TEST_CASE("status outbox: a new pipeline is due once, each state change once more", "[db]") {
  DbFixture f;
  TurnOn(f);
  store::StatusOutbox outbox(&f.db);
  int64_t pid = f.CreatePipeline({Job("build")});
  auto due = outbox.Claim(10);
  REQUIRE(due.ok());
  REQUIRE(due->size() == 1);
  const store::DueStatus d = (*due)[0];
  CHECK(d.pipeline_id == pid);
  CHECK(d.repo_id == f.repo_id);
  CHECK(d.state == "running");
  CHECK(d.commit_sha == kSha);
  CHECK(d.repo_name == "acme/app");
  CHECK(d.provider == "github");
  CHECK(d.api_url == "https://api.github.com");
  CHECK(d.token_sealed == std::string("sealed-bytes\x01\x02"));
  CHECK(d.repository == "");
  CHECK(d.context == "ci/assay");
  // Claimed is not done: nobody else may take it, and it stays queued until completed.
  CHECK(outbox.Claim(10)->empty());
  CHECK(f.Count("SELECT count(*) FROM commit_status_outbox") == 1);
  CHECK(*outbox.Renew(d) == store::LeaseCheck::kHeld);
  CHECK(*outbox.Complete(d));
  CHECK(f.Count("SELECT count(*) FROM commit_status_outbox") == 0);
  CHECK(outbox.Claim(10)->empty());

  REQUIRE(f.pipelines.Cancel(pid).ok());
  due = outbox.Claim(10);
  REQUIRE(due.ok());
  REQUIRE(due->size() == 1);
  CHECK((*due)[0].state == "canceled");
  CHECK((*due)[0].outbox_id > d.outbox_id);
  CHECK(outbox.Claim(10)->empty());
}

TEST_CASE("status outbox: pipelines of repos with reporting off are never due", "[db]") {
  DbFixture f;
  store::StatusOutbox outbox(&f.db);
  int64_t pid = f.CreatePipeline({Job("build")});
  CHECK(outbox.Claim(10)->empty());
  REQUIRE(f.pipelines.Cancel(pid).ok());
  CHECK(outbox.Claim(10)->empty());
  CHECK(f.Count("SELECT count(*) FROM commit_status_outbox") == 0);
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

TEST_CASE("status outbox: a state queued behind a claim waits for it, then supersedes it", "[db]") {
  DbFixture f;
  TurnOn(f);
  store::StatusOutbox outbox(&f.db);
  // Ended before anything was claimed: only the final state is sent.
  int64_t early = f.PipelineOn(ShaOf(1));
  REQUIRE(f.pipelines.Cancel(early).ok());
  int64_t pid = f.PipelineOn(ShaOf(2));
  auto due = outbox.Claim(10);
  REQUIRE(due.ok());
  REQUIRE(due->size() == 2);
  std::map<int64_t, store::DueStatus> by_pipeline;
  for (const auto& d : *due) by_pipeline[d.pipeline_id] = d;
  CHECK(by_pipeline[early].state == "canceled");
  CHECK(f.Count("SELECT count(*) FROM commit_status_outbox WHERE pipeline_id = " +
                std::to_string(early)) == 1);
  const store::DueStatus running = by_pipeline[pid];
  CHECK(running.state == "running");

  REQUIRE(f.pipelines.Cancel(pid).ok());
  CHECK(outbox.Claim(10)->empty());  // the commit is held by `running`'s claim
  CHECK(*outbox.Renew(running) == store::LeaseCheck::kSuperseded);
  CHECK(*outbox.Complete(running));
  due = outbox.Claim(10);
  REQUIRE(due.ok());
  REQUIRE(due->size() == 1);
  CHECK((*due)[0].pipeline_id == pid);
  CHECK((*due)[0].state == "canceled");
}

TEST_CASE("status outbox: a lease that ran out is claimed again, the late holder is fenced",
          "[db]") {
  DbFixture f;
  TurnOn(f);
  store::Db db2(f.tdb.dsn(), 1);
  store::StatusOutbox a(&f.db), b(&db2);
  f.CreatePipeline({Job("build")});
  auto first = a.Claim(10);
  REQUIRE(first->size() == 1);
  CHECK(b.Claim(10)->empty());
  f.Exec("UPDATE commit_status_commits SET leased_until = now() - interval '1 second'");
  auto second = b.Claim(10);
  REQUIRE(second->size() == 1);
  CHECK((*second)[0].outbox_id == (*first)[0].outbox_id);
  CHECK((*second)[0].lease_token != (*first)[0].lease_token);
  CHECK(*a.Renew((*first)[0]) == store::LeaseCheck::kLost);
  CHECK(*a.Complete((*first)[0]) == false);
  CHECK(a.Release((*first)[0]).ok());  // a no-op: b holds it
  CHECK(*b.Renew((*second)[0]) == store::LeaseCheck::kHeld);
  CHECK(*b.Complete((*second)[0]));
  CHECK(f.Count("SELECT count(*) FROM commit_status_outbox") == 0);
}

TEST_CASE("status outbox: a released claim is claimed again at once", "[db]") {
  DbFixture f;
  TurnOn(f);
  store::StatusOutbox outbox(&f.db);
  f.CreatePipeline({Job("build")});
  auto first = outbox.Claim(10);
  REQUIRE(first->size() == 1);
  REQUIRE(outbox.Release((*first)[0]).ok());
  auto again = outbox.Claim(10);
  REQUIRE(again->size() == 1);
  CHECK((*again)[0].outbox_id == (*first)[0].outbox_id);
  CHECK(*outbox.Renew((*first)[0]) == store::LeaseCheck::kLost);
}

TEST_CASE("status outbox: a state older than the delivered one is never sent", "[db]") {
  DbFixture f;
  TurnOn(f);
  store::StatusOutbox outbox(&f.db);
  int64_t pid = f.CreatePipeline({Job("build")});
  auto due = outbox.Claim(10);
  REQUIRE(due->size() == 1);
  REQUIRE(*outbox.Complete((*due)[0]));
  // A transaction that took its id before the delivered state's but committed after it.
  f.Exec(
      "INSERT INTO commit_status_outbox (id, pipeline_id, repo_id, commit_sha, state) "
      "VALUES (" +
      std::to_string((*due)[0].outbox_id - 1) + ", " + std::to_string(pid) + ", " +
      std::to_string(f.repo_id) + ", '" + kSha + "', 'running')");
  CHECK(outbox.Claim(10)->empty());
  CHECK(f.Count("SELECT count(*) FROM commit_status_outbox") == 0);
}

TEST_CASE("status outbox: a row locked elsewhere is skipped, not waited for", "[db]") {
  DbFixture f;
  TurnOn(f);
  store::StatusOutbox outbox(&f.db);
  f.PipelineOn(ShaOf(1));
  f.PipelineOn(ShaOf(2));
  {
    pqxx::work tx(f.raw);  // another replica holds the first commit's row lock
    tx.exec("SELECT 1 FROM commit_status_commits WHERE commit_sha = '" + ShaOf(1) + "' FOR UPDATE");
    auto due = outbox.Claim(10);
    REQUIRE(due.ok());
    REQUIRE(due->size() == 1);
    CHECK((*due)[0].commit_sha == ShaOf(2));
    tx.commit();
  }
  auto due = outbox.Claim(10);
  REQUIRE(due.ok());
  REQUIRE(due->size() == 1);
  CHECK((*due)[0].commit_sha == ShaOf(1));
}

TEST_CASE("status outbox: concurrent claimers split the due commits, none twice", "[db]") {
  DbFixture f;
  TurnOn(f);
  std::set<int64_t> created;
  for (int i = 0; i < 60; ++i) created.insert(f.PipelineOn(ShaOf(i + 1)));
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

TEST_CASE("repos: commit status settings round trip, off clears them", "[db]") {
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

TEST_CASE("migration 0006: what 0004 had not handed over is still due", "[db]") {
  testing::TestDatabase tdb(false);
  pqxx::connection c(tdb.dsn());
  std::vector<store::Migration> first;
  for (const auto& m : store::EmbeddedMigrations()) {
    if (m.version < 6) first.push_back(m);
  }
  REQUIRE(store::ApplyMigrations(c, first).ok());
  {
    pqxx::work tx(c);
    tx.exec(
        "INSERT INTO repos (name, provider, clone_url, status_api_url, status_token_enc) "
        "VALUES ('a/b', 'github', 'x', 'https://api.github.com', 'sealed')");
    tx.exec(std::string("INSERT INTO pipelines (repo_id, event, ref, commit_sha, state) VALUES "
                        "(1, 'push', 'refs/heads/main', '") +
            kSha + "', 'running')");  // due
    tx.exec(std::string("INSERT INTO pipelines (repo_id, event, ref, commit_sha, state) VALUES "
                        "(1, 'push', 'refs/heads/main', '") +
            ShaOf(7) + "', 'running')");
    tx.exec("UPDATE pipelines SET status_reported = state WHERE id = 2");  // handed over
    tx.commit();
  }
  REQUIRE(store::ApplyMigrations(c, store::EmbeddedMigrations()).ok());
  store::Db db(tdb.dsn(), 1);
  store::StatusOutbox outbox(&db);
  auto due = outbox.Claim(10);
  REQUIRE(due.ok());
  REQUIRE(due->size() == 1);
  CHECK((*due)[0].pipeline_id == 1);
  CHECK((*due)[0].state == "running");
}

}  // namespace
}  // namespace assay::dbtest
