// The planner's workers against a real PostgreSQL and real git repositories: a repository whose
// fetch hangs (its mirror's upload-pack waits at a gate the test opens) holds up neither another
// repository's deliveries nor a manual request's caller for longer than manual_wait, and one
// repository's deliveries are planned in arrival order. Every wait is bounded.

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <future>

#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/proc/subprocess.h"
#include "server/pipeline/planner.h"
#include "tests/db/db_fixture.h"
#include "tests/support/git_repo.h"

namespace assay {
namespace {

using dbtest::Rows;

constexpr absl::Duration kBound = absl::Seconds(30);
constexpr const char* kFile =
    "on:\n  push:\n  manual:\njobs:\n  build:\n    steps: ['echo built']\n";

std::string TempDir() {
  std::string t = (std::filesystem::temp_directory_path() / "assay-plan-XXXXXX").string();
  REQUIRE(::mkdtemp(t.data()) != nullptr);
  return t;
}

bool Exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

// Two registered repositories, "slow" and "fast", each a real git repository; the slow one's
// mirror fetches through an upload-pack that waits until Open() (at most 60 s).
struct TwoRepos : dbtest::DbFixture {
  std::string dir = TempDir();
  testing::GitRepo slow_git = *testing::GitRepo::Init(dir + "/slow");
  testing::GitRepo fast_git = *testing::GitRepo::Init(dir + "/fast");
  int64_t slow = 0, fast = 0;
  std::unique_ptr<Planner> planner;
  int sent = 0;

  explicit TwoRepos(absl::Duration manual_wait = absl::Seconds(20),
                    absl::Duration fetch_retry_window = absl::Minutes(10)) {
    slow = AddRepo("acme/slow", slow_git.clone_url());
    fast = AddRepo("acme/fast", fast_git.clone_url());
    GateMirror(slow);
    PlannerDeps d{&deliveries, &pipelines, &repos, dir + "/mirrors", nullptr};
    d.manual_wait = manual_wait;
    d.allow_local_repos = true;  // the test repositories are file:// URLs
    d.fetch_retry_window = fetch_retry_window;
    planner = std::make_unique<Planner>(std::move(d));
    planner->Start();
  }
  ~TwoRepos() {
    Open();  // a fetch still at the gate must not keep Stop() waiting
    planner.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  int64_t AddRepo(const std::string& name, const std::string& url) {
    store::NewRepo r;
    r.name = name;
    r.provider = "github";
    r.clone_url = url;
    auto created = repos.Create(r);
    REQUIRE(created.ok());
    return created->id;
  }

  // Creates the repository's mirror as the planner would, plus remote.origin.uploadpack: a
  // script that marks the fetch as started, then waits for the gate.
  void GateMirror(int64_t repo) {
    const std::string script = dir + "/gated-upload-pack";
    {
      std::ofstream out(script);
      out << "#!/bin/sh\n: > '" << dir << "/started'\ni=0\n"
          << "while [ ! -e '" << dir << "/open' ] && [ $i -lt 600 ]; do sleep 0.1; "
          << "i=$((i+1)); done\nexec git upload-pack \"$@\"\n";
    }
    REQUIRE(::chmod(script.c_str(), 0755) == 0);
    const std::string mirror = absl::StrCat(dir, "/mirrors/", repo, ".git");
    const std::vector<std::pair<std::string, std::string>> env = {
        {"GIT_CONFIG_NOSYSTEM", "1"}, {"GIT_CONFIG_GLOBAL", "/dev/null"}};
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {"git", "init", "-q", "--bare", mirror},
             {"git", "--git-dir=" + mirror, "config", "remote.origin.url", slow_git.clone_url()},
             {"git", "--git-dir=" + mirror, "config", "remote.origin.uploadpack", script}}) {
      auto r = RunCommand(argv, "", env);
      REQUIRE(r.ok());
      INFO(r->err);
      REQUIRE(r->exit_code == 0);
    }
  }

  bool WaitFetchStarted() {
    const absl::Time deadline = absl::Now() + kBound;
    while (!Exists(dir + "/started") && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    return Exists(dir + "/started");
  }
  void Open() { std::ofstream(dir + "/open").put('\n'); }

  // Makes the slow repository's fetches fail at once, as on a full disk, until Open(); each
  // try appends a line to dir/attempts.
  void FailUntilOpen() {
    std::ofstream out(dir + "/gated-upload-pack");
    out << "#!/bin/sh\necho try >> '" << dir << "/attempts'\n"
        << "if [ ! -e '" << dir << "/open' ]; then echo 'fatal: No space left on device' >&2; "
        << "exit 1; fi\nexec git upload-pack \"$@\"\n";
  }
  int Attempts() {
    std::ifstream in(dir + "/attempts");
    std::string line;
    int n = 0;
    while (std::getline(in, line)) ++n;
    return n;
  }

  // A stored GitHub push of `sha` to `branch` of `repo`; returns the delivery's id.
  int64_t Deliver(int64_t repo, const testing::GitRepo& git, const std::string& sha,
                  const std::string& branch = "main") {
    boost::json::object body{
        {"ref", "refs/heads/" + branch},
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

  // Waits (bounded) until `sql` counts at least `n`; whether it did.
  bool WaitCount(const std::string& sql, int64_t n) {
    const absl::Time deadline = absl::Now() + kBound;
    while (Count(sql) < n && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    return Count(sql) >= n;
  }
  std::string PipelinesOf(int64_t repo) {
    return absl::StrCat("SELECT count(*) FROM pipelines WHERE repo_id = ", repo);
  }
};

TEST_CASE(
    "planner: a repository whose fetch hangs holds up neither other repositories nor "
    "their manual requests",
    "[db][planner]") {
  TwoRepos t;
  const std::string slow_sha = *t.slow_git.Commit({{".assay.yml", kFile}});
  const std::string fast_sha = *t.fast_git.Commit({{".assay.yml", kFile}});
  const int64_t slow_delivery = t.Deliver(t.slow, t.slow_git, slow_sha);
  t.planner->Enqueue(slow_delivery);
  REQUIRE(t.WaitFetchStarted());
  const int64_t fast_delivery = t.Deliver(t.fast, t.fast_git, fast_sha);
  t.planner->Enqueue(fast_delivery);
  CHECK(t.WaitCount(t.PipelinesOf(t.fast), 1));
  // A manual pipeline of the fast repository is answered while the slow fetch still hangs.
  auto manual = std::async(std::launch::async,
                           [&t] { return t.planner->PlanManual(t.fast, std::nullopt, {}); });
  const bool answered = manual.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  CHECK(answered);
  CHECK(t.Count(t.PipelinesOf(t.slow)) == 0);
  t.Open();
  absl::StatusOr<int64_t> manual_id = manual.get();
  INFO(manual_id.status().ToString());
  REQUIRE(manual_id.ok());
  CHECK(t.WaitCount("SELECT count(*) FROM pipelines", 3));
  CHECK(t.Query("SELECT repo_id, coalesce(delivery_id::text, 'NULL'), event, commit_sha, state "
                "FROM pipelines ORDER BY id") ==
        Rows{{std::to_string(t.fast), std::to_string(fast_delivery), "push", fast_sha, "running"},
             {std::to_string(t.fast), "NULL", "manual", fast_sha, "running"},
             {std::to_string(t.slow), std::to_string(slow_delivery), "push", slow_sha, "running"}});
  CHECK(t.One(absl::StrCat("SELECT id FROM pipelines WHERE event = 'manual'")) ==
        std::to_string(*manual_id));
}

TEST_CASE("planner: one repository's deliveries are planned in arrival order", "[db][planner]") {
  TwoRepos t;
  std::vector<std::string> shas;
  for (int i = 0; i < 4; ++i) {
    shas.push_back(*t.slow_git.Commit({{".assay.yml", kFile}, {"n", std::to_string(i)}}));
  }
  const std::string fast_sha = *t.fast_git.Commit({{".assay.yml", kFile}});
  std::vector<int64_t> ids;
  ids.push_back(t.Deliver(t.slow, t.slow_git, shas[0]));
  t.planner->Enqueue(ids[0]);
  REQUIRE(t.WaitFetchStarted());
  // Later pushes of the slow repository wait their turn behind the hanging one (three workers
  // are free); the fast repository's push, enqueued between them, does not.
  for (int i = 1; i < 4; ++i) {
    ids.push_back(t.Deliver(t.slow, t.slow_git, shas[i], "b" + std::to_string(i)));
    t.planner->Enqueue(ids.back());
    if (i == 2) t.planner->Enqueue(t.Deliver(t.fast, t.fast_git, fast_sha));
  }
  CHECK(t.WaitCount(t.PipelinesOf(t.fast), 1));
  CHECK(t.Count(t.PipelinesOf(t.slow)) == 0);
  t.Open();
  CHECK(t.WaitCount(t.PipelinesOf(t.slow), 4));
  Rows want;
  for (int i = 0; i < 4; ++i) want.push_back({std::to_string(ids[i]), shas[i]});
  CHECK(t.Query(absl::StrCat("SELECT delivery_id, commit_sha FROM pipelines WHERE repo_id = ",
                             t.slow, " ORDER BY id")) == want);
}

TEST_CASE(
    "planner: a manual request whose repository hangs is answered after manual_wait and "
    "writes nothing, then or later",
    "[db][planner]") {
  TwoRepos t(absl::Seconds(1));
  *t.slow_git.Commit({{".assay.yml", kFile}});
  auto manual = std::async(std::launch::async,
                           [&t] { return t.planner->PlanManual(t.slow, std::nullopt, {}); });
  // Without a bound the call would hang until the gate opens: open it after our own bound.
  const bool answered = manual.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  CHECK(answered);
  CHECK(t.WaitFetchStarted());
  t.Open();
  absl::StatusOr<int64_t> r = manual.get();
  CHECK(r.status().code() == absl::StatusCode::kUnavailable);
  CHECK(r.status().message() ==
        absl::StrCat("planning a manual pipeline of repository ", t.slow,
                     " did not finish within 1s (fetching the repository is slow, or its earlier "
                     "work is); nothing was written: try again later"));
  // The fetch goes on after the caller gave up; Stop() waits for it to end.
  t.planner->Stop();
  CHECK(t.Count("SELECT count(*) FROM pipelines") == 0);
  // A stopped planner answers at once.
  auto stopped = t.planner->PlanManual(t.slow, std::nullopt, {});
  CHECK(stopped.status() == absl::UnavailableError("the planner is not running"));
}

TEST_CASE(
    "planner: a fetch that fails for a reason that can pass is tried again, and the push "
    "is planned once it works",
    "[db][planner]") {
  TwoRepos t;
  t.FailUntilOpen();
  const std::string sha = *t.slow_git.Commit({{".assay.yml", kFile}});
  const int64_t delivery = t.Deliver(t.slow, t.slow_git, sha);
  t.planner->Enqueue(delivery);
  // The first try and one retry (1 s later) failed; nothing was written.
  const absl::Time deadline = absl::Now() + kBound;
  while (t.Attempts() < 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  REQUIRE(t.Attempts() >= 2);
  CHECK(t.Count(t.PipelinesOf(t.slow)) == 0);
  CHECK(t.One(absl::StrCat("SELECT state FROM webhook_deliveries WHERE id = ", delivery)) ==
        "received");
  t.Open();
  REQUIRE(t.WaitCount(t.PipelinesOf(t.slow), 1));
  CHECK(t.Query("SELECT delivery_id, commit_sha, state, coalesce(message, '') FROM pipelines") ==
        Rows{{std::to_string(delivery), sha, "running", ""}});
}

TEST_CASE("planner: past fetch_retry_window a failing fetch becomes an error pipeline naming it",
          "[db][planner]") {
  TwoRepos t(absl::Seconds(20), absl::ZeroDuration());
  t.FailUntilOpen();
  const std::string sha = *t.slow_git.Commit({{".assay.yml", kFile}});
  const int64_t delivery = t.Deliver(t.slow, t.slow_git, sha);
  t.planner->Enqueue(delivery);
  REQUIRE(t.WaitCount(t.PipelinesOf(t.slow), 1));
  CHECK(t.Attempts() == 1);
  CHECK(t.Query("SELECT delivery_id, state FROM pipelines") ==
        Rows{{std::to_string(delivery), "error"}});
  const std::string error = t.One("SELECT message FROM pipelines");
  CHECK(error.rfind(absl::StrCat("cannot fetch commit ", sha, " from ", t.slow_git.clone_url(),
                                 ": git fetch from "),
                    0) == 0);
  CHECK(error.find("fatal: No space left on device") != std::string::npos);
}

}  // namespace
}  // namespace assay
