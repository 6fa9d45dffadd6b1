#include "agent/job_secrets.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/base/secret_rules.h"

namespace assay {
namespace {

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat("secrets: cannot ", std::string(what), " ", path, ": ", strerror(errno)));
}

// Writes `value` to a new file `path` (mode 0400, owned by `user` when given).
absl::Status WriteSecretFile(const std::string& path, const std::string& value,
                             const JobIdentity* user) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
  if (fd < 0) return Errno("create", path);
  size_t done = 0;
  while (done < value.size()) {
    const ssize_t n = write(fd, value.data() + done, value.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return Errno("write", path);
    }
    done += static_cast<size_t>(n);
  }
  if (user != nullptr && fchown(fd, user->uid, user->gid) != 0) {
    close(fd);
    return Errno("chown", path);
  }
  if (close(fd) != 0) return Errno("close", path);
  return absl::OkStatus();
}

}  // namespace

JobSecrets::~JobSecrets() { RemoveFiles(); }

absl::Status JobSecrets::Prepare(const v1::Assignment& a, const std::string& dir,
                                 const JobIdentity* user,
                                 std::vector<std::pair<std::string, std::string>>* env,
                                 const JobLogFn& log) {
  std::vector<std::string> values;
  std::vector<const v1::JobSecret*> files;
  std::string notices;
  if (a.secrets_size() > static_cast<int>(kMaxSecretsPerJob)) {
    return absl::InvalidArgumentError(absl::StrCat("secrets: the assignment holds ",
                                                   a.secrets_size(), ", more than the limit of ",
                                                   kMaxSecretsPerJob));
  }
  for (const v1::JobSecret& s : a.secrets()) {
    if (absl::Status v = ValidateSecretName(s.name()); !v.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("secrets: ", v.message()));
    }
    if (!s.withheld().empty()) {
      notices += absl::StrCat("assay: secret ", s.name(), " withheld: ", s.withheld(), "\n");
      continue;
    }
    if (absl::Status v = ValidateSecretValue(s.value()); !v.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("secrets: ", s.name(), ": ", v.message()));
    }
    values.push_back(s.value());
    if (s.as_file()) {
      files.push_back(&s);
    } else {
      env->emplace_back(s.name(), s.value());
    }
  }
  masker_ = SecretMasker(values);
  if (!notices.empty()) log(notices);
  if (files.empty()) return absl::OkStatus();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (mkdir(dir.c_str(), 0700) != 0) return Errno("create", dir);
  dir_ = dir;
  for (const v1::JobSecret* s : files) {
    const std::string path = absl::StrCat(dir, "/", s->name());
    absl::Status w = WriteSecretFile(path, s->value(), user);
    if (!w.ok()) {
      RemoveFiles();
      return w;
    }
    env->emplace_back(absl::StrCat(s->name(), "_FILE"), path);
  }
  // Why 0500 and the job user's: the job may read (and list) its own secret files, never add
  // to or replace them; other users may not even look.
  if ((user != nullptr && chown(dir.c_str(), user->uid, user->gid) != 0) ||
      chmod(dir.c_str(), 0500) != 0) {
    absl::Status st = Errno("restrict", dir);
    RemoveFiles();
    return st;
  }
  return absl::OkStatus();
}

void JobSecrets::Output(std::string_view bytes, const JobLogFn& log) {
  std::string out = masker_.Mask(bytes);
  if (!out.empty()) log(out);
}

void JobSecrets::Flush(const JobLogFn& log) {
  std::string out = masker_.Flush();
  if (!out.empty()) log(out);
}

std::string JobSecrets::MaskText(std::string_view text) const {
  SecretMasker copy = masker_;
  std::string out = copy.Mask(text);
  out += copy.Flush();
  return out;
}

void JobSecrets::RemoveFiles() {
  if (dir_.empty()) return;
  // The directory is 0500: make it writable again to unlink its files (root needs not).
  chmod(dir_.c_str(), 0700);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  if (ec) LogWarn("agent", "secrets: cannot remove ", dir_, ": ", ec.message());
  dir_.clear();
}

int JobSecrets::RemoveStale(const std::string& jobs_dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(jobs_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() <= 8 || name.substr(name.size() - 8) != ".secrets") continue;
    chmod(e.path().c_str(), 0700);
    std::error_code rm;
    std::filesystem::remove_all(e.path(), rm);
    if (rm) {
      LogWarn("agent", "secrets: cannot remove ", e.path().string(), ": ", rm.message());
    } else {
      ++n;
    }
  }
  return n;
}

}  // namespace assay
