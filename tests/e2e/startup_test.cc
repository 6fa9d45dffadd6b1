// End to end: what assay-server and assay-agent say about bad option values before they start
// anything, and what a fresh server's /metrics holds before any event.

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "tests/e2e/e2e.h"
#include "tests/support/process.h"

namespace assay::e2e {
namespace {

struct Exit {
  int code = -1;
  std::string output;  // stdout and stderr
};

// Runs a binary of the build (e.g. "server/assay-server") with `args` and `env`, bounded.
Exit Run(const std::string& binary, std::vector<std::string> args,
         const std::vector<std::pair<std::string, std::string>>& env = {}) {
  char tmpl[] = "/tmp/assay-startup-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  args.insert(args.begin(), std::string(ASSAY_BINARY_DIR) + "/" + binary);
  // Why through env(1): ASSAY_* of the environment running the tests must not reach the child
  // (Start drops them), but `env` must.
  for (const auto& [name, value] : env) args.insert(args.begin(), name + "=" + value);
  args.insert(args.begin(), "/usr/bin/env");
  auto p = MUST(testing::Process::Start(args, dir + "/log", {}, {"ASSAY_"}));
  std::optional<int> code = p->Wait(absl::Seconds(20));
  Exit e;
  e.code = code.value_or(-1);  // -1: still running (p's destructor stops it)
  e.output = testing::ReadFileOrEmpty(dir + "/log");
  std::remove((dir + "/log").c_str());
  rmdir(dir.c_str());
  return e;
}

// Everything assay-server requires, with a database nothing listens on: a server that gets
// past its options fails later, differently.
std::vector<std::string> ServerArgs(std::vector<std::string> more) {
  std::vector<std::string> args = {"--database-url", "postgresql://127.0.0.1:1/none",
                                   "--data-dir",     "/nonexistent/assay-data",
                                   "--admin-token",  "admin-token-0123456789abcdef-0123",
                                   "--agent-token",  "agent-token-123"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

TEST_CASE("assay-server refuses a bad option value at start, naming the option and the range",
          "[e2e][flags]") {
  // Before: -1 wrapped around to a body limit of 16 EiB.
  Exit negative = Run("server/assay-server", ServerArgs({"--body-limit-mb", "-1"}));
  CHECK(negative.code == 2);
  CHECK(negative.output ==
        "assay-server: option --body-limit-mb must be an integer from 1 to 4096, got '-1'\n");
  // Before: an unknown level silently became info.
  Exit level = Run("server/assay-server", ServerArgs({}), {{"ASSAY_LOG_LEVEL", "verbose"}});
  CHECK(level.code == 2);
  CHECK(level.output ==
        "assay-server: ASSAY_LOG_LEVEL (option --log-level) must be one of "
        "debug, info, warn, error, got 'verbose'\n");
  Exit lease = Run("server/assay-server", ServerArgs({"--lease=0s"}));
  CHECK(lease.code == 2);
  CHECK(lease.output ==
        "assay-server: option --lease must be a duration from 1s to 24h, like "
        "500ms, 30s or 5m, got '0s'\n");
}

TEST_CASE("assay-server refuses a short admin token and a metrics token on its command line",
          "[e2e][flags][security]") {
  std::vector<std::string> args = ServerArgs({});
  args[5] = "short-admin-token";
  Exit short_token = Run("server/assay-server", args);
  CHECK(short_token.code == 1);
  CHECK(short_token.output ==
        "assay-server: INVALID_ARGUMENT: --admin-token must be at least 32 characters, got 17; "
        "make one with: openssl rand -hex 32\n");
  Exit flag = Run("server/assay-server", ServerArgs({"--metrics-token", "m-token-0123456789"}));
  CHECK(flag.code == 2);
  CHECK(flag.output ==
        "assay-server: --metrics-token must not be given on the command line (it would show in "
        "/proc/*/cmdline); set ASSAY_METRICS_TOKEN or put it in the --config file\n");
}

TEST_CASE("assay-agent refuses a bad option value at start", "[e2e][flags]") {
  Exit slots = Run("agent/assay-agent", {"--token", "t", "--work-dir", "/tmp", "--slots", "0"});
  CHECK(slots.code == 2);
  CHECK(slots.output == "assay-agent: option --slots must be an integer from 1 to 4096, got '0'\n");
  Exit grace = Run("agent/assay-agent", {"--token", "t", "--work-dir", "/tmp"},
                   {{"ASSAY_KILL_GRACE", "ten seconds"}});
  CHECK(grace.code == 2);
  CHECK(grace.output ==
        "assay-agent: ASSAY_KILL_GRACE (option --kill-grace) must be a duration "
        "from 0s to 1h, like 500ms, 30s or 5m, got 'ten seconds'\n");
}

TEST_CASE("a fresh server's /metrics has every webhook series at zero", "[e2e][metrics]") {
  Cluster c(Options());
  MUST(c.StartServer());
  auto m = MUST(c.Fetch("GET", "/metrics"));
  REQUIRE(m.status == 200);
  INFO(m.body);
  for (const char* provider : {"github", "gitlab", "gitea"}) {
    for (const char* result :
         {"accepted", "duplicate", "ignored", "bad_signature", "unknown_repo", "bad_request"}) {
      const std::string line = absl::StrCat("\nassay_webhooks_received_total{provider=\"", provider,
                                            "\",result=\"", result, "\"} 0\n");
      CHECK(absl::StrContains(m.body, line));
    }
  }
  CHECK(absl::StrContains(m.body, "\nassay_commit_statuses_total{result=\"delivered\"} 0\n"));
}

}  // namespace
}  // namespace assay::e2e
