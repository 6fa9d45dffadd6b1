#pragma once
// Programs an operator installs for deployments (docs/deployments.md "Command target" and "Job
// metrics"): the server's --deploy-hooks DIR. An environment names a program by its file name in
// that directory, never by a path, so that whoever may configure an environment (a repository's
// maintainer) can run only what the server's operator put there. A program runs with a small,
// fixed environment (none of the server's own variables, which hold its keys), its arguments
// and a JSON document on stdin, under a time limit; exit 0 means done.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/deploy/spec.h"
#include "common/proc/subprocess.h"

namespace assay::deploy {

class Hooks {
 public:
  // `dir`: the operator's directory; empty: none (every hook is refused, saying so).
  explicit Hooks(std::string dir = {}) : dir_(std::move(dir)) {}

  bool configured() const { return !dir_.empty(); }
  const std::string& dir() const { return dir_; }

  // The program's path: kFailedPrecondition when no directory is configured, or the directory
  // has no executable regular file by that name (the message says which).
  absl::StatusOr<std::string> Resolve(std::string_view name) const;

  // Runs command[0] from the directory (a name ParseHookCommand accepted) with command[1..] as
  // arguments, `input` on stdin and
  // `env` added to the fixed environment (PATH=/usr/local/bin:/usr/bin:/bin, LANG=C.UTF-8,
  // HOME=/nonexistent). kDeadlineExceeded after `timeout` (at most kMaxHookTimeout; the
  // process group is killed). A non-zero exit is not an error: see exit_code. Output beyond
  // 64 KiB per stream is cut.
  absl::StatusOr<CommandResult> Run(const std::vector<std::string>& command,
                                    const std::vector<std::pair<std::string, std::string>>& env,
                                    std::string_view input, absl::Duration timeout) const;

 private:
  std::string dir_;
};

// What a hook said when it failed: "exit 3: <its last non-empty line of stderr, or stdout>",
// cut to 300 bytes.
std::string DescribeHookFailure(const CommandResult& r);

}  // namespace assay::deploy
