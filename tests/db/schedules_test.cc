// on.schedule end to end inside one process: a push to the default branch records the schedules,
// ScheduleLoop fires them under a SimulatedClock against a real PostgreSQL and a real git
// repository (exact pipeline rows), month ends, catch-up after downtime, and two loops (two
// "replicas") on one database.

#include <barrier>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "server/pipeline/planner.h"
#include "server/pipeline/schedule_loop.h"
#include "server/store/schedules.h"
#include "tests/db/db_fixture.h"
#include "tests/support/git_repo.h"

namespace assay {
namespace {

using dbtest::Rows;

absl::Time Utc(int y, int mo, int d, int h, int mi) {
  return absl::FromCivil(absl::CivilMinute(y, mo, d, h, mi), absl::UTCTimeZone());
}

std::string Schedule(const std::string& entries) {
  return "on:\n  schedule:\n" + entries +
         "jobs:\n  nightly:\n    steps: ['echo $ASSAY_REF']\n"
         "  only-on-schedule:\n    if: event == 'schedule'\n    steps: [echo]\n";
}

// The database fixture plus a real git repository registered as a repo, a planner with its own
// mirrors dir, and a schedule loop on the fixture's simulated clock (set to `start`).
struct World : dbtest::DbFixture {
  std::string dir;
  testing::GitRepo git;
  store::ScheduleStore schedules{&db, &clock};
  int64_t repo = 0;
  std::unique_ptr<Planner> planner;
  std::unique_ptr<ScheduleLoop> loop;
  int deliveries_sent = 0;

  static std::string TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "assay-sched-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    return t;
  }

  explicit World(absl::Time start) : dir(TempDir()), git(*testing::GitRepo::Init(dir + "/repo")) {
    clock.Advance(start - clock.Now());
    store::NewRepo r;
    r.name = "acme/scheduled";
    r.provider = "github";
    r.clone_url = git.clone_url();
    auto created = repos.Create(r);
    REQUIRE(created.ok());
    repo = created->id;
    planner = MakePlanner(&schedules, dir + "/mirrors");
    planner->Start();
    loop = std::make_unique<ScheduleLoop>(
        ScheduleLoopDeps{&schedules, planner.get(), &clock, absl::Milliseconds(10)});
  }
  ~World() {
    loop.reset();
    planner.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  std::unique_ptr<Planner> MakePlanner(store::ScheduleStore* s, const std::string& mirrors) {
    std::filesystem::create_directories(mirrors);
    PlannerDeps d{&deliveries, &pipelines, &repos, mirrors, nullptr};
    d.schedules = s;
    d.allow_local_repos = true;  // the test repositories are file:// URLs
    return std::make_unique<Planner>(std::move(d));
  }

  // Commits `file` as .assay.yml, delivers a GitHub push of it to `branch` and plans it.
  std::string Push(const std::string& file, const std::string& branch = "main") {
    std::string sha = *git.Commit({{".assay.yml", file}});
    boost::json::object body{
        {"ref", "refs/heads/" + branch},
        {"before", std::string(40, '0')},
        {"after", sha},
        {"repository", {{"clone_url", git.clone_url()}, {"default_branch", "main"}}}};
    store::NewDelivery nd;
    nd.provider = "github";
    nd.delivery_id = absl::StrCat("push-", ++deliveries_sent);
    nd.event = "push";
    nd.repo_id = repo;
    nd.headers_json = "{}";
    nd.body = boost::json::serialize(body);
    auto ins = deliveries.Insert(nd);
    REQUIRE(ins.ok());
    auto planned = planner->PlanDelivery(ins->id);
    INFO(planned.status().ToString());
    REQUIRE(planned.ok());
    return sha;
  }

  Rows ScheduleRows() {
    return Query(
        absl::StrCat("SELECT cron, branch, next_run_at AT TIME ZONE 'UTC' FROM schedules "
                     "WHERE repo_id = ",
                     repo, " ORDER BY id"));
  }

  std::vector<int64_t> Tick() {
    auto fired = loop->Tick();
    INFO(fired.status().ToString());
    REQUIRE(fired.ok());
    return *fired;
  }

  // event, ref, commit, state, scheduled_for of every pipeline, by id.
  Rows Pipelines() {
    return Query(
        "SELECT event, ref, commit_sha, state, coalesce(to_char(scheduled_for AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD HH24:MI'), 'NULL') FROM pipelines ORDER BY id");
  }
};

TEST_CASE("schedules: a push to the default branch records them, the loop fires them",
          "[db][triggers]") {
  World w(Utc(2024, 1, 30, 12, 0));
  std::string first =
      w.Push(Schedule("    - cron: '0  3 * * *'\n    - {cron: '30 4 * * 1', branch: dev}\n"));
  // Recorded with their first slots after now; the cron text normalised.
  CHECK(w.ScheduleRows() == Rows{{"0 3 * * *", "", "2024-01-31 03:00:00"},
                                 {"30 4 * * 1", "dev", "2024-02-05 04:30:00"}});
  // The file has no on.push trigger: the push itself starts nothing, yet it set the schedules.
  CHECK(w.Pipelines().empty());
  CHECK(w.Query("SELECT state, message FROM webhook_deliveries") ==
        Rows{{"ignored", "the pipeline has no on.push trigger"}});

  CHECK(w.Tick().empty());  // nothing due at 12:00
  // A commit the server never heard of: the schedule builds the branch head as it is then.
  std::string head = *w.git.Commit({{"README", "newer"}});
  w.clock.Advance(Utc(2024, 1, 31, 3, 0) - w.clock.Now());
  std::vector<int64_t> fired = w.Tick();
  REQUIRE(fired.size() == 1);
  CHECK(head != first);
  CHECK(w.Pipelines() ==
        Rows{{"schedule", "refs/heads/main", head, "running", "2024-01-31 03:00"}});
  CHECK(w.Query(absl::StrCat("SELECT name, state FROM jobs WHERE pipeline_id = ", fired[0],
                             " ORDER BY name")) ==
        Rows{{"nightly", "queued"}, {"only-on-schedule", "queued"}});
  auto p = w.pipelines.Get(fired[0]);
  REQUIRE(p.ok());
  CHECK(p->scheduled_for == Utc(2024, 1, 31, 3, 0));
  CHECK(p->trusted);
  CHECK(w.ScheduleRows()[0] == std::vector<std::string>{"0 3 * * *", "", "2024-02-01 03:00:00"});
  CHECK(w.Tick().empty());  // the slot is taken

  // The same loop running on its own thread fires the next day's slot.
  w.clock.Advance(absl::Hours(24));
  w.loop->Start();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (w.Count("SELECT count(*) FROM pipelines WHERE event = 'schedule'") < 2 &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  w.loop->Stop();
  CHECK(w.Query("SELECT to_char(scheduled_for AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM "
                "pipelines WHERE event = 'schedule' ORDER BY id") ==
        Rows{{"2024-01-31 03:00"}, {"2024-02-01 03:00"}});
}

TEST_CASE(
    "schedules: only the default branch's file changes them, an unchanged entry keeps "
    "its slot, a file without on.schedule removes them",
    "[db][triggers]") {
  World w(Utc(2024, 1, 30, 12, 0));
  w.Push(Schedule("    - cron: '0 3 * * *'\n"));
  const Rows one = {{"0 3 * * *", "", "2024-01-31 03:00:00"}};
  REQUIRE(w.ScheduleRows() == one);
  w.Push(Schedule("    - cron: '0 5 * * *'\n"), "dev");  // not the default branch
  CHECK(w.ScheduleRows() == one);
  // Due and not yet fired when the next push arrives: the slot is kept, not moved on.
  w.clock.Advance(Utc(2024, 1, 31, 3, 1) - w.clock.Now());
  w.Push(Schedule("    - cron: '0 3 * * *'\n    - cron: '0 6 * * *'\n"));
  CHECK(w.ScheduleRows() ==
        Rows{{"0 3 * * *", "", "2024-01-31 03:00:00"}, {"0 6 * * *", "", "2024-01-31 06:00:00"}});
  // The repository's default branch, learned from the payload, is what counts.
  w.Exec(absl::StrCat("UPDATE repos SET default_branch = 'trunk' WHERE id = ", w.repo));
  w.Push("jobs:\n  a:\n    steps: [echo]\n");  // payload says default_branch main again
  CHECK(w.One(absl::StrCat("SELECT default_branch FROM repos WHERE id = ", w.repo)) == "main");
  CHECK(w.ScheduleRows().empty());
}

TEST_CASE("schedules: month ends and catch-up after downtime fire once", "[db][triggers]") {
  World w(Utc(2024, 1, 30, 12, 0));
  w.Push(Schedule("    - cron: '0 3 31 * *'\n"));
  CHECK(w.ScheduleRows() == Rows{{"0 3 31 * *", "", "2024-01-31 03:00:00"}});
  w.clock.Advance(Utc(2024, 1, 31, 3, 0) - w.clock.Now());
  CHECK(w.Tick().size() == 1);
  // February and April have no 31st.
  CHECK(w.ScheduleRows() == Rows{{"0 3 31 * *", "", "2024-03-31 03:00:00"}});

  // The server was down from March to August: the March, May and July slots fire once, as the
  // first missed slot, and the next one is the first after now.
  w.clock.Advance(Utc(2024, 8, 15, 9, 0) - w.clock.Now());
  std::vector<int64_t> fired = w.Tick();
  REQUIRE(fired.size() == 1);
  CHECK(w.Tick().empty());
  CHECK(w.Query("SELECT to_char(scheduled_for AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM "
                "pipelines WHERE event = 'schedule' ORDER BY id") ==
        Rows{{"2024-01-31 03:00"}, {"2024-03-31 03:00"}});
  CHECK(w.ScheduleRows() == Rows{{"0 3 31 * *", "", "2024-08-31 03:00:00"}});
}

TEST_CASE(
    "schedules: a slot whose fetch fails stays due and a later pass plans it exactly "
    "once, a missing branch uses its slot up with no pipeline",
    "[db][triggers]") {
  World w(Utc(2024, 1, 30, 12, 0));
  const std::string sha =
      w.Push(Schedule("    - cron: '0 3 * * *'\n    - {cron: '0 3 * * *', branch: gone}\n"));
  const Rows due = {{"0 3 * * *", "", "2024-01-31 03:00:00"},
                    {"0 3 * * *", "gone", "2024-01-31 03:00:00"}};
  REQUIRE(w.ScheduleRows() == due);
  // The repository cannot be fetched when the slot comes: nothing is planned or claimed.
  const std::string repo_dir = w.dir + "/repo";
  std::filesystem::rename(repo_dir, repo_dir + ".away");
  w.clock.Advance(Utc(2024, 1, 31, 3, 0) - w.clock.Now());
  CHECK(w.Tick().empty());
  CHECK(w.Pipelines().empty());
  CHECK(w.ScheduleRows() == due);
  // It can again a minute later: the same slot is planned, once; the missing branch's slot is
  // used up without a pipeline.
  std::filesystem::rename(repo_dir + ".away", repo_dir);
  w.clock.Advance(absl::Minutes(1));
  std::vector<int64_t> fired = w.Tick();
  CHECK(fired.size() == 1);
  CHECK(w.Tick().empty());
  CHECK(w.Pipelines() == Rows{{"schedule", "refs/heads/main", sha, "running", "2024-01-31 03:00"}});
  CHECK(w.ScheduleRows() == Rows{{"0 3 * * *", "", "2024-02-01 03:00:00"},
                                 {"0 3 * * *", "gone", "2024-02-01 03:00:00"}});
}

TEST_CASE(
    "schedules: a failing slot is tried again after the interval, then after twice as "
    "long",
    "[db][triggers]") {
  World w(Utc(2024, 1, 30, 12, 0));
  w.Push(Schedule("    - cron: '0 3 * * *'\n"));
  ScheduleLoop loop(ScheduleLoopDeps{&w.schedules, w.planner.get(), &w.clock, absl::Minutes(1),
                                     absl::Minutes(10)});
  auto tick = [&loop] {
    auto fired = loop.Tick();
    REQUIRE(fired.ok());
    return fired->size();
  };
  const std::string repo_dir = w.dir + "/repo";
  std::filesystem::rename(repo_dir, repo_dir + ".away");
  w.clock.Advance(Utc(2024, 1, 31, 3, 0) - w.clock.Now());
  CHECK(tick() == 0);  // fails; next try at 03:01
  w.clock.Advance(absl::Seconds(59));
  std::filesystem::rename(repo_dir + ".away", repo_dir);
  CHECK(tick() == 0);  // 03:00:59: not tried, though it would work now
  std::filesystem::rename(repo_dir, repo_dir + ".away");
  w.clock.Advance(absl::Seconds(1));
  CHECK(tick() == 0);  // 03:01: fails again; next try at 03:03
  std::filesystem::rename(repo_dir + ".away", repo_dir);
  w.clock.Advance(absl::Minutes(1));
  CHECK(tick() == 0);  // 03:02: not tried
  CHECK(w.Pipelines().empty());
  w.clock.Advance(absl::Minutes(1));
  CHECK(tick() == 1);  // 03:03
  CHECK(w.Query("SELECT to_char(scheduled_for AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM "
                "pipelines") == Rows{{"2024-01-31 03:00"}});
  CHECK(w.ScheduleRows() == Rows{{"0 3 * * *", "", "2024-02-01 03:00:00"}});
}

TEST_CASE("schedules: two loops on one database fire each slot once", "[db][triggers]") {
  World w(Utc(2024, 1, 30, 12, 0));
  w.Push(Schedule("    - cron: '*/5 * * * *'\n    - cron: '0 * * * *'\n"));
  // A second replica: its own pool, stores, mirrors and loop on the same database and clock.
  store::Db db2(w.tdb.dsn(), 4);
  store::RepoStore repos2(&db2);
  store::DeliveryStore deliveries2(&db2);
  store::PipelineStore pipelines2(&db2, &w.clock);
  store::ScheduleStore schedules2(&db2, &w.clock);
  std::filesystem::create_directories(w.dir + "/mirrors2");
  PlannerDeps d2{&deliveries2, &pipelines2, &repos2, w.dir + "/mirrors2", nullptr};
  d2.schedules = &schedules2;
  d2.allow_local_repos = true;
  Planner planner2(std::move(d2));
  planner2.Start();
  ScheduleLoop loop2(ScheduleLoopDeps{&schedules2, &planner2, &w.clock, absl::Seconds(1)});

  size_t total = 0;
  for (int round = 0; round < 12; ++round) {  // one hour in 5-minute steps
    w.clock.Advance(absl::Minutes(5));
    std::barrier start(2);
    absl::StatusOr<std::vector<int64_t>> a, b;
    std::thread t1([&] {
      start.arrive_and_wait();
      a = w.loop->Tick();
    });
    std::thread t2([&] {
      start.arrive_and_wait();
      b = loop2.Tick();
    });
    t1.join();
    t2.join();
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    total += a->size() + b->size();
  }
  // 12 five-minute slots and 1 hourly slot (13:00); each fired by exactly one loop.
  CHECK(total == 13);
  CHECK(w.Count("SELECT count(*) FROM pipelines WHERE event = 'schedule'") == 13);
  CHECK(w.Count("SELECT count(DISTINCT (schedule_id, scheduled_for)) FROM pipelines "
                "WHERE event = 'schedule'") == 13);
}

}  // namespace
}  // namespace assay
