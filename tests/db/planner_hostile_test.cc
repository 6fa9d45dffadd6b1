// The planner against hostile `.assay.yml` files and failures (issue 8): each hostile file is an
// 'error' pipeline naming the file, line and key, an exception inside planning does not escape
// the worker, and the planner goes on planning. Every wait is bounded.

#include <atomic>
#include <filesystem>
#include <stdexcept>

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "server/pipeline/planner.h"
#include "tests/db/db_fixture.h"
#include "tests/support/git_repo.h"

namespace assay {
namespace {

using dbtest::Rows;

constexpr absl::Duration kBound = absl::Seconds(30);

std::string TempDir() {
  std::string t = (std::filesystem::temp_directory_path() / "assay-hostile-XXXXXX").string();
  REQUIRE(::mkdtemp(t.data()) != nullptr);
  return t;
}

struct OneRepo : dbtest::DbFixture {
  std::string dir = TempDir();
  testing::GitRepo git = *testing::GitRepo::Init(dir + "/repo");
  int64_t repo = 0;
  int sent = 0;
  std::function<void()> on_queued;
  std::unique_ptr<Planner> planner;

  OneRepo() {
    store::NewRepo r;
    r.name = "acme/hostile";
    r.provider = "github";
    r.clone_url = git.clone_url();
    auto created = repos.Create(r);
    REQUIRE(created.ok());
    repo = created->id;
    PlannerDeps d{&deliveries, &pipelines, &repos, dir + "/mirrors", [this] {
                    if (on_queued) on_queued();
                  }};
    d.allow_local_repos = true;  // the test repository is a file:// URL
    planner = std::make_unique<Planner>(std::move(d));
    planner->Start();
  }
  ~OneRepo() {
    planner.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  int64_t Deliver(const std::string& sha) {
    boost::json::object body{
        {"ref", "refs/heads/main"},
        {"before", std::string(40, '0')},
        {"after", sha},
        {"repository", {{"clone_url", git.clone_url()}, {"default_branch", "main"}}}};
    store::NewDelivery nd;
    nd.provider = "github";
    nd.delivery_id = absl::StrCat("push-", ++sent);
    nd.event = "push";
    nd.repo_id = repo;
    nd.headers_json = "{}";
    nd.body = boost::json::serialize(body);
    auto ins = deliveries.Insert(nd);
    REQUIRE(ins.ok());
    return ins->id;
  }

  // The delivery's pipeline as (state, message), waiting (bounded) for it.
  Rows PipelineOf(int64_t delivery) {
    const std::string sql = absl::StrCat(
        "SELECT state, coalesce(message, '') FROM pipelines WHERE delivery_id = ", delivery);
    const absl::Time deadline = absl::Now() + kBound;
    while (Query(sql).empty() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    return Query(sql);
  }
};

TEST_CASE("planner: hostile files are error pipelines naming file, line and key", "[db][planner]") {
  OneRepo t;
  std::string bomb = "x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n";
  for (int i = 1; i <= 9; ++i) {
    absl::StrAppend(&bomb, "x", i, ": &x", i, " [");
    for (int j = 0; j < 10; ++j) absl::StrAppend(&bomb, j ? ", " : "", "*x", i - 1);
    absl::StrAppend(&bomb, "]\n");
  }
  bomb += "jobs:\n  build:\n    steps: [make]\n";
  // One job of 1000 steps aliased by 50,000 jobs: 5*10^7 steps if expanded.
  std::string wide = "x: &j {steps: [m";
  for (int i = 1; i < 1000; ++i) wide += ", m";
  wide += "]}\njobs:\n";
  for (int i = 0; i < 50000; ++i) absl::StrAppend(&wide, "  j", i, ": *j\n");
  std::string a, b;
  for (int i = 0; i < 1000; ++i) {
    absl::StrAppend(&a, i ? ", " : "", i);
    absl::StrAppend(&b, i ? ", " : "", "v", i);
  }
  const std::vector<std::pair<std::string, std::string>> cases = {
      {absl::StrCat("jobs:\n  build:\n    if: \"", std::string(20000, '('), "true",
                    std::string(20000, ')'), "\"\n    steps: [make]\n"),
       ".assay.yml:3:5: jobs.build.if: invalid expression: column 1025: expression has more "
       "than 1024 tokens"},
      {bomb, ".assay.yml:5:45: x4[7]: aliases expand to more than 100000 nodes"},
      {wide, ".assay.yml:102:8: jobs.j99: aliases expand to more than 100000 nodes"},
      {absl::StrCat("jobs:\n  build:\n    strategy:\n      matrix:\n        a: [", a,
                    "]\n        b: [", b, "]\n    steps: [make]\n"),
       ".assay.yml:5:9: jobs.build.strategy.matrix: matrix expands to 1000000 jobs, more than "
       "the limit of 256"},
      {absl::StrCat("on:\n  push:\n    branches: [\"", std::string(4000, '*'),
                    "\"]\njobs:\n  build:\n    steps: [make]\n"),
       ".assay.yml:3:16: on.push.branches[0]: pattern is longer than 1024 characters"},
  };
  for (const auto& [yaml, error] : cases) {
    auto sha = t.git.Commit({{".assay.yml", yaml}});
    REQUIRE(sha.ok());
    const int64_t delivery = t.Deliver(*sha);
    t.planner->Enqueue(delivery);
    CHECK(t.PipelineOf(delivery) == Rows{{"error", error}});
    // The delivery ends 'failed' with the same message: it is never planned again.
    CHECK(t.Query(absl::StrCat("SELECT state, message FROM webhook_deliveries WHERE id = ",
                               delivery)) == Rows{{"failed", error}});
  }
}

TEST_CASE("planner: an exception while planning does not escape the worker", "[db][planner]") {
  OneRepo t;
  std::atomic<int> calls{0};  // counted on the planner's worker, read here
  t.on_queued = [&calls] {
    if (++calls == 1) throw std::runtime_error("injected");
  };
  auto sha = t.git.Commit({{".assay.yml", "jobs:\n  build:\n    steps: [make]\n"}});
  REQUIRE(sha.ok());
  const int64_t first = t.Deliver(*sha);
  t.planner->Enqueue(first);
  CHECK(t.PipelineOf(first) == Rows{{"running", ""}});
  // Before: std::terminate ended the test binary here. The planner still plans.
  auto sha2 = t.git.Commit({{"n", "2"}});
  REQUIRE(sha2.ok());
  const int64_t second = t.Deliver(*sha2);
  t.planner->Enqueue(second);
  CHECK(t.PipelineOf(second) == Rows{{"running", ""}});
  CHECK(calls == 2);
}

}  // namespace
}  // namespace assay
