// Two server replicas on one database: each has its own connection pool,
// JobStore and Dispatcher with its own agents (stand-in streams), and both
// dispatch at once from their own threads while their agents finish what they
// get. Every job must run exactly once, and concurrency groups and max_parallel
// must hold across replicas.
//
// Threads report problems as text (Catch2 assertions are not thread-safe); the
// test thread checks them after joining.

#include <algorithm>
#include <barrier>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/dispatcher.h"
#include "tests/db/db_fixture.h"
#include "tests/db/fake_channel.h"

namespace assay::dbtest {
namespace {

struct Replica {
  Replica(const std::string& dsn, const Clock* clock)
      : db(dsn, 4), jobs(&db, clock), d(&jobs, &metrics, clock, DispatcherOptions{}) {}
  store::Db db;
  store::JobStore jobs;
  Metrics metrics;
  Dispatcher d;
  std::vector<std::pair<int64_t, std::shared_ptr<FakeChannel>>> agents;
  // Filled by the replica's thread.
  std::vector<int64_t> got;             // job ids, in the order assigned
  std::map<int64_t, int64_t> agent_of;  // job id → agent whose stream got it
  std::vector<std::string> problems;
};

// Counts live jobs per key as the agents see them: +1 when an assignment
// arrives (after its claim committed), -1 before the result is written (before
// the finish commits). So the count can only overstate what the database had
// live, never understate it.
class LiveTracker {
 public:
  void Start(const std::vector<std::string>& keys) {
    absl::MutexLock l(&mu_);
    for (const auto& k : keys) max_[k] = std::max(max_[k], ++live_[k]);
  }
  void End(const std::vector<std::string>& keys) {
    absl::MutexLock l(&mu_);
    for (const auto& k : keys) --live_[k];
  }
  std::map<std::string, int> Max() {
    absl::MutexLock l(&mu_);
    return max_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, int> live_ ABSL_GUARDED_BY(mu_), max_ ABSL_GUARDED_BY(mu_);
};

// The replica's loop: dispatch, let every agent run what it got to success,
// until no work is left in the database (bounded: 120 s).
void Run(Replica& r, std::barrier<>& start, LiveTracker* tracker,
         const std::map<int64_t, std::vector<std::string>>& keys_of) {
  start.arrive_and_wait();
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (true) {
    if (absl::Now() > deadline) {
      r.problems.push_back("work left after 120 s");
      return;
    }
    r.d.DispatchOnce();
    // Everything this replica's agents got in this round is live at once, as on
    // real agents.
    std::vector<std::pair<int64_t, v1::Assignment>> round;
    for (auto& [agent, ch] : r.agents) {
      for (v1::Assignment& a : ch->TakeAssignments()) round.emplace_back(agent, std::move(a));
    }
    const bool any = !round.empty();
    auto keys = [&](int64_t job_id) {
      auto it = keys_of.find(job_id);
      return it == keys_of.end() ? std::vector<std::string>{} : it->second;
    };
    for (const auto& [agent, a] : round) {
      r.got.push_back(a.job_id());
      r.agent_of[a.job_id()] = agent;
      if (tracker != nullptr) tracker->Start(keys(a.job_id()));
    }
    for (const auto& [agent, a] : round) {
      auto running = r.jobs.MarkRunning(a.job_id(), a.attempt_token());
      if (!running.ok() || *running != store::Fence::kOk) {
        r.problems.push_back("MarkRunning of job " + std::to_string(a.job_id()) + " failed");
      }
      if (tracker != nullptr) tracker->End(keys(a.job_id()));
      store::ResultReport rep;
      rep.job_id = a.job_id();
      rep.attempt_token = a.attempt_token();
      rep.state = "succeeded";
      rep.exit_code = 0;
      auto out = r.jobs.Finish(rep);
      if (!out.ok() || out->fence != store::Fence::kOk) {
        r.problems.push_back("Finish of job " + std::to_string(a.job_id()) +
                             " failed: " + (out.ok() ? "not kOk" : out.status().ToString()));
      }
      r.d.JobReleased(agent, a.job_id());
    }
    if (!any) {
      auto left = r.jobs.ActiveWork();
      if (!left.ok()) {
        r.problems.push_back("ActiveWork: " + left.status().ToString());
        return;
      }
      if (*left == 0) return;
      // The other replica holds the rest for now.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

struct Cluster {
  std::vector<std::unique_ptr<Replica>> replicas;

  Cluster(DbFixture& f, int agents_per_replica, int slots) {
    for (int i = 0; i < 2; ++i) {
      auto r = std::make_unique<Replica>(f.tdb.dsn(), &f.clock);
      for (int k = 0; k < agents_per_replica; ++k) {
        const std::string name = "r" + std::to_string(i + 1) + "-agent-" + std::to_string(k + 1);
        const int64_t id = f.Agent(name);
        auto ch = std::make_shared<FakeChannel>();
        r->d.AgentConnected(Capacity(id, name, slots), {}, ch);
        r->agents.emplace_back(id, ch);
      }
      replicas.push_back(std::move(r));
    }
  }

  void RunAll(LiveTracker* tracker = nullptr,
              const std::map<int64_t, std::vector<std::string>>& keys_of = {}) {
    std::barrier<> start(2);
    std::thread t1([&] { Run(*replicas[0], start, tracker, keys_of); });
    std::thread t2([&] { Run(*replicas[1], start, tracker, keys_of); });
    t1.join();
    t2.join();
  }

  // Checks (on the test thread) that every job of the database ran exactly
  // once, on the agent whose stream received it.
  void CheckExactlyOnce(DbFixture& f, int64_t total) {
    std::vector<int64_t> all;
    std::map<int64_t, int64_t> agent_of;
    for (const auto& r : replicas) {
      INFO("replica problems: " << r->problems.size());
      for (const auto& p : r->problems) UNSCOPED_INFO(p);
      CHECK(r->problems.empty());
      all.insert(all.end(), r->got.begin(), r->got.end());
      agent_of.insert(r->agent_of.begin(), r->agent_of.end());
    }
    UNSCOPED_INFO("replica 1 got " << replicas[0]->got.size() << ", replica 2 got "
                                   << replicas[1]->got.size());
    CHECK(static_cast<int64_t>(all.size()) == total);
    CHECK(static_cast<int64_t>(std::set<int64_t>(all.begin(), all.end()).size()) == total);
    CHECK(f.Count("SELECT count(*) FROM jobs") == total);
    CHECK(f.Count("SELECT count(*) FROM jobs WHERE state = 'succeeded' AND "
                  "attempt = 1") == total);
    CHECK(f.Count("SELECT count(*) FROM job_attempts") == total);
    CHECK(f.Count("SELECT count(*) FROM job_attempts WHERE state = 'succeeded'") == total);
    CHECK(f.Count("SELECT count(*) FROM pipelines WHERE state <> 'succeeded'") == 0);
    std::map<int64_t, int64_t> db_agent_of;
    for (const auto& row : f.Query("SELECT job_id, agent_id FROM job_attempts")) {
      db_agent_of[std::stoll(row[0])] = std::stoll(row[1]);
    }
    CHECK(db_agent_of == agent_of);
  }
};

TEST_CASE("replicas: two dispatchers on one database run 400 jobs exactly once", "[db][replicas]") {
  DbFixture f;
  Cluster cluster(f, 3, 2);
  for (int p = 0; p < 4; ++p) {
    std::vector<store::NewJob> batch;
    for (int i = 0; i < 100; ++i) batch.push_back(Job("job-" + std::to_string(i)));
    f.CreatePipeline(batch);
  }
  REQUIRE(f.Count("SELECT count(*) FROM jobs WHERE state = 'queued'") == 400);
  cluster.RunAll();
  cluster.CheckExactlyOnce(f, 400);
}

TEST_CASE("replicas: concurrency groups and max_parallel hold across dispatchers",
          "[db][replicas]") {
  DbFixture f;
  Cluster cluster(f, 2, 4);
  // 10 pipelines: a deploy job in group "deploy" and a 6-job matrix with
  // max_parallel 2.
  for (int p = 0; p < 10; ++p) {
    std::vector<store::NewJob> jobs;
    store::NewJob deploy = Job("deploy");
    deploy.concurrency_group = "deploy";
    jobs.push_back(deploy);
    for (int i = 1; i <= 6; ++i) {
      store::NewJob m = Job("test (" + std::to_string(i) + ")");
      m.base_name = "test";
      m.max_parallel = 2;
      jobs.push_back(m);
    }
    f.CreatePipeline(jobs);
  }
  std::map<int64_t, std::vector<std::string>> keys_of;
  for (const auto& row : f.Query("SELECT id, coalesce(concurrency_key, ''), "
                                 "coalesce(parallel_key, '') FROM jobs")) {
    std::vector<std::string> keys;
    if (!row[1].empty()) keys.push_back("group " + row[1]);
    if (!row[2].empty()) keys.push_back("matrix " + row[2]);
    keys_of[std::stoll(row[0])] = keys;
  }
  LiveTracker tracker;
  cluster.RunAll(&tracker, keys_of);
  cluster.CheckExactlyOnce(f, 70);
  const auto max = tracker.Max();
  CHECK(max.size() == 11);  // one group, ten matrices
  for (const auto& [key, n] : max) {
    INFO(key);
    CHECK(n >= 1);
    CHECK(n <= (key.rfind("group ", 0) == 0 ? 1 : 2));
  }
}

}  // namespace
}  // namespace assay::dbtest
