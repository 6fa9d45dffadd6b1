#pragma once
// A throwaway git repository for end-to-end tests: files in, commit id out. Git runs without the
// user's or the system's config, with a fixed identity, so commits never depend on the machine
// running the tests.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace assay::testing {

class GitRepo {
 public:
  // Creates `dir` (absolute) and runs `git init` in it with "main" as the initial branch. kInternal
  // (with git's stderr) when git fails.
  static absl::StatusOr<GitRepo> Init(const std::string& dir);

  // Writes each (relative path, content) pair (creating parent directories; an existing file is
  // replaced), deletes each path in `remove`, then commits everything on the current branch.
  // Returns the new commit's full id.
  absl::StatusOr<std::string> Commit(const std::vector<std::pair<std::string, std::string>>& files,
                                     const std::vector<std::string>& remove = {},
                                     const std::string& message = "test commit");

  const std::string& dir() const { return dir_; }
  // file:///<dir>, the URL the server and agents fetch from.
  std::string clone_url() const { return "file://" + dir_; }

  // Runs `git ARGS...` in the repository (same isolated environment); its stdout, or kInternal
  // with git's stderr.
  absl::StatusOr<std::string> Git(const std::vector<std::string>& args) const;

  // Commits `files` on a new branch made from the current commit, points `ref` (e.g.
  // "refs/pull/7/head") at that commit, then returns to the previous branch and deletes the new
  // one, so that only `ref` reaches the commit, as with a forge's pull-request refs.
  absl::StatusOr<std::string> CommitOnRef(
      const std::string& ref, const std::vector<std::pair<std::string, std::string>>& files);

 private:
  explicit GitRepo(std::string dir) : dir_(std::move(dir)) {}

  std::string dir_;
};

}  // namespace assay::testing
