// Hostile `.assay.yml` files end to end (issue 8, item 2): pushed to a real server, each is an
// 'error' pipeline carrying its lint error (file, line, key) and `assay lint` prints the same
// line; a delivery replayed at start that fails again leaves the server healthy.
#include <fstream>

#include "absl/strings/str_cat.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

namespace json = boost::json;

std::string AliasBomb() {
  std::string yaml = "x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n";
  for (int i = 1; i <= 9; ++i) {
    absl::StrAppend(&yaml, "x", i, ": &x", i, " [");
    for (int j = 0; j < 10; ++j) absl::StrAppend(&yaml, j ? ", " : "", "*x", i - 1);
    absl::StrAppend(&yaml, "]\n");
  }
  return yaml + "jobs:\n  build:\n    steps: [make]\n";
}

// One job of 1000 steps aliased by 50,000 jobs: 5*10^7 steps if expanded.
std::string WideAliasBomb() {
  std::string yaml = "x: &j {steps: [m";
  for (int i = 1; i < 1000; ++i) yaml += ", m";
  yaml += "]}\njobs:\n";
  for (int i = 0; i < 50000; ++i) absl::StrAppend(&yaml, "  j", i, ": *j\n");
  return yaml;
}

std::string BigMatrix() {
  std::string a, b;
  for (int i = 0; i < 1000; ++i) {
    absl::StrAppend(&a, i ? ", " : "", i);
    absl::StrAppend(&b, i ? ", " : "", "v", i);
  }
  return absl::StrCat("jobs:\n  build:\n    strategy:\n      matrix:\n        a: [", a,
                      "]\n        b: [", b, "]\n    steps: [make]\n");
}

TEST_CASE(
    "hostile files: error pipelines with the lint error, and a replay at start fails again "
    "and the server stays healthy",
    "[e2e][hostile]") {
  Cluster c(Options());
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {absl::StrCat("jobs:\n  build:\n    if: \"", std::string(20000, '('), "true",
                    std::string(20000, ')'), "\"\n    steps: [make]\n"),
       ".assay.yml:3:5: jobs.build.if: invalid expression: column 1025: expression has more "
       "than 1024 tokens"},
      {AliasBomb(), ".assay.yml:5:45: x4[7]: aliases expand to more than 100000 nodes"},
      {WideAliasBomb(), ".assay.yml:102:8: jobs.j99: aliases expand to more than 100000 nodes"},
      {BigMatrix(),
       ".assay.yml:5:9: jobs.build.strategy.matrix: matrix expands to 1000000 jobs, more than "
       "the limit of 256"},
      {absl::StrCat("on:\n  push:\n    branches: [\"", std::string(4000, '*'),
                    "\"]\njobs:\n  build:\n    steps: [make]\n"),
       ".assay.yml:3:16: on.push.branches[0]: pattern is longer than 1024 characters"},
  };
  int n = 0;
  int64_t last = 0;
  for (const auto& [yaml, error] : cases) {
    ++n;
    last = PushFiles(c, repo, {{".assay.yml", yaml}}, absl::StrCat("hostile-", n));
    json::object p = MUST(c.ApiObject("GET", "/api/v1/pipelines/" + std::to_string(last)));
    INFO(json::serialize(p) << "\n" << c.LogTails());
    CHECK(JsonString(p, "state") == "error");
    CHECK(p.at("errors") == json::array{json::value(error)});

    // `assay lint` prints the same line (its file name is the path it was given).
    const std::string path = c.dir() + "/.assay.yml";
    std::ofstream(path, std::ios::binary) << yaml;
    auto lint = MUST(c.RunCli({"lint", path}, c.dir()));
    CHECK(lint.exit_code == 1);
    CHECK(lint.out.find(error.substr(std::string(".assay.yml").size())) != std::string::npos);
  }

  // The last delivery, as if the server had crashed while planning it: 'received', no
  // pipeline. The next start plans it again, it fails again, and the server stays up.
  MUST(c.StopServer());
  const std::string delivery =
      MUST(c.Query(absl::StrCat("SELECT delivery_id FROM pipelines WHERE id = ", last)))[0][0]
          .value_or("");
  REQUIRE(!delivery.empty());
  MUST(c.Query(absl::StrCat("DELETE FROM pipelines WHERE id = ", last)));
  MUST(c.Query(absl::StrCat(
      "UPDATE webhook_deliveries SET state = 'received', processed_at = NULL WHERE id = ",
      delivery)));
  MUST(c.StartServer());
  const int64_t again = MUST(c.WaitForPipelineOf(std::stoll(delivery)));
  json::object p = MUST(c.ApiObject("GET", "/api/v1/pipelines/" + std::to_string(again)));
  CHECK(JsonString(p, "state") == "error");
  // The delivery ends 'failed' with the pipeline's message: no later start plans it again.
  auto ended = MUST(c.Query(absl::StrCat(
      "SELECT d.state, d.message = p.message FROM webhook_deliveries d JOIN pipelines p ON "
      "p.delivery_id = d.id WHERE d.id = ",
      delivery)));
  CHECK(ended == std::vector<std::vector<std::optional<std::string>>>{{"failed", "t"}});
  auto health = MUST(c.Fetch("GET", "/healthz"));
  CHECK(health.status == 200);
  CHECK_FALSE(c.server()->Exited());
}

}  // namespace
}  // namespace assay::e2e
