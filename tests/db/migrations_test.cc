// Migrations on a real PostgreSQL: from zero, idempotent, serialized by the advisory lock,
// and all-or-nothing when one fails.

#include <pqxx/pqxx>

#include <algorithm>
#include <barrier>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "server/store/migrations.h"
#include "tests/support/test_db.h"

namespace assay {
namespace {

using Rows = std::vector<std::vector<std::string>>;

Rows Query(const std::string& dsn, const std::string& sql) {
  pqxx::connection c(dsn);
  pqxx::nontransaction tx(c);
  Rows out;
  for (const auto& row : tx.exec(sql)) {
    std::vector<std::string> r;
    for (const auto& f : row) r.push_back(f.is_null() ? "NULL" : f.as<std::string>());
    out.push_back(std::move(r));
  }
  return out;
}

const char* kTables =
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
    "ORDER BY table_name";
const char* kLedger = "SELECT version, name FROM schema_migrations ORDER BY version";

// Every embedded migration, as the ledger lists them and as ApplyMigrations reports them.
Rows AllLedger() {
  Rows out;
  for (const auto& m : store::EmbeddedMigrations()) {
    out.push_back({std::to_string(m.version), m.name});
  }
  return out;
}
std::vector<int> AllVersions() {
  std::vector<int> out;
  for (const auto& m : store::EmbeddedMigrations()) out.push_back(m.version);
  return out;
}

TEST_CASE("migrations: an empty database gets every version once", "[db]") {
  testing::TestDatabase tdb(false);
  REQUIRE(Query(tdb.dsn(), kTables).empty());
  pqxx::connection c(tdb.dsn());

  auto first = store::ApplyMigrations(c, store::EmbeddedMigrations());
  REQUIRE(first.ok());
  CHECK(AllLedger() == Rows{{"1", "0001_init.sql"},
                            {"2", "0002_scheduling.sql"},
                            {"3", "0003_triggers.sql"},
                            {"4", "0004_commit_status.sql"},
                            {"5", "0005_agent_generation.sql"},
                            {"6", "0006_commit_status_leases.sql"},
                            {"7", "0007_webhook_replays.sql"},
                            {"8", "0008_agent_credentials.sql"},
                            {"9", "0009_clone_credentials.sql"},
                            {"10", "0010_untrusted_agents.sql"},
                            {"11", "0011_log_quota.sql"},
                            {"12", "0012_agent_executors.sql"},
                            {"13", "0013_artifacts.sql"},
                            {"14", "0014_secrets.sql"},
                            {"15", "0015_logs.sql"},
                            {"16", "0016_lifecycle.sql"},
                            {"17", "0017_build_image.sql"},
                            {"18", "0018_cache.sql"},
                            {"19", "0019_models.sql"},
                            {"20", "0020_evals.sql"},
                            {"21", "0021_train.sql"},
                            {"22", "0022_eval_models.sql"},
                            {"23", "0023_sweeps.sql"},
                            {"24", "0024_users.sql"},
                            {"25", "0025_events.sql"},
                            {"26", "0026_retry.sql"},
                            {"27", "0027_deployments.sql"},
                            {"28", "0028_traces.sql"}});
  CHECK(*first == AllVersions());
  CHECK(Query(tdb.dsn(), kTables) == Rows{{"agent_enrollment_tokens"},
                                          {"agents"},
                                          {"api_tokens"},
                                          {"artifact_chunk_refs"},
                                          {"artifact_chunks"},
                                          {"artifact_files"},
                                          {"artifacts"},
                                          {"audit_log"},
                                          {"cache_chunk_refs"},
                                          {"cache_entries"},
                                          {"cache_files"},
                                          {"cache_reads"},
                                          {"commit_status_commits"},
                                          {"commit_status_outbox"},
                                          {"deployment_approvals"},
                                          {"deployment_events"},
                                          {"deployments"},
                                          {"environments"},
                                          {"eval_examples"},
                                          {"eval_runs"},
                                          {"job_attempts"},
                                          {"job_images"},
                                          {"job_needs"},
                                          {"jobs"},
                                          {"log_chunks"},
                                          {"model_alias_events"},
                                          {"model_aliases"},
                                          {"model_chunk_refs"},
                                          {"model_tags"},
                                          {"model_version_files"},
                                          {"model_version_tags"},
                                          {"model_versions"},
                                          {"models"},
                                          {"pipelines"},
                                          {"repo_members"},
                                          {"repo_secrets"},
                                          {"repos"},
                                          {"schedules"},
                                          {"schema_migrations"},
                                          {"sessions"},
                                          {"sweep_outcomes"},
                                          {"sweep_stops"},
                                          {"train_checkpoint_chunk_refs"},
                                          {"train_checkpoint_files"},
                                          {"train_checkpoint_reads"},
                                          {"train_checkpoints"},
                                          {"train_metrics"},
                                          {"train_runs"},
                                          {"users"},
                                          {"webhook_deliveries"}});
  CHECK(Query(tdb.dsn(), kLedger) == AllLedger());

  auto again = store::ApplyMigrations(c, store::EmbeddedMigrations());
  REQUIRE(again.ok());
  CHECK(again->empty());
  CHECK(Query(tdb.dsn(), kLedger) == AllLedger());
}

TEST_CASE("migrations: two servers starting at once apply each migration exactly once", "[db]") {
  for (int round = 0; round < 5; ++round) {
    testing::TestDatabase tdb(false);
    pqxx::connection c1(tdb.dsn()), c2(tdb.dsn());
    std::barrier start(2);
    absl::StatusOr<std::vector<int>> r1, r2;
    std::thread t1([&] {
      start.arrive_and_wait();
      r1 = store::ApplyMigrations(c1, store::EmbeddedMigrations());
    });
    std::thread t2([&] {
      start.arrive_and_wait();
      r2 = store::ApplyMigrations(c2, store::EmbeddedMigrations());
    });
    t1.join();
    t2.join();
    REQUIRE(r1.ok());
    REQUIRE(r2.ok());
    std::vector<std::vector<int>> got{*r1, *r2};
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<std::vector<int>>{{}, AllVersions()});
    CHECK(Query(tdb.dsn(), kLedger) == AllLedger());
  }
}

TEST_CASE("migrations: a failing migration changes nothing and is named", "[db]") {
  const store::Migration broken{9999, "9999_broken.sql",
                                "CREATE TABLE half_done (id integer PRIMARY KEY);\n"
                                "ALTER TABLE jobs ADD COLUMN half_column integer;\n"
                                "SELECT no_such_function();\n"};

  SECTION("on top of the embedded versions") {
    testing::TestDatabase tdb(true);
    pqxx::connection c(tdb.dsn());
    std::vector<store::Migration> all = store::EmbeddedMigrations();
    all.push_back(broken);
    auto r = store::ApplyMigrations(c, all);
    REQUIRE(r.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(absl::StartsWith(r.status().message(), "migration 9999_broken.sql failed: "));
    CHECK(absl::StrContains(r.status().message(), "function no_such_function() does not exist"));
    CHECK(Query(tdb.dsn(), kLedger) == AllLedger());
    CHECK(Query(tdb.dsn(), "SELECT to_regclass('half_done') IS NULL") == Rows{{"t"}});
    CHECK(Query(tdb.dsn(),
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'jobs' AND "
                "column_name = 'half_column'") == Rows{{"0"}});
    // The connection is still usable and the good migrations still apply cleanly.
    auto ok = store::ApplyMigrations(c, store::EmbeddedMigrations());
    REQUIRE(ok.ok());
    CHECK(ok->empty());
  }

  SECTION("from an empty database: every version is rolled back with it") {
    testing::TestDatabase tdb(false);
    pqxx::connection c(tdb.dsn());
    std::vector<store::Migration> all = store::EmbeddedMigrations();
    all.push_back(broken);
    auto r = store::ApplyMigrations(c, all);
    REQUIRE(r.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(absl::StartsWith(r.status().message(), "migration 9999_broken.sql failed: "));
    CHECK(Query(tdb.dsn(), kTables).empty());
  }
}

}  // namespace
}  // namespace assay
