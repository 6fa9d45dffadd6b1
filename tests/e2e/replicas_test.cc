// Several coordinators: two assay-server processes on one PostgreSQL, agents connected to
// either, webhooks sent to either. Every job runs exactly once (one attempt, one run), and
// both servers hand out work.
#include <fstream>
#include <set>

#include "absl/strings/str_split.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

TEST_CASE("two coordinators on one database run 200 jobs, none twice", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  const int replica = MUST(c.StartReplica());
  GitRepo repo = MakeRepo(c);
  for (int i = 0; i < 3; ++i) {
    MUST(c.StartAgent(absl::StrCat("one-", i), {"--slots", "2"}));
    MUST(c.StartAgent(absl::StrCat("two-", i),
                      {"--slots", "2", "--server", c.replica_grpc_address(replica)}));
  }
  MUST(c.WaitUntil("6 agents online in the database", [&](std::string& seen) {
    auto n = c.QueryInt("SELECT count(*) FROM agents WHERE state = 'online'");
    seen = n.ok() ? std::to_string(*n) : std::string(n.status().message());
    return n.ok() && *n == 6;
  }));

  const std::string runs = c.dir() + "/runs.txt";
  std::string file = "jobs:\n";
  for (int j = 0; j < 50; ++j) {
    absl::StrAppend(&file, "  j", j, ":\n    steps:\n      - echo \"$ASSAY_JOB_ID $ASSAY_ATTEMPT ",
                    "$ASSAY_AGENT_NAME\" >> ", runs, "\n");
  }
  // Four pushes of four commits: two webhooks to each server.
  std::vector<int64_t> deliveries;
  for (int push = 0; push < 4; ++push) {
    const std::string sha =
        MUST(repo.Commit({{".assay.yml", file}, {"n.txt", std::to_string(push)}}));
    const std::string body = Cluster::PushPayload(repo.clone_url(), kRepoName, sha);
    const std::string delivery = absl::StrCat("replicas-", push);
    if (push % 2 == 0) {
      deliveries.push_back(MUST(c.Push(body, delivery, kSecret)));
    } else {
      auto r = MUST(HttpFetch("POST", c.replica_http_url(replica) + "/hooks/github",
                              {{"X-GitHub-Event", "push"},
                               {"X-GitHub-Delivery", delivery},
                               {"X-Hub-Signature-256", Cluster::GithubSignature(kSecret, body)}},
                              body, absl::Seconds(10)));
      REQUIRE(r.status == 202);
      deliveries.push_back(json::parse(r.body).as_object().at("delivery").as_int64());
    }
  }
  for (int64_t d : deliveries) {
    const int64_t pid = MUST(c.WaitForPipelineOf(d));
    json::object p = MUST(c.WaitForPipelineDone(pid));
    INFO(json::serialize(p));
    CHECK(JsonString(p, "state") == "succeeded");
  }

  // Exactly 200 runs, 200 distinct jobs, each on its first attempt.
  std::ifstream in(runs);
  std::string line;
  std::set<std::string> jobs, agents;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    REQUIRE(f.size() == 3);
    jobs.insert(f[0]);
    CHECK(f[1] == "1");
    agents.insert(f[2].substr(0, 4));
  }
  INFO(c.LogTails());
  CHECK(lines == 200);
  CHECK(jobs.size() == 200);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM job_attempts")) == 200);
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM jobs WHERE attempt = 1 AND state = 'succeeded'")) ==
        200);
  // Both servers dispatched: agents of each ran jobs.
  CHECK(agents == std::set<std::string>{"one-", "two-"});
}

}  // namespace
}  // namespace assay::e2e
