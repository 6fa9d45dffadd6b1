// assay-bench-dashboard (issue 11, bench/README.md "Dashboard"): the dashboard's API calls
// with 100,000 pipelines in the database, and a 100 MiB job log opened and scrolled in
// Chromium. Starts its own PostgreSQL, assay-server (durable settings) and, for the log, one
// agent, all on 127.0.0.1.
//   1. Pipelines page: GET /api/v1/pipelines?limit=50 as the dashboard calls it (first page,
//      each filter, a deep keyset page), 200 times each after 20 warm-up calls; the time is
//      the client's, request sent to last byte read over loopback (the server's time plus
//      well under a millisecond). p50/p95/max, nearest rank.
//   2. The log: a job prints 100 MiB of 100-byte lines; web/bench/log_page.mjs then opens its
//      page in Chromium and reports the time to the first lines drawn and the longest task
//      while it scrolls to earlier pages (PerformanceObserver 'longtask').
// Figures are printed; nothing is asserted. Usage: assay-bench-dashboard [PIPELINES] [LOG_MIB]

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/net/http_client.h"
#include "common/proc/subprocess.h"
#include "tests/support/cluster.h"
#include "tests/support/git_repo.h"
#include "tests/support/pg_server.h"

namespace {

using assay::testing::Cluster;

template <typename T>
T Must(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    std::cerr << what << ": " << v.status() << "\n";
    std::exit(1);
  }
  return *std::move(v);
}
void Must(absl::Status s, const char* what) {
  if (!s.ok()) {
    std::cerr << what << ": " << s << "\n";
    std::exit(1);
  }
}

double Rank(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t pipelines = 100000, log_mib = 100;
  if (argc > 1 && !absl::SimpleAtoi(argv[1], &pipelines)) return 2;
  if (argc > 2 && !absl::SimpleAtoi(argv[2], &log_mib)) return 2;
  // Its own PostgreSQL with default (durable) settings, not the tests' fsync-off one.
  ::setenv("ASSAY_PG_DURABLE", "1", 0);
  auto pg = Must(assay::testing::PgServer::Create(), "postgres");
  assay::testing::ClusterOptions o;
  o.binary_dir = ASSAY_BINARY_DIR;
  o.admin_dsn = pg->admin_dsn();
  o.server_flags = {"--password-cost", "10", "--web-dir",
                    std::string(ASSAY_SOURCE_DIR) + "/web/dist"};
  o.server_flags.push_back("--job-log-limit-mb");
  o.server_flags.push_back(std::to_string(log_mib * 2 + 1));
  Cluster c(o);
  Must(c.StartServer(), "server");
  assay::testing::GitRepo repo = Must(assay::testing::GitRepo::Init(c.dir() + "/repo"), "git init");
  Must(c.AddRepo("acme/app", repo.clone_url(), "bench-secret"), "repo");
  // Nine more repositories, and the pipelines spread over them: 10 repos, 5 refs, 4 events,
  // mostly succeeded, 1 in 20 failed.
  for (int i = 1; i < 10; ++i) {
    Must(c.AddRepo(absl::StrCat("acme/app", i), absl::StrCat(repo.clone_url(), i), "s"), "repo");
  }
  const auto t0 = std::chrono::steady_clock::now();
  Must(
      c
          .Query(absl::StrCat(
              "INSERT INTO pipelines (repo_id, event, ref, commit_sha, state, message, created_at, "
              "finished_at) SELECT 1 + (g % 10), (ARRAY['push','pull_request','schedule','manual'])"
              "[1 + (g / 7) % 4], 'refs/heads/' || (ARRAY['main','dev','feature-a','feature-b',"
              "'release'])[1 + (g / 3) % 5], md5(g::text) || '00000000', CASE WHEN g % 20 = 0 THEN "
              "'failed' ELSE 'succeeded' END, 'commit ' || g, now() - (",
              pipelines, " - g) * interval '1 second', now() - (", pipelines,
              " - g) * interval '1 second' + interval '30 seconds' FROM generate_series(1, ",
              pipelines, ") g"))
          .status(),
      "insert");
  Must(c.Query("ANALYZE pipelines").status(), "analyze");
  std::printf("inserted %lld pipelines in %.1f s\n", static_cast<long long>(pipelines),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  Must(c.Api("POST", "/api/v1/users",
             R"({"username":"alice","password":"pw-alice-123","role":"admin"})")
           .status(),
       "user");
  auto login = Must(c.Fetch("POST", "/api/v1/session", {{"Content-Type", "application/json"}},
                            R"({"username":"alice","password":"pw-alice-123"})"),
                    "login");
  std::string cookie;
  for (const auto& [k, v] : login.headers) {
    if (k == "Set-Cookie" && v.rfind("assay_session=", 0) == 0) cookie = v.substr(0, v.find(';'));
  }
  const int64_t deep = Must(c.QueryInt("SELECT greatest(2, max(id) / 2) FROM pipelines"), "deep");
  struct Case {
    const char* what;
    std::string query;
  };
  const std::vector<Case> cases = {
      {"first page", "limit=50"},
      {"one repository", "limit=50&repo=acme/app3"},
      {"one branch", "limit=50&branch=release"},
      {"failed only", "limit=50&state=failed"},
      {"repo+branch+event", "limit=50&repo=acme/app3&branch=dev&event=schedule"},
      {"middle page (cursor)", absl::StrCat("limit=50&cursor=", deep)},
  };
  std::printf("\nGET /api/v1/pipelines (session cookie), %lld pipelines, 200 calls each:\n",
              static_cast<long long>(pipelines));
  std::printf("  %-22s %8s %8s %8s\n", "call", "p50 ms", "p95 ms", "max ms");
  for (const Case& k : cases) {
    std::vector<double> ms;
    for (int i = 0; i < 220; ++i) {
      const auto a = std::chrono::steady_clock::now();
      auto r = Must(c.Fetch("GET", "/api/v1/pipelines?" + k.query, {{"Cookie", cookie}}), "get");
      const double t =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count();
      if (r.status != 200) {
        std::cerr << k.what << ": " << r.status << " " << r.body << "\n";
        return 1;
      }
      if (i >= 20) ms.push_back(t);
    }
    std::printf("  %-22s %8.2f %8.2f %8.2f\n", k.what, Rank(ms, 0.5), Rank(ms, 0.95),
                Rank(ms, 1.0));
  }

  if (log_mib <= 0) return 0;
  // The log: one job prints LOG_MIB MiB of 100-byte lines.
  Must(c.StartAgent("a1").status(), "agent");
  Must(c.WaitForAgents(1), "agent connect");
  const std::string lines = std::to_string(log_mib * 1024 * 1024 / 100);
  std::string sha = Must(repo.Commit({{".assay.yml", absl::StrCat(R"(jobs:
  big:
    steps:
      - run: |
          yes 'assay bench: a line of exactly one hundred bytes, padded out with dots.............................' | head -n )",
                                                                  lines, "\n")}}),
                         "commit");
  const int64_t delivery = Must(
      c.Push(Cluster::PushPayload(repo.clone_url(), "acme/app", sha), "big-log", "bench-secret"),
      "push");
  const int64_t pipeline = Must(c.WaitForPipelineOf(delivery), "pipeline");
  Must(c.WaitForPipelineDone(pipeline, absl::Minutes(10)).status(), "big job");
  const int64_t job =
      Must(c.QueryInt(absl::StrCat("SELECT id FROM jobs WHERE pipeline_id = ", pipeline)), "job");
  const int64_t bytes =
      Must(c.QueryInt(absl::StrCat("SELECT coalesce(sum(length(data)), 0) FROM log_chunks WHERE "
                                   "job_id = ",
                                   job)),
           "size");
  std::printf("\nthe log: job %lld, %.1f MiB stored\n", static_cast<long long>(job),
              static_cast<double>(bytes) / (1 << 20));
  auto r = Must(assay::RunCommand(
                    {"node", "bench/log_page.mjs"}, std::string(ASSAY_SOURCE_DIR) + "/web",
                    {{"BASE_URL", c.http_url()}, {"JOB", std::to_string(job)}, {"COOKIE", cookie}},
                    {}, absl::Minutes(5)),
                "node");
  std::cout << r.out << r.err;
  return r.exit_code;
}
