// Git LFS pointers in a checkout (see lfs.h).

#include "common/git/lfs.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status.h"
#include "common/crypto/crypto.h"
#include "common/git/git.h"
#include "common/proc/spawn.h"

namespace assay {
namespace {

std::string ReadFileOrEmptyForLfs(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr std::string_view kVersionLine = "version https://git-lfs.github.com/spec/v1";

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// "host" of "host[:port]" (lowercased); IPv6 literals keep their brackets.
std::string HostOf(std::string_view hostport) {
  if (!hostport.empty() && hostport.front() == '[') {
    const size_t close = hostport.find(']');
    return absl::AsciiStrToLower(
        Av(hostport.substr(0, close == std::string_view::npos ? hostport.size() : close + 1)));
  }
  return absl::AsciiStrToLower(Av(hostport.substr(0, hostport.find(':'))));
}

// The host of a clone URL (https://, ssh:// or user@host:path); "" for a local one.
std::string CloneUrlHost(std::string_view url) {
  for (std::string_view scheme : {"https://", "http://", "ssh://"}) {
    if (absl::StartsWith(Av(url), Av(scheme))) {
      std::string_view rest = url.substr(scheme.size());
      rest = rest.substr(0, rest.find('/'));
      if (const size_t at = rest.rfind('@'); at != std::string_view::npos)
        rest.remove_prefix(at + 1);
      return HostOf(rest);
    }
  }
  if (absl::StartsWith(Av(url), "/") || absl::StartsWith(Av(url), "file:")) return "";
  std::string_view rest = url.substr(0, url.find(':'));  // scp-like user@host:path
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  return absl::AsciiStrToLower(Av(rest));
}

bool IsLoopbackHost(std::string_view host) {
  return host == "127.0.0.1" || host == "localhost" || host == "[::1]";
}

// Walks `rel` ('/'-separated, no empty/./.. components: it comes from a checked tree) below
// `root_fd`, opening each directory with O_NOFOLLOW; returns the last directory's descriptor
// and sets `leaf` to the file name.
absl::StatusOr<UniqueFd> OpenParent(int root_fd, const std::string& rel, std::string* leaf) {
  std::vector<std::string> parts = absl::StrSplit(rel, '/');
  UniqueFd dir(::dup(root_fd));
  if (!dir.valid()) return absl::InternalError(absl::StrCat("dup: ", strerror(errno)));
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i].empty() || parts[i] == "." || parts[i] == "..") {
      return absl::InvalidArgumentError(absl::StrCat("unsafe path ", rel));
    }
    UniqueFd next(
        ::openat(dir.get(), parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) {
      return absl::InternalError(
          absl::StrCat("cannot open the directory of ", rel, ": ", strerror(errno)));
    }
    dir = std::move(next);
  }
  *leaf = parts.back();
  if (leaf->empty() || *leaf == "." || *leaf == "..") {
    return absl::InvalidArgumentError(absl::StrCat("unsafe path ", rel));
  }
  return dir;
}

struct EvpMdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// Copies the object at `object_path` over the pointer `file.path` in the worktree.
absl::Status ReplacePointer(int root_fd, const std::string& object_path, const LfsFile& file) {
  std::string leaf;
  ASSAY_ASSIGN_OR_RETURN(UniqueFd dir, OpenParent(root_fd, file.path, &leaf));
  struct stat pointer_st {};
  if (::fstatat(dir.get(), leaf.c_str(), &pointer_st, AT_SYMLINK_NOFOLLOW) != 0 ||
      !S_ISREG(pointer_st.st_mode)) {
    return absl::InternalError(
        absl::StrCat("LFS pointer ", file.path, " is not a regular file in the workspace"));
  }
  UniqueFd in(::open(object_path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in.valid()) {
    return absl::NotFoundError(absl::StrCat("LFS object ", file.pointer.oid, " of ", file.path,
                                            " is not on the LFS server"));
  }
  const std::string tmp = absl::StrCat(".", leaf, ".assay-lfs");
  ::unlinkat(dir.get(), tmp.c_str(), 0);
  UniqueFd out(::openat(dir.get(), tmp.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        pointer_st.st_mode & 0777));
  if (!out.valid()) {
    return absl::InternalError(
        absl::StrCat("cannot create a temporary file beside ", file.path, ": ", strerror(errno)));
  }
  std::unique_ptr<EVP_MD_CTX, EvpMdCtxDeleter> md(EVP_MD_CTX_new());
  EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr);
  std::unique_ptr<char[]> buf(new char[1 << 20]);
  uint64_t total = 0;
  absl::Status status;
  for (;;) {
    ssize_t n = ::read(in.get(), buf.get(), 1 << 20);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = absl::InternalError(
          absl::StrCat("cannot read LFS object ", file.pointer.oid, ": ", strerror(errno)));
      break;
    }
    if (n == 0) break;
    EVP_DigestUpdate(md.get(), buf.get(), static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out.get(), buf.get() + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        status =
            absl::InternalError(absl::StrCat("cannot write ", file.path, ": ", strerror(errno)));
        break;
      }
      off += w;
    }
    if (!status.ok()) break;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_DigestFinal_ex(md.get(), digest, &digest_len);
  const std::string hex =
      HexEncode(std::string_view(reinterpret_cast<const char*>(digest), digest_len));
  if (status.ok() && (hex != file.pointer.oid || total != file.pointer.size)) {
    status = absl::DataLossError(absl::StrCat("LFS object ", file.pointer.oid, " of ", file.path,
                                              " has SHA-256 ", hex, " and ", total,
                                              " bytes, not the pointer's ", file.pointer.size));
  }
  if (status.ok() && ::fchmod(out.get(), pointer_st.st_mode & 0777) != 0) {
    status = absl::InternalError(absl::StrCat("chmod ", file.path, ": ", strerror(errno)));
  }
  out.Reset();
  if (status.ok() && ::renameat(dir.get(), tmp.c_str(), dir.get(), leaf.c_str()) != 0) {
    status = absl::InternalError(
        absl::StrCat("cannot rename the LFS file into ", file.path, ": ", strerror(errno)));
  }
  if (!status.ok()) ::unlinkat(dir.get(), tmp.c_str(), 0);
  return status;
}

uint32_t GetBe32(const std::string& s, size_t at) {
  return (static_cast<uint32_t>(static_cast<unsigned char>(s[at])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 3]));
}

void SetBe32(std::string& s, size_t at, uint64_t v) {
  s[at] = static_cast<char>((v >> 24) & 0xff);
  s[at + 1] = static_cast<char>((v >> 16) & 0xff);
  s[at + 2] = static_cast<char>((v >> 8) & 0xff);
  s[at + 3] = static_cast<char>(v & 0xff);
}

// Why: git trusts an index entry whose recorded size differs from the file's and calls the file
// modified without looking at it (read-cache.c, ie_modified), so after the pointers were
// replaced `git status` would list every LFS file. Records the new files' stat data in the
// entries of `paths` of a version-2 index (as GitMirror::CheckoutTree writes it) and rewrites
// it (temp file, rename). Any other index is left alone.
absl::Status RestatIndexEntries(const std::string& index_path, int root_fd,
                                const std::vector<LfsFile>& files) {
  std::string idx = ReadFileOrEmptyForLfs(index_path);
  if (idx.size() < 12 + 20 || idx.compare(0, 4, "DIRC") != 0 || GetBe32(idx, 4) != 2) {
    return absl::OkStatus();
  }
  std::map<std::string, const LfsFile*> wanted;
  for (const LfsFile& f : files) wanted[f.path] = &f;
  const uint32_t count = GetBe32(idx, 8);
  size_t at = 12;
  for (uint32_t i = 0; i < count; ++i) {
    if (at + 62 > idx.size() - 20) return absl::DataLossError("malformed index " + index_path);
    const size_t name_end = idx.find('\0', at + 62);
    if (name_end == std::string::npos || name_end > idx.size() - 20) {
      return absl::DataLossError("malformed index " + index_path);
    }
    const std::string path = idx.substr(at + 62, name_end - at - 62);
    if (wanted.count(path) != 0) {
      std::string leaf;
      ASSAY_ASSIGN_OR_RETURN(UniqueFd dir, OpenParent(root_fd, path, &leaf));
      struct stat st {};
      if (::fstatat(dir.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return absl::InternalError(absl::StrCat("stat ", path, ": ", strerror(errno)));
      }
      SetBe32(idx, at, static_cast<uint64_t>(st.st_ctim.tv_sec));
      SetBe32(idx, at + 4, static_cast<uint64_t>(st.st_ctim.tv_nsec));
      SetBe32(idx, at + 8, static_cast<uint64_t>(st.st_mtim.tv_sec));
      SetBe32(idx, at + 12, static_cast<uint64_t>(st.st_mtim.tv_nsec));
      SetBe32(idx, at + 16, static_cast<uint64_t>(st.st_dev));
      SetBe32(idx, at + 20, static_cast<uint64_t>(st.st_ino));
      SetBe32(idx, at + 28, static_cast<uint64_t>(st.st_uid));
      SetBe32(idx, at + 32, static_cast<uint64_t>(st.st_gid));
      SetBe32(idx, at + 36, static_cast<uint64_t>(st.st_size));
    }
    const size_t len = 62 + path.size();
    at += len + (8 - (len % 8));
  }
  idx.resize(idx.size() - 20);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(idx.data()), idx.size(), digest);
  idx.append(reinterpret_cast<const char*>(digest), SHA_DIGEST_LENGTH);
  const std::string tmp = index_path + ".assay-lfs";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << idx;
    out.close();
    if (!out) return absl::InternalError("cannot write " + tmp);
  }
  if (::rename(tmp.c_str(), index_path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("rename ", tmp, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<LfsPointer> ParseLfsPointer(std::string_view blob) {
  if (blob.size() > kMaxLfsPointerBytes || blob.empty() || blob.back() != '\n') return std::nullopt;
  blob.remove_suffix(1);
  std::vector<absl::string_view> lines = absl::StrSplit(Av(blob), '\n');
  if (lines.size() < 3 || lines.front() != Av(kVersionLine)) return std::nullopt;
  LfsPointer p;
  bool have_oid = false, have_size = false;
  std::string previous_key;  // the keys after `version` ascend
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t space = lines[i].find(' ');
    if (space == absl::string_view::npos || space == 0) return std::nullopt;
    const std::string key(lines[i].substr(0, space));
    const absl::string_view value = lines[i].substr(space + 1);
    if (key <= previous_key || key == "version") return std::nullopt;  // ascending, once each
    for (char c : key) {
      if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
            absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-')) {
        return std::nullopt;
      }
    }
    previous_key = key;
    if (key == "oid") {
      if (!absl::StartsWith(value, "sha256:")) return std::nullopt;
      const absl::string_view hex = value.substr(7);
      if (hex.size() != 64 || !IsLowerHex(std::string_view(hex.data(), hex.size()))) {
        return std::nullopt;
      }
      p.oid = std::string(hex);
      have_oid = true;
    } else if (key == "size") {
      if (value.empty() || value.size() > 19 || (value.size() > 1 && value[0] == '0')) {
        return std::nullopt;
      }
      for (char c : value) {
        if (c < '0' || c > '9') return std::nullopt;
      }
      if (!absl::SimpleAtoi(value, &p.size)) return std::nullopt;
      have_size = true;
    }
  }
  if (!have_oid || !have_size) return std::nullopt;
  return p;
}

absl::Status CheckLfsUrl(std::string_view lfs_url, std::string_view clone_url, bool allow_local) {
  auto refuse = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(".lfsconfig: lfs.url ", Av(lfs_url), ": ", Av(why)));
  };
  if (lfs_url.size() > 2048) return refuse("is longer than 2048 bytes");
  for (char c : lfs_url) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return refuse("holds a space or a control character");
    }
  }
  const bool https = absl::StartsWith(Av(lfs_url), "https://");
  const bool http = absl::StartsWith(Av(lfs_url), "http://");
  if (!https && !http) return refuse("must be an https:// URL");
  std::string_view authority = lfs_url.substr(https ? 8 : 7);
  authority = authority.substr(0, authority.find('/'));
  if (authority.find('@') != std::string_view::npos) {
    return refuse("must not hold a user or password (the agent sends the clone credential)");
  }
  const std::string host = HostOf(authority);
  if (host.empty()) return refuse("has no host");
  if (allow_local && IsLoopbackHost(host)) return absl::OkStatus();
  if (!https) return refuse("must be an https:// URL");
  const std::string clone_host = CloneUrlHost(clone_url);
  if (host != clone_host) {
    return refuse(absl::StrCat("is on host ", host, ", not on the repository's host ",
                               clone_host.empty() ? "(a local path)" : clone_host));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<LfsFile>> GitMirror::ListLfsPointers(std::string_view sha) {
  if (!IsHexSha(sha)) return absl::InvalidArgumentError(absl::StrCat("bad sha ", Av(sha)));
  absl::StatusOr<CommandResult> listed;
  {
    absl::MutexLock lock(&mutate_mu_);
    listed = Git({"ls-tree", "-r", "-l", "-z", "--full-tree", std::string(sha)});
  }
  if (!listed.ok()) return listed.status();
  if (listed->exit_code != 0) {
    return absl::NotFoundError(absl::StrCat("git ls-tree ", Av(sha), ": ", listed->err));
  }
  std::vector<LfsFile> files;
  for (absl::string_view record : absl::StrSplit(listed->out, '\0', absl::SkipEmpty())) {
    // "<mode> SP <type> SP <object> SP+ <size> TAB <path>"
    const size_t tab = record.find('\t');
    if (tab == absl::string_view::npos) continue;
    std::vector<absl::string_view> meta =
        absl::StrSplit(record.substr(0, tab), ' ', absl::SkipEmpty());
    if (meta.size() != 4 || meta[1] != "blob") continue;
    uint64_t size = 0;
    if (!absl::SimpleAtoi(meta[3], &size) || size > kMaxLfsPointerBytes) continue;
    ASSAY_ASSIGN_OR_RETURN(BatchObject blob, Query(std::string(meta[2])));
    if (!blob.found || blob.type != "blob") continue;
    std::optional<LfsPointer> pointer = ParseLfsPointer(blob.content);
    if (!pointer.has_value()) continue;
    if (files.size() == kMaxLfsFiles) {
      return absl::ResourceExhaustedError(
          absl::StrCat("commit ", Av(sha), " has more than ", kMaxLfsFiles, " LFS files"));
    }
    LfsFile f;
    f.path = std::string(record.substr(tab + 1));
    f.mode = meta[0] == "100755" ? 0100755 : 0100644;
    f.pointer = std::move(*pointer);
    files.push_back(std::move(f));
  }
  return files;
}

absl::Status GitMirror::FetchLfs(std::string_view sha, const std::string& lfs_url,
                                 absl::Duration timeout) {
  absl::MutexLock lock(&mutate_mu_);
  std::vector<std::string> args;
  if (!lfs_url.empty()) args = {"-c", absl::StrCat("lfs.url=", lfs_url)};
  args.insert(args.end(), {"lfs", "fetch", "origin", std::string(sha)});
  absl::StatusOr<CommandResult> r = Git(args, timeout);
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    if (absl::StrContains(r->err, "is not a git command")) {
      return absl::FailedPreconditionError(
          "git-lfs is not installed on this agent (install the git-lfs package, or set "
          "`lfs: false` on the job)");
    }
    std::string err = r->err.size() > 2000 ? r->err.substr(r->err.size() - 2000) : r->err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return absl::UnavailableError(absl::StrCat("git lfs fetch failed: ", err));
  }
  return absl::OkStatus();
}

std::string GitMirror::LfsObjectPath(std::string_view oid) const {
  return absl::StrCat(dir_, "/lfs/objects/", Av(oid.substr(0, 2)), "/", Av(oid.substr(2, 2)), "/",
                      Av(oid));
}

absl::StatusOr<LfsCheckoutStats> CheckoutLfs(GitMirror& mirror, std::string_view sha,
                                             const std::string& worktree,
                                             const std::string& index_path, bool allow_local,
                                             absl::Duration timeout) {
  LfsCheckoutStats stats;
  absl::StatusOr<std::string> attributes = mirror.ReadFile(sha, ".gitattributes", 1 << 20);
  if (!attributes.ok()) {
    if (absl::IsNotFound(attributes.status())) return stats;
    return attributes.status();
  }
  if (!absl::StrContains(*attributes, "filter=lfs")) return stats;
  ASSAY_ASSIGN_OR_RETURN(std::vector<LfsFile> files, mirror.ListLfsPointers(sha));
  if (files.empty()) return stats;

  size_t missing = 0;
  for (const LfsFile& f : files) {
    struct stat st {};
    if (::stat(mirror.LfsObjectPath(f.pointer.oid).c_str(), &st) != 0 ||
        static_cast<uint64_t>(st.st_size) != f.pointer.size) {
      ++missing;
    }
  }
  if (missing > 0) {
    std::string lfs_url;
    absl::StatusOr<std::string> config = mirror.ReadFile(sha, ".lfsconfig", 64 << 10);
    if (config.ok()) {
      // `lfs.url` of a git-config file: read by git itself (`git config --blob`), so every
      // quoting and include rule is git's; includes are not followed from a blob.
      absl::StatusOr<CommandResult> url =
          RunCommand({"git", "config", "--file", "-", "--get", "lfs.url"}, {},
                     {{"GIT_CONFIG_NOSYSTEM", "1"}}, *config, absl::Seconds(10));
      if (!url.ok()) return url.status();
      if (url->exit_code == 0) {
        lfs_url = url->out;
        while (!lfs_url.empty() && (lfs_url.back() == '\n' || lfs_url.back() == '\r')) {
          lfs_url.pop_back();
        }
        if (absl::Status ok = CheckLfsUrl(lfs_url, mirror.clone_url(), allow_local); !ok.ok()) {
          return ok;
        }
      }
    } else if (!absl::IsNotFound(config.status())) {
      return config.status();
    }
    ASSAY_RETURN_IF_ERROR(mirror.FetchLfs(sha, lfs_url, timeout));
  }

  UniqueFd root(::open(worktree.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.valid()) {
    return absl::InternalError(absl::StrCat("cannot open ", worktree, ": ", strerror(errno)));
  }
  for (const LfsFile& f : files) {
    ASSAY_RETURN_IF_ERROR(ReplacePointer(root.get(), mirror.LfsObjectPath(f.pointer.oid), f));
    ++stats.files;
    stats.bytes += f.pointer.size;
  }
  stats.fetched = missing;
  if (!index_path.empty()) ASSAY_RETURN_IF_ERROR(RestatIndexEntries(index_path, root.get(), files));
  return stats;
}

}  // namespace assay
