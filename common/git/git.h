#pragma once
// Git helpers shared by the server's repository mirror and the agent's object cache.
// Every git invocation runs with GIT_TERMINAL_PROMPT=0, empty askpass programs, no system or
// global (user) config, LC_ALL=C, GIT_NO_REPLACE_OBJECTS=1, no hooks (core.hooksPath=/dev/null),
// none of this process's GIT_* variables (ASSAY_GIT_SSH_COMMAND,
// if set, becomes GIT_SSH_COMMAND), `protocol.allow=never` plus `protocol.<p>.allow=always` for
// just the transports the clone-URL policy allows (common/git/clone_url.h: https and ssh; file
// with allow_local), and object checks on every fetch (fetch.fsckObjects, transfer.fsckObjects),
// so git never prompts, never depends on the config or environment of the user running Assay,
// and never reads a local repository it was not meant to. A credential for an https remote
// reaches git only through a credential helper that reads the git child's own environment:
// never a command line, the mirror's config or a message. Inputs are validated before they
// reach a git command line: no argument built from input can start with '-'.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/git/lfs.h"
#include "common/proc/spawn.h"
#include "common/proc/subprocess.h"

namespace assay {

// True for a full object id: 40 (SHA-1) or 64 (SHA-256) lowercase hex characters.
bool IsHexSha(std::string_view s);

// True for a name git accepts after refs/heads/ (a subset of git check-ref-format: non-empty, at
// most 255 bytes, no leading '-' or '/', no trailing '/' or '.', no "..", "//", "@{" or ".lock"
// component end, no control characters, space, ~ ^ : ? * [ \\).
bool IsValidBranchName(std::string_view name);

// The credential helper GitMirror configures for an https remote with a credential, as
// `credential.https://HOST.helper`: it answers `get` with ASSAY_GIT_USERNAME and
// ASSAY_GIT_PASSWORD of the git child's environment. A fixed string; no secret in it.
extern const char kGitCredentialHelper[];

// A bare mirror of one remote at `dir`, with the remote as "origin".
// Thread-safe: operations that change the mirror (creating it, fetching, adding and removing
// worktrees) are serialized by one mutex; object reads go through one long-lived
// `git cat-file --batch` child under its own mutex, so they neither spawn a process nor wait for
// a fetch. Several GitMirror objects (or processes) must not share one `dir`.
class GitMirror {
 public:
  struct Options {
    // file:// URLs and absolute paths are fetched only with this (--allow-local-repos).
    bool allow_local = false;
    // The credential for an https remote (e.g. unsealed from the repository's row). When both
    // are empty, "user:password@" of the URL, if any, is used instead (a row stored before
    // credentials were split off); either way it is never written anywhere.
    std::string username;
    std::string password;
  };

  // `dir` should be absolute. `clone_url` must pass ParseCloneUrl(clone_url,
  // options.allow_local); one that does not makes every operation that would create or fetch
  // the mirror fail with kInvalidArgument "clone URL U refused: REASON".
  GitMirror(std::string dir, std::string clone_url, Options options);
  GitMirror(std::string dir, std::string clone_url) : GitMirror(dir, clone_url, Options{}) {}

  // Replaces the https credential (e.g. the agent got a newer one with an assignment); used
  // from the next fetch on. Ignored for ssh and local remotes.
  void SetCredential(std::string username, std::string password);
  ~GitMirror();  // stops the cat-file child
  GitMirror(const GitMirror&) = delete;
  GitMirror& operator=(const GitMirror&) = delete;

  // Creates the mirror if `dir` does not hold one yet (`git init --bare` in a temporary sibling,
  // origin set, then renamed into place, so a crash never leaves a half-made mirror). An
  // existing mirror is left as it is. kInvalidArgument for an unusable clone_url;
  // kFailedPrecondition when `dir` exists but is not a git repository; kInternal if git fails.
  absl::Status Ensure();

  // Whether `sha` names a commit (or a tag that peels to one) present in the mirror. No network.
  // kInvalidArgument unless IsHexSha(sha); kFailedPrecondition if the mirror does not exist.
  absl::StatusOr<bool> HasCommit(std::string_view sha);
  // HasCommit, and its root tree is here too (a fetch cut short can leave a commit alone).
  absl::StatusOr<bool> HasCommitAndTree(std::string_view sha);

  // Makes `sha` present: returns at once if it is; otherwise (after Ensure()) fetches
  // +refs/heads/*:refs/heads/* and +refs/tags/*:refs/tags/* with --prune, and then, if still
  // missing (a commit not on any branch, e.g. a pull request head), the sha itself.
  // kUnavailable (git's stderr in the message) if the branch fetch fails; kNotFound if the commit
  // is still absent afterwards.
  absl::Status EnsureCommit(std::string_view sha);

  // As EnsureCommit, but for a commit that `ref` (e.g. "refs/pull/7/head" or
  // "refs/merge-requests/7/head") points to on the remote: when `sha` is missing, fetches
  // +REF:REF first, then falls back to EnsureCommit. kInvalidArgument unless `ref` starts with
  // "refs/" and is a valid ref name.
  absl::Status EnsureCommitAt(std::string_view sha, std::string_view ref);

  // Fetches the remote's branches and tags (as EnsureCommit does) and returns the commit that
  // refs/heads/BRANCH points to now. kInvalidArgument for an invalid branch name, kUnavailable
  // if the fetch fails, kNotFound "branch 'B' does not exist in URL".
  absl::StatusOr<std::string> FetchBranchHead(std::string_view branch);

  // The exact bytes of `path` (relative to the repository root, '/'-separated, e.g.
  // ".assay.yml" or "ci/build.sh") at commit `sha`. kNotFound, with a message saying which,
  // when the commit is unknown, the path does not exist at it, or names a directory.
  // kInvalidArgument for a bad sha or path (empty, absolute, '.'/'..'/empty components, a
  // leading '-', a newline or NUL). kUnavailable if the cat-file child fails twice in a row.
  // A blob over `max_bytes` is kOutOfRange "file is N bytes, more than the limit of MAX" (the
  // words of the pipeline linter's own check), decided from its size alone: its bytes are
  // never read (a hostile commit's file may be any size).
  absl::StatusOr<std::string> ReadFile(std::string_view sha, std::string_view path,
                                       size_t max_bytes = SIZE_MAX);

  // Issue 11, what the dashboard shows of a pipeline's commit: its author and message.
  struct CommitInfo {
    std::string author;   // "Name <email>", as the commit's author line has it
    std::string message;  // the whole message, at most kMaxCommitMessage bytes (then cut)
  };
  static constexpr size_t kMaxCommitMessage = 4096;
  // Commit `sha`'s author and message. kInvalidArgument for a bad sha; kNotFound when it is
  // not a commit in the mirror; kOutOfRange for a commit object over `max_bytes` (decided from
  // its size alone, as ReadFile does).
  absl::StatusOr<CommitInfo> ReadCommit(std::string_view sha, size_t max_bytes = 1 << 20);

  // Creates a detached worktree of `sha` at the absolute path `worktree_dir` (registered
  // under DIR/worktrees/ as `git worktree add --detach` would), first removing whatever is at that
  // path (see RemoveWorktree). kNotFound if the commit is not in the mirror; kInternal if git
  // fails.
  absl::Status AddWorktree(std::string_view sha, const std::string& worktree_dir);

  // Deletes `worktree_dir` and its registration under DIR/worktrees/ without spawning git.
  // Removing a worktree that does not exist is OK. kInvalidArgument for a relative path.
  absl::Status RemoveWorktree(const std::string& worktree_dir);

  const std::string& dir() const { return dir_; }
  // The remote, without any credential (as written into the mirror's config).
  const std::string& clone_url() const { return clone_url_; }

  // Git LFS (common/git/lfs.h). The pointers in commit `sha`'s tree: blobs of at most
  // kMaxLfsPointerBytes that ParseLfsPointer accepts, in `git ls-tree -r` order.
  // kResourceExhausted beyond kMaxLfsFiles; kNotFound for an unknown commit.
  absl::StatusOr<std::vector<LfsFile>> ListLfsPointers(std::string_view sha);
  // `git lfs fetch origin SHA` into DIR/lfs/objects, with the credential as for a fetch and
  // `lfs.url` set when `lfs_url` is not empty. kFailedPrecondition when git-lfs is missing,
  // kUnavailable (its stderr) when it fails, kDeadlineExceeded after `timeout`.
  absl::Status FetchLfs(std::string_view sha, const std::string& lfs_url, absl::Duration timeout);
  // Where the LFS object `oid` (64 hex digits) is kept: DIR/lfs/objects/aa/bb/<oid>.
  std::string LfsObjectPath(std::string_view oid) const;

 private:
  // What a one-shot `cat-file --batch-check` says of an object name, without reading the
  // object (the --batch child always sends a whole object, and a hostile one may be any size).
  struct ObjectHead {
    std::string type;  // "blob", "tree", "commit", "tag"; "" when the name is no object
    size_t size = 0;
  };
  absl::StatusOr<ObjectHead> CheckObject(const std::string& name);

  struct BatchObject {
    bool found = false;
    std::string type;  // "blob", "tree", "commit", "tag"
    std::string content;
  };

  // Writes the tree of commit `sha` into `worktree` (an existing empty directory) and a
  // matching index at `index_path`, without spawning git (common/git_checkout.cc).
  absl::Status CheckoutTree(std::string_view sha, const std::string& worktree,
                            const std::string& index_path);

  // Runs `git <GitArgs()> --git-dir=DIR <args>`; kInternal/kDeadlineExceeded only when git
  // cannot be run; the exit code is the caller's to check.
  absl::StatusOr<CommandResult> Git(const std::vector<std::string>& args,
                                    absl::Duration timeout = absl::Minutes(10))
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutate_mu_);
  // "git" and the -c options every invocation gets (see the top of this file).
  std::vector<std::string> GitArgs() const;
  absl::Status RemoveWorktreeLocked(const std::string& worktree_dir)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutate_mu_);
  absl::Status EnsureLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutate_mu_);

  // Looks `object_name` up through the cat-file child, (re)starting it as needed.
  absl::StatusOr<BatchObject> Query(std::string_view object_name) ABSL_LOCKS_EXCLUDED(batch_mu_);
  absl::StatusOr<BatchObject> QueryOnceLocked(std::string_view object_name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(batch_mu_);
  absl::Status StartBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(batch_mu_);
  void StopBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(batch_mu_);
  absl::Status FillLocked(size_t want) ABSL_EXCLUSIVE_LOCKS_REQUIRED(batch_mu_);

  const std::string dir_;
  absl::Status url_status_;  // why the clone URL is refused; OK when it is not
  std::string clone_url_;    // without "user:password@" (redacted if refused)
  bool allow_local_ = false;
  std::string credential_scope_;  // "https://host[:port]" for an https remote
  // The complete environment of every git child, less the credential that Git() adds.
  std::vector<std::string> git_env_;

  absl::Mutex mutate_mu_;
  // Whether an existing mirror's remote.origin.url was rewritten to clone_url_ (a mirror made
  // before credentials were split off may hold "user:password@" there).
  bool origin_checked_ ABSL_GUARDED_BY(mutate_mu_) = false;
  // The https credential; reaches only the environment of the git children Git() runs.
  std::string username_ ABSL_GUARDED_BY(mutate_mu_);
  std::string password_ ABSL_GUARDED_BY(mutate_mu_);

  absl::Mutex batch_mu_;
  pid_t batch_pid_ ABSL_GUARDED_BY(batch_mu_) = -1;
  UniqueFd batch_in_ ABSL_GUARDED_BY(batch_mu_);
  UniqueFd batch_out_ ABSL_GUARDED_BY(batch_mu_);
  std::string batch_buf_ ABSL_GUARDED_BY(batch_mu_);  // read from batch_out_, not yet consumed
};

}  // namespace assay
