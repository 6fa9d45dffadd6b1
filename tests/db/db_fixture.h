#pragma once
// Shared set-up for the store tests: a fresh migrated database, a simulated clock, every
// store, and a raw connection for asserting exact rows. Assertion SQL lives here and in the
// tests only; production SQL stays in server/store/.

#include <pqxx/pqxx>

#include <algorithm>
#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/base/clock.h"
#include "server/store/agents.h"
#include "server/store/db.h"
#include "server/store/deliveries.h"
#include "server/store/jobs.h"
#include "server/store/pipelines.h"
#include "server/store/repos.h"
#include "tests/support/test_db.h"

namespace assay::dbtest {

using Rows = std::vector<std::vector<std::string>>;

inline constexpr const char* kSha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
inline constexpr const char* kSpec =
    R"({"steps":[{"name":"s","run":"true"}],"env":{},"timeout_s":60})";
inline const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

// A commit id of its own for each i < 10000 (kSha with its last four digits replaced).
inline std::string ShaOf(int i) {
  std::string n = std::to_string(i);
  n.insert(0, 4 - n.size(), '0');
  return std::string(kSha).substr(0, 36) + n;
}

inline store::NewJob Job(std::string name, std::vector<std::string> needs = {},
                         std::vector<std::string> labels = {}, int max_attempts = 2) {
  store::NewJob j;
  j.name = std::move(name);
  j.needs = std::move(needs);
  j.spec_json = kSpec;
  j.labels = std::move(labels);
  j.max_attempts = max_attempts;
  return j;
}

inline int64_t Us(absl::Time t) { return absl::ToUnixMicros(t); }

struct DbFixture {
  testing::TestDatabase tdb;  // first: outlives every connection below
  SimulatedClock clock{kT0};
  store::Db db{tdb.dsn(), 4};
  store::RepoStore repos{&db};
  store::DeliveryStore deliveries{&db};
  store::PipelineStore pipelines{&db, &clock};
  store::JobStore jobs{&db, &clock};
  store::AgentStore agents{&db};
  pqxx::connection raw{tdb.dsn()};
  int64_t repo_id = 0;

  DbFixture() {
    store::NewRepo r;
    r.name = "acme/app";
    r.provider = "github";
    r.clone_url = "https://github.com/acme/app.git";
    r.html_url = "https://github.com/acme/app";
    auto created = repos.Create(r);
    REQUIRE(created.ok());
    repo_id = created->id;
  }

  // Every row of `sql` as text; NULL reads as "NULL".
  Rows Query(const std::string& sql) {
    pqxx::nontransaction tx(raw);
    Rows out;
    for (const auto& row : tx.exec(sql)) {
      std::vector<std::string> r;
      for (const auto& f : row) r.push_back(f.is_null() ? "NULL" : f.as<std::string>());
      out.push_back(std::move(r));
    }
    return out;
  }
  std::string One(const std::string& sql) {
    Rows r = Query(sql);
    REQUIRE(r.size() == 1);
    REQUIRE(r[0].size() == 1);
    return r[0][0];
  }
  int64_t Count(const std::string& sql) { return std::stoll(One(sql)); }
  void Exec(const std::string& sql) {
    pqxx::nontransaction tx(raw);
    tx.exec(sql);
  }

  int64_t Agent(const std::string& name, std::vector<std::string> labels = {}) {
    return Connect(name, std::move(labels)).id;
  }
  // A Hello of the agent `name`: its next session.
  store::AgentSession Connect(const std::string& name, std::vector<std::string> labels = {}) {
    store::AgentHello h;
    h.name = name;
    h.labels = std::move(labels);
    auto session = agents.Connect(h);
    REQUIRE(session.ok());
    return *session;
  }

  int64_t Delivery(const std::string& delivery_id) {
    store::NewDelivery d;
    d.provider = "github";
    d.delivery_id = delivery_id;
    d.event = "push";
    d.repo_id = repo_id;
    d.headers_json = R"({"X-GitHub-Event":"push"})";
    d.body = "{}";
    auto r = deliveries.Insert(d);
    REQUIRE(r.ok());
    REQUIRE(r->inserted);
    return r->id;
  }

  store::NewPipeline Pipeline(std::vector<store::NewJob> jobs_in,
                              std::optional<int64_t> delivery = std::nullopt) {
    store::NewPipeline p;
    p.repo_id = repo_id;
    p.delivery_id = delivery;
    p.event = "push";
    p.ref = "refs/heads/main";
    p.commit_sha = kSha;
    p.jobs = std::move(jobs_in);
    return p;
  }

  int64_t CreatePipeline(std::vector<store::NewJob> jobs_in) {
    auto id = pipelines.Create(Pipeline(std::move(jobs_in)));
    REQUIRE(id.ok());
    return *id;
  }

  // A one-job pipeline on commit `sha`.
  int64_t PipelineOn(const std::string& sha) {
    store::NewPipeline p = Pipeline({Job("build")});
    p.commit_sha = sha;
    auto id = pipelines.Create(p);
    REQUIRE(id.ok());
    return *id;
  }

  int64_t JobId(int64_t pipeline_id, const std::string& name) {
    return std::stoll(One("SELECT id FROM jobs WHERE pipeline_id = " + std::to_string(pipeline_id) +
                          " AND name = '" + name + "'"));
  }
  std::string JobState(int64_t job_id) {
    return One("SELECT state FROM jobs WHERE id = " + std::to_string(job_id));
  }
  std::string PipelineState(int64_t pipeline_id) {
    return One("SELECT state FROM pipelines WHERE id = " + std::to_string(pipeline_id));
  }
  // Epoch microseconds of a timestamptz expression ("NULL" when null).
  std::string UsOf(const std::string& table, const std::string& column, int64_t id) {
    return One("SELECT (extract(epoch from " + column + ") * 1000000)::bigint FROM " + table +
               " WHERE id = " + std::to_string(id));
  }

  // The first queued job in (priority DESC, queued_at, id) order whose labels `labels` cover
  // and that asks for one CPU and no GPU, claimed for `agent` through the dispatcher's path
  // (Queue, then ClaimBatch); nullopt when there is none.
  std::optional<store::ClaimedJob> ClaimNext(int64_t agent,
                                             absl::Duration lease = absl::Seconds(30),
                                             std::vector<std::string> labels = {}) {
    store::QueueFilter filter;
    filter.per_repo = 1000;
    filter.max_cpus = 1;
    filter.max_gpus = 0;
    filter.any_labels = std::move(labels);
    auto q = jobs.Queue(filter);
    REQUIRE(q.ok());
    std::vector<const store::QueuedJobRow*> order;
    for (const auto& j : q->jobs) order.push_back(&j);
    std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
      if (a->priority != b->priority) return a->priority > b->priority;
      if (a->queued_at != b->queued_at) return a->queued_at < b->queued_at;
      return a->job_id < b->job_id;
    });
    // A job whose group has no room is left queued; the next one is tried.
    for (const store::QueuedJobRow* j : order) {
      store::ClaimRequest r;
      r.job_id = j->job_id;
      r.agent_id = agent;
      r.grouped = !j->concurrency_key.empty() || !j->parallel_key.empty();
      auto got = jobs.ClaimBatch({r}, lease);
      REQUIRE(got.status.ok());
      if (!got.claimed.empty()) return got.claimed.front();
    }
    return std::nullopt;
  }

  // Claims exactly the job expected next for `agent`.
  store::ClaimedJob ClaimOne(int64_t agent, absl::Duration lease = absl::Seconds(30),
                             std::vector<std::string> labels = {}) {
    auto c = ClaimNext(agent, lease, std::move(labels));
    REQUIRE(c.has_value());
    return *c;
  }

  store::FinishOutcome FinishJob(const store::ClaimedJob& j, const std::string& state,
                                 std::optional<int> exit_code, const std::string& message = "") {
    store::ResultReport r;
    r.job_id = j.job_id;
    r.attempt_token = j.attempt_token;
    r.state = state;
    r.exit_code = exit_code;
    r.message = message;
    r.started_at = clock.Now() - absl::Seconds(5);
    r.finished_at = clock.Now();
    auto out = jobs.Finish(r);
    REQUIRE(out.ok());
    return *out;
  }
};

}  // namespace assay::dbtest
