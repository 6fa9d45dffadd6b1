#include "agent/artifact_paths.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/status.h"
#include "common/crypto/crypto.h"
#include "common/pipeline/glob.h"

namespace assay {
namespace {

constexpr int kMaxSymlinkHops = 40;  // as the kernel's MAXSYMLINKS

std::vector<std::string> Segments(std::string_view path) {
  std::vector<std::string> out;
  for (absl::string_view s : absl::StrSplit(absl::string_view(path.data(), path.size()), '/')) {
    out.emplace_back(s);
  }
  return out;
}

bool HasGlobMeta(std::string_view segment) {
  return segment.find_first_of("*?[\\") != std::string_view::npos;
}

// The glob without its '!' and trailing '/'.
std::string_view GlobBody(std::string_view glob) {
  if (!glob.empty() && glob[0] == '!') glob.remove_prefix(1);
  while (glob.size() > 1 && glob.back() == '/') glob.remove_suffix(1);
  return glob;
}

// The leading segments of a positive glob that hold no glob syntax ("out/**/*.bin" -> "out").
std::string LiteralPrefix(std::string_view body) {
  std::vector<std::string> lit;
  std::vector<std::string> segs = Segments(body);
  for (size_t i = 0; i < segs.size(); ++i) {
    if (HasGlobMeta(segs[i])) break;
    lit.push_back(segs[i]);
  }
  return absl::StrJoin(lit, "/");
}

std::string Errno(int e) { return std::strerror(e); }

// Resolves the workspace-relative `rel`, whose components may be symlinks, to a relative path
// without any symlink component, the way the kernel would with the workspace as the only
// world: '..' never climbs above it; an absolute target counts only when it names a place in
// the workspace (`roots`: its path as given and its real path). kOutOfRange (message: the link's
// target) when the path leads outside; kNotFound when it dangles; kFailedPrecondition on a loop.
absl::StatusOr<std::string> ResolveInside(int root_fd, const std::vector<std::string>& roots,
                                          const std::string& rel) {
  std::vector<std::string> done;
  std::deque<std::string> todo;
  for (std::string& s : Segments(rel)) todo.push_back(std::move(s));
  int hops = 0;
  while (!todo.empty()) {
    std::string c = std::move(todo.front());
    todo.pop_front();
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (done.empty()) return absl::OutOfRangeError("..");
      done.pop_back();
      continue;
    }
    done.push_back(c);
    const std::string candidate = absl::StrJoin(done, "/");
    struct stat st;
    if (::fstatat(root_fd, candidate.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return absl::NotFoundError(candidate);
    }
    if (!S_ISLNK(st.st_mode)) continue;
    if (++hops > kMaxSymlinkHops) return absl::FailedPreconditionError("too many links");
    char buf[PATH_MAX + 1];
    ssize_t n = ::readlinkat(root_fd, candidate.c_str(), buf, PATH_MAX);
    if (n < 0) return absl::NotFoundError(candidate);
    std::string target(buf, static_cast<size_t>(n));
    done.pop_back();
    if (!target.empty() && target[0] == '/') {
      bool inside = false;
      for (const std::string& root : roots) {
        if (target == root || target.rfind(root + "/", 0) == 0) {
          target = target.substr(std::min(target.size(), root.size() + 1));
          inside = true;
          break;
        }
      }
      if (!inside) return absl::OutOfRangeError(target);
      done.clear();
    }
    std::vector<std::string> segs = Segments(target);
    for (auto it = segs.rbegin(); it != segs.rend(); ++it) todo.push_front(std::move(*it));
  }
  return absl::StrJoin(done, "/");
}

}  // namespace

absl::Status ValidateArtifactPath(std::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError("empty path");
  if (path.size() > kMaxArtifactPathBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("longer than ", kMaxArtifactPathBytes, " bytes"));
  }
  if (path.find('\0') != std::string_view::npos) return absl::InvalidArgumentError("NUL byte");
  if (path[0] == '/') return absl::InvalidArgumentError("absolute path");
  std::vector<std::string> segs = Segments(path);
  for (const std::string& s : segs) {
    if (s.empty()) return absl::InvalidArgumentError("empty segment");
    if (s == ".") return absl::InvalidArgumentError("'.' segment");
    if (s == "..") return absl::InvalidArgumentError("'..' segment");
    if (s.size() > NAME_MAX) {
      return absl::InvalidArgumentError(absl::StrCat("a segment longer than ", NAME_MAX, " bytes"));
    }
  }
  if (segs[0] == ".git") return absl::InvalidArgumentError("inside the workspace's .git");
  return absl::OkStatus();
}

bool ArtifactSelected(const std::vector<std::string>& globs, std::string_view path) {
  bool selected = false;
  for (const std::string& g : globs) {
    const bool exclude = !g.empty() && g[0] == '!';
    const std::string_view body = GlobBody(g);
    bool match = GlobMatch(body, path);
    // A parent directory that matches takes everything below it ("out" selects out/a/b).
    for (size_t slash = path.find('/'); !match && slash != std::string_view::npos;
         slash = path.find('/', slash + 1)) {
      match = GlobMatch(body, path.substr(0, slash));
    }
    if (match) selected = !exclude;
  }
  return selected;
}

absl::StatusOr<UniqueFd> OpenArtifactSource(int root_fd, std::string_view rel,
                                            std::optional<uid_t> owner) {
  std::vector<std::string> segs = Segments(rel);
  UniqueFd dir;
  int cur = root_fd;
  for (size_t i = 0; i + 1 < segs.size(); ++i) {
    UniqueFd next(::openat(cur, segs[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot open ", std::string(rel), ": ", segs[i], " is not a directory: ", Errno(errno)));
    }
    dir = std::move(next);
    cur = dir.get();
  }
  UniqueFd fd(::openat(cur, segs.back().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    const int e = errno;
    if (e == ENOENT) return absl::NotFoundError(absl::StrCat(std::string(rel), " is gone"));
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open ", std::string(rel), ": ", Errno(e)));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(std::string(rel), " is not a regular file"));
  }
  if (owner.has_value() && st.st_uid != *owner) {
    return absl::FailedPreconditionError(absl::StrCat(
        std::string(rel), " is owned by uid ", st.st_uid, ", not the job user (", *owner, ")"));
  }
  return fd;
}

absl::StatusOr<CollectResult> CollectArtifactFiles(const std::string& workspace,
                                                   const std::vector<std::string>& globs,
                                                   const CollectOptions& options) {
  UniqueFd root(::open(workspace.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.valid()) {
    return absl::InternalError(absl::StrCat("cannot open ", workspace, ": ", Errno(errno)));
  }
  std::vector<std::string> roots = {workspace};
  if (char* real = ::realpath(workspace.c_str(), nullptr)) {
    if (roots[0] != real) roots.emplace_back(real);
    ::free(real);
  }
  std::vector<std::string> prefixes;  // of the positive globs
  for (const std::string& g : globs) {
    if (!g.empty() && g[0] != '!') prefixes.push_back(LiteralPrefix(GlobBody(g)));
  }
  // Whether a directory at `rel` may hold a selected file.
  auto may_enter = [&](const std::string& rel) {
    if (ArtifactSelected(globs, rel)) return true;
    for (const std::string& p : prefixes) {
      if (p.empty() || p == rel || p.rfind(rel + "/", 0) == 0 || rel.rfind(p + "/", 0) == 0) {
        return true;
      }
    }
    return false;
  };
  CollectResult out;
  size_t entries = 0;
  // A selected entry at `rel` (not a directory reached by the walk).
  auto take = [&](const std::string& rel, const struct stat& st) -> absl::Status {
    std::string source = rel;
    struct stat target = st;
    if (S_ISLNK(st.st_mode)) {
      absl::StatusOr<std::string> resolved = ResolveInside(root.get(), roots, rel);
      if (!resolved.ok()) {
        const std::string what(resolved.status().message());
        switch (resolved.status().code()) {
          case absl::StatusCode::kOutOfRange:
            out.notes.push_back(absl::StrCat("refused ", rel, ": a symlink to ",
                                             what == ".." ? "a place above the workspace" : what,
                                             ", outside the workspace"));
            break;
          case absl::StatusCode::kNotFound:
            out.notes.push_back(absl::StrCat("skipped ", rel, ": a symlink to nothing"));
            break;
          default: out.notes.push_back(absl::StrCat("skipped ", rel, ": a symlink loop"));
        }
        return absl::OkStatus();
      }
      source = *resolved;
      if (source.empty() ||
          ::fstatat(root.get(), source.c_str(), &target, AT_SYMLINK_NOFOLLOW) != 0) {
        out.notes.push_back(absl::StrCat("skipped ", rel, ": a symlink to a directory"));
        return absl::OkStatus();
      }
      if (S_ISDIR(target.st_mode)) {
        out.notes.push_back(
            absl::StrCat("skipped ", rel, ": a symlink to a directory (not followed)"));
        return absl::OkStatus();
      }
    }
    if (!S_ISREG(target.st_mode)) {
      out.notes.push_back(absl::StrCat("skipped ", rel, ": not a regular file"));
      return absl::OkStatus();
    }
    if (source.rfind(".git/", 0) == 0) {
      out.notes.push_back(absl::StrCat("refused ", rel, ": a symlink into .git"));
      return absl::OkStatus();
    }
    if (options.owner.has_value() && target.st_uid != *options.owner) {
      out.notes.push_back(
          absl::StrCat("refused ", rel, ": owned by uid ", target.st_uid, ", not the job user"));
      return absl::OkStatus();
    }
    if (absl::Status valid = ValidateArtifactPath(rel); !valid.ok()) {
      out.notes.push_back(absl::StrCat("skipped ", rel, ": ", valid.message()));
      return absl::OkStatus();
    }
    if (out.files.size() >= options.max_files) {
      return absl::ResourceExhaustedError(
          absl::StrCat("artifacts.paths select more than ", options.max_files, " files"));
    }
    out.files.push_back({rel, source, (target.st_mode & 0111) ? 0755u : 0644u});
    return absl::OkStatus();
  };
  std::function<absl::Status(int, const std::string&, int)> walk =
      [&](int dir_fd, const std::string& prefix, int depth) -> absl::Status {
    if (depth > options.max_depth) {
      return absl::ResourceExhaustedError(
          absl::StrCat(prefix, " is nested deeper than ", options.max_depth, " directories"));
    }
    int dup = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
    DIR* d = dup < 0 ? nullptr : ::fdopendir(dup);
    if (d == nullptr) {
      if (dup >= 0) ::close(dup);
      return absl::InternalError(
          absl::StrCat("cannot list ", workspace, "/", prefix, ": ", Errno(errno)));
    }
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      if (++entries > options.max_entries) {
        ::closedir(d);
        return absl::ResourceExhaustedError(absl::StrCat(
            "the workspace has more than ", options.max_entries, " entries under artifacts.paths"));
      }
      names.push_back(name);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      if (prefix.empty() && name == ".git") continue;
      const std::string rel = prefix.empty() ? name : absl::StrCat(prefix, "/", name);
      struct stat st;
      if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone
      if (S_ISDIR(st.st_mode)) {
        if (!may_enter(rel)) continue;
        UniqueFd sub(
            ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub.valid()) continue;  // replaced by something else meanwhile
        ASSAY_RETURN_IF_ERROR(walk(sub.get(), rel, depth + 1));
        continue;
      }
      if (ArtifactSelected(globs, rel)) ASSAY_RETURN_IF_ERROR(take(rel, st));
    }
    return absl::OkStatus();
  };
  ASSAY_RETURN_IF_ERROR(walk(root.get(), "", 0));
  std::sort(out.files.begin(), out.files.end(),
            [](const CollectedFile& a, const CollectedFile& b) { return a.path < b.path; });
  return out;
}

absl::StatusOr<ArtifactWriter> ArtifactWriter::Open(const std::string& workspace,
                                                    std::optional<Owner> owner) {
  ArtifactWriter w;
  w.root_ = UniqueFd(::open(workspace.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!w.root_.valid()) {
    return absl::InternalError(absl::StrCat("cannot open ", workspace, ": ", Errno(errno)));
  }
  w.owner_ = owner;
  return w;
}

absl::Status ArtifactWriter::Begin(std::string_view rel) {
  Abort();
  ASSAY_RETURN_IF_ERROR(ValidateArtifactPath(rel));
  rel_ = std::string(rel);
  std::vector<std::string> segs = Segments(rel);
  int cur = root_.get();
  UniqueFd dir;
  std::string walked;
  for (size_t i = 0; i + 1 < segs.size(); ++i) {
    walked = walked.empty() ? segs[i] : absl::StrCat(walked, "/", segs[i]);
    const char* name = segs[i].c_str();
    UniqueFd next(::openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid() && errno == ENOENT) {
      if (::mkdirat(cur, name, 0755) != 0 && errno != EEXIST) {
        return absl::InternalError(absl::StrCat("cannot write ", rel_, ": ", Errno(errno)));
      }
      next = UniqueFd(::openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (next.valid() && owner_.has_value() &&
          ::fchown(next.get(), owner_->uid, owner_->gid) != 0) {
        return absl::InternalError(absl::StrCat("cannot write ", rel_, ": ", Errno(errno)));
      }
    }
    if (!next.valid()) {
      if (errno == ELOOP || errno == ENOTDIR) {
        return absl::FailedPreconditionError(absl::StrCat("refusing to write ", rel_, ": ", walked,
                                                          " is a symlink or not a directory"));
      }
      return absl::InternalError(absl::StrCat("cannot write ", rel_, ": ", Errno(errno)));
    }
    dir = std::move(next);
    cur = dir.get();
  }
  if (!dir.valid()) {
    dir = UniqueFd(::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0));
    if (!dir.valid()) {
      return absl::InternalError(absl::StrCat("cannot write ", rel_, ": ", Errno(errno)));
    }
  }
  name_ = segs.back();
  tmp_name_ = absl::StrCat(".assay-artifact-", RandomHexToken(8));
  file_ = UniqueFd(::openat(dir.get(), tmp_name_.c_str(),
                            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!file_.valid()) {
    return absl::InternalError(absl::StrCat("cannot write ", rel_, ": ", Errno(errno)));
  }
  dir_ = std::move(dir);
  return absl::OkStatus();
}

absl::Status ArtifactWriter::Append(std::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(file_.get(), data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("cannot write ", rel_, ": ", Errno(errno)));
    }
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ArtifactWriter::Commit(uint32_t mode) {
  const mode_t m = (mode & 0111) ? 0755 : 0644;
  if (::fchmod(file_.get(), m) != 0 ||
      (owner_.has_value() && ::fchown(file_.get(), owner_->uid, owner_->gid) != 0)) {
    return absl::InternalError(absl::StrCat("cannot write ", rel_, ": ", Errno(errno)));
  }
  file_.Reset();
  // renameat replaces a symlink (or file) at the target itself, never what it points to.
  if (::renameat(dir_.get(), tmp_name_.c_str(), dir_.get(), name_.c_str()) != 0) {
    const int e = errno;
    Abort();
    return absl::InternalError(absl::StrCat("cannot write ", rel_, ": ", Errno(e)));
  }
  tmp_name_.clear();
  dir_.Reset();
  return absl::OkStatus();
}

void ArtifactWriter::Abort() {
  file_.Reset();
  if (dir_.valid() && !tmp_name_.empty()) ::unlinkat(dir_.get(), tmp_name_.c_str(), 0);
  tmp_name_.clear();
  dir_.Reset();
}

}  // namespace assay
