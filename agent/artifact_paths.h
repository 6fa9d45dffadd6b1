#pragma once
// The file-system side of artifacts (issue 9): which workspace files a job's `artifacts.paths`
// select, how they are opened for reading, and how downloaded files are written. Nothing here
// reads or writes outside the workspace: every path is walked one component at a time with
// openat(O_NOFOLLOW) from a descriptor of the workspace (as common/git/checkout.cc does), so a
// symlink a job (or another job of the same user) plants is never followed by accident.
//
// Symlinks, the rule (docs/artifacts.md):
//  - Upload: a selected symlink whose target, resolved one component at a time inside the
//    workspace, is a regular file in the workspace is uploaded as a regular file with the
//    target's bytes, under the symlink's path. One that leads outside the workspace (an
//    absolute target elsewhere, too many '..') is refused and named in a note; so is one that
//    dangles, loops (more than 40 links), or leads to a directory (never followed: no cycles).
//  - Download: a path through an existing symlink is refused (the job fails, naming it); a
//    symlink at the file's own place is replaced by the file (rename never follows it).
// With an `owner` uid (the agent's --job-user), a selected file owned by anyone else is
// refused: a hard link to a file the job user cannot read is not uploaded.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/proc/spawn.h"

namespace assay {

inline constexpr size_t kMaxArtifactPathBytes = 4096;
inline constexpr size_t kMaxArtifactFiles = 100'000;  // per job (CommitArtifactsRequest)

// OK when `path` may name an artifact file: relative, '/'-separated, at most 4,096 bytes, no
// empty, "." or ".." segment, no segment longer than 255 bytes, no NUL, not under the
// workspace's top-level ".git". Otherwise kInvalidArgument with the reason, e.g.
// "'..' segment", "absolute path", "empty segment", "NUL byte", "longer than 4096 bytes".
absl::Status ValidateArtifactPath(std::string_view path);

// Whether `path` (workspace-relative) is selected by `globs` (common/pipeline/glob.h, each
// possibly with a leading '!' that excludes, and a trailing '/' that is ignored): the last
// entry that matches the path, or one of its parent directories, decides; none: not selected.
bool ArtifactSelected(const std::vector<std::string>& globs, std::string_view path);

struct CollectedFile {
  std::string path;      // in the manifest: where the glob matched
  std::string source;    // the regular file read: `path`, or a symlink's resolved target
  uint32_t mode = 0644;  // 0755 when any execute bit is set
};

struct CollectOptions {
  std::optional<uid_t> owner;  // set: only files of this uid are taken
  size_t max_files = kMaxArtifactFiles;
  size_t max_entries = 1'000'000;  // directory entries looked at, in all
  int max_depth = 256;
};

struct CollectResult {
  std::vector<CollectedFile> files;  // sorted by path
  // One line per selected entry that was not taken (without "assay: " or '\n'), e.g.
  // "refused out/link: a symlink to /etc/passwd, outside the workspace".
  std::vector<std::string> notes;
};

// The regular files of `workspace` that `globs` select (see ArtifactSelected), never the
// top-level .git. Only directories that a glob could reach are entered. kResourceExhausted
// past the limits of `options`, kInternal when the workspace cannot be read.
absl::StatusOr<CollectResult> CollectArtifactFiles(const std::string& workspace,
                                                   const std::vector<std::string>& globs,
                                                   const CollectOptions& options = {});

// Opens the regular file `rel` below the directory `root_fd` for reading, never through a
// symlink at any component, without blocking on a FIFO. kNotFound, kFailedPrecondition (a
// symlink or something not a regular file on the way, or owned by another uid than `owner`).
absl::StatusOr<UniqueFd> OpenArtifactSource(int root_fd, std::string_view rel,
                                            std::optional<uid_t> owner = std::nullopt);

// Writes one downloaded file into a workspace: Begin makes the parent directories (mode 0755,
// given to `owner`) and a temporary file beside the target, Append adds bytes, Commit sets the
// mode (0644 or 0755), the owner, and renames it into place; Abort (or the destructor)
// removes the temporary file. Paths must pass ValidateArtifactPath. Errors name the path:
//   "refusing to write P: D is a symlink or not a directory"     (kFailedPrecondition)
//   "cannot write P: <errno text>"                               (kInternal)
class ArtifactWriter {
 public:
  struct Owner {
    uid_t uid;
    gid_t gid;
  };
  // `workspace` must exist and be a directory (not a symlink).
  static absl::StatusOr<ArtifactWriter> Open(const std::string& workspace,
                                             std::optional<Owner> owner);
  ArtifactWriter(ArtifactWriter&&) = default;
  ArtifactWriter& operator=(ArtifactWriter&&) = default;
  ~ArtifactWriter() { Abort(); }

  absl::Status Begin(std::string_view rel);
  absl::Status Append(std::string_view data);
  absl::Status Commit(uint32_t mode);
  void Abort();

 private:
  ArtifactWriter() = default;
  UniqueFd root_;
  std::optional<Owner> owner_;
  // The file being written.
  std::string rel_, name_, tmp_name_;
  UniqueFd dir_, file_;
};

}  // namespace assay
