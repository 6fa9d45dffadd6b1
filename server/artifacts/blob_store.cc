#include "server/artifacts/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"

namespace assay::artifacts {
namespace {

absl::Status Errno(const char* what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status CheckName(const std::string& sha256) {
  if (IsSha256Hex(sha256)) return absl::OkStatus();
  return absl::InvalidArgumentError("a blob name must be 64 lowercase hex digits");
}

absl::Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", dir);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("cannot fsync", dir);
  return absl::OkStatus();
}

}  // namespace

bool IsSha256Hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<DirBlobStore>> DirBlobStore::Open(const std::string& root) {
  std::error_code ec;
  for (const char* sub : {"sha256", "tmp"}) {
    std::filesystem::create_directories(std::filesystem::path(root) / sub, ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create the artifact store ", root, "/", sub, ": ", ec.message()));
    }
  }
  return std::unique_ptr<DirBlobStore>(new DirBlobStore(root));
}

std::string DirBlobStore::PathOf(const std::string& sha256) const {
  return absl::StrCat(root_, "/sha256/", sha256.substr(0, 2), "/", sha256.substr(2));
}

absl::Status DirBlobStore::Put(const std::string& sha256, std::string_view data) {
  if (absl::Status s = CheckName(sha256); !s.ok()) return s;
  const std::string dir = absl::StrCat(root_, "/sha256/", sha256.substr(0, 2));
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Errno("cannot create", dir);
  const std::string tmp = absl::StrCat(root_, "/tmp/", sha256, ".", RandomHexToken(8));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", tmp);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = Errno("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    off += static_cast<size_t>(n);
  }
  // Why fsync before rename: a crash after the rename must not leave a named, partial blob.
  if (::fsync(fd) != 0) {
    absl::Status s = Errno("cannot fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  const std::string dst = PathOf(sha256);
  if (::rename(tmp.c_str(), dst.c_str()) != 0) {
    absl::Status s = Errno("cannot rename into", dst);
    ::unlink(tmp.c_str());
    return s;
  }
  return SyncDir(dir);
}

absl::StatusOr<bool> DirBlobStore::Has(const std::string& sha256) {
  if (absl::Status s = CheckName(sha256); !s.ok()) return s;
  struct stat st;
  if (::stat(PathOf(sha256).c_str(), &st) == 0) return true;
  if (errno == ENOENT) return false;
  return Errno("cannot stat", PathOf(sha256));
}

absl::StatusOr<int64_t> DirBlobStore::Size(const std::string& sha256) {
  if (absl::Status s = CheckName(sha256); !s.ok()) return s;
  struct stat st;
  if (::stat(PathOf(sha256).c_str(), &st) == 0) return static_cast<int64_t>(st.st_size);
  if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("blob ", sha256, " does not exist"));
  return Errno("cannot stat", PathOf(sha256));
}

absl::StatusOr<std::string> DirBlobStore::Read(const std::string& sha256, int64_t offset,
                                               int64_t length) {
  if (absl::Status s = CheckName(sha256); !s.ok()) return s;
  const std::string path = PathOf(sha256);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return absl::NotFoundError(absl::StrCat("blob ", sha256, " does not exist"));
    return Errno("cannot open", path);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status s = Errno("cannot stat", path);
    ::close(fd);
    return s;
  }
  const int64_t size = st.st_size;
  if (offset < 0 || offset > size) {
    ::close(fd);
    return absl::OutOfRangeError(absl::StrCat("offset ", offset, " is past the end of blob ",
                                              sha256, " (", size, " bytes)"));
  }
  const int64_t n = length < 0 ? size - offset : std::min(length, size - offset);
  std::string out(static_cast<size_t>(n), '\0');
  int64_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, out.data() + got, static_cast<size_t>(n - got), offset + got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      absl::Status s = Errno("cannot read", path);
      ::close(fd);
      return s;
    }
    got += r;
  }
  ::close(fd);
  return out;
}

absl::Status DirBlobStore::Delete(const std::string& sha256) {
  if (absl::Status s = CheckName(sha256); !s.ok()) return s;
  if (::unlink(PathOf(sha256).c_str()) == 0 || errno == ENOENT) return absl::OkStatus();
  return Errno("cannot delete", PathOf(sha256));
}

}  // namespace assay::artifacts
