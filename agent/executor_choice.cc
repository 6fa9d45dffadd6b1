#include "agent/executor_choice.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/sandbox_executor.h"
#include "agent/step_runner.h"

namespace assay {
namespace {

bool Has(const std::vector<std::string>& v, const std::string& name) {
  return std::find(v.begin(), v.end(), name) != v.end();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ResolveExecutors(const std::vector<std::string>& asked,
                                                          const ExecutorsAvailable& available) {
  std::vector<std::string> out;
  if (asked.empty()) {
    if (!available.container_cli.empty()) out.push_back("container");
    if (available.bwrap.ok()) out.push_back("sandbox");
    if (out.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no isolating executor is available (", available.bwrap.status().message(),
          "; no podman or docker on PATH): install bubblewrap or podman, or pass --executors "
          "host to run jobs unisolated on this machine"));
    }
    return out;
  }
  for (const std::string& name : asked) {
    if (std::find_if(std::begin(kExecutorNames), std::end(kExecutorNames),
                     [&](const char* k) { return name == k; }) == std::end(kExecutorNames)) {
      return absl::InvalidArgumentError(absl::StrCat("--executors: unknown executor \"", name,
                                                     "\" (known: container, sandbox, host)"));
    }
    if (std::count(asked.begin(), asked.end(), name) > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--executors: \"", name, "\" is listed twice"));
    }
  }
  for (const char* name : kExecutorNames) {
    if (!Has(asked, name)) continue;
    if (std::string_view(name) == "sandbox" && !available.bwrap.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("--executors sandbox: ", available.bwrap.status().message()));
    }
    if (std::string_view(name) == "container" && available.container_cli.empty()) {
      return absl::FailedPreconditionError("--executors container: no podman or docker on PATH");
    }
    out.push_back(name);
  }
  return out;
}

std::string FindContainerCli(const std::string& path_env) {
  for (const char* cli : {"podman", "docker"}) {
    for (absl::string_view dir : absl::StrSplit(path_env, ':', absl::SkipEmpty())) {
      if (dir[0] != '/') continue;
      const std::string p = absl::StrCat(dir, "/", cli);
      struct stat st;
      if (stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(p.c_str(), X_OK) == 0) {
        return cli;
      }
    }
  }
  return "";
}

std::string RefuseReason(const std::vector<std::string>& offered, bool untrusted) {
  if (untrusted && !Has(offered, "sandbox") && !Has(offered, "container")) {
    return "untrusted job: this agent runs jobs only on the host (--executors host), never "
           "untrusted ones";
  }
  return "";
}

absl::StatusOr<std::unique_ptr<Executor>> MakeJobExecutor(const JobExecutorContext& ctx) {
  if (!ctx.network.empty() && ctx.network != "none") {
    return absl::FailedPreconditionError(
        absl::StrCat("unknown network setting \"", ctx.network, "\" (expected none or nothing)"));
  }
  if (Has(ctx.offered, "sandbox")) {
    SandboxOptions o;
    o.bwrap_path = ctx.bwrap_path;
    if (!ctx.work_dir.empty()) o.hidden.push_back(ctx.work_dir);
    if (!ctx.cache_objects_dir.empty()) o.read_only.push_back(ctx.cache_objects_dir);
    if (!ctx.secrets_dir.empty()) o.read_only.push_back(ctx.secrets_dir);
    o.network = ctx.network != "none";
    return std::unique_ptr<Executor>(std::make_unique<SandboxExecutor>(std::move(o)));
  }
  if (ctx.untrusted) {
    return absl::FailedPreconditionError(
        "untrusted job: this agent has no sandbox executor (--executors sandbox)");
  }
  if (!Has(ctx.offered, "host")) {
    return absl::FailedPreconditionError(
        "this agent offers no executor for a job without image: (--executors sandbox or host)");
  }
  if (ctx.network == "none") {
    return absl::FailedPreconditionError(
        "network: none needs the sandbox executor; this agent runs jobs on the host");
  }
  return std::unique_ptr<Executor>(std::make_unique<HostExecutor>());
}

}  // namespace assay
