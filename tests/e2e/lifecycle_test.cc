// Agent lifecycle (issue 9) with real processes: SIGTERM drains (the running job finishes and
// is recorded, nothing new is given to the agent, it exits 0), --drain-timeout stops the job
// (its attempt is lost and it runs again on another agent), an admin's drain through the API
// and the CLI (kept across a server restart, lifted by resume; hostile calls refused), the
// disk floor, and the leftovers of a killed agent removed at the next start.
#include <sys/mount.h>
#include <sys/stat.h>

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>

#include "assay/v1/agent.grpc.pb.h"
#include "common/net/http_client.h"

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

// A job `long` that says it started (DIR/started), then waits for DIR/gate (at most 60 s) and
// says it finished.
std::string GatedJobFile(const std::string& dir) {
  return absl::StrReplaceAll(R"yml(jobs:
  long:
    steps:
      - run: |
          echo started
          touch DIR/started
          i=0
          while [ ! -e DIR/gate ] && [ $i -lt 6000 ]; do sleep 0.01; i=$((i+1)); done
          echo finished
)yml",
                             {{"DIR", dir}});
}

constexpr char kQuickJobFile[] = R"yml(jobs:
  next:
    steps:
      - run: echo next ran
)yml";

void WaitForFile(Cluster& c, const std::string& path) {
  MUST(c.WaitUntil(absl::StrCat(path, " to exist"), [&](std::string& seen) {
    seen = std::filesystem::exists(path) ? "exists" : "missing";
    return std::filesystem::exists(path);
  }));
}

// The agent's row in GET /api/v1/agents.
json::object AgentOf(Cluster& c, const std::string& name) {
  json::object o = MUST(c.ApiObject("GET", "/api/v1/agents"));
  for (const auto& a : o.at("agents").as_array()) {
    if (JsonString(a.as_object(), "name") == name) return a.as_object();
  }
  FAIL("no agent " << name << " in " << json::serialize(o));
  return {};
}

// Waits until the job's "waiting" sentence satisfies `ok`; returns it.
std::string WaitForWaiting(Cluster& c, int64_t job,
                           const std::function<bool(const std::string&)>& ok) {
  std::string sentence;
  MUST(c.WaitUntil(absl::StrCat("job ", job, "'s waiting sentence"), [&](std::string& seen) {
    auto o = c.ApiObject("GET", absl::StrCat("/api/v1/jobs/", job));
    if (!o.ok()) return false;
    seen = json::serialize(*o);
    sentence = JsonString(*o, "waiting");
    return ok(sentence);
  }));
  return sentence;
}

int64_t OnlyJob(Cluster& c, int64_t pipeline, const std::string& name) {
  return JobId(MUST(c.ApiObject("GET", absl::StrCat("/api/v1/pipelines/", pipeline))), name);
}

// "attempt state agent message" per attempt of the job, in order.
std::vector<std::string> Attempts(Cluster& c, int64_t job) {
  std::vector<std::string> out;
  for (const auto& r : MUST(c.Query(absl::StrCat(
           "SELECT t.attempt, t.state, a.name, coalesce(t.message, '-') FROM job_attempts t "
           "JOIN agents a ON a.id = t.agent_id WHERE t.job_id = ",
           job, " ORDER BY t.attempt")))) {
    out.push_back(absl::StrCat(*r[0], " ", *r[1], " ", *r[2], " ", *r[3]));
  }
  return out;
}

// The stored log of one attempt of the job.
std::string AttemptLog(Cluster& c, int64_t job, int attempt) {
  auto rows = MUST(c.Query(absl::StrCat(
      "SELECT coalesce(string_agg(convert_from(data, 'UTF8'), '' ORDER BY seq), '') FROM "
      "log_chunks WHERE job_id = ",
      job, " AND attempt = ", attempt)));
  return rows.size() == 1 && rows[0][0] ? *rows[0][0] : "";
}

std::string AgentOfJob(Cluster& c, int64_t job) {
  auto rows = MUST(c.Query(absl::StrCat(
      "SELECT a.name FROM jobs j JOIN agents a ON a.id = j.agent_id WHERE j.id = ", job)));
  return rows.size() == 1 && rows[0][0] ? *rows[0][0] : "";
}

TEST_CASE("SIGTERM: the running job finishes and is recorded, nothing new is given, exit 0",
          "[e2e][lifecycle]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  testing::Process* a1 = MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const int64_t p1 = PushFiles(c, repo, {{".assay.yml", GatedJobFile(c.dir())}});
  MUST(c.WaitForJobState(p1, "long", "running"));
  WaitForFile(c, c.dir() + "/started");

  a1->Kill(SIGTERM);
  // The server knows at once, not when the agent leaves.
  MUST(c.WaitUntil("the server to record that a1 drains", [&](std::string& seen) {
    json::object a = AgentOf(c, "a1");
    seen = json::serialize(a);
    return !a.at("accepting").as_bool() && JsonString(a, "state_reason") == "draining (SIGTERM)";
  }));
  const int64_t p2 = PushFiles(c, repo, {{".assay.yml", kQuickJobFile}}, "delivery-2");
  const int64_t next = OnlyJob(c, p2, "next");
  CHECK(WaitForWaiting(c, next, [](const std::string& s) { return !s.empty(); }) ==
        "agent a1 is draining (SIGTERM)");
  CHECK(!a1->Exited());  // it waits for its job

  std::ofstream(c.dir() + "/gate") << "go";
  std::optional<int> exit = a1->Wait(absl::Seconds(60));
  INFO(c.LogTails());
  REQUIRE(exit.has_value());
  CHECK(*exit == 0);
  json::object done = MUST(c.WaitForPipelineDone(p1));
  CHECK(JsonString(Job(done, "long"), "state") == "succeeded");
  CHECK(MUST(c.JobLog(JobId(done, "long"))) == "started\nfinished\n");
  // Nothing else was ever given to a1.
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts t JOIN agents a ON a.id = t.agent_id "
                        "WHERE a.name = 'a1'")) == 1);
  CHECK(MUST(c.QueryInt(absl::StrCat("SELECT count(*) FROM job_attempts WHERE job_id = ", next))) ==
        0);
  CHECK(absl::StrContains(a1->LogTail(), "drained: no job left to run or deliver; exiting"));
  CHECK(std::filesystem::is_empty(c.dir() + "/agent-a1/jobs"));

  // Another agent takes the waiting job.
  MUST(c.StartAgent("a2"));
  json::object p = MUST(c.WaitForPipelineDone(p2));
  CHECK(JsonString(Job(p, "next"), "state") == "succeeded");
  CHECK(AgentOfJob(c, next) == "a2");
}

TEST_CASE("SIGTERM with --drain-timeout: the job is stopped, lost and run again on another agent",
          "[e2e][lifecycle]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  testing::Process* a1 = MUST(c.StartAgent("a1", {"--drain-timeout", "1s"}));
  MUST(c.WaitForAgents(1));
  const int64_t p1 = PushFiles(c, repo, {{".assay.yml", GatedJobFile(c.dir())}});
  MUST(c.WaitForJobState(p1, "long", "running"));
  WaitForFile(c, c.dir() + "/started");
  const int64_t job = OnlyJob(c, p1, "long");

  a1->Kill(SIGTERM);  // no gate: the job would run 60 s
  std::optional<int> exit = a1->Wait(absl::Seconds(30));
  INFO(c.LogTails());
  REQUIRE(exit.has_value());
  CHECK(*exit == 0);
  // Not the user's cancel: the attempt is lost (the operator stopped the agent) and the job,
  // whose default policy retries agent_lost once, waits for another agent.
  json::object j = MUST(c.WaitForJobState(p1, "long", "queued"));
  const std::string why =
      "stopped by the agent: it is stopping (SIGTERM) and its --drain-timeout of 1s passed";
  CHECK(Attempts(c, job) == std::vector<std::string>{"1 lost a1 " + why});
  CHECK(AttemptLog(c, job, 1) ==
        absl::StrCat(
            "started\nassay: job canceled; sent SIGTERM to the process group\nassay: ", why, "\n"));
  // Its workspace went with it (the agent removes it before it exits).
  CHECK(std::filesystem::is_empty(c.dir() + "/agent-a1/jobs"));

  std::ofstream(c.dir() + "/gate") << "go";
  MUST(c.StartAgent("a2"));
  json::object done = MUST(c.WaitForPipelineDone(p1));
  CHECK(JsonString(Job(done, "long"), "state") == "succeeded");
  CHECK(Job(done, "long").at("attempt").as_int64() == 2);
  CHECK(Attempts(c, job) == std::vector<std::string>{"1 lost a1 " + why, "2 succeeded a2 -"});
  CHECK(MUST(c.JobLog(job)) == "started\nfinished\n");
}

TEST_CASE("a second SIGTERM stops the running job at once, its result still delivered",
          "[e2e][lifecycle]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  testing::Process* a1 = MUST(c.StartAgent("a1", {"--drain-timeout", "10m"}));
  MUST(c.WaitForAgents(1));
  const int64_t p1 = PushFiles(c, repo, {{".assay.yml", GatedJobFile(c.dir())}});
  MUST(c.WaitForJobState(p1, "long", "running"));
  WaitForFile(c, c.dir() + "/started");

  a1->Kill(SIGTERM);
  // Why wait: two signals sent at once may arrive as one.
  MUST(c.WaitUntil("the server to record that a1 drains", [&](std::string& seen) {
    json::object a = AgentOf(c, "a1");
    seen = json::serialize(a);
    return !a.at("accepting").as_bool();
  }));
  a1->Kill(SIGTERM);
  std::optional<int> exit = a1->Wait(absl::Seconds(30));
  INFO(c.LogTails());
  REQUIRE(exit.has_value());
  CHECK(*exit == 0);
  MUST(c.WaitForJobState(p1, "long", "queued"));
  CHECK(Attempts(c, OnlyJob(c, p1, "long")) ==
        std::vector<std::string>{"1 lost a1 stopped by the agent: it is stopping (a second "
                                 "SIGTERM)"});
}

TEST_CASE("a drain through another replica reaches the agent's stream on the first server",
          "[e2e][lifecycle]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  const int replica = MUST(c.StartReplica());
  testing::Process* a1 = MUST(c.StartAgent("a1"));  // connects to the first server
  MUST(c.WaitForAgents(1));
  const int64_t p1 = PushFiles(c, repo, {{".assay.yml", GatedJobFile(c.dir())}});
  MUST(c.WaitForJobState(p1, "long", "running"));
  WaitForFile(c, c.dir() + "/started");

  auto r = MUST(HttpFetch("POST", c.replica_http_url(replica) + "/api/v1/agents/a1/drain",
                          {{"Authorization", absl::StrCat("Bearer ", testing::kAdminToken)},
                           {"Content-Type", "application/json"}},
                          R"({"reason":"moving racks","timeout":"0s"})", absl::Seconds(10)));
  INFO(r.body);
  REQUIRE(r.status == 200);
  // The job is queued again (its attempt lost) and waits: its only agent is drained.
  MUST(c.WaitForJobState(p1, "long", "queued"));
  INFO(c.LogTails());
  CHECK(Attempts(c, OnlyJob(c, p1, "long")) ==
        std::vector<std::string>{
            "1 lost a1 stopped by the agent: an admin drained it and the drain's timeout passed"});
  CHECK(!a1->Exited());
}

TEST_CASE("workspaces are removed after a timeout and a failure, read-only directories too",
          "[e2e][lifecycle]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--slots", "2"}));
  MUST(c.WaitForAgents(1));
  const int64_t p = PushFiles(c, repo, {{".assay.yml", R"yml(jobs:
  slow:
    timeout: 1s
    steps:
      - run: mkdir -p ro/deep && touch ro/deep/f && chmod 500 ro/deep ro && sleep 30
  broken:
    steps:
      - run: mkdir -p ro/deep && touch ro/deep/f && chmod 500 ro/deep ro && exit 3
)yml"}});
  json::object done = MUST(c.WaitForPipelineDone(p));
  CHECK(JsonString(Job(done, "slow"), "state") == "timed_out");
  CHECK(JsonString(Job(done, "broken"), "state") == "failed");
  const std::string jobs = c.dir() + "/agent-a1/jobs";
  MUST(c.WaitUntil("both workspaces to be removed", [&](std::string& seen) {
    seen.clear();
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(jobs, ec)) {
      seen += e.path().string() + " ";
    }
    return !ec && seen.empty();
  }));
}

TEST_CASE("drain through the API and the CLI: idle until resumed, kept across a restart",
          "[e2e][lifecycle]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  testing::Process* a1 = MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const int64_t p1 = PushFiles(c, repo, {{".assay.yml", GatedJobFile(c.dir())}});
  MUST(c.WaitForJobState(p1, "long", "running"));
  WaitForFile(c, c.dir() + "/started");

  // Hostile and mistaken calls first: they change nothing.
  auto unknown = MUST(c.Api("POST", "/api/v1/agents/nope/drain"));
  CHECK(unknown.status == 404);
  CHECK(unknown.body == R"({"error":{"code":"not_found","message":"no agent named 'nope'"}})");
  auto anonymous = MUST(c.Fetch("POST", "/api/v1/agents/a1/drain"));
  CHECK(anonymous.status == 401);
  auto wrong = MUST(c.Fetch("POST", "/api/v1/agents/a1/drain",
                            {{"Authorization", "Bearer not-the-admin-token-0123456789abcdef"}}));
  CHECK(wrong.status == 401);
  auto bad_timeout = MUST(c.Api("POST", "/api/v1/agents/a1/drain", R"({"timeout":"forever"})"));
  CHECK(bad_timeout.status == 400);
  CHECK(bad_timeout.body ==
        absl::StrCat(R"({"error":{"code":"invalid_argument","message":"field 'timeout' must be )",
                     R"(a duration from 0s to 720h, like 30m"}})"));
  auto extra = MUST(c.Api("POST", "/api/v1/agents/a1/drain", R"({"reasons":"x"})"));
  CHECK(extra.status == 400);
  auto long_reason = MUST(c.Api("POST", "/api/v1/agents/a1/drain",
                                absl::StrCat(R"({"reason":")", std::string(301, 'r'), R"("})")));
  CHECK(long_reason.status == 400);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM agents WHERE drained_at IS NOT NULL")) == 0);

  auto drain = MUST(c.RunCli({"agents", "drain", "a1", "--reason", "maintenance"}));
  INFO(drain.out << drain.err);
  CHECK(drain.exit_code == 0);
  CHECK(drain.out ==
        "agent a1: drained (no new jobs; running jobs finish; "
        "`assay agents resume a1` lifts it)\n");
  // Again: the same answer (idempotent).
  json::object again =
      MUST(c.ApiObject("POST", "/api/v1/agents/a1/drain", R"({"reason":"maintenance"})"));
  CHECK(again.at("drained").as_bool());
  CHECK(JsonString(again, "reason") == "maintenance");
  CHECK(again.at("deadline").is_null());
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM agents WHERE drained_at IS NOT NULL")) == 1);

  const int64_t p2 = PushFiles(c, repo, {{".assay.yml", kQuickJobFile}}, "delivery-2");
  const int64_t next = OnlyJob(c, p2, "next");
  const std::string sentence = "agent a1 is draining (drained by an admin: maintenance)";
  CHECK(WaitForWaiting(c, next, [](const std::string& s) { return !s.empty(); }) == sentence);
  json::object row = AgentOf(c, "a1");
  CHECK(row.at("drained").as_bool());
  CHECK(JsonString(row, "drain_reason") == "maintenance");
  CHECK(row.at("accepting").as_bool());  // the agent's own view: it would
  auto list = MUST(c.RunCli({"agents", "list"}));
  CHECK(list.exit_code == 0);
  CHECK(absl::StrContains(list.out, "online (drained)"));

  // The running job finishes; the agent stays connected and idle.
  std::ofstream(c.dir() + "/gate") << "go";
  json::object done = MUST(c.WaitForPipelineDone(p1));
  CHECK(JsonString(Job(done, "long"), "state") == "succeeded");
  CHECK(!a1->Exited());
  CHECK(WaitForWaiting(c, next, [](const std::string& s) { return !s.empty(); }) == sentence);

  // A server restart keeps the drain: the agent reconnects and still gets nothing.
  MUST(c.StopServer());
  MUST(c.StartServer());
  MUST(c.WaitForAgents(1));
  CHECK(WaitForWaiting(c, next, [](const std::string& s) { return !s.empty(); }) == sentence);
  CHECK(MUST(c.QueryInt(absl::StrCat("SELECT count(*) FROM job_attempts WHERE job_id = ", next))) ==
        0);

  auto resume = MUST(c.RunCli({"agents", "resume", "a1"}));
  INFO(resume.out << resume.err);
  CHECK(resume.exit_code == 0);
  CHECK(resume.out == "agent a1: resumed (takes jobs again)\n");
  json::object p = MUST(c.WaitForPipelineDone(p2));
  CHECK(JsonString(Job(p, "next"), "state") == "succeeded");
  CHECK(AgentOfJob(c, next) == "a1");
  CHECK(MUST(c.Api("POST", "/api/v1/agents/nope/resume")).status == 404);
}

TEST_CASE("drain with a timeout through the API stops the running job, queued again, agent stays",
          "[e2e][lifecycle]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  testing::Process* a1 = MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const int64_t p1 = PushFiles(c, repo, {{".assay.yml", GatedJobFile(c.dir())}});
  MUST(c.WaitForJobState(p1, "long", "running"));
  WaitForFile(c, c.dir() + "/started");

  json::object d = MUST(c.ApiObject("POST", "/api/v1/agents/a1/drain", R"({"timeout":"1s"})"));
  CHECK(!d.at("deadline").is_null());
  MUST(c.WaitForJobState(p1, "long", "queued"));
  INFO(c.LogTails());
  CHECK(Attempts(c, OnlyJob(c, p1, "long")) ==
        std::vector<std::string>{
            "1 lost a1 stopped by the agent: an admin drained it and the drain's timeout passed"});
  CHECK(!a1->Exited());
  MUST(c.WaitForAgents(1));
}

TEST_CASE("the disk floor: below it the agent takes no job and says why, above it it does",
          "[e2e][lifecycle]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);

  SECTION("a floor above the free space") {
    MUST(c.StartAgent("a1", {"--min-free-disk-gb", "1000000"}));
    MUST(c.WaitForAgents(1));
    const int64_t p = PushFiles(c, repo, {{".assay.yml", kQuickJobFile}});
    const int64_t next = OnlyJob(c, p, "next");
    const std::string s = WaitForWaiting(c, next, [](const std::string& s) { return !s.empty(); });
    CHECK(absl::StartsWith(s, "agent a1 is not taking jobs: free disk "));
    CHECK(absl::EndsWith(s, " GB below the floor of 1000000 GB"));
    json::object row = AgentOf(c, "a1");
    CHECK(!row.at("accepting").as_bool());
    CHECK(absl::StrCat("agent a1 is ", JsonString(row, "state_reason")) == s);
    CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts")) == 0);
  }

  SECTION("a small tmpfs that fills and empties again") {
    const std::string mnt = c.dir() + "/small";
    std::filesystem::create_directories(mnt);
    if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64m") != 0) {
      WARN("cannot mount a tmpfs here (not root?): " << strerror(errno) << "; part skipped");
      return;
    }
    struct Unmount {
      std::string path;
      ~Unmount() { umount2(path.c_str(), MNT_DETACH); }
    } unmount{mnt};
    // 64 MB file system, floor 30 MB: a 40 MiB file puts it below.
    testing::Process* a1 =
        MUST(c.StartAgent("a1", {"--work-dir", mnt + "/agent", "--min-free-disk-gb", "0.03",
                                 "--disk-check-interval", "200ms"}));
    MUST(c.WaitForAgents(1));
    {
      std::ofstream fill(mnt + "/fill", std::ios::binary);
      std::string mib(1 << 20, 'x');
      for (int i = 0; i < 40; ++i) fill << mib;
    }
    MUST(c.WaitUntil("a1 to report the disk floor", [&](std::string& seen) {
      json::object a = AgentOf(c, "a1");
      seen = json::serialize(a);
      return !a.at("accepting").as_bool();
    }));
    const int64_t p = PushFiles(c, repo, {{".assay.yml", kQuickJobFile}});
    const int64_t next = OnlyJob(c, p, "next");
    const std::string s = WaitForWaiting(c, next, [](const std::string& s) { return !s.empty(); });
    CHECK(absl::StartsWith(s, "agent a1 is not taking jobs: free disk "));
    CHECK(absl::EndsWith(s, " GB below the floor of 0.03 GB"));
    std::filesystem::remove(mnt + "/fill");
    json::object done = MUST(c.WaitForPipelineDone(p));
    INFO(a1->LogTail());
    CHECK(JsonString(Job(done, "next"), "state") == "succeeded");
    CHECK(MUST(c.JobLog(next)) == "next ran\n");
    a1->Stop();
  }
}

TEST_CASE("a killed agent's leftover workspace and spool files are removed at the next start",
          "[e2e][lifecycle]") {
  Cluster c(Options());
  MUST(c.StartServer());
  const std::string work = c.dir() + "/agent-a1";
  std::filesystem::create_directories(work + "/jobs/job-41-1/sub");
  std::filesystem::create_directories(work + "/spool");
  std::ofstream(work + "/jobs/job-41-1/sub/big") << "left behind";
  std::ofstream(work + "/spool/job-41-1.log") << "old log";
  chmod((work + "/jobs/job-41-1/sub").c_str(), 0500);
  testing::Process* a1 = MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  CHECK(!std::filesystem::exists(work + "/jobs/job-41-1"));
  CHECK(!std::filesystem::exists(work + "/spool/job-41-1.log"));
  CHECK(absl::StrContains(a1->LogTail(),
                          "removed 2 leftover workspace(s) and spool file(s) of an earlier run"));
}

// Opens a Connect stream with the shared token, sends `msgs`, half-closes, and returns how the
// server ended the stream (code, message).
std::pair<grpc::StatusCode, std::string> Converse(const std::string& address,
                                                  const std::vector<v1::AgentMessage>& msgs) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = v1::AgentService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", testing::kAgentToken));
  auto stream = stub->Connect(&ctx);
  for (const auto& m : msgs) stream->Write(m);
  stream->WritesDone();
  v1::ServerMessage in;
  while (stream->Read(&in)) {
  }
  grpc::Status st = stream->Finish();
  return {st.error_code(), st.error_message()};
}

v1::AgentMessage HelloOf(const std::string& name) {
  v1::AgentMessage m;
  m.mutable_hello()->set_name(name);
  m.mutable_hello()->set_cpu_slots(1);
  return m;
}

v1::AgentMessage StateOf(bool accepting, const std::string& reason) {
  v1::AgentMessage m;
  m.mutable_state()->set_accepting(accepting);
  m.mutable_state()->set_reason(reason);
  return m;
}

TEST_CASE("agent state over the stream: bounded, and only for the stream's own agent",
          "[e2e][lifecycle]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  const std::string addr = c.grpc_address();

  auto before_hello = Converse(addr, {StateOf(false, "draining (x)")});
  CHECK(before_hello.first == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(before_hello.second == "the first message on a stream must be hello");
  v1::AgentMessage long_hello = HelloOf("x1");
  long_hello.mutable_hello()->set_not_accepting(true);
  long_hello.mutable_hello()->set_not_accepting_reason(std::string(301, 'r'));
  auto too_long = Converse(addr, {long_hello});
  CHECK(too_long.first == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(too_long.second == "hello.not_accepting_reason must be at most 300 bytes");
  auto control = Converse(addr, {HelloOf("x1"), StateOf(false, "a\nb")});
  CHECK(control.first == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(control.second == "state.reason must not hold control characters");

  // A real agent a1, and a stream of another agent (x1) saying it takes no job: a1 is untouched
  // (the message names no agent; it applies to the stream's own).
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  auto other = Converse(addr, {HelloOf("x1"), StateOf(false, "draining (forged)")});
  CHECK(other.first == grpc::StatusCode::OK);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM agents WHERE name = 'x1' AND NOT accepting AND "
                        "state_reason = 'draining (forged)'")) == 1);
  json::object a1 = AgentOf(c, "a1");
  CHECK(a1.at("accepting").as_bool());
  const int64_t p = PushFiles(c, repo, {{".assay.yml", kQuickJobFile}});
  json::object done = MUST(c.WaitForPipelineDone(p));
  CHECK(JsonString(Job(done, "next"), "state") == "succeeded");
  CHECK(AgentOfJob(c, JobId(done, "next")) == "a1");
}

}  // namespace
}  // namespace assay::e2e
