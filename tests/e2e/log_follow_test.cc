// Logs at scale (issue 9): an agent whose connection is cut 20 times while its job prints
// 200,000 numbered lines stores each line exactly once, in order; a follower started before
// the job prints gets every byte once and its stream ends with the job; ranges, offsets,
// timestamps and hostile requests against GET /log; the follower limit; compaction.

#include <atomic>
#include <chrono>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "common/net/http_client.h"
#include "tests/e2e/e2e.h"
#include "tests/support/tcp_proxy.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

std::string SeqOutput(int from, int to) {
  std::string s;
  for (int i = from; i <= to; ++i) s += std::to_string(i) + "\n";
  return s;
}

absl::StatusOr<HttpClientResponse> Get(Cluster& c, const std::string& path,
                                       std::vector<std::pair<std::string, std::string>> h = {},
                                       absl::Duration timeout = absl::Seconds(60)) {
  h.emplace_back("Authorization", std::string("Bearer ") + testing::kAdminToken);
  return HttpFetch("GET", c.http_url() + path, h, {}, timeout);
}

TEST_CASE(
    "logs: 20 cuts of the agent's connection while a job prints 200,000 lines lose and "
    "repeat none",
    "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  const int grpc_port = std::stoi(c.grpc_address().substr(c.grpc_address().rfind(':') + 1));
  testing::TcpProxy proxy(grpc_port);
  MUST(proxy.Start());
  MUST(c.StartAgent("a1", {"--server", absl::StrCat("127.0.0.1:", proxy.port())}));
  MUST(c.WaitForAgents(1));
  // 200 batches of 1,000 numbered lines, 30 ms apart: about 6 s of output.
  const std::string pipeline_file = R"yml(jobs:
  lines:
    steps:
      - run: |
          i=0
          while [ $i -lt 200 ]; do
            seq $((i * 1000 + 1)) $((i * 1000 + 1000)); i=$((i + 1)); sleep 0.03
          done
)yml";
  int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", pipeline_file}});
  MUST(c.WaitForJobState(pipeline_id, "lines", "running"));
  int cuts = 0;
  for (int i = 0; i < 20; ++i) {
    // A live connection to cut: the agent reconnected after the last cut.
    MUST(c.WaitUntil("the agent reconnects through the proxy", [&](std::string& o) {
      o = absl::StrCat(proxy.accepted(), " connections");
      return proxy.accepted() >= i + 1;
    }));
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    if (proxy.CutAll() > 0) ++cuts;
  }
  CHECK(cuts == 20);
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "succeeded");
  const std::string log = MUST(c.JobLog(JobId(p, "lines")));
  const std::string want = SeqOutput(1, 200000);
  CHECK(log.size() == want.size());
  CHECK(log == want);
  CHECK(proxy.accepted() >= 21);
}

TEST_CASE("logs: a follower started before the job prints gets every byte once, then the end",
          "[e2e]") {
  Cluster c(Options({"--log-followers", "2"}));
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string go = c.dir() + "/go";
  const std::string pipeline_file = absl::StrCat(R"yml(jobs:
  tail:
    steps:
      - run: |
          while [ ! -f )yml",
                                                 go, R"yml( ]; do sleep 0.05; done
          seq 1 30000
          sleep 0.3
          seq 30001 60000
)yml");
  int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", pipeline_file}});
  MUST(c.WaitForJobState(pipeline_id, "tail", "running"));
  const int64_t job_id = MUST(c.QueryInt("SELECT id FROM jobs"));
  absl::StatusOr<HttpClientResponse> plain, sse;
  // Each follower retries while the slots are full (the probe below may hold one a while).
  auto follow = [&](absl::StatusOr<HttpClientResponse>* out,
                    std::vector<std::pair<std::string, std::string>> h) {
    for (int i = 0; i < 60; ++i) {
      *out = Get(c, absl::StrCat("/api/v1/jobs/", job_id, "/log?follow=1"), h);
      if (!out->ok() || (*out)->status != 503) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  };
  std::thread t1([&] { follow(&plain, {}); });
  std::thread t2([&] { follow(&sse, {{"Accept", "text/event-stream"}}); });
  // Both slots are taken: a third follower is refused.
  MUST(c.WaitUntil("two followers hold the slots", [&](std::string& o) {
    auto r = Get(c, absl::StrCat("/api/v1/jobs/", job_id, "/log?follow=1"), {}, absl::Seconds(5));
    o = r.ok() ? absl::StrCat(r->status, " ", r->body) : r.status().ToString();
    return r.ok() && r->status == 503 && r->Header("Retry-After") == "5";
  }));
  { std::ofstream(go) << "go"; }
  t1.join();
  t2.join();
  REQUIRE(plain.ok());
  CHECK(plain->status == 200);
  CHECK(plain->Header("Content-Type") == "text/plain; charset=utf-8");
  CHECK(plain->body == SeqOutput(1, 60000));
  REQUIRE(sse.ok());
  CHECK(sse->status == 200);
  CHECK(sse->Header("Content-Type") == "text/event-stream");
  // The SSE stream: data events whose JSON strings join to the log, then the end event.
  std::string joined;
  size_t at = 0;
  int events = 0;
  while ((at = sse->body.find("data: \"", at)) != std::string::npos) {
    const size_t end = sse->body.find("\"\n\n", at);
    REQUIRE(end != std::string::npos);
    std::string s = sse->body.substr(at + 7, end - at - 7);
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'n') {
        joined += '\n';
        ++i;
      } else {
        joined += s[i];
      }
    }
    at = end;
    ++events;
  }
  CHECK(events >= 1);
  CHECK(joined == SeqOutput(1, 60000));
  CHECK(absl::EndsWith(sse->body, "event: end\ndata: {}\n\n"));
  // After the end: ?follow=1 on an ended job returns the log and ends at once; from an offset.
  auto after = MUST(Get(c, absl::StrCat("/api/v1/jobs/", job_id, "/log?follow=1&offset=4")));
  CHECK(after.status == 200);
  CHECK(after.body == SeqOutput(1, 60000).substr(4));
}

TEST_CASE("logs: ranges, offsets and timestamps on GET /log, and hostile requests", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  int64_t pipeline_id = PushFiles(c, repo,
                                  {{".assay.yml",
                                    "jobs:\n  a:\n    steps:\n"
                                    "      - run: seq 1 100000\n"}});
  json::object p = MUST(c.WaitForPipelineDone(pipeline_id));
  REQUIRE(JsonString(p, "state") == "succeeded");
  const int64_t job = JobId(p, "a");
  const std::string all = SeqOutput(1, 100000);
  const std::string size = std::to_string(all.size());
  const std::string path = absl::StrCat("/api/v1/jobs/", job, "/log");

  auto r = MUST(Get(c, path, {{"Range", "bytes=0-9"}}));
  CHECK(r.status == 206);
  CHECK(r.body == "1\n2\n3\n4\n5\n");
  CHECK(r.Header("Content-Range") == "bytes 0-9/" + size);
  r = MUST(Get(c, path, {{"Range", "bytes=-7"}}));
  CHECK(r.status == 206);
  CHECK(r.body == "100000\n");
  r = MUST(Get(c, path, {{"Range", "bytes=300000-"}}));
  CHECK(r.status == 206);
  CHECK(r.body == all.substr(300000));
  r = MUST(Get(c, path, {{"Range", "bytes=" + size + "-"}}));
  CHECK(r.status == 416);
  CHECK(r.Header("Content-Range") == "bytes */" + size);
  for (const char* bad :
       {"bytes=0-1,4-5", "bytes=x-y", "pages=1-2", "bytes=9-3", "bytes=99999999999999999999-"}) {
    INFO(bad);
    r = MUST(Get(c, path, {{"Range", bad}}));
    CHECK(r.status == 400);
  }
  r = MUST(Get(c, path + "?offset=588880"));
  CHECK(r.status == 200);
  CHECK(r.body == all.substr(588880));
  r = MUST(Get(c, path + "?offset=" + size));
  CHECK(r.status == 200);
  CHECK(r.body.empty());
  r = MUST(Get(c, path + "?offset=" + std::to_string(all.size() + 1)));
  CHECK(r.status == 416);
  for (const char* bad : {"?offset=-1", "?offset=abc", "?offset=", "?offset=1e3",
                          "?offset=9999999999999999999", "?follow=yes", "?timestamps=2"}) {
    INFO(bad);
    r = MUST(Get(c, path + bad));
    CHECK(r.status == 400);
  }
  r = MUST(Get(c, path + "?timestamps=1", {{"Range", "bytes=0-1"}}));
  CHECK(r.status == 400);

  // Timestamps: every line prefixed with an RFC 3339 UTC time, the rest unchanged.
  r = MUST(Get(c, path + "?timestamps=1"));
  CHECK(r.status == 200);
  const std::regex line(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (\d+)$)");
  std::string stripped;
  int lines = 0;
  bool all_match = true;
  for (size_t at = 0; at < r.body.size();) {
    const size_t nl = r.body.find('\n', at);
    REQUIRE(nl != std::string::npos);
    std::smatch m;
    const std::string l = r.body.substr(at, nl - at);
    if (!std::regex_match(l, m, line)) {
      all_match = false;
      INFO(l);
      break;
    }
    stripped += m[1].str() + "\n";
    ++lines;
    at = nl + 1;
  }
  CHECK(all_match);
  CHECK(lines == 100000);
  CHECK(stripped == all);

  // The ended attempt's rows are merged by the compactor; the bytes stay the same.
  MUST(c.WaitUntil(
      "the log is compacted",
      [&](std::string& o) {
        auto n = c.QueryInt("SELECT count(*) FROM job_attempts WHERE log_compacted");
        o = n.ok() ? std::to_string(*n) : n.status().ToString();
        return n.ok() && *n == 1;
      },
      absl::Seconds(60)));
  CHECK(MUST(c.JobLog(job)) == all);
  r = MUST(Get(c, path, {{"Range", "bytes=0-9"}}));
  CHECK(r.body == "1\n2\n3\n4\n5\n");
}

}  // namespace
}  // namespace assay::e2e

namespace assay::e2e {
namespace {

TEST_CASE("logs: assay logs -f follows through a cut connection and prints each byte once",
          "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string go = c.dir() + "/go", more = c.dir() + "/more";
  const std::string pipeline_file = absl::StrCat(R"yml(jobs:
  tail:
    steps:
      - run: |
          while [ ! -f )yml",
                                                 go, R"yml( ]; do sleep 0.05; done
          seq 1 20000
          while [ ! -f )yml",
                                                 more, R"yml( ]; do sleep 0.05; done
          seq 20001 40000
)yml");
  int64_t pipeline_id = PushFiles(c, repo, {{".assay.yml", pipeline_file}});
  MUST(c.WaitForJobState(pipeline_id, "tail", "running"));
  const int64_t job_id = MUST(c.QueryInt("SELECT id FROM jobs"));
  const int http_port = std::stoi(c.http_url().substr(c.http_url().rfind(':') + 1));
  testing::TcpProxy proxy(http_port);
  MUST(proxy.Start());
  absl::StatusOr<CommandResult> cli, stamped;
  std::thread t1([&] {
    cli = c.RunCli({"--server", absl::StrCat("http://127.0.0.1:", proxy.port()), "logs", "-f",
                    std::to_string(job_id)});
  });
  MUST(c.WaitUntil("the CLI connects", [&](std::string& o) {
    o = absl::StrCat(proxy.accepted(), " connections");
    return proxy.accepted() >= 1;
  }));
  { std::ofstream(go) << "go"; }
  MUST(c.WaitUntil("the first half is stored", [&](std::string& o) {
    auto log = c.JobLog(job_id);
    o = log.ok() ? std::to_string(log->size()) : log.status().ToString();
    return log.ok() && *log == SeqOutput(1, 20000);
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(proxy.CutAll() == 1);
  { std::ofstream(more) << "more"; }
  t1.join();
  REQUIRE(cli.ok());
  CHECK(cli->exit_code == 0);
  CHECK(cli->out == SeqOutput(1, 40000));
  CHECK(proxy.accepted() >= 2);  // it reconnected

  stamped = c.RunCli({"logs", "--timestamps", "-f", std::to_string(job_id)});
  REQUIRE(stamped.ok());
  CHECK(stamped->exit_code == 0);
  CHECK(stamped->out.size() == SeqOutput(1, 40000).size() + 40000 * 28);
  const std::regex stamp(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z 1\n)");
  CHECK(std::regex_search(stamped->out.substr(0, 30), stamp));
}

}  // namespace
}  // namespace assay::e2e
