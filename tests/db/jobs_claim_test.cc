#include <map>
// Claiming jobs: order, labels, the exact lease and attempt rows, and a race of four
// claimers on their own connections that must hand out every job exactly once.

#include <algorithm>
#include <barrier>
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "server/scheduler/dispatcher.h"
#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

bool IsLowerHex32(const std::string& s) {
  return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

TEST_CASE("claim: oldest queued job first, priority before age, exact lease", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t p1 = f.CreatePipeline({Job("old")});
  f.clock.Advance(absl::Seconds(1));
  int64_t p2 = f.CreatePipeline({Job("new")});
  f.clock.Advance(absl::Seconds(1));
  int64_t p3 = f.CreatePipeline({Job("urgent")});
  f.Exec("UPDATE jobs SET priority = 5 WHERE name = 'urgent'");
  f.clock.Advance(absl::Seconds(1));
  const absl::Time claim_time = f.clock.Now();

  auto first = f.ClaimOne(agent, absl::Seconds(30));
  CHECK(first.job_name == "urgent");
  CHECK(first.pipeline_id == p3);
  auto second = f.ClaimOne(agent, absl::Seconds(30));
  CHECK(second.job_name == "old");
  CHECK(second.job_id == f.JobId(p1, "old"));
  CHECK(second.pipeline_id == p1);
  CHECK(second.attempt == 1);
  CHECK(IsLowerHex32(second.attempt_token));
  CHECK(second.attempt_token != first.attempt_token);
  CHECK(second.clone_url == "https://github.com/acme/app.git");
  CHECK(second.commit_sha == kSha);
  CHECK(second.ref == "refs/heads/main");
  CHECK(second.queued_at == kT0);
  // jsonb's canonical text of kSpec.
  CHECK(second.spec_json ==
        R"({"env": {}, "steps": [{"run": "true", "name": "s"}], "timeout_s": 60})");

  const std::string id = std::to_string(second.job_id);
  CHECK(f.Query("SELECT state, attempt, attempt_token, agent_id FROM jobs WHERE id = " + id) ==
        Rows{{"assigned", "1", second.attempt_token, std::to_string(agent)}});
  CHECK(f.UsOf("jobs", "lease_expires_at", second.job_id) ==
        std::to_string(Us(claim_time + absl::Seconds(30))));
  CHECK(f.Query("SELECT attempt, attempt_token, agent_id, state, "
                "(extract(epoch from assigned_at) * 1000000)::bigint, started_at, finished_at "
                "FROM job_attempts WHERE job_id = " +
                id) == Rows{{"1", second.attempt_token, std::to_string(agent), "assigned",
                             std::to_string(Us(claim_time)), "NULL", "NULL"}});

  // A lease with a sub-second part is kept to the millisecond.
  auto third = f.ClaimOne(agent, absl::Milliseconds(1500));
  CHECK(third.job_name == "new");
  CHECK(third.pipeline_id == p2);
  CHECK(f.UsOf("jobs", "lease_expires_at", third.job_id) ==
        std::to_string(Us(claim_time + absl::Milliseconds(1500))));

  CHECK_FALSE(f.ClaimNext(agent).has_value());
  CHECK(f.Count("SELECT count(*) FROM job_attempts") == 3);

  // What the agent receives is built from the stored spec.
  auto a = BuildAssignment(second);
  REQUIRE(a.ok());
  CHECK(a->job_id() == second.job_id);
  CHECK(a->attempt_token() == second.attempt_token);
  REQUIRE(a->steps_size() == 1);
  CHECK(a->steps(0).name() == "s");
  CHECK(a->steps(0).run() == "true");
  CHECK(std::map<std::string, std::string>(a->env().begin(), a->env().end()) ==
        std::map<std::string, std::string>{{"CUDA_VISIBLE_DEVICES", ""},
                                           {"NVIDIA_VISIBLE_DEVICES", "void"}});
  CHECK(a->timeout_s() == 60);
}

TEST_CASE("claim: a job runs only on an agent carrying all its labels", "[db]") {
  DbFixture f;
  int64_t plain = f.Agent("plain", {"linux"});
  int64_t gpu = f.Agent("gpu-box", {"linux", "gpu"});
  int64_t pid = f.CreatePipeline({Job("train", {}, {"gpu", "linux"})});

  for (const std::vector<std::string>& labels :
       {std::vector<std::string>{}, std::vector<std::string>{"linux"},
        std::vector<std::string>{"gpu"}, std::vector<std::string>{"GPU", "linux"}}) {
    CHECK_FALSE(f.ClaimNext(plain, absl::Seconds(30), labels).has_value());
  }
  CHECK(f.JobState(f.JobId(pid, "train")) == "queued");
  CHECK(f.Count("SELECT count(*) FROM job_attempts") == 0);

  auto c = f.ClaimOne(gpu, absl::Seconds(30), {"linux", "gpu", "cuda12"});
  CHECK(c.job_name == "train");
  CHECK(f.One("SELECT agent_id FROM jobs WHERE id = " + std::to_string(c.job_id)) ==
        std::to_string(gpu));
}

TEST_CASE("claim: four claimers on their own pools hand out 200 jobs exactly once", "[db]") {
  // Each claimer reads the whole queue and claims all of it in one ClaimBatch, again and
  // again until the queue is empty: every job is requested by all four at once.
  DbFixture f;
  std::vector<store::NewJob> many;
  for (int i = 0; i < 200; ++i) many.push_back(Job("j" + std::to_string(1000 + i)));
  f.CreatePipeline(std::move(many));
  std::vector<int64_t> agents;
  for (int i = 0; i < 4; ++i) agents.push_back(f.Agent("agent-" + std::to_string(i)));

  constexpr int kThreads = 4;
  std::vector<std::vector<int64_t>> got(kThreads);
  std::vector<std::string> errors(kThreads);
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      store::Db db(f.tdb.dsn(), 1);
      store::JobStore js(&db, &f.clock);
      auto warm = db.Acquire();  // connect before the start line
      if (!warm.ok()) errors[t] = warm.status().ToString();
      { auto drop = std::move(warm); }
      start.arrive_and_wait();
      store::QueueFilter filter;
      filter.per_repo = 1000;
      filter.max_cpus = 1;
      while (errors[t].empty()) {
        auto q = js.Queue(filter);
        if (!q.ok()) {
          errors[t] = q.status().ToString();
          break;
        }
        if (q->jobs.empty()) break;
        std::vector<store::ClaimRequest> batch;
        for (const auto& j : q->jobs) batch.push_back({j.job_id, agents[t], {}, false});
        auto c = js.ClaimBatch(batch, absl::Seconds(30));
        if (!c.status.ok()) errors[t] = c.status.ToString();
        for (const auto& j : c.claimed) got[t].push_back(j.job_id);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors) CHECK(e.empty());

  std::vector<int64_t> all;
  for (const auto& g : got) all.insert(all.end(), g.begin(), g.end());
  std::sort(all.begin(), all.end());
  CHECK(all.size() == 200);
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());  // no job twice
  std::vector<int64_t> expected;
  for (const auto& row : f.Query("SELECT id FROM jobs ORDER BY id")) {
    expected.push_back(std::stoll(row[0]));
  }
  CHECK(all == expected);
  CHECK(f.Count("SELECT count(*) FROM job_attempts") == 200);
  CHECK(f.Count("SELECT count(DISTINCT attempt_token) FROM job_attempts") == 200);
  CHECK(f.Count("SELECT count(*) FROM jobs WHERE state = 'assigned' AND attempt = 1") == 200);
  // Each claimer's own jobs carry its agent id.
  for (int t = 0; t < kThreads; ++t) {
    CHECK(f.Count("SELECT count(*) FROM jobs WHERE agent_id = " + std::to_string(agents[t])) ==
          static_cast<int64_t>(got[t].size()));
  }
}

}  // namespace
}  // namespace assay::dbtest
