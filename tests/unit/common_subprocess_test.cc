#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/proc/spawn.h"
#include "common/proc/subprocess.h"

namespace assay {
namespace {

// Waits (at most 20 s, far beyond what a SIGKILLed process needs) for `pid` to exit. It is not
// our child (this test process is no subreaper), so it is re-parented to init when killed.
bool ExitsSoon(pid_t pid) {
  UniqueFd pidfd(OpenPidfd(pid));
  if (!pidfd.valid()) return errno == ESRCH;
  pollfd fd = {pidfd.get(), POLLIN, 0};
  return poll(&fd, 1, 20000) == 1;
}

TEST_CASE("RunCommand captures stdout, stderr and the exit code separately", "[subprocess]") {
  auto result = RunCommand({"sh", "-c", "printf out; printf err >&2; printf more; exit 3"});
  REQUIRE(result.ok());
  CHECK(result->exit_code == 3);
  CHECK(result->term_signal == 0);
  CHECK(result->out == "outmore");
  CHECK(result->err == "err");
}

TEST_CASE("RunCommand does not deadlock on large output on both pipes", "[subprocess]") {
  // 1 MiB to stderr first, then 1 MiB to stdout: a reader of stdout alone would block forever.
  auto result = RunCommand(
      {"sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' e >&2; head -c 1048576 /dev/zero"});
  REQUIRE(result.ok());
  CHECK(result->exit_code == 0);
  CHECK(result->err == std::string(1048576, 'e'));
  CHECK(result->out == std::string(1048576, '\0'));
}

TEST_CASE("RunCommand feeds stdin while reading stdout", "[subprocess]") {
  std::string input;
  for (int i = 0; i < 200000; ++i) input += static_cast<char>('a' + i % 26);
  input += std::string("\0tail\n", 6);
  auto result = RunCommand({"cat"}, {}, {}, input);
  REQUIRE(result.ok());
  CHECK(result->exit_code == 0);
  CHECK(result->out == input);
}

TEST_CASE("RunCommand survives a child that does not read its stdin", "[subprocess]") {
  auto result =
      RunCommand({"sh", "-c", "exec 0<&-; echo closed"}, {}, {}, std::string(1 << 20, 'x'));
  REQUIRE(result.ok());
  CHECK(result->exit_code == 0);
  CHECK(result->out == "closed\n");
}

TEST_CASE("RunCommand gives /dev/null as stdin when there is no input", "[subprocess]") {
  auto result = RunCommand({"cat"});
  REQUIRE(result.ok());
  CHECK(result->exit_code == 0);
  CHECK(result->out.empty());
}

TEST_CASE("RunCommand applies env overrides and cwd", "[subprocess]") {
  char tmpl[] = "/tmp/assay-subprocess-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = std::filesystem::canonical(tmpl).string();
  setenv("ASSAY_TEST_OVERRIDDEN", "old", 1);
  auto result = RunCommand(
      {"sh", "-c", "printf '%s|%s|' \"$ASSAY_TEST_NEW\" \"$ASSAY_TEST_OVERRIDDEN\"; pwd -P"}, dir,
      {{"ASSAY_TEST_NEW", "new value"}, {"ASSAY_TEST_OVERRIDDEN", "new"}});
  unsetenv("ASSAY_TEST_OVERRIDDEN");
  std::filesystem::remove_all(dir);
  REQUIRE(result.ok());
  CHECK(result->out == "new value|new|" + dir + "\n");
}

TEST_CASE("RunCommand looks argv[0] up in the PATH of the child's environment", "[subprocess]") {
  char tmpl[] = "/tmp/assay-subprocess-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  {
    std::ofstream script(dir + "/assay-hello");
    script << "#!/bin/sh\necho hello from PATH\n";
  }
  REQUIRE(chmod((dir + "/assay-hello").c_str(), 0755) == 0);
  auto result = RunCommand({"assay-hello"}, {}, {{"PATH", dir + ":/usr/bin:/bin"}});
  std::filesystem::remove_all(dir);
  REQUIRE(result.ok());
  CHECK(result->out == "hello from PATH\n");
}

TEST_CASE("RunCommand reports what could not be started", "[subprocess]") {
  auto missing = RunCommand({"assay-no-such-program"});
  CHECK(missing.status().code() == absl::StatusCode::kInternal);
  CHECK(missing.status().message() ==
        "cannot run \"assay-no-such-program\": program \"assay-no-such-program\" not found in "
        "PATH");

  auto bad_cwd = RunCommand({"/bin/sh", "-c", "true"}, "/nonexistent-assay-dir");
  CHECK(bad_cwd.status().code() == absl::StatusCode::kInternal);
  CHECK(bad_cwd.status().message() ==
        "cannot run \"/bin/sh -c true\": cannot start /bin/sh: chdir /nonexistent-assay-dir: No "
        "such file or directory");

  char tmpl[] = "/tmp/assay-subprocess-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string plain = std::string(tmpl) + "/plain-file";
  std::ofstream(plain) << "not a program\n";
  REQUIRE(chmod(plain.c_str(), 0644) == 0);
  auto not_executable = RunCommand({plain});
  std::filesystem::remove_all(tmpl);
  CHECK(not_executable.status().code() == absl::StatusCode::kInternal);
  CHECK(not_executable.status().message() ==
        "cannot run \"" + plain + "\": cannot start " + plain + ": exec: Permission denied");

  CHECK(RunCommand({}).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(RunCommand({"true"}, {}, {{"A=B", "x"}}).status().message() ==
        "invalid environment variable name \"A=B\"");
}

TEST_CASE("RunCommand reports a signal", "[subprocess]") {
  auto result = RunCommand({"sh", "-c", "kill -9 $$"});
  REQUIRE(result.ok());
  CHECK(result->term_signal == SIGKILL);
  CHECK(result->exit_code == 128 + SIGKILL);
}

TEST_CASE("RunCommand kills the command at the timeout", "[subprocess]") {
  auto result = RunCommand({"sh", "-c", "echo $$; sleep 100"}, {}, {}, {}, absl::Milliseconds(300));
  CHECK(result.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(result.status().message() == "command \"sh -c echo $$; sleep 100\" timed out after 300ms");
}

TEST_CASE("RunCommand does not wait for background processes and kills them", "[subprocess]") {
  // The background sleep inherits stdout: waiting for EOF would take 100 seconds.
  auto result = RunCommand({"sh", "-c", "sleep 100 & echo $!"});
  REQUIRE(result.ok());
  CHECK(result->exit_code == 0);
  const pid_t background = std::stoi(result->out);
  CHECK(ExitsSoon(background));
}

TEST_CASE("RunCommand leaks no descriptor into the child", "[subprocess]") {
  int leaky = open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  REQUIRE(leaky >= 3);
  const std::string probe = "/proc/self/fd/" + std::to_string(leaky);
  auto result =
      RunCommand({"sh", "-c", "if [ -e " + probe + " ]; then echo leaked; else echo clean; fi"});
  close(leaky);
  REQUIRE(result.ok());
  CHECK(result->out == "clean\n");
}

TEST_CASE("Spawned children start with default signal dispositions", "[subprocess]") {
  // A server ignores SIGPIPE; its children must not inherit that.
  struct sigaction ignore = {}, old = {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &old);
  auto status = RunCommand({"sh", "-c", "grep '^SigIgn' /proc/self/status"});
  sigaction(SIGPIPE, &old, nullptr);
  REQUIRE(status.ok());
  CHECK(status->out == "SigIgn:\t0000000000000000\n");
}

TEST_CASE("FindExecutable and LookupEnv", "[subprocess]") {
  CHECK(FindExecutable("./x", "/bin").value() == "./x");
  CHECK(FindExecutable("sh", "/nonexistent:/bin").value() == "/bin/sh");
  CHECK(FindExecutable("assay-nope", "/bin").status().code() == absl::StatusCode::kNotFound);
  std::vector<std::string> env = {"A=1", "AB=2", "C="};
  CHECK(LookupEnv(env, "AB").value() == "2");
  CHECK(LookupEnv(env, "C").value().empty());
  CHECK_FALSE(LookupEnv(env, "B").has_value());
}

}  // namespace
}  // namespace assay
