// End to end: what assay-server and assay-agent say about bad option values before they start
// anything, and what a fresh server's /metrics holds before any event.

#include <stdlib.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
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
// The secrets go in the environment: assay-server refuses them as flags.
std::vector<std::pair<std::string, std::string>> ServerEnv(
    std::vector<std::pair<std::string, std::string>> more = {}) {
  more.insert(more.begin(), {{"ASSAY_ADMIN_TOKEN", "admin-token-0123456789abcdef-0123"},
                             {"ASSAY_AGENT_TOKEN", "agent-token-123"}});
  return more;
}

std::vector<std::string> ServerArgs(std::vector<std::string> more) {
  std::vector<std::string> args = {"--database-url", "postgresql://127.0.0.1:1/none", "--data-dir",
                                   "/nonexistent/assay-data"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

TEST_CASE("assay-server refuses a bad option value at start, naming the option and the range",
          "[e2e][flags]") {
  // Before: -1 wrapped around to a body limit of 16 EiB.
  Exit negative = Run("server/assay-server", ServerArgs({"--body-limit-mb", "-1"}), ServerEnv());
  CHECK(negative.code == 2);
  CHECK(negative.output ==
        "assay-server: option --body-limit-mb must be an integer from 1 to 4096, got '-1'\n");
  // Before: an unknown level silently became info.
  Exit level =
      Run("server/assay-server", ServerArgs({}), ServerEnv({{"ASSAY_LOG_LEVEL", "verbose"}}));
  CHECK(level.code == 2);
  CHECK(level.output ==
        "assay-server: ASSAY_LOG_LEVEL (option --log-level) must be one of "
        "debug, info, warn, error, got 'verbose'\n");
  Exit lease = Run("server/assay-server", ServerArgs({"--lease=0s"}), ServerEnv());
  CHECK(lease.code == 2);
  CHECK(lease.output ==
        "assay-server: option --lease must be a duration from 1s to 24h, like "
        "500ms, 30s or 5m, got '0s'\n");
}

TEST_CASE("assay-server refuses a short admin token and a metrics token on its command line",
          "[e2e][flags][security]") {
  Exit short_token =
      Run("server/assay-server", ServerArgs({}),
          {{"ASSAY_ADMIN_TOKEN", "short-admin-token"}, {"ASSAY_AGENT_TOKEN", "agent-token-123"}});
  CHECK(short_token.code == 1);
  CHECK(short_token.output ==
        "assay-server: INVALID_ARGUMENT: --admin-token must be at least 32 characters, got 17; "
        "make one with: openssl rand -hex 32\n");
  Exit flag = Run("server/assay-server", ServerArgs({"--metrics-token", "m-token-0123456789"}),
                  ServerEnv());
  CHECK(flag.code == 2);
  CHECK(absl::StartsWith(flag.output,
                         "assay-server: option --metrics-token is secret and is not accepted on "
                         "the command line (any local user can read a process's arguments): "));
  CHECK(flag.output.find("m-token-0123456789") == std::string::npos);
}

TEST_CASE("assay-agent refuses a bad option value at start", "[e2e][flags]") {
  Exit slots =
      Run("agent/assay-agent", {"--work-dir", "/tmp", "--slots", "0"}, {{"ASSAY_TOKEN", "t"}});
  CHECK(slots.code == 2);
  CHECK(slots.output == "assay-agent: option --slots must be an integer from 1 to 4096, got '0'\n");
  Exit grace = Run("agent/assay-agent", {"--work-dir", "/tmp"},
                   {{"ASSAY_TOKEN", "t"}, {"ASSAY_KILL_GRACE", "ten seconds"}});
  CHECK(grace.code == 2);
  CHECK(grace.output ==
        "assay-agent: ASSAY_KILL_GRACE (option --kill-grace) must be a duration "
        "from 0s to 1h, like 500ms, 30s or 5m, got 'ten seconds'\n");
}

TEST_CASE("secrets are refused on the command line and from unsafe files", "[e2e][flags]") {
  Exit server =
      Run("server/assay-server", ServerArgs({"--admin-token", "admin-token-123"}), ServerEnv());
  CHECK(server.code == 2);
  CHECK(server.output ==
        "assay-server: option --admin-token is secret and is not accepted on the command line "
        "(any local user can read a process's arguments): set ASSAY_ADMIN_TOKEN, put "
        "'admin-token = VALUE' in the --config file, or pass --admin-token-file PATH (a file "
        "readable only by this user)\n");
  Exit agent = Run("agent/assay-agent", {"--token", "t", "--work-dir", "/tmp"});
  CHECK(agent.code == 2);
  CHECK(agent.output ==
        "assay-agent: option --token is secret and is not accepted on the command line (any "
        "local user can read a process's arguments): set ASSAY_TOKEN, put 'token = VALUE' in "
        "the --config file, or pass --token-file PATH (a file readable only by this user)\n");

  char tmpl[] = "/tmp/assay-secret-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  const std::string open_file = dir + "/open", huge = dir + "/huge";
  std::ofstream(open_file) << "agent-token-123\n";
  REQUIRE(chmod(open_file.c_str(), 0644) == 0);
  std::ofstream(huge) << std::string(1 << 20, 'x');
  REQUIRE(chmod(huge.c_str(), 0600) == 0);
  Exit readable = Run("agent/assay-agent", {"--token-file", open_file, "--work-dir", "/tmp"});
  CHECK(readable.code == 2);
  CHECK(readable.output == "assay-agent: --token-file " + open_file +
                               ": is accessible by other users (mode 0644); run chmod o-rwx on "
                               "it (600 is best)\n");
  Exit big = Run("agent/assay-agent", {"--work-dir", "/tmp"}, {{"ASSAY_TOKEN_FILE", huge}});
  CHECK(big.code == 2);
  CHECK(big.output == "assay-agent: ASSAY_TOKEN_FILE=" + huge + ": is larger than 65536 bytes\n");
  std::remove(open_file.c_str());
  std::remove(huge.c_str());
  rmdir(dir.c_str());
}

TEST_CASE("assay-agent: --job-user must name a user, root needs one", "[e2e][flags]") {
  Exit unknown =
      Run("agent/assay-agent", {"--work-dir", "/tmp", "--job-user", "no-such-user-assay"},
          {{"ASSAY_TOKEN", "t"}});
  CHECK(unknown.code == 2);
  CHECK(unknown.output == "assay-agent: --job-user 'no-such-user-assay': no such user\n");
  Exit bad =
      Run("agent/assay-agent", {"--work-dir", "/tmp", "--job-user", "1:x"}, {{"ASSAY_TOKEN", "t"}});
  CHECK(bad.code == 2);
  CHECK(bad.output == "assay-agent: --job-user '1:x': must be a user name or UID:GID\n");
  if (geteuid() != 0) {
    WARN("skipped the root cases: not root");
    return;
  }
  Exit none = Run("agent/assay-agent", {"--work-dir", "/tmp"}, {{"ASSAY_TOKEN", "t"}});
  CHECK(none.code == 2);
  CHECK(none.output ==
        "assay-agent: the agent runs as root, so its jobs would too, and could read its token "
        "and rewrite its git cache: pass --job-user USER (an unprivileged account, name or "
        "UID:GID) for jobs to run as, or --job-user root to accept running them as root\n");
  // A work dir the job user cannot reach is a start error, not a failure of every job.
  char tmpl[] = "/tmp/assay-closed-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);  // 0700: nobody cannot pass
  Exit closed = Run("agent/assay-agent",
                    {"--work-dir", std::string(tmpl) + "/work", "--job-user", "65534:65534"},
                    {{"ASSAY_TOKEN", "t"}});
  std::filesystem::remove_all(tmpl);
  CHECK(closed.code == 2);
  CHECK(closed.output == "assay-agent: the job user (uid 65534) cannot enter " + std::string(tmpl) +
                             "/work/jobs: every directory above it must be searchable (x) by "
                             "that user, e.g. chmod 711\n");
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
