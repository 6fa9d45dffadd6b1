#include "common/git/git.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status.h"
#include "common/git/clone_url.h"

namespace assay {
namespace fs = std::filesystem;

namespace {

// Debian's Abseil has its own string_view type, distinct from std::string_view.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr size_t kReadChunk = 64 * 1024;
constexpr std::string_view kDefaultPath = "/usr/local/bin:/usr/bin:/bin";

// The complete environment of every git child: this process's, less every GIT_* variable (an
// operator's GIT_DIR, GIT_CONFIG_PARAMETERS, GIT_SSH, GIT_PROXY_COMMAND... would change what git
// reads, runs or trusts), plus what Assay sets. A credential is added by GitMirror::Git only.
std::vector<std::string> GitEnvironment() {
  std::vector<std::string> env;
  const char* ssh_command = nullptr;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view e(*entry);
    if (absl::StartsWith(Av(e), "ASSAY_GIT_SSH_COMMAND=")) ssh_command = *entry + 22;
    if (absl::StartsWith(Av(e), "GIT_") || absl::StartsWith(Av(e), "ASSAY_GIT_") ||
        absl::StartsWith(Av(e), "LC_ALL=") || absl::StartsWith(Av(e), "SSH_ASKPASS=")) {
      continue;
    }
    env.emplace_back(e);
  }
  env.insert(env.end(), {
                            "GIT_TERMINAL_PROMPT=0",
                            // An empty GIT_ASKPASS stops git from falling back to SSH_ASKPASS or
                            // core.askPass.
                            "GIT_ASKPASS=",
                            "SSH_ASKPASS=",
                            "GIT_CONFIG_NOSYSTEM=1",
                            "GIT_CONFIG_GLOBAL=/dev/null",
                            "LC_ALL=C",
                            // A `git replace` written into a cache (by a job, through its
                            // worktree) must not change what a later checkout reads.
                            "GIT_NO_REPLACE_OBJECTS=1",
                        });
  // ssh must fail rather than ask for a password or a host key confirmation; an operator who
  // needs another command (e.g. naming a deploy key) sets ASSAY_GIT_SSH_COMMAND.
  env.push_back(absl::StrCat("GIT_SSH_COMMAND=",
                             ssh_command != nullptr ? ssh_command : "ssh -o BatchMode=yes"));
  return env;
}

std::string TrimmedStderr(const CommandResult& result) {
  constexpr size_t kMax = 2000;
  std::string err(absl::StripAsciiWhitespace(result.err));
  if (err.size() > kMax) err = absl::StrCat(err.substr(0, kMax), "...");
  if (err.empty()) err = absl::StrCat("exit code ", result.exit_code);
  return err;
}

bool IsValidRepoPath(std::string_view path) {
  if (path.empty() || path[0] == '-' || path[0] == '/') return false;
  if (path.find_first_of(std::string_view("\n\0", 2)) != std::string_view::npos) return false;
  for (absl::string_view part : absl::StrSplit(Av(path), '/')) {
    if (part.empty() || part == "." || part == "..") return false;
  }
  return true;
}

// The contents of a small file, or nullopt if it cannot be read.
std::optional<std::string> ReadSmallFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

fs::path Canonical(const fs::path& path) {
  std::error_code ec;
  fs::path canonical = fs::weakly_canonical(path, ec);
  return ec ? path.lexically_normal() : canonical;
}

fs::path NormalizeDir(const std::string& dir) {
  fs::path path = fs::path(dir).lexically_normal();
  if (!path.has_filename() && path.has_parent_path() && path != path.root_path()) {
    path = path.parent_path();
  }
  return path;
}

}  // namespace

const char kGitCredentialHelper[] =
    "!f() { test \"$1\" = get || exit 0; "
    "printf 'username=%s\\npassword=%s\\n' \"$ASSAY_GIT_USERNAME\" \"$ASSAY_GIT_PASSWORD\"; }; f";

bool IsHexSha(std::string_view s) {
  if (s.size() != 40 && s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool IsValidBranchName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name[0] == '-' || name[0] == '/') return false;
  if (name.back() == '/' || name.back() == '.') return false;
  if (absl::StrContains(Av(name), "..") || absl::StrContains(Av(name), "//") ||
      absl::StrContains(Av(name), "@{") || name == "@") {
    return false;
  }
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' ||
        c == '*' || c == '[' || c == '\\') {
      return false;
    }
  }
  for (absl::string_view part : absl::StrSplit(Av(name), '/')) {
    if (part.empty() || part[0] == '.' || absl::EndsWith(part, ".lock")) return false;
  }
  return true;
}

GitMirror::GitMirror(std::string dir, std::string clone_url, Options options)
    : dir_(NormalizeDir(fs::absolute(fs::path(dir)).string()).string()),
      allow_local_(options.allow_local),
      git_env_(GitEnvironment()) {
  absl::StatusOr<CloneUrl> parsed = ParseCloneUrl(clone_url, options.allow_local);
  if (!parsed.ok()) {
    clone_url_ = RedactCloneUrl(clone_url);
    url_status_ = absl::InvalidArgumentError(
        absl::StrCat("clone URL ", clone_url_, " refused: ", parsed.status().message()));
    return;
  }
  clone_url_ = parsed->url;
  if (parsed->kind == CloneUrl::Kind::kHttps) {
    // "https://host[:port]": the helper answers for this remote only, not for a host that a
    // redirect leads to.
    credential_scope_ = clone_url_.substr(0, clone_url_.find('/', 8));
  }
  if (options.username.empty() && options.password.empty()) {
    options.username = parsed->username;
    options.password = parsed->password;
  }
  absl::MutexLock lock(&mutate_mu_);
  username_ = std::move(options.username);
  password_ = std::move(options.password);
}

void GitMirror::SetCredential(std::string username, std::string password) {
  absl::MutexLock lock(&mutate_mu_);
  username_ = std::move(username);
  password_ = std::move(password);
}

std::vector<std::string> GitMirror::GitArgs() const {
  // Why fetch.unpackLimit=1: a fetch keeps what it receives as one pack, written to a temp file
  // and renamed when complete. Unpacked into loose objects (git's default below 100 objects), a
  // fetch on a full disk can leave a commit without its tree, which every later look-up would
  // take as present, and its files as absent.
  std::vector<std::string> argv = {
      "git", "-c", "protocol.allow=never", "-c", "protocol.https.allow=always", "-c",
      "protocol.ssh.allow=always", "-c", "fetch.fsckObjects=true", "-c",
      "transfer.fsckObjects=true", "-c", "fetch.unpackLimit=1", "-c", "credential.helper=",
      // No hook (e.g. reference-transaction on fetch) planted in
      // the mirror runs.
      "-c", "core.hooksPath=/dev/null"};
  if (allow_local_) argv.insert(argv.end(), {"-c", "protocol.file.allow=always"});
  return argv;
}

GitMirror::~GitMirror() {
  absl::MutexLock lock(&batch_mu_);
  StopBatchLocked();
}

absl::StatusOr<CommandResult> GitMirror::Git(const std::vector<std::string>& args,
                                             absl::Duration timeout) {
  std::vector<std::string> argv = GitArgs();
  std::vector<std::string> env = git_env_;
  if (!credential_scope_.empty() && (!username_.empty() || !password_.empty())) {
    argv.insert(argv.end(), {"-c", absl::StrCat("credential.", credential_scope_,
                                                ".helper=", kGitCredentialHelper)});
    env.push_back(absl::StrCat("ASSAY_GIT_USERNAME=", username_));
    env.push_back(absl::StrCat("ASSAY_GIT_PASSWORD=", password_));
  }
  argv.push_back(absl::StrCat("--git-dir=", dir_));
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommandInEnvironment(argv, {}, std::move(env), {}, timeout);
}

absl::Status GitMirror::Ensure() {
  absl::MutexLock lock(&mutate_mu_);
  return EnsureLocked();
}

absl::Status GitMirror::EnsureLocked() {
  // Checked again here, at fetch time, whatever the API checked at registration: a row stored
  // before the policy, or a server restarted without --allow-local-repos.
  ASSAY_RETURN_IF_ERROR(url_status_);
  std::error_code ec;
  if (fs::exists(fs::path(dir_) / "HEAD", ec)) {
    if (!origin_checked_) {
      ASSAY_ASSIGN_OR_RETURN(CommandResult config,
                             Git({"config", "remote.origin.url", clone_url_}));
      if (config.exit_code != 0) {
        return absl::InternalError(absl::StrCat("git config remote.origin.url in ", dir_,
                                                " failed: ", TrimmedStderr(config)));
      }
      origin_checked_ = true;
    }
    return absl::OkStatus();
  }
  if (fs::exists(dir_, ec) && !(fs::is_directory(dir_, ec) && fs::is_empty(dir_, ec))) {
    return absl::FailedPreconditionError(
        absl::StrCat("git mirror directory ", dir_, " exists but is not a git repository"));
  }
  fs::create_directories(fs::path(dir_).parent_path(), ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create the parent directory of ", dir_, ": ", ec.message()));
  }
  // Build the mirror beside its final place and rename it in, so that a crash never leaves a
  // directory that looks like a mirror but has no origin.
  std::string tmp = absl::StrCat(dir_, ".tmp-XXXXXX");
  if (mkdtemp(tmp.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", tmp, ": ", strerror(errno)));
  }
  auto cleanup_and = [&](absl::Status status) {
    fs::remove_all(tmp, ec);
    return status;
  };
  std::vector<std::string> init_argv = GitArgs();
  init_argv.insert(init_argv.end(),
                   {"-c", "init.defaultBranch=main", "init", "--bare", "-q", "--template=", tmp});
  ASSAY_ASSIGN_OR_RETURN(CommandResult init, RunCommandInEnvironment(init_argv, {}, git_env_));
  if (init.exit_code != 0) {
    return cleanup_and(absl::InternalError(
        absl::StrCat("git init --bare ", tmp, " failed: ", TrimmedStderr(init))));
  }
  std::vector<std::string> config_argv = GitArgs();
  config_argv.insert(config_argv.end(),
                     {absl::StrCat("--git-dir=", tmp), "config", "remote.origin.url", clone_url_});
  ASSAY_ASSIGN_OR_RETURN(CommandResult config, RunCommandInEnvironment(config_argv, {}, git_env_));
  if (config.exit_code != 0) {
    return cleanup_and(absl::InternalError(
        absl::StrCat("git config remote.origin.url in ", tmp, " failed: ", TrimmedStderr(config))));
  }
  origin_checked_ = true;
  if (rename(tmp.c_str(), dir_.c_str()) != 0) {
    int err = errno;
    fs::remove_all(tmp, ec);
    if (fs::exists(fs::path(dir_) / "HEAD", ec)) return absl::OkStatus();  // someone else won
    return absl::InternalError(absl::StrCat("rename ", tmp, " to ", dir_, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> GitMirror::HasCommit(std::string_view sha) {
  if (!IsHexSha(sha)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", Av(sha), "\" is not a full commit sha"));
  }
  ASSAY_ASSIGN_OR_RETURN(BatchObject object, Query(absl::StrCat(Av(sha), "^{commit}")));
  return object.found;
}

absl::StatusOr<bool> GitMirror::HasCommitAndTree(std::string_view sha) {
  ASSAY_ASSIGN_OR_RETURN(bool present, HasCommit(sha));
  if (!present) return false;
  ASSAY_ASSIGN_OR_RETURN(BatchObject tree, Query(absl::StrCat(Av(sha), "^{tree}")));
  return tree.found;
}

absl::Status GitMirror::EnsureCommit(std::string_view sha) {
  if (!IsHexSha(sha)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", Av(sha), "\" is not a full commit sha"));
  }
  {
    absl::MutexLock lock(&mutate_mu_);
    ASSAY_RETURN_IF_ERROR(EnsureLocked());
  }
  ASSAY_ASSIGN_OR_RETURN(bool present, HasCommitAndTree(sha));
  if (present) return absl::OkStatus();

  absl::MutexLock lock(&mutate_mu_);
  // Another thread may have fetched it while we waited for the lock.
  ASSAY_ASSIGN_OR_RETURN(present, HasCommitAndTree(sha));
  if (present) return absl::OkStatus();
  ASSAY_ASSIGN_OR_RETURN(CommandResult fetch,
                         Git({"fetch", "-q", "--prune", "origin", "+refs/heads/*:refs/heads/*",
                              "+refs/tags/*:refs/tags/*"}));
  if (fetch.exit_code != 0) {
    return absl::UnavailableError(absl::StrCat("git fetch from ", clone_url_, " into ", dir_,
                                               " failed: ", TrimmedStderr(fetch)));
  }
  ASSAY_ASSIGN_OR_RETURN(present, HasCommitAndTree(sha));
  if (present) return absl::OkStatus();
  // Not on any branch or tag (e.g. a pull request head): ask for the commit itself.
  ASSAY_ASSIGN_OR_RETURN(CommandResult by_sha, Git({"fetch", "-q", "origin", std::string(sha)}));
  ASSAY_ASSIGN_OR_RETURN(present, HasCommitAndTree(sha));
  if (present) return absl::OkStatus();
  std::string message = absl::StrCat("commit ", Av(sha), " not found in ", clone_url_,
                                     " (fetched all branches and tags, then the commit itself");
  if (by_sha.exit_code != 0) absl::StrAppend(&message, ": ", TrimmedStderr(by_sha));
  absl::StrAppend(&message, ")");
  return absl::NotFoundError(message);
}

absl::Status GitMirror::EnsureCommitAt(std::string_view sha, std::string_view ref) {
  if (!IsHexSha(sha)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", Av(sha), "\" is not a full commit sha"));
  }
  if (!absl::StartsWith(Av(ref), "refs/") || !IsValidBranchName(ref.substr(5))) {
    return absl::InvalidArgumentError(absl::StrCat("\"", Av(ref), "\" is not a fetchable ref"));
  }
  {
    absl::MutexLock lock(&mutate_mu_);
    ASSAY_RETURN_IF_ERROR(EnsureLocked());
  }
  ASSAY_ASSIGN_OR_RETURN(bool present, HasCommitAndTree(sha));
  if (present) return absl::OkStatus();
  {
    absl::MutexLock lock(&mutate_mu_);
    const std::string spec = absl::StrCat("+", Av(ref), ":", Av(ref));
    // A failure here (the ref is gone, e.g. a force-pushed PR) is not final: the commit may
    // still be reachable some other way, which EnsureCommit tries.
    ASSAY_ASSIGN_OR_RETURN(CommandResult fetch, Git({"fetch", "-q", "origin", spec}));
    (void)fetch;
  }
  return EnsureCommit(sha);
}

absl::StatusOr<std::string> GitMirror::FetchBranchHead(std::string_view branch) {
  if (!IsValidBranchName(branch)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", Av(branch), "\" is not a valid branch name"));
  }
  absl::MutexLock lock(&mutate_mu_);
  ASSAY_RETURN_IF_ERROR(EnsureLocked());
  ASSAY_ASSIGN_OR_RETURN(CommandResult fetch,
                         Git({"fetch", "-q", "--prune", "origin", "+refs/heads/*:refs/heads/*",
                              "+refs/tags/*:refs/tags/*"}));
  if (fetch.exit_code != 0) {
    return absl::UnavailableError(absl::StrCat("git fetch from ", clone_url_, " into ", dir_,
                                               " failed: ", TrimmedStderr(fetch)));
  }
  ASSAY_ASSIGN_OR_RETURN(
      CommandResult head,
      Git({"rev-parse", "-q", "--verify", absl::StrCat("refs/heads/", Av(branch), "^{commit}")}));
  std::string sha(absl::StripAsciiWhitespace(head.out));
  if (head.exit_code != 0 || !IsHexSha(sha)) {
    return absl::NotFoundError(
        absl::StrCat("branch '", Av(branch), "' does not exist in ", clone_url_));
  }
  return sha;
}

namespace {

// `in` as valid UTF-8 without NUL (a commit may say any encoding, and PostgreSQL's text takes
// neither): each byte that does not start a valid sequence becomes U+FFFD, NUL is dropped.
std::string ValidUtf8(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    const auto b = static_cast<unsigned char>(in[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    bool ok = n > 0 && i + n <= in.size();
    uint32_t cp = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
    for (size_t k = 1; ok && k < n; ++k) {
      const auto c = static_cast<unsigned char>(in[i + k]);
      ok = (c & 0xC0) == 0x80;
      cp = (cp << 6) | (c & 0x3F);
    }
    // No overlong forms, no surrogates, nothing above U+10FFFF.
    ok = ok && !(n == 2 && cp < 0x80) && !(n == 3 && cp < 0x800) && !(n == 4 && cp < 0x10000) &&
         !(cp >= 0xD800 && cp <= 0xDFFF) && cp <= 0x10FFFF;
    if (!ok) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (b != 0) out.append(in.data() + i, n);
    i += n;
  }
  return out;
}

}  // namespace

absl::StatusOr<GitMirror::ObjectHead> GitMirror::CheckObject(const std::string& name) {
  std::vector<std::string> argv = GitArgs();
  argv.insert(argv.end(), {absl::StrCat("--git-dir=", dir_), "cat-file", "--batch-check"});
  ASSAY_ASSIGN_OR_RETURN(
      CommandResult check,
      RunCommandInEnvironment(argv, {}, git_env_, name + "\n", absl::Minutes(1)));
  if (check.exit_code != 0) {
    return absl::UnavailableError(
        absl::StrCat("git cat-file --batch-check in ", dir_, " failed: ", TrimmedStderr(check)));
  }
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::StripAsciiWhitespace(check.out), ' ');
  ObjectHead head;
  if (fields.size() == 3 && absl::SimpleAtoi(fields[2], &head.size)) {
    head.type = std::string(fields[1]);
  }
  return head;
}

absl::StatusOr<GitMirror::CommitInfo> GitMirror::ReadCommit(std::string_view sha,
                                                            size_t max_bytes) {
  if (!IsHexSha(sha)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", Av(sha), "\" is not a full commit sha"));
  }
  ASSAY_ASSIGN_OR_RETURN(ObjectHead head, CheckObject(std::string(sha)));
  if (head.type != "commit") {
    return absl::NotFoundError(absl::StrCat("commit ", Av(sha), " not found in mirror ", dir_));
  }
  if (head.size > max_bytes) {
    return absl::OutOfRangeError(absl::StrCat("commit ", Av(sha), " is ", head.size,
                                              " bytes, more than the limit of ", max_bytes));
  }
  ASSAY_ASSIGN_OR_RETURN(BatchObject object, Query(std::string(sha)));
  if (!object.found || object.type != "commit") {
    return absl::NotFoundError(absl::StrCat("commit ", Av(sha), " not found in mirror ", dir_));
  }
  CommitInfo info;
  absl::string_view rest = object.content;
  // Header lines up to the first empty line, then the message.
  while (!rest.empty()) {
    const size_t eol = rest.find('\n');
    absl::string_view line = rest.substr(0, eol);
    rest = eol == absl::string_view::npos ? absl::string_view() : rest.substr(eol + 1);
    if (line.empty()) break;
    if (absl::ConsumePrefix(&line, "author ")) {
      // "Name <email> 1700000000 +0000": the time zone and time are the last two fields.
      for (int i = 0; i < 2; ++i) {
        const size_t sp = line.rfind(' ');
        if (sp != absl::string_view::npos) line = line.substr(0, sp);
      }
      info.author = ValidUtf8(line.substr(0, kMaxCommitMessage));
    }
  }
  if (rest.size() > kMaxCommitMessage) rest = rest.substr(0, kMaxCommitMessage);
  info.message = ValidUtf8(absl::StripTrailingAsciiWhitespace(rest));
  return info;
}

absl::StatusOr<std::string> GitMirror::ReadFile(std::string_view sha, std::string_view path,
                                                size_t max_bytes) {
  if (!IsHexSha(sha)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", Av(sha), "\" is not a full commit sha"));
  }
  if (!IsValidRepoPath(path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid repository path \"", absl::CHexEscape(Av(path)), "\""));
  }
  if (max_bytes != SIZE_MAX) {
    // The size first, from a one-shot `cat-file --batch-check` (the --batch child always
    // sends the whole object). Only a blob's size counts; whatever else the name is (missing,
    // a tree) is for the lookup below to say.
    ASSAY_ASSIGN_OR_RETURN(ObjectHead head, CheckObject(absl::StrCat(Av(sha), ":", Av(path))));
    if (head.type == "blob" && head.size > max_bytes) {
      return absl::OutOfRangeError(
          absl::StrCat("file is ", head.size, " bytes, more than the limit of ", max_bytes));
    }
  }
  ASSAY_ASSIGN_OR_RETURN(BatchObject object, Query(absl::StrCat(Av(sha), ":", Av(path))));
  if (object.found && object.type == "blob") return std::move(object.content);
  if (object.found) {
    return absl::NotFoundError(
        absl::StrCat(Av(path), " at commit ", Av(sha), " is a ", object.type, ", not a file"));
  }
  ASSAY_ASSIGN_OR_RETURN(bool commit_present, HasCommit(sha));
  if (!commit_present) {
    return absl::NotFoundError(absl::StrCat("commit ", Av(sha), " not found in mirror ", dir_));
  }
  // A commit whose tree is missing is a hole in the mirror (a fetch cut short), not a commit
  // without the file: worth trying again, never an answer.
  ASSAY_ASSIGN_OR_RETURN(BatchObject tree, Query(absl::StrCat(Av(sha), "^{tree}")));
  if (!tree.found) {
    return absl::UnavailableError(
        absl::StrCat("the tree of commit ", Av(sha), " is missing from mirror ", dir_));
  }
  return absl::NotFoundError(absl::StrCat(Av(path), " does not exist at commit ", Av(sha)));
}

absl::Status GitMirror::AddWorktree(std::string_view sha, const std::string& worktree_dir) {
  if (!IsHexSha(sha)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", Av(sha), "\" is not a full commit sha"));
  }
  absl::MutexLock lock(&mutate_mu_);
  ASSAY_RETURN_IF_ERROR(RemoveWorktreeLocked(worktree_dir));
  ASSAY_ASSIGN_OR_RETURN(bool present, HasCommit(sha));
  if (!present) {
    return absl::NotFoundError(absl::StrCat("commit ", Av(sha), " not found in mirror ", dir_));
  }
  // Why not `git worktree add`: it spawns a second git for the checkout and does work we do
  // not need; writing the registration ourselves spawns nothing at all (CheckoutTree).
  // The layout is git's own (gitrepository-layout(5), "worktrees/<id>").
  const fs::path worktree = NormalizeDir(worktree_dir);
  const fs::path registrations = Canonical(dir_) / "worktrees";
  std::string name = worktree.filename().string();
  std::error_code ec;
  for (int i = 1; fs::exists(registrations / name, ec); ++i) {
    name = absl::StrCat(worktree.filename().string(), i);
  }
  const fs::path reg = registrations / name;
  fs::create_directories(reg, ec);
  if (!ec) fs::create_directories(worktree, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create worktree ", worktree.string(), ": ", ec.message()));
  }
  auto write = [](const fs::path& p, const std::string& text) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    return static_cast<bool>(f);
  };
  if (!write(reg / "HEAD", absl::StrCat(Av(sha), "\n")) || !write(reg / "commondir", "../..\n") ||
      !write(reg / "gitdir", (worktree / ".git").string() + "\n") ||
      !write(worktree / ".git", "gitdir: " + reg.string() + "\n")) {
    return absl::InternalError(absl::StrCat("cannot write worktree metadata for ", worktree_dir));
  }
  return CheckoutTree(sha, worktree.string(), (reg / "index").string());
}

absl::Status GitMirror::RemoveWorktree(const std::string& worktree_dir) {
  absl::MutexLock lock(&mutate_mu_);
  return RemoveWorktreeLocked(worktree_dir);
}

absl::Status GitMirror::RemoveWorktreeLocked(const std::string& worktree_dir) {
  const fs::path worktree = NormalizeDir(worktree_dir);
  if (!worktree.is_absolute() || worktree == worktree.root_path() ||
      worktree_dir.find('\n') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("worktree path \"", worktree_dir, "\" must be an absolute directory path"));
  }
  const fs::path mirror = Canonical(dir_);
  const fs::path target = Canonical(worktree);
  auto [mirror_end, target_end] =
      std::mismatch(mirror.begin(), mirror.end(), target.begin(), target.end());
  // Neither the mirror, nor one of its ancestors, nor anything inside it.
  if (target_end == target.end() || mirror_end == mirror.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("worktree path ", worktree_dir, " overlaps the mirror ", dir_));
  }

  // Find the registration: the worktree's .git file names it ("gitdir: DIR/worktrees/NAME");
  // git appends a number to NAME when basenames collide, so the basename alone is a fallback,
  // used only when that registration points back at this worktree.
  const fs::path registrations = mirror / "worktrees";
  const fs::path dot_git = target / ".git";
  std::optional<fs::path> registration;
  if (std::optional<std::string> link = ReadSmallFile(dot_git)) {
    absl::string_view text = absl::StripAsciiWhitespace(*link);
    if (absl::ConsumePrefix(&text, "gitdir: ")) {
      fs::path named = Canonical(fs::path(std::string(text)));
      if (named.parent_path() == registrations && named.has_filename()) registration = named;
    }
  }
  if (!registration.has_value() && worktree.has_filename()) {
    fs::path candidate = registrations / worktree.filename();
    if (std::optional<std::string> back = ReadSmallFile(candidate / "gitdir")) {
      if (Canonical(fs::path(std::string(absl::StripAsciiWhitespace(*back)))) == dot_git) {
        registration = candidate;
      }
    }
  }

  std::error_code ec;
  fs::remove_all(worktree, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot remove worktree ", worktree_dir, ": ", ec.message()));
  }
  if (registration.has_value()) {
    fs::remove_all(*registration, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("cannot remove worktree registration ",
                                              registration->string(), ": ", ec.message()));
    }
  }
  return absl::OkStatus();
}

// --- the cat-file child -------------------------------------------------------------------

absl::StatusOr<GitMirror::BatchObject> GitMirror::Query(std::string_view object_name) {
  absl::MutexLock lock(&batch_mu_);
  absl::Status last;
  // A child that died (killed, or git updated underneath us) is restarted once.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (batch_pid_ < 0) ASSAY_RETURN_IF_ERROR(StartBatchLocked());
    absl::StatusOr<BatchObject> object = QueryOnceLocked(object_name);
    if (object.ok()) return object;
    StopBatchLocked();
    last = object.status();
  }
  return last;
}

absl::Status GitMirror::StartBatchLocked() {
  std::error_code ec;
  if (!fs::exists(fs::path(dir_) / "HEAD", ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("git mirror ", dir_, " does not exist (GitMirror::Ensure creates it)"));
  }
  std::vector<std::string> env = git_env_;
  absl::StatusOr<std::string> git =
      FindExecutable("git", LookupEnv(env, "PATH").value_or(kDefaultPath));
  if (!git.ok()) return absl::InternalError(git.status().message());
  ASSAY_ASSIGN_OR_RETURN(Pipe to_child, MakePipe());
  ASSAY_ASSIGN_OR_RETURN(Pipe from_child, MakePipe());
  SpawnOptions options;
  options.path = *git;
  options.argv = GitArgs();
  options.argv.insert(options.argv.end(),
                      {absl::StrCat("--git-dir=", dir_), "cat-file", "--batch"});
  options.env = std::move(env);
  options.stdin_fd = to_child.read.get();
  options.stdout_fd = from_child.write.get();
  // Not PR_SET_PDEATHSIG: that fires when the spawning *thread* exits, and any thread may be the
  // first to read. The child exits by itself at EOF on stdin when this process goes away.
  options.new_process_group = true;
  ASSAY_ASSIGN_OR_RETURN(pid_t pid, SpawnProcess(options));
  batch_pid_ = pid;
  batch_in_ = std::move(to_child.write);
  batch_out_ = std::move(from_child.read);
  batch_buf_.clear();
  return absl::OkStatus();
}

void GitMirror::StopBatchLocked() {
  batch_in_.Reset();
  batch_out_.Reset();
  batch_buf_.clear();
  if (batch_pid_ > 0) KillAndReapGroup(batch_pid_, batch_pid_);
  batch_pid_ = -1;
}

absl::Status GitMirror::FillLocked(size_t want) {
  char buf[kReadChunk];
  while (batch_buf_.size() < want) {
    ssize_t n = read(batch_out_.get(), buf, sizeof(buf));
    if (n > 0) {
      batch_buf_.append(buf, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return absl::UnavailableError(
          absl::StrCat("git cat-file --batch in ", dir_, " exited unexpectedly",
                       n < 0 ? absl::StrCat(": ", strerror(errno)) : std::string()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<GitMirror::BatchObject> GitMirror::QueryOnceLocked(std::string_view object_name) {
  ASSAY_RETURN_IF_ERROR(WriteAll(batch_in_.get(), absl::StrCat(Av(object_name), "\n")));
  size_t newline;
  while ((newline = batch_buf_.find('\n')) == std::string::npos) {
    ASSAY_RETURN_IF_ERROR(FillLocked(batch_buf_.size() + 1));
  }
  std::string header = batch_buf_.substr(0, newline);
  batch_buf_.erase(0, newline + 1);

  BatchObject object;
  std::vector<absl::string_view> fields = absl::StrSplit(header, ' ');
  size_t size = 0;
  if (fields.size() == 3 && IsHexSha(std::string_view(fields[0].data(), fields[0].size())) &&
      absl::SimpleAtoi(fields[2], &size)) {
    ASSAY_RETURN_IF_ERROR(FillLocked(size + 1));  // the contents and a newline
    object.found = true;
    object.type = std::string(fields[1]);
    object.content = batch_buf_.substr(0, size);
    batch_buf_.erase(0, size + 1);
    return object;
  }
  if (header == absl::StrCat(Av(object_name), " missing") ||
      header == absl::StrCat(Av(object_name), " ambiguous")) {
    return object;  // not found
  }
  return absl::UnavailableError(absl::StrCat("unexpected reply from git cat-file --batch in ", dir_,
                                             ": \"", absl::CHexEscape(header), "\""));
}

}  // namespace assay
