// Issue 3's pipeline keys that the server acts on: branch filters, matrix expansion, `if`.
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

constexpr char kFile[] = R"yml(on:
  push:
    branches: [main, "release/**"]
jobs:
  test:
    strategy:
      matrix:
        py: ["3.11", "3.12"]
    steps:
      - run: echo "py=${{ matrix.py }} on $ASSAY_REF"
  deploy:
    needs: [test]
    if: branch == 'main'
    steps:
      - run: echo deploy
  docs:
    if: branch == 'dev'
    steps:
      - run: echo docs
)yml";

TEST_CASE("branch filters, matrix expansion and if: exact jobs, logs and skips", "[e2e]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  MUST(c.StartAgent("a1", {"--slots", "2"}));
  MUST(c.WaitForAgents(1));
  std::string sha = MUST(repo.Commit({{".assay.yml", kFile}}));

  // A push to dev matches no branch filter: the delivery is kept, marked ignored, no pipeline.
  int64_t dev_delivery = MUST(c.Push(
      Cluster::PushPayload(repo.clone_url(), kRepoName, sha, "refs/heads/dev"), "d-dev", kSecret));
  MUST(c.WaitUntil("the dev delivery is planned", [&](std::string& seen) {
    auto rows = c.Query("SELECT state, message FROM webhook_deliveries WHERE id = " +
                        std::to_string(dev_delivery));
    if (!rows.ok() || rows->empty()) return false;
    seen = (*rows)[0][0].value_or("");
    return seen != "received";
  }));
  auto dev = MUST(c.Query("SELECT state, message FROM webhook_deliveries WHERE id = " +
                          std::to_string(dev_delivery)));
  CHECK(dev[0][0].value_or("") == "ignored");
  CHECK(dev[0][1].value_or("") == "on.push.branches does not match branch 'dev'");
  CHECK(MUST(c.QueryInt("SELECT count(*) FROM pipelines")) == 0);

  // A push to main: two matrix jobs, deploy after both, docs skipped by its if.
  int64_t main_delivery =
      MUST(c.Push(Cluster::PushPayload(repo.clone_url(), kRepoName, sha), "d-main", kSecret));
  int64_t pid = MUST(c.WaitForPipelineOf(main_delivery));
  json::object p = MUST(c.WaitForPipelineDone(pid));
  INFO(json::serialize(p) << "\n" << c.LogTails());
  CHECK(JsonString(p, "state") == "succeeded");
  CHECK(p.at("jobs").as_array().size() == 4);
  CHECK(JsonString(Job(p, "test (3.11)"), "state") == "succeeded");
  CHECK(JsonString(Job(p, "test (3.12)"), "state") == "succeeded");
  CHECK(MUST(c.JobLog(JobId(p, "test (3.11)"))) == "py=3.11 on refs/heads/main\n");
  CHECK(MUST(c.JobLog(JobId(p, "test (3.12)"))) == "py=3.12 on refs/heads/main\n");
  json::object deploy = Job(p, "deploy");
  CHECK(JsonString(deploy, "state") == "succeeded");
  CHECK(json::serialize(deploy.at("needs")) == R"x(["test (3.11)","test (3.12)"])x");
  json::object docs = Job(p, "docs");
  CHECK(JsonString(docs, "state") == "skipped");
  CHECK(JsonString(docs, "message") == "if: branch == 'dev' is false");
  CHECK(docs.at("attempt").as_int64() == 0);
}

}  // namespace
}  // namespace assay::e2e
