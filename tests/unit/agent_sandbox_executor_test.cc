// The sandboxed process executor: its exact bwrap command line, and steps that really run under
// bwrap (this machine has bubblewrap; the tests say so and stop where it does not work).

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/executor_choice.h"
#include "agent/sandbox_executor.h"
#include "agent/step_runner.h"
#include "common/proc/subprocess.h"

namespace assay {
namespace {

std::string TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "sandbox-test-XXXXXX").string();
  REQUIRE(mkdtemp(tmpl.data()) != nullptr);
  return tmpl;
}

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// An agent's work dir as the agent lays it out: the credential, a spool, two jobs' workspaces
// and a git cache whose objects the first workspace borrows (alternates).
struct AgentTree {
  std::string root = TempDir();
  std::string work = root + "/agent";
  std::string ws = work + "/jobs/job-1-1";
  std::string other = work + "/jobs/job-2-1";
  std::string cache = work + "/cache/0123456789abcdef.git";
  AgentTree() {
    std::filesystem::create_directories(work + "/spool");
    std::filesystem::create_directories(other);
    Write(work + "/agent.credential", "agent-secret\n");
    REQUIRE(chmod((work + "/agent.credential").c_str(), 0600) == 0);
    Write(other + "/secret.txt", "other-job\n");
    Write(work + "/spool/job-2-1.log", "spooled\n");
  }
  ~AgentTree() { std::filesystem::remove_all(root); }
  SandboxOptions Options(bool network) const {
    SandboxOptions o;
    auto bwrap = FindBwrap("", "/usr/local/bin:/usr/bin:/bin");
    REQUIRE(bwrap.ok());
    o.bwrap_path = *bwrap;
    o.hidden = {work};
    o.read_only = {cache + "/objects"};
    o.network = network;
    return o;
  }
};

struct Run {
  JobRunResult result;
  std::string output;
};

Run RunIn(SandboxExecutor& executor, const std::string& ws, const std::string& script) {
  JobRunRequest req;
  req.steps = {{"step", script}};
  req.workdir = ws;
  req.executor = &executor;
  req.timeout = absl::Seconds(60);  // bounds every test below
  CancelFlag cancel;
  Run run;
  run.result = RunJob(req, cancel, [&](std::string_view s) { run.output.append(s); });
  return run;
}

bool BwrapWorks() {
  auto bwrap = FindBwrap("", "/usr/local/bin:/usr/bin:/bin");
  if (!bwrap.ok()) return false;
  absl::Status probe = ProbeBwrap(*bwrap, absl::Seconds(20));
  if (!probe.ok()) WARN(probe.message());
  return probe.ok();
}

TEST_CASE("sandbox: the bwrap command line, exactly", "[sandbox]") {
  AgentTree t;
  std::filesystem::create_directories(t.cache + "/objects");
  SandboxOptions o;
  o.bwrap_path = "/opt/bwrap";
  o.hidden = {t.work, t.root + "/missing"};
  o.read_only = {t.cache + "/objects", t.root + "/missing-too"};
  o.network = false;
  SandboxExecutor off(o);
  CHECK(off.kind() == "sandbox");
  const std::vector<std::string> no_net = {"/opt/bwrap",
                                           "--die-with-parent",
                                           "--new-session",
                                           "--unshare-all",
                                           "--as-pid-1",
                                           "--ro-bind",
                                           "/",
                                           "/",
                                           "--proc",
                                           "/proc",
                                           "--dev",
                                           "/dev",
                                           "--tmpfs",
                                           "/tmp",
                                           "--tmpfs",
                                           t.work,
                                           "--ro-bind",
                                           t.cache + "/objects",
                                           t.cache + "/objects",
                                           "--bind",
                                           t.ws,
                                           t.ws,
                                           "--chdir",
                                           t.ws,
                                           "--",
                                           "/bin/sh",
                                           "-e",
                                           "-c",
                                           "make test"};
  CHECK(off.Argv(t.ws, "make test") == no_net);
  o.network = true;
  SandboxExecutor on(o);
  std::vector<std::string> with_net = no_net;
  with_net.insert(with_net.begin() + 5, "--share-net");
  CHECK(on.Argv(t.ws, "make test") == with_net);

  // StepCommand: the same argv, bwrap run directly, the job user kept, the env passed through.
  JobRunRequest req;
  req.workdir = t.ws;
  auto p = on.StepCommand(req, {"s", "make test"}, {"PATH=/usr/bin", "X=1"});
  REQUIRE(p.ok());
  CHECK(p->path == "/opt/bwrap");
  CHECK(p->argv == with_net);
  CHECK(p->env == std::vector<std::string>{"PATH=/usr/bin", "X=1"});
  CHECK(p->cwd == t.ws);
  CHECK(p->as_job_user);
}

TEST_CASE("sandbox: Prepare refuses a relative workspace and a missing bwrap", "[sandbox]") {
  SandboxOptions o;
  o.bwrap_path = "/nonexistent/bwrap";
  SandboxExecutor e(o);
  JobRunRequest req;
  req.workdir = "/tmp";
  req.steps = {{"s", "true"}};
  req.executor = &e;
  CancelFlag cancel;
  std::string out;
  JobRunResult r = RunJob(req, cancel, [&](std::string_view s) { out.append(s); });
  CHECK(r.outcome == JobRunOutcome::kError);
  CHECK(r.message ==
        "cannot prepare the sandbox executor: /nonexistent/bwrap is not an executable file "
        "(install bubblewrap)");
  req.workdir = "relative";
  r = RunJob(req, cancel, [&](std::string_view s) { out.append(s); });
  CHECK(r.message ==
        "cannot prepare the sandbox executor: the workspace must be an absolute path, not "
        "\"relative\"");
}

TEST_CASE("sandbox: FindBwrap takes the configured path or the first on PATH", "[sandbox]") {
  AgentTree t;
  const std::string bin = t.root + "/bin";
  std::filesystem::create_directories(bin);
  Write(bin + "/bwrap", "#!/bin/sh\n");
  REQUIRE(chmod((bin + "/bwrap").c_str(), 0755) == 0);
  CHECK(*FindBwrap("", "relative:" + t.root + "/none:" + bin + ":/usr/bin") == bin + "/bwrap");
  CHECK(*FindBwrap(bin + "/bwrap", "") == bin + "/bwrap");
  CHECK(FindBwrap("bwrap", "/usr/bin").status().message() ==
        "--bwrap bwrap is not an absolute path to an executable file");
  CHECK(FindBwrap("", t.root + "/none").status().code() == absl::StatusCode::kNotFound);
  CHECK(FindBwrap("", t.root + "/none").status().message() ==
        "bwrap (bubblewrap) is not installed: no bwrap on PATH");
}

TEST_CASE("sandbox: a step writes only its workspace and its private /tmp", "[sandbox][bwrap]") {
  if (!BwrapWorks()) return;
  AgentTree t;
  std::filesystem::create_directories(t.ws);
  const std::string name = std::filesystem::path(t.root).filename().string();
  Write("/tmp/" + name + "-host", "host tmp\n");
  SandboxExecutor e(t.Options(/*network=*/false));
  Run run = RunIn(e, t.ws,
                  "touch /usr/assay-sandbox-x 2>/dev/null && echo wrote-usr || echo no-usr\n"
                  "echo mine > out.txt && cat out.txt\n"
                  "ls -A /tmp\n"
                  "echo t > /tmp/" +
                      name + "-inside && cat /tmp/" + name +
                      "-inside\n"
                      "pwd\n");
  std::filesystem::remove("/tmp/" + name + "-host");
  CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
  // The private /tmp holds only the way down to the workspace (this test's lies under /tmp):
  // not the host's file next to it.
  CHECK(run.output == "no-usr\nmine\n" + name + "\nt\n" + t.ws + "\n");
  CHECK(!std::filesystem::exists("/usr/assay-sandbox-x"));
  std::ifstream in(t.ws + "/out.txt");
  std::string line;
  std::getline(in, line);
  CHECK(line == "mine");
  CHECK(!std::filesystem::exists("/tmp/" + name + "-inside"));  // it went with the sandbox
}

TEST_CASE("sandbox: the agent's credential, spool and other jobs' workspaces are hidden",
          "[sandbox][bwrap]") {
  if (!BwrapWorks()) return;
  AgentTree t;
  std::filesystem::create_directories(t.ws);
  SandboxExecutor e(t.Options(/*network=*/false));
  Run run =
      RunIn(e, t.ws,
            absl::StrCat("cat ", t.work, "/agent.credential 2>&1 >/dev/null | wc -l\n", "test -e ",
                         t.work, "/agent.credential || echo no-credential\n", "test -e ", t.other,
                         "/secret.txt || echo no-other-job\n", "test -e ", t.work,
                         "/spool/job-2-1.log || echo no-spool\n", "ls -A ", t.work, "/jobs\n"));
  CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
  CHECK(run.output == "1\nno-credential\nno-other-job\nno-spool\njob-1-1\n");
  // They are still there for the agent.
  CHECK(std::filesystem::exists(t.work + "/agent.credential"));
  CHECK(std::filesystem::exists(t.other + "/secret.txt"));
}

// Listens on 127.0.0.1:<port> of the test's (the host's) network namespace.
struct Listener {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int port = 0;
  Listener() {
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    REQUIRE(listen(fd, 4) == 0);
    port = ntohs(addr.sin_port);
  }
  ~Listener() { close(fd); }
};

TEST_CASE("sandbox: network none has no route to the host, the default shares it",
          "[sandbox][bwrap]") {
  if (!BwrapWorks()) return;
  if (!std::filesystem::exists("/bin/bash")) return;  // /dev/tcp is bash's
  AgentTree t;
  std::filesystem::create_directories(t.ws);
  Listener l;
  const std::string connect = absl::StrCat("bash -c 'echo > /dev/tcp/127.0.0.1/", l.port,
                                           "' 2>/dev/null && echo connected || echo refused");
  SandboxExecutor none(t.Options(/*network=*/false));
  Run run = RunIn(none, t.ws, connect);
  CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
  CHECK(run.output == "refused\n");
  SandboxExecutor shared(t.Options(/*network=*/true));
  run = RunIn(shared, t.ws, connect);
  CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
  CHECK(run.output == "connected\n");
}

TEST_CASE("sandbox: git works in a workspace that borrows the hidden cache's objects",
          "[sandbox][bwrap]") {
  if (!BwrapWorks()) return;
  AgentTree t;
  const std::vector<std::pair<std::string, std::string>> env = {
      {"GIT_AUTHOR_NAME", "t"},       {"GIT_AUTHOR_EMAIL", "t@x"},  {"GIT_COMMITTER_NAME", "t"},
      {"GIT_COMMITTER_EMAIL", "t@x"}, {"GIT_CONFIG_NOSYSTEM", "1"}, {"HOME", t.root}};
  const std::string src = t.root + "/src";
  std::filesystem::create_directories(src);
  Write(src + "/a.txt", "hello\n");
  for (const auto& argv :
       std::vector<std::vector<std::string>>{{"git", "init", "-q", "-b", "main", src},
                                             {"git", "-C", src, "add", "a.txt"},
                                             {"git", "-C", src, "commit", "-q", "-m", "first"},
                                             {"git", "clone", "-q", "--bare", src, t.cache},
                                             {"git", "clone", "-q", "--shared", t.cache, t.ws}}) {
    auto r = RunCommand(argv, "", env);
    REQUIRE(r.ok());
    INFO(r->err);
    REQUIRE(r->exit_code == 0);
  }
  // The workspace holds no object of its own: git reads them all through the alternates.
  std::ifstream alt(t.ws + "/.git/objects/info/alternates");
  std::string alternates;
  std::getline(alt, alternates);
  CHECK(alternates == t.cache + "/objects");
  const std::string script =
      "export HOME=/tmp GIT_CONFIG_NOSYSTEM=1\n"
      "git log --format=%s\n"
      "echo more >> a.txt && git -c user.name=t -c user.email=t@x commit -qam second\n"
      "git log --format=%s | wc -l\n"
      "git status --porcelain | wc -l\n"
      "test -e " +
      t.cache + "/config || echo no-cache-config\n";
  SandboxExecutor e(t.Options(/*network=*/false));
  Run run = RunIn(e, t.ws, script);
  CHECK(run.result.outcome == JobRunOutcome::kSucceeded);
  CHECK(run.output == "first\n2\n0\nno-cache-config\n");
  // Without the objects bound back, the hidden cache leaves git without its history: that is
  // what the read-only bind is for.
  SandboxOptions bare = t.Options(false);
  bare.read_only.clear();
  SandboxExecutor without(bare);
  run = RunIn(without, t.ws, "git log --format=%s >/dev/null 2>&1 && echo ok || echo broken");
  CHECK(run.output == "broken\n");
}

TEST_CASE("sandbox: as the job user, a timeout still ends the whole sandbox", "[sandbox][bwrap]") {
  if (!BwrapWorks() || geteuid() != 0) return;
  AgentTree t;
  std::filesystem::create_directories(t.ws);
  REQUIRE(chown(t.ws.c_str(), 65534, 65534) == 0);
  REQUIRE(chmod(t.work.c_str(), 0755) == 0);
  REQUIRE(chmod(t.root.c_str(), 0755) == 0);
  REQUIRE(chmod((t.work + "/jobs").c_str(), 0755) == 0);
  SandboxExecutor e(t.Options(/*network=*/false));
  JobRunRequest req;
  req.steps = {{"who", "id -u; echo x > mine && cat mine"}, {"sleep", "sleep 1000 & sleep 1000"}};
  req.workdir = t.ws;
  req.executor = &e;
  JobIdentity user;
  user.uid = 65534;
  user.gid = 65534;
  req.user = user;
  req.timeout = absl::Seconds(2);
  req.kill_grace = absl::Seconds(2);
  CancelFlag cancel;
  std::string out;
  JobRunResult r = RunJob(req, cancel, [&](std::string_view s) { out.append(s); });
  CHECK(r.outcome == JobRunOutcome::kTimedOut);
  CHECK(r.message == "job timed out after 2s in step \"sleep\"");
  CHECK(out.rfind("65534\nx\nassay: job timed out after 2s; sent SIGTERM to the process group\n",
                  0) == 0);
}

}  // namespace
}  // namespace assay

namespace assay {
namespace {

TEST_CASE("sandbox: a job's own secret files come back read-only, another job's do not",
          "[sandbox][bwrap][secrets]") {
  if (!BwrapWorks()) return;
  AgentTree t;
  std::filesystem::create_directories(t.ws);
  std::filesystem::create_directories(t.ws + ".secrets");
  std::filesystem::create_directories(t.other + ".secrets");
  Write(t.ws + ".secrets/API_KEY", "mine\n");
  Write(t.other + ".secrets/API_KEY", "theirs\n");
  JobExecutorContext ctx;
  ctx.offered = {"sandbox"};
  ctx.bwrap_path = *FindBwrap("", "/usr/local/bin:/usr/bin:/bin");
  ctx.work_dir = t.work;
  ctx.cache_objects_dir = t.cache + "/objects";
  ctx.secrets_dir = t.ws + ".secrets";
  absl::StatusOr<std::unique_ptr<Executor>> e = MakeJobExecutor(ctx);
  REQUIRE(e.ok());
  JobRunRequest req;
  req.steps = {{"step", absl::StrCat("cat ", t.ws, ".secrets/API_KEY\n", "test -e ", t.other,
                                     ".secrets/API_KEY || echo no-other-secret\n", "{ echo x > ",
                                     t.ws, ".secrets/API_KEY; } 2>/dev/null || echo read-only\n")}};
  req.workdir = t.ws;
  req.executor = e->get();
  req.timeout = absl::Seconds(60);
  CancelFlag cancel;
  std::string output;
  JobRunResult result = RunJob(req, cancel, [&](std::string_view s) { output.append(s); });
  CHECK(result.outcome == JobRunOutcome::kSucceeded);
  CHECK(output == "mine\nno-other-secret\nread-only\n");
}

}  // namespace
}  // namespace assay
