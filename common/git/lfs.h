#pragma once
// Git LFS (issue 9): repositories of LLM apps keep weights and datasets out of git and commit
// small pointer files instead. The agent turns those into the real files before the first
// step: it lists the pointers of the commit, fetches the objects it lacks into the mirror's
// LFS store with `git lfs fetch` (the per-agent cache: <mirror>/lfs/objects/aa/bb/<oid>, kept
// between jobs), and replaces each pointer in the workspace with its object, checking the
// object's SHA-256 and size on the way.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace assay {

class GitMirror;

// A pointer file is at most this long (the spec's own bound); bigger blobs are never read.
inline constexpr size_t kMaxLfsPointerBytes = 1024;
// A commit with more pointers than this is refused (the listing is held in memory).
inline constexpr size_t kMaxLfsFiles = 100'000;

struct LfsPointer {
  std::string oid;  // 64 lowercase hex digits (sha256)
  uint64_t size = 0;

  bool operator==(const LfsPointer&) const = default;
};

// Parses a pointer file of the Git LFS spec v1:
//   version https://git-lfs.github.com/spec/v1\n
//   oid sha256:<64 hex>\n
//   size <decimal>\n
// with any further "key value" lines in between (extensions), keys in ascending order as the
// spec requires, '\n' line ends, and nothing after the last line. nullopt for anything else
// (such a file is an ordinary file and is left as it is).
std::optional<LfsPointer> ParseLfsPointer(std::string_view blob);

// The `lfs.url` a commit's `.lfsconfig` names, checked against the repository's clone URL:
// it must be https on the clone URL's host (a fork's `.lfsconfig` must not send the agent to
// another host); with allow_local (--allow-local-repos, tests) also http(s) on 127.0.0.1,
// ::1 or localhost. kInvalidArgument ".lfsconfig: lfs.url U: REASON" otherwise.
absl::Status CheckLfsUrl(std::string_view lfs_url, std::string_view clone_url, bool allow_local);

struct LfsFile {
  std::string path;  // '/'-separated, relative to the repository root
  uint32_t mode = 0100644;
  LfsPointer pointer;
};

struct LfsCheckoutStats {
  size_t files = 0;    // pointers replaced
  uint64_t bytes = 0;  // their real size
  size_t fetched = 0;  // objects that were not in the agent's cache
};

// Replaces every LFS pointer of commit `sha` in `worktree` (a fresh checkout of that commit made
// by mirror.AddWorktree) with its object. Does nothing (and spawns nothing) when the commit's
// root `.gitattributes` mentions no `filter=lfs`. Objects missing from the cache are fetched
// with `git lfs fetch` within `timeout`, from `.lfsconfig`'s lfs.url when the commit has one
// (CheckLfsUrl), else from git-lfs's default endpoint for the clone URL.
// Each file is written next to the pointer under a temporary name (openat with O_NOFOLLOW at
// every component: nothing is written outside `worktree`), its SHA-256 and size checked, then
// renamed over the pointer with the pointer's mode. Errors name the path and the oid:
//   kFailedPrecondition "git-lfs is not installed on this agent (...)"
//   kUnavailable        "git lfs fetch failed: <stderr>"
//   kNotFound           "LFS object <oid> of <path> is not on the LFS server"
//   kDataLoss           "LFS object <oid> of <path> has SHA-256 X / N bytes, not ..."
//   kResourceExhausted  more than kMaxLfsFiles pointers
// When `index_path` is not empty it is the worktree's index (version 2, as CheckoutTree writes
// it): the replaced files' entries get their new stat data, so that git does not take them for
// modified (it trusts a recorded size that differs without reading the file).
absl::StatusOr<LfsCheckoutStats> CheckoutLfs(GitMirror& mirror, std::string_view sha,
                                             const std::string& worktree,
                                             const std::string& index_path, bool allow_local,
                                             absl::Duration timeout);

// The lines that make a workspace's git treat LFS files as git-lfs would after `git lfs
// install` (its clean filter turns the real file back into the committed pointer, so `git
// status` shows them unchanged); appended to the workspace's .git/config.
inline constexpr char kLfsFilterConfig[] =
    "[filter \"lfs\"]\n"
    "\tclean = git-lfs clean -- %f\n"
    "\tsmudge = git-lfs smudge --skip -- %f\n"
    "\tprocess = git-lfs filter-process --skip\n"
    "\trequired = true\n";

}  // namespace assay
