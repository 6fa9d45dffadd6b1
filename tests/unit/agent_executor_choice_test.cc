// The agent's --executors and the executor each job gets (issue 9).
#include "agent/executor_choice.h"

#include <catch2/catch.hpp>

#include "agent/sandbox_executor.h"
#include "agent/step_runner.h"

namespace assay {
namespace {

using Names = std::vector<std::string>;

ExecutorsAvailable Have(bool bwrap, bool cli) {
  ExecutorsAvailable a;
  a.bwrap = bwrap ? absl::StatusOr<std::string>("/usr/bin/bwrap")
                  : absl::StatusOr<std::string>(absl::NotFoundError(
                        "bwrap (bubblewrap) is not installed: no bwrap on PATH"));
  a.container_cli = cli ? "podman" : "";
  return a;
}

TEST_CASE("executors: the default is every isolating executor available, never host",
          "[executors]") {
  CHECK(*ResolveExecutors({}, Have(true, true)) == Names{"container", "sandbox"});
  CHECK(*ResolveExecutors({}, Have(true, false)) == Names{"sandbox"});
  CHECK(*ResolveExecutors({}, Have(false, true)) == Names{"container"});
  auto none = ResolveExecutors({}, Have(false, false));
  CHECK(none.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(none.status().message() ==
        "no isolating executor is available (bwrap (bubblewrap) is not installed: no bwrap on "
        "PATH; no podman or docker on PATH): install bubblewrap or podman, or pass --executors "
        "host to run jobs unisolated on this machine");
}

TEST_CASE("executors: a listed set is checked and put in canonical order", "[executors]") {
  CHECK(*ResolveExecutors({"host"}, Have(false, false)) == Names{"host"});
  CHECK(*ResolveExecutors({"host", "sandbox", "container"}, Have(true, true)) ==
        Names{"container", "sandbox", "host"});
  CHECK(ResolveExecutors({"vm"}, Have(true, true)).status().message() ==
        "--executors: unknown executor \"vm\" (known: container, sandbox, host)");
  CHECK(ResolveExecutors({"host", "host"}, Have(true, true)).status().message() ==
        "--executors: \"host\" is listed twice");
  CHECK(ResolveExecutors({"sandbox"}, Have(false, true)).status().message() ==
        "--executors sandbox: bwrap (bubblewrap) is not installed: no bwrap on PATH");
  CHECK(ResolveExecutors({"container"}, Have(true, false)).status().message() ==
        "--executors container: no podman or docker on PATH");
  CHECK(ResolveExecutors({""}, Have(true, false)).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("executors: an untrusted job is refused by an agent that cannot isolate it",
          "[executors]") {
  CHECK(RefuseReason({"host"}, true) ==
        "untrusted job: this agent runs jobs only on the host (--executors host), never "
        "untrusted ones");
  CHECK(RefuseReason({"host"}, false).empty());
  CHECK(RefuseReason({"sandbox", "host"}, true).empty());
  CHECK(RefuseReason({"container"}, true).empty());
}

TEST_CASE("executors: which executor a job without image gets", "[executors]") {
  JobExecutorContext ctx;
  ctx.bwrap_path = "/usr/bin/bwrap";
  ctx.work_dir = "/var/lib/assay";
  ctx.offered = {"sandbox", "host"};
  auto e = MakeJobExecutor(ctx);
  REQUIRE(e.ok());
  CHECK((*e)->kind() == "sandbox");
  ctx.offered = {"host"};
  e = MakeJobExecutor(ctx);
  REQUIRE(e.ok());
  CHECK((*e)->kind() == "host");
  ctx.untrusted = true;
  CHECK(MakeJobExecutor(ctx).status().message() ==
        "untrusted job: this agent has no sandbox executor (--executors sandbox)");
  ctx.untrusted = false;
  ctx.network = "none";
  CHECK(MakeJobExecutor(ctx).status().message() ==
        "network: none needs the sandbox executor; this agent runs jobs on the host");
  ctx.network = "bridge";
  CHECK(MakeJobExecutor(ctx).status().message() ==
        "unknown network setting \"bridge\" (expected none or nothing)");
  ctx.network = "";
  ctx.offered = {"container"};
  CHECK(MakeJobExecutor(ctx).status().message() ==
        "this agent offers no executor for a job without image: (--executors sandbox or host)");
  // The sandbox hides the work dir and honours network: none.
  ctx.offered = {"sandbox"};
  ctx.network = "none";
  e = MakeJobExecutor(ctx);
  REQUIRE(e.ok());
  auto* sandbox = dynamic_cast<SandboxExecutor*>(e->get());
  REQUIRE(sandbox != nullptr);
  const Names argv = sandbox->Argv("/var/lib/assay/jobs/job-1-1", "true");
  CHECK(std::find(argv.begin(), argv.end(), "--share-net") == argv.end());
}

}  // namespace
}  // namespace assay
