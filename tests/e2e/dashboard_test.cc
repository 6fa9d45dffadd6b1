// The dashboard in a real browser (issue 11): starts a server, PostgreSQL and an agent, makes
// an admin and a viewer, and runs web/tests/dashboard.test.mjs (playwright-core driving
// Debian's chromium) against them. Its screenshots land in BUILD/test-output/dashboard.
// Deployments (issue 12) go to environments whose target is {"kind": "command", "command":
// ["ok"]}: the server runs the hook `ok` from --deploy-hooks for every traffic change, and this
// one exits 0, so each change is done at once.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/proc/subprocess.h"
#include "tests/e2e/e2e.h"

namespace assay::e2e {
namespace {

TEST_CASE(
    "dashboard: log in, watch a pipeline go green live, follow a log, cancel, retry, "
    "re-run, see why a job waits, models, deployments and a rollback, and a viewer cannot "
    "cancel, roll back or approve",
    "[e2e][browser]") {
  const std::string web = std::string(ASSAY_SOURCE_DIR) + "/web";
  const std::string chromium = "/usr/bin/chromium";
  // The README's commands install both; a missing one is a broken machine, not a skip.
  REQUIRE(std::filesystem::exists(web + "/node_modules/playwright-core"));
  REQUIRE(std::filesystem::exists(web + "/dist/index.html"));
  REQUIRE(::access(chromium.c_str(), X_OK) == 0);

  Cluster c(Options({"--password-cost", "10", "--web-dir", web + "/dist"}));
  // The deploy hooks: `ok` takes every traffic change and is done (exit 0).
  const std::string hooks = c.dir() + "/deploy-hooks";
  std::filesystem::create_directory(hooks);
  {
    std::ofstream ok(hooks + "/ok");
    ok << "#!/bin/sh\nexit 0\n";
    REQUIRE(ok.good());
  }
  std::filesystem::permissions(hooks + "/ok", std::filesystem::perms(0755));
  c.AddServerFlags({"--deploy-hooks", hooks});
  MUST(c.StartServer());
  GitRepo repo = MakeRepo(c);
  for (const char* user : {"alice", "victor"}) {
    const std::string role = std::string(user) == "alice" ? "admin" : "viewer";
    HttpClientResponse r = MUST(c.Api("POST", "/api/v1/users",
                                      absl::StrCat(R"({"username":")", user, R"(","password":"pw-)",
                                                   user, R"(-123","role":")", role, R"("})")));
    REQUIRE(r.status == 201);
  }
  MUST(c.StartAgent("a1"));
  MUST(c.WaitForAgents(1));
  const std::string out = std::string(ASSAY_BINARY_DIR) + "/test-output/dashboard";
  std::filesystem::remove_all(out);
  CommandResult r =
      MUST(RunCommand({"node", "tests/dashboard.test.mjs"}, web,
                      {{"BASE_URL", c.http_url()},
                       {"REPO_DIR", c.dir() + "/repo"},
                       {"REPO_NAME", kRepoName},
                       {"CLONE_URL", repo.clone_url()},
                       {"WEBHOOK_SECRET", kSecret},
                       {"GO_FILE", c.dir() + "/go"},
                       {"LLM_APP", std::string(ASSAY_SOURCE_DIR) + "/examples/llm-app"},
                       {"OUT_DIR", out},
                       {"CHROMIUM", chromium}},
                      {}, absl::Minutes(4)));
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err << "\n" << c.LogTails());
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("all dashboard checks passed") != std::string::npos);
  // A screenshot of every page.
  int shots = 0;
  for (const auto& e : std::filesystem::directory_iterator(out)) {
    if (e.path().extension() == ".png" && e.file_size() > 1000) ++shots;
  }
  CHECK(shots == 24);
}

}  // namespace
}  // namespace assay::e2e
