// Scheduling rules in the store: retry policies (retry_on / max_attempts) after
// a result and after a lost lease, allow_failure for dependents and the
// pipeline, concurrency groups (one live job per "<repo id>:<group>",
// cancel_in_progress with its NOTIFY assay_cancel) and matrix max_parallel, all
// through JobStore::ClaimBatch.

#include <pqxx/pqxx>

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/db/db_fixture.h"

namespace assay::dbtest {
namespace {

std::string S(int64_t v) { return std::to_string(v); }

store::NewJob RetryJob(std::string name, int max_attempts, std::vector<std::string> on) {
  store::NewJob j = Job(std::move(name));
  j.max_attempts = max_attempts;
  j.retry_on = std::move(on);
  return j;
}

store::NewJob GroupJob(std::string name, std::string group, bool cancel_in_progress = false) {
  store::NewJob j = Job(std::move(name));
  j.concurrency_group = std::move(group);
  j.cancel_in_progress = cancel_in_progress;
  return j;
}

store::ClaimRequest Req(int64_t job_id, int64_t agent_id, bool grouped) {
  store::ClaimRequest r;
  r.job_id = job_id;
  r.agent_id = agent_id;
  r.grouped = grouped;
  return r;
}

std::vector<store::ClaimedJob> ClaimBatch(DbFixture& f, const std::vector<store::ClaimRequest>& b) {
  auto got = f.jobs.ClaimBatch(b, absl::Seconds(30));
  REQUIRE(got.status.ok());
  return got.claimed;
}

std::set<int64_t> IdsOf(const std::vector<store::ClaimedJob>& claimed) {
  std::set<int64_t> out;
  for (const auto& c : claimed) out.insert(c.job_id);
  return out;
}

store::QueueSnapshot Queue(DbFixture& f) {
  auto q = f.jobs.Queue(store::QueueFilter{});
  REQUIRE(q.ok());
  return *q;
}

// Collects the payloads of one channel on a connection of its own.
class Listener : public pqxx::notification_receiver {
 public:
  Listener(pqxx::connection_base& c, const std::string& channel)
      : pqxx::notification_receiver(c, channel) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override {
    payloads.push_back(payload);
  }
  std::vector<std::string> payloads;
};

// Reads notifications until `marker` arrived (NOTIFY delivers in commit order,
// so everything committed before the marker is in by then); false after about
// 20 s without it.
bool DrainUntil(pqxx::connection& conn, Listener& l, const std::string& marker) {
  for (int i = 0; i < 200; ++i) {
    conn.await_notification(0, 100000);
    if (!l.payloads.empty() && l.payloads.back() == marker) {
      l.payloads.pop_back();
      return true;
    }
  }
  return false;
}

// --- retry
// ----------------------------------------------------------------------------------

TEST_CASE(
    "retry on failure: attempts 2 and 3 then the job and pipeline fail "
    "for good",
    "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t pid = f.CreatePipeline({RetryJob("flaky", 3, {"failure"})});  // retry {max: 2}
  const int64_t id = f.JobId(pid, "flaky");

  auto a1 = f.ClaimOne(agent);
  REQUIRE(a1.job_id == id);
  CHECK(a1.attempt == 1);
  f.clock.Advance(absl::Seconds(10));
  auto out = f.FinishJob(a1, "failed", 3, "step 's' exited with 3");
  CHECK(out.fence == store::Fence::kOk);
  CHECK(out.retried);
  CHECK(out.queued == 0);
  CHECK(f.Query("SELECT state, attempt, attempt_token, agent_id, "
                "last_agent_id, exit_code, "
                "message, finished_at, lease_expires_at FROM jobs WHERE id = " +
                S(id)) ==
        Rows{{"queued", "1", "NULL", "NULL", S(agent), "NULL", "NULL", "NULL", "NULL"}});
  CHECK(f.UsOf("jobs", "queued_at", id) == S(Us(f.clock.Now())));
  CHECK(f.Query("SELECT attempt, state, exit_code, message FROM job_attempts "
                "WHERE job_id = " +
                S(id) + " ORDER BY attempt") ==
        Rows{{"1", "failed", "3", "step 's' exited with 3"}});
  CHECK(f.PipelineState(pid) == "running");

  auto a2 = f.ClaimOne(agent);
  REQUIRE(a2.job_id == id);
  CHECK(a2.attempt == 2);
  CHECK(a2.attempt_token != a1.attempt_token);
  // The old attempt's token is dead: its late result changes nothing.
  CHECK(f.FinishJob(a1, "succeeded", 0).fence == store::Fence::kStale);
  out = f.FinishJob(a2, "failed", 4);
  CHECK(out.retried);
  CHECK(f.JobState(id) == "queued");

  auto a3 = f.ClaimOne(agent);
  REQUIRE(a3.job_id == id);
  CHECK(a3.attempt == 3);
  out = f.FinishJob(a3, "failed", 5, "step 's' exited with 5");
  CHECK(out.fence == store::Fence::kOk);
  CHECK_FALSE(out.retried);
  CHECK(f.Query("SELECT state, attempt, exit_code, message FROM jobs WHERE id = " + S(id)) ==
        Rows{{"failed", "3", "5", "step 's' exited with 5"}});
  CHECK(f.Query("SELECT attempt, state, exit_code, agent_id FROM job_attempts "
                "WHERE job_id = " +
                S(id) + " ORDER BY attempt") == Rows{{"1", "failed", "3", S(agent)},
                                                     {"2", "failed", "4", S(agent)},
                                                     {"3", "failed", "5", S(agent)}});
  CHECK(f.PipelineState(pid) == "failed");
}

TEST_CASE("retry on failure does not retry a timeout", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t pid = f.CreatePipeline({RetryJob("slow", 3, {"failure"})});
  auto a1 = f.ClaimOne(agent);
  auto out = f.FinishJob(a1, "timed_out", std::nullopt, "timed out after 60 s");
  CHECK_FALSE(out.retried);
  CHECK(f.Query("SELECT state, attempt, message FROM jobs WHERE id = " + S(a1.job_id)) ==
        Rows{{"timed_out", "1", "timed out after 60 s"}});
  CHECK(f.Count("SELECT count(*) FROM job_attempts") == 1);
  CHECK(f.PipelineState(pid) == "failed");
}

TEST_CASE("retry on timeout retries a timeout once per remaining attempt", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t pid = f.CreatePipeline({RetryJob("slow", 2, {"timeout"})});
  auto a1 = f.ClaimOne(agent);
  CHECK(f.FinishJob(a1, "timed_out", std::nullopt, "timed out after 60 s").retried);
  auto a2 = f.ClaimOne(agent);
  CHECK(a2.attempt == 2);
  CHECK_FALSE(f.FinishJob(a2, "timed_out", std::nullopt, "timed out after 60 s").retried);
  CHECK(f.Query("SELECT attempt, state FROM job_attempts ORDER BY attempt") ==
        Rows{{"1", "timed_out"}, {"2", "timed_out"}});
  CHECK(f.PipelineState(pid) == "failed");
}

TEST_CASE("default retry policy: a failure is final but an expired lease is retried", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t pid = f.CreatePipeline({Job("fails"), Job("lost")});  // max_attempts 2, {agent_lost}
  CHECK(f.Query("SELECT name, max_attempts, retry_on::text FROM jobs ORDER BY id") ==
        Rows{{"fails", "2", "{agent_lost}"}, {"lost", "2", "{agent_lost}"}});
  auto fails = f.ClaimOne(agent);
  REQUIRE(fails.job_name == "fails");
  auto lost = f.ClaimOne(agent, absl::Seconds(30));
  REQUIRE(lost.job_name == "lost");

  auto out = f.FinishJob(fails, "failed", 1);
  CHECK_FALSE(out.retried);
  CHECK(f.JobState(fails.job_id) == "failed");

  f.clock.Advance(absl::Seconds(31));
  auto n = f.jobs.ExpireLeases();
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK(f.Query("SELECT state, attempt, agent_id, last_agent_id, message FROM "
                "jobs WHERE id = " +
                S(lost.job_id)) == Rows{{"queued", "1", "NULL", S(agent), "NULL"}});
  CHECK(f.Query("SELECT attempt, state, message FROM job_attempts WHERE job_id = " +
                S(lost.job_id)) == Rows{{"1", "lost", "agent lost: lease expired"}});
  auto again = f.ClaimOne(agent);
  CHECK(again.job_id == lost.job_id);
  CHECK(again.attempt == 2);
  CHECK(f.PipelineState(pid) == "running");
}

TEST_CASE("retry on failure only: an expired lease fails the job", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t pid = f.CreatePipeline({RetryJob("a", 3, {"failure"}), Job("b", {"a"})});
  auto a = f.ClaimOne(agent, absl::Seconds(30));
  f.clock.Advance(absl::Seconds(31));
  auto n = f.jobs.ExpireLeases();
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK(f.Query("SELECT name, state, attempt, message FROM jobs ORDER BY id") ==
        Rows{{"a", "failed", "1", "agent lost: lease expired"},
             {"b", "skipped", "0", "skipped: a job it needs did not succeed"}});
  CHECK(f.Query("SELECT state, message FROM job_attempts WHERE job_id = " + S(a.job_id)) ==
        Rows{{"lost", "agent lost: lease expired"}});
  CHECK(f.PipelineState(pid) == "failed");
}

// --- allow_failure
// --------------------------------------------------------------------------

TEST_CASE("allow_failure: a failed need still lets its dependent run", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  store::NewJob a = Job("a");
  a.allow_failure = true;
  int64_t pid = f.CreatePipeline({a, Job("b", {"a"})});
  auto ja = f.ClaimOne(agent);
  REQUIRE(ja.job_name == "a");
  auto out = f.FinishJob(ja, "failed", 1);
  CHECK(out.queued == 1);
  CHECK(f.Query("SELECT name, state FROM jobs ORDER BY id") ==
        Rows{{"a", "failed"}, {"b", "queued"}});
  CHECK(f.PipelineState(pid) == "running");
  auto jb = f.ClaimOne(agent);
  REQUIRE(jb.job_name == "b");
  f.FinishJob(jb, "succeeded", 0);
  CHECK(f.PipelineState(pid) == "succeeded");
}

TEST_CASE("allow_failure: a timed-out allowed job counts as success too", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  store::NewJob a = Job("a");
  a.allow_failure = true;
  int64_t pid = f.CreatePipeline({a});
  f.FinishJob(f.ClaimOne(agent), "timed_out", std::nullopt, "timed out after 60 s");
  CHECK(f.PipelineState(pid) == "succeeded");
}

TEST_CASE("without allow_failure the dependent is skipped and the pipeline fails", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t pid = f.CreatePipeline({Job("a"), Job("b", {"a"})});
  auto out = f.FinishJob(f.ClaimOne(agent), "failed", 1);
  CHECK(out.queued == 0);
  CHECK(f.Query("SELECT name, state, message FROM jobs ORDER BY id") ==
        Rows{{"a", "failed", "NULL"}, {"b", "skipped", "skipped: a job it needs did not succeed"}});
  CHECK(f.PipelineState(pid) == "failed");
}

// --- concurrency groups
// ---------------------------------------------------------------------

TEST_CASE("concurrency group: one live job per group and repository", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  int64_t p1 = f.CreatePipeline({GroupJob("deploy", "deploy")});
  f.clock.Advance(absl::Seconds(1));
  int64_t p2 = f.CreatePipeline({GroupJob("deploy", "deploy")});
  const int64_t j1 = f.JobId(p1, "deploy"), j2 = f.JobId(p2, "deploy");
  const std::string key = S(f.repo_id) + ":deploy";
  CHECK(f.Query("SELECT concurrency_key FROM jobs ORDER BY id") == Rows{{key}, {key}});

  SECTION("both requested in one batch: only the first is claimed") {
    auto got = ClaimBatch(f, {Req(j1, agent, true), Req(j2, agent, true)});
    CHECK(IdsOf(got) == std::set<int64_t>{j1});
    CHECK(f.JobState(j2) == "queued");
  }

  SECTION("one after the other, and again once the first has finished") {
    auto first = ClaimBatch(f, {Req(j1, agent, true)});
    REQUIRE(IdsOf(first) == std::set<int64_t>{j1});
    CHECK(ClaimBatch(f, {Req(j2, agent, true)}).empty());
    CHECK(f.JobState(j2) == "queued");
    auto q = Queue(f);
    CHECK(q.held_groups == std::set<std::string>{key});
    REQUIRE(q.jobs.size() == 1);
    CHECK(q.jobs[0].job_id == j2);
    CHECK(q.jobs[0].concurrency_key == key);

    // Running still holds it.
    REQUIRE(*f.jobs.MarkRunning(j1, first[0].attempt_token) == store::Fence::kOk);
    CHECK(ClaimBatch(f, {Req(j2, agent, true)}).empty());

    f.FinishJob(first[0], "succeeded", 0);
    CHECK(Queue(f).held_groups.empty());
    auto second = ClaimBatch(f, {Req(j2, agent, true)});
    CHECK(IdsOf(second) == std::set<int64_t>{j2});
    // Nothing is queued now, so Queue skips reading the groups; the live job holds it.
    auto live = f.jobs.LiveUsageAll();
    REQUIRE(live.ok());
    REQUIRE(live->size() == 1);
    CHECK((*live)[0].concurrency_key == key);
  }

  SECTION("the same group name in another repository does not block") {
    store::NewRepo r;
    r.name = "acme/other";
    r.provider = "github";
    r.clone_url = "https://github.com/acme/other.git";
    r.html_url = "https://github.com/acme/other";
    auto other = f.repos.Create(r);
    REQUIRE(other.ok());
    store::NewPipeline p = f.Pipeline({GroupJob("deploy", "deploy")});
    p.repo_id = other->id;
    auto p3 = f.pipelines.Create(p);
    REQUIRE(p3.ok());
    const int64_t j3 = f.JobId(*p3, "deploy");
    CHECK(f.One("SELECT concurrency_key FROM jobs WHERE id = " + S(j3)) ==
          S(other->id) + ":deploy");
    auto got = ClaimBatch(f, {Req(j1, agent, true), Req(j2, agent, true), Req(j3, agent, true)});
    CHECK(IdsOf(got) == std::set<int64_t>{j1, j3});
    CHECK(Queue(f).held_groups == std::set<std::string>{key, S(other->id) + ":deploy"});
  }
}

TEST_CASE("cancel_in_progress cancels the older live job and tells its agent", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  pqxx::connection conn(f.tdb.dsn());
  Listener cancels(conn, "assay_cancel");

  int64_t p1 = f.CreatePipeline({GroupJob("deploy", "deploy", true), Job("notes")});
  const int64_t j1 = f.JobId(p1, "deploy");
  auto first = ClaimBatch(f, {Req(j1, agent, true)});
  REQUIRE(first.size() == 1);
  REQUIRE(*f.jobs.MarkRunning(j1, first[0].attempt_token) == store::Fence::kOk);
  f.clock.Advance(absl::Seconds(5));

  int64_t p2 = f.CreatePipeline({GroupJob("deploy", "deploy", true)});
  const int64_t j2 = f.JobId(p2, "deploy");
  const std::string message = "canceled: pipeline " + S(p2) +
                              " started a newer job in concurrency group 'deploy' "
                              "(cancel_in_progress)";
  CHECK(f.Query("SELECT name, state, message, lease_expires_at FROM jobs WHERE "
                "pipeline_id = " +
                S(p1) + " ORDER BY id") ==
        Rows{{"deploy", "canceled", message, "NULL"}, {"notes", "queued", "NULL", "NULL"}});
  CHECK(f.UsOf("jobs", "finished_at", j1) == S(Us(f.clock.Now())));
  CHECK(f.Query("SELECT state, message FROM job_attempts WHERE job_id = " + S(j1)) ==
        Rows{{"canceled", message}});
  CHECK(f.PipelineState(p1) == "running");  // 'notes' is not in the group
  CHECK(f.JobState(j2) == "queued");

  f.Exec("NOTIFY assay_cancel, 'marker'");
  REQUIRE(DrainUntil(conn, cancels, "marker"));
  CHECK(cancels.payloads ==
        std::vector<std::string>{S(agent) + " " + S(j1) + " " + first[0].attempt_token});

  // The old attempt's result is stale now; the group is free for the newer job.
  CHECK(f.FinishJob(first[0], "succeeded", 0).fence == store::Fence::kDuplicate);
  CHECK(f.JobState(j1) == "canceled");
  CHECK(IdsOf(ClaimBatch(f, {Req(j2, agent, true)})) == std::set<int64_t>{j2});
}

TEST_CASE(
    "cancel_in_progress: a queued older job is canceled without an agent "
    "message",
    "[db]") {
  DbFixture f;
  pqxx::connection conn(f.tdb.dsn());
  Listener cancels(conn, "assay_cancel");
  int64_t p1 = f.CreatePipeline({GroupJob("deploy", "deploy")});
  f.clock.Advance(absl::Seconds(1));
  int64_t p2 = f.CreatePipeline({GroupJob("deploy", "deploy", true)});
  CHECK(f.Query("SELECT state, message FROM jobs WHERE pipeline_id = " + S(p1)) ==
        Rows{{"canceled", "canceled: pipeline " + S(p2) +
                              " started a newer job in concurrency group 'deploy' "
                              "(cancel_in_progress)"}});
  CHECK(f.PipelineState(p1) == "canceled");
  CHECK(f.Count("SELECT count(*) FROM job_attempts") == 0);
  f.Exec("NOTIFY assay_cancel, 'marker'");
  REQUIRE(DrainUntil(conn, cancels, "marker"));
  CHECK(cancels.payloads.empty());
  CHECK(f.JobState(f.JobId(p2, "deploy")) == "queued");
}

TEST_CASE("without cancel_in_progress the older job of the group is left alone", "[db]") {
  DbFixture f;
  int64_t p1 = f.CreatePipeline({GroupJob("deploy", "deploy")});
  f.CreatePipeline({GroupJob("deploy", "deploy")});
  CHECK(f.JobState(f.JobId(p1, "deploy")) == "queued");
  CHECK(f.PipelineState(p1) == "running");
}

// --- max_parallel
// ---------------------------------------------------------------------------

TEST_CASE("max_parallel: at most 2 of 5 matrix jobs live even from one batch", "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  std::vector<store::NewJob> matrix;
  for (int i = 1; i <= 5; ++i) {
    store::NewJob j = Job("train (" + std::to_string(i) + ")");
    j.base_name = "train";
    j.max_parallel = 2;
    matrix.push_back(j);
  }
  int64_t pid = f.CreatePipeline(matrix);
  const std::string key = S(pid) + ":train";
  CHECK(f.Query("SELECT DISTINCT parallel_key, max_parallel FROM jobs") == Rows{{key, "2"}});
  std::vector<int64_t> ids;
  for (int i = 1; i <= 5; ++i) ids.push_back(f.JobId(pid, "train (" + std::to_string(i) + ")"));
  auto all = [&] {
    std::vector<store::ClaimRequest> b;
    for (int64_t id : ids) b.push_back(Req(id, agent, true));
    return b;
  };
  auto live = [&] {
    return f.Count("SELECT count(*) FROM jobs WHERE state IN ('assigned', 'running')");
  };

  auto got = ClaimBatch(f, all());
  CHECK(IdsOf(got) == std::set<int64_t>{ids[0], ids[1]});
  CHECK(live() == 2);
  CHECK(Queue(f).running_per_parallel_key == std::map<std::string, int>{{key, 2}});
  CHECK(ClaimBatch(f, all()).empty());

  int finished = 0;
  std::vector<store::ClaimedJob> running = got;
  while (!running.empty()) {
    f.FinishJob(running.front(), "succeeded", 0);
    running.erase(running.begin());
    ++finished;
    auto more = ClaimBatch(f, all());
    CHECK(more.size() <= 1);
    for (auto& c : more) running.push_back(c);
    CHECK(live() <= 2);
    CHECK(live() == static_cast<int64_t>(running.size()));
  }
  CHECK(finished == 5);
  CHECK(f.PipelineState(pid) == "succeeded");
  CHECK(f.Count("SELECT count(*) FROM job_attempts") == 5);
}

TEST_CASE(
    "max_parallel counts per pipeline: another pipeline's matrix is not "
    "held back",
    "[db]") {
  DbFixture f;
  int64_t agent = f.Agent("agent-1");
  auto matrix = [] {
    std::vector<store::NewJob> out;
    for (int i = 1; i <= 2; ++i) {
      store::NewJob j = Job("train (" + std::to_string(i) + ")");
      j.base_name = "train";
      j.max_parallel = 1;
      out.push_back(j);
    }
    return out;
  };
  int64_t p1 = f.CreatePipeline(matrix());
  int64_t p2 = f.CreatePipeline(matrix());
  std::vector<store::ClaimRequest> b;
  for (int64_t pid : {p1, p2}) {
    for (int i = 1; i <= 2; ++i) {
      b.push_back(Req(f.JobId(pid, "train (" + std::to_string(i) + ")"), agent, true));
    }
  }
  auto got = ClaimBatch(f, b);
  CHECK(IdsOf(got) == std::set<int64_t>{f.JobId(p1, "train (1)"), f.JobId(p2, "train (1)")});
}

// --- live attempts and leases of a disconnected agent
// ---------------------------------------

TEST_CASE("live jobs: what an agent holds and every live attempt with its groups", "[db]") {
  DbFixture f;
  int64_t gpu = f.Agent("gpu-1");
  int64_t cpu = f.Agent("cpu-1");
  store::NewJob train = Job("train", {}, {"cuda"});
  train.requirements_json = R"({"cpus":2,"gpus":2})";
  train.concurrency_group = "gpu-box";
  store::NewJob lint = Job("lint");
  lint.base_name = "lint";
  lint.max_parallel = 3;
  int64_t pid = f.CreatePipeline({train, lint, Job("done")});
  const int64_t t = f.JobId(pid, "train"), l = f.JobId(pid, "lint"), d = f.JobId(pid, "done");
  store::ClaimRequest rt = Req(t, gpu, true);
  rt.gpu_indices = {1, 3};
  auto got = ClaimBatch(f, {rt, Req(l, cpu, true), Req(d, cpu, false)});
  REQUIRE(got.size() == 3);
  std::map<int64_t, store::ClaimedJob> by_id;
  for (const auto& c : got) by_id[c.job_id] = c;
  CHECK(by_id[t].gpu_indices == std::vector<uint32_t>{1, 3});
  CHECK(by_id[l].gpu_indices.empty());
  f.FinishJob(by_id[d], "succeeded", 0);

  auto of_gpu = f.jobs.LiveJobsOf(gpu);
  REQUIRE(of_gpu.ok());
  REQUIRE(of_gpu->size() == 1);
  CHECK((*of_gpu)[0].job_id == t);
  CHECK((*of_gpu)[0].attempt_token == by_id[t].attempt_token);
  CHECK((*of_gpu)[0].labels == std::vector<std::string>{"cuda"});
  CHECK((*of_gpu)[0].requirements_json == R"({"cpus": 2, "gpus": 2})");
  CHECK((*of_gpu)[0].gpu_indices == std::vector<uint32_t>{1, 3});
  auto of_cpu = f.jobs.LiveJobsOf(cpu);
  REQUIRE(of_cpu.ok());
  REQUIRE(of_cpu->size() == 1);  // 'done' has finished
  CHECK((*of_cpu)[0].job_id == l);
  CHECK((*of_cpu)[0].gpu_indices.empty());

  auto all = f.jobs.LiveUsageAll();
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].job_id == t);
  CHECK((*all)[0].pipeline_id == pid);
  CHECK((*all)[0].agent_id == gpu);
  CHECK((*all)[0].concurrency_key == S(f.repo_id) + ":gpu-box");
  CHECK((*all)[0].parallel_key == "");
  CHECK((*all)[1].job_id == l);
  CHECK((*all)[1].agent_id == cpu);
  CHECK((*all)[1].concurrency_key == "");
  CHECK((*all)[1].parallel_key == S(pid) + ":lint");
}

TEST_CASE(
    "shorten leases: a disconnected agent's attempts expire after the "
    "grace only",
    "[db]") {
  DbFixture f;
  store::AgentSession gone_session = f.Connect("agent-gone");
  int64_t gone = gone_session.id;
  int64_t other = f.Agent("agent-other");
  int64_t pid = f.CreatePipeline({Job("a"), Job("b"), Job("c")});
  auto a = f.ClaimOne(gone, absl::Seconds(30));
  auto b = f.ClaimOne(gone, absl::Seconds(3));  // already shorter than the grace
  auto c = f.ClaimOne(other, absl::Seconds(30));
  const absl::Time t = f.clock.Now();
  auto shortened = f.jobs.ShortenLeases(gone_session, absl::Seconds(10));
  REQUIRE(shortened.ok());
  CHECK(*shortened == 2);
  CHECK(f.UsOf("jobs", "lease_expires_at", a.job_id) == S(Us(t + absl::Seconds(10))));
  CHECK(f.UsOf("jobs", "lease_expires_at", b.job_id) == S(Us(t + absl::Seconds(3))));
  CHECK(f.UsOf("jobs", "lease_expires_at", c.job_id) == S(Us(t + absl::Seconds(30))));

  f.clock.Advance(absl::Seconds(11));
  auto n = f.jobs.ExpireLeases();
  REQUIRE(n.ok());
  CHECK(*n == 2);
  CHECK(f.Query("SELECT name, state, last_agent_id FROM jobs WHERE pipeline_id = " + S(pid) +
                " ORDER BY id") ==
        Rows{{"a", "queued", S(gone)}, {"b", "queued", S(gone)}, {"c", "assigned", "NULL"}});
}

}  // namespace
}  // namespace assay::dbtest
