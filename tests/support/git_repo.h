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

 private:
  explicit GitRepo(std::string dir) : dir_(std::move(dir)) {}
  absl::StatusOr<std::string> Git(const std::vector<std::string>& args) const;

  std::string dir_;
};

}  // namespace assay::testing
